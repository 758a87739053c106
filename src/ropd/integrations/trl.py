"""TRL adapter: the ROPD reward as a GRPOTrainer reward function, plus a stop callback.

This module only translates between TRL's calling convention and `ropd.train.scoring`; the method
itself lives in the reward engine. TRL calls an async callable class on its background event
loop with the whole local batch (`prompts`, `completions`, extra dataset columns as lists,
`trainer_state`, `log_metric`). With several processes each one only sees its slice, so the
slices are gathered, the main process scores every group whole exactly once, and each process
gets back the rewards of its own slice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from transformers import TrainerCallback

from ropd.train.scoring import BatchOutcome, BatchScorer, Rollout

log = logging.getLogger(__name__)
ID_COLUMN = "ropd_id"


def completion_text(completion: Any) -> str:
    """Plain text of a TRL completion (a string, or a list of assistant messages)."""
    if isinstance(completion, str):
        return completion
    parts = []
    for message in completion:
        content = message.get("content", "")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        parts.append(content or "")
    return "".join(parts)


def _distributed() -> tuple[int, int]:
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return 0, 1
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class RopdRewardFunction:
    """An async TRL reward function backed by a `BatchScorer` (ROPD or T-Judge)."""

    def __init__(self, batch_scorer: BatchScorer, num_generations: int, name: str = "ropd"):
        self.batch_scorer = batch_scorer
        self.num_generations = num_generations
        self.__name__ = name
        self.stop_message: str | None = None

    async def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Any = None,
        trainer_state: Any = None,
        log_metric: Any = None,
        **columns: Any,
    ) -> list[float | None]:
        ids = columns.get(ID_COLUMN)
        local = [
            Rollout(
                group_id=str(ids[i]) if ids is not None else f"row{i}",
                prompt=prompts[i],
                completion=completion_text(completions[i]),
            )
            for i in range(len(prompts))
        ]
        # The step whose update these rollouts feed (TensorBoard shows logs at that step).
        step = trainer_state.global_step + 1 if trainer_state is not None else None
        outcome = await self._score_everywhere(local, step)
        if log_metric is not None:
            for name, value in sorted(outcome.metrics.items()):
                log_metric(name, value)
        if outcome.stop_message is not None and self.stop_message is None:
            self.stop_message = outcome.stop_message
            log.error(outcome.stop_message)
        return outcome.rewards

    async def _score_everywhere(self, local: list[Rollout], step: int | None) -> BatchOutcome:
        rank, world = _distributed()
        if world == 1:
            return await self.batch_scorer.score(local, group_size=self.num_generations, step=step)
        import torch.distributed as dist

        slices: list[Any] = [None] * world
        dist.all_gather_object(slices, local)
        sizes = [len(s) for s in slices]
        everything = [rollout for part in slices for rollout in part]
        payload: list[Any] = [None]
        if rank == 0:
            try:
                payload[0] = await self.batch_scorer.score(
                    everything, group_size=self.num_generations, step=step
                )
            except Exception as exc:  # noqa: BLE001 - every rank must leave the collective
                payload[0] = exc
        dist.broadcast_object_list(payload, src=0)
        result = payload[0]
        if isinstance(result, Exception):
            message = f"scoring failed on the main process: {result}"
            raise RuntimeError(message) from result  # noqa: TRY004
        start = sum(sizes[:rank])
        return BatchOutcome(
            rewards=result.rewards[start : start + sizes[rank]],
            metrics=result.metrics,
            stop_message=result.stop_message,
        )


class StopOnGateCallback(TrainerCallback):
    """Ends training gracefully (with a checkpoint) once the reward's quality gate trips."""

    def __init__(self, reward: RopdRewardFunction):
        self.reward = reward

    def on_step_end(self, args, state, control, **kwargs):
        if self.reward.stop_message is not None:
            control.should_training_stop = True
            control.should_save = True
        return control
