"""TRL adapter: the ROPD reward for your own GRPOTrainer, and the trainers `ropd train` builds.

    from ropd.integrations.trl import RopdReward
    trainer = GRPOTrainer(model=..., reward_funcs=[RopdReward(config, teacher_store="t.sqlite")],
                          train_dataset=dataset, args=GRPOConfig(...))

Importing this package imports transformers (TRL's callback base class); the core does not.
"""

from ropd.integrations.trl.reward import (
    ID_COLUMN,
    TEACHER_COLUMN,
    RopdReward,
    StopOnGateCallback,
    completion_text,
)

__all__ = ["ID_COLUMN", "TEACHER_COLUMN", "RopdReward", "StopOnGateCallback", "completion_text"]
