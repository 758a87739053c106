"""The ROPD reward in TRL's asynchronous GRPO trainer (`trl.experimental.async_grpo`).

That trainer's rollout worker (a spawned, CUDA-free child process) calls each reward function
with one whole group as soon as its G completions exist (`_AsyncRolloutLoop._score_group`), but
its `_score_loop` awaits one group at a time. A ROPD group costs two judge latencies (Rubricator,
then Verifier), so that loop caps the run at one group per two latencies, however fast vLLM is.

No reward function alone can lift that cap: the loop never has two calls in flight, so there is
nothing for a reward to batch. The least invasive fix is in the worker: `ConcurrentScoreLoop`
runs `max_concurrent_groups` copies of TRL's own, unchanged `_score_loop` over the shared queue
of finished groups, so up to that many groups are scored at once while each copy keeps TRL's
metrics, completion logging, heartbeat and back-pressure. `concurrent_scoring(trainer)` puts it
into the worker the trainer built (its `_loop_cls`, the class the worker spawns), so every
setting the trainer derives for the worker (model name, EOS ids, LoRA sync, limits) stays TRL's.

The reward is the ordinary `RopdReward`: one call is one group, scored by one `BatchScorer.score`;
overlapping calls share one judge client, whose `max_in_flight` bounds the judge requests. The
loop also hands each call what `GRPOTrainer` would: `log_metric` (sent to the trainer's log
through the worker's metrics queue) and a `trainer_state` whose `global_step` is the policy
version that generated the group, so the trace store's step is that version + 1.
`StopOnGateMetric` ends training with a checkpoint when the quality gate in the child trips
(the child's reward cannot reach the parent's callbacks, its metrics can).

Everything here leans on TRL private names (`_AsyncRolloutLoop`, `_score_loop`, `_score_group`,
`_push_metrics`, `_loop_cls`, `_loop_kwargs`); `concurrent_scoring` checks they exist and says
so when a TRL release renames them.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from transformers import TrainerCallback
from trl.experimental.async_grpo.async_rollout_worker import (
    AsyncRolloutWorker,
    RolloutGroup,
    RolloutSample,
    _AsyncRolloutLoop,
)

from ropd.reward.metrics import PREFIX

GATE_METRIC = PREFIX + "gate/tripped"
DEFAULT_CONCURRENT_GROUPS = 32
_TRL_NAMES = {
    _AsyncRolloutLoop: ("_score_loop", "_score_group", "_push_metrics", "_run_loops"),
    AsyncRolloutWorker: ("_loop_cls",),
}


@dataclasses.dataclass(frozen=True)
class PolicyState:
    """What a reward reads of `trainer_state` here: `global_step` = the generating policy version."""

    global_step: int


class ConcurrentScoreLoop(_AsyncRolloutLoop):
    """TRL's rollout loop with up to `max_concurrent_groups` groups being scored at once."""

    def __init__(self, *, max_concurrent_groups: int = DEFAULT_CONCURRENT_GROUPS, **kwargs: Any):
        if max_concurrent_groups < 1:
            raise ValueError(f"max_concurrent_groups must be >= 1, got {max_concurrent_groups}")
        super().__init__(**kwargs)
        self.max_concurrent_groups = max_concurrent_groups

    async def _score_loop(self, stop_event: asyncio.Event) -> None:
        """TRL's loop, run as N workers over one queue (each holds at most one group)."""
        workers = [
            asyncio.create_task(super(ConcurrentScoreLoop, self)._score_loop(stop_event))
            for _ in range(self.max_concurrent_groups)
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()

    async def _score_group(self, group: RolloutGroup) -> list[RolloutSample]:
        """TRL's scoring, with `log_metric` and `trainer_state` passed as GRPOTrainer does."""
        logged: dict[str, float] = {}
        extra = {
            "log_metric": logged.__setitem__,
            "trainer_state": PolicyState(group.model_version),
        }
        samples = await super()._score_group(
            dataclasses.replace(group, reward_kwargs={**group.reward_kwargs, **extra})
        )
        if any(getattr(f, "stop_message", None) for f in self.reward_funcs):
            logged[GATE_METRIC] = 1.0
        if logged:
            self._push_metrics(logged)
        return samples

    async def _run_loops(self, stop_event: asyncio.Event) -> None:
        """TRL's loops; then close the rewards' judges and stores on the loop that opened them."""
        try:
            await super()._run_loops(stop_event)
        finally:
            for reward in self.reward_funcs:
                aclose = getattr(reward, "aclose", None)
                if aclose is not None:
                    await aclose()


def concurrent_scoring(trainer: Any, max_concurrent_groups: int = DEFAULT_CONCURRENT_GROUPS) -> Any:
    """Make `trainer`'s rollout worker score up to `max_concurrent_groups` groups at once.

    Call after building the `AsyncGRPOTrainer` and before `train()` (the worker spawns its
    child on train begin). On processes without a worker (rank > 0) it does nothing.
    """
    for cls, names in _TRL_NAMES.items():
        missing = [n for n in names if not hasattr(cls, n)]
        if missing:
            raise RuntimeError(
                f"this TRL release has no {cls.__name__}.{', '.join(missing)}: "
                "ropd's concurrent scoring needs updating for it"
            )
    worker = getattr(trainer, "rollout_worker", None)
    if worker is None:
        return trainer
    if not isinstance(worker, AsyncRolloutWorker):
        raise TypeError(
            f"concurrent scoring plugs into TRL's AsyncRolloutWorker, not {type(worker).__name__}"
        )
    worker._loop_cls = ConcurrentScoreLoop  # the class the worker spawns
    worker._loop_kwargs["max_concurrent_groups"] = max_concurrent_groups
    return trainer


class StopOnGateMetric(TrainerCallback):
    """Ends training with a checkpoint once the rollout worker reports a tripped quality gate."""

    def on_log(self, args, state, control, logs=None, **kwargs):  # type: ignore[no-untyped-def]
        if (logs or {}).get(GATE_METRIC):
            control.should_training_stop = True
            control.should_save = True
        return control
