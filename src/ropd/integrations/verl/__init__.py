"""ROPD on upstream verl: a reward manager for verl's reward loop (see docs/verl.md).

`reward_manager.RopdRewardManager` is what verl loads (`pkg://ropd.integrations.verl.reward_manager`);
it imports verl. The other modules do not: `settings` (the `ropd:` section and verl's config),
`collector` (groups from rollouts arriving one by one), `engine` (ropd's scorer as the adapter
opens it), `actor` (the named Ray actor for several reward workers), `tracking` (the step
metrics in verl's `trainer.logger` backends) and `data` (verl's dataset
rows, behind `ropd verl prepare-data`).
"""
