"""The ROPD reward as a TRL reward function: drop `RopdReward(...)` into your own GRPOTrainer.

This module only translates between TRL's calling convention and `ropd.reward.batch`; the method
lives in the reward package. TRL calls an async callable on its background event loop with the
whole local batch (`prompts`, `completions`, extra dataset columns as lists, `trainer_state`,
`log_metric`). With several processes each one only sees its slice, so the slices are gathered,
the main process scores every group whole exactly once, and each process gets back the rewards
of its own slice. A group that could not be scored gets `None` (TRL masks it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ropd import redact
from ropd.data.gold import gold_text
from ropd.integrations.engine import open_engine
from ropd.llm.config import LimitsConfig
from ropd.llm.types import ChatClient
from ropd.reward.batch import (
    BatchOutcome,
    BatchScorer,
    ReferenceSource,
    Rollout,
    Scorer,
    prompt_text_key,
)
from ropd.reward.config import OVDConfig, RaRConfig, ScorerConfig, TJudgeConfig
from ropd.reward.gate import GateConfig, QualityGate
from ropd.reward.health import HealthConfig, HealthMonitor
from ropd.run_config import RunConfig, judge_field, method_of
from ropd.teacher.config import TeacherConfig

log = redact.logger(__name__)
ID_COLUMN = "ropd_id"
PLAIN_ID_COLUMN = "id"  # a dataset's own id column, used when there is no `ropd_id`
TEACHER_COLUMN = "teacher_responses"
GOLD_COLUMN = "answer"  # a checkable gold answer per row: reward-health gold metrics only
RUBRIC_COLUMN = "rubric"  # each row's own rubric (RaR layout or ropd's JSON): method rar only


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


def _prompt_id(prompt: Any) -> str:
    """A stable group id for datasets without an id column: a hash of the prompt."""
    return "p" + hashlib.sha256(prompt_text_key(prompt).encode()).hexdigest()[:12]


def _id_column(columns: dict[str, Any]) -> Any:
    """The group ids the dataset carries: `ropd_id`, else a plain `id` column, else None."""
    ids = columns.get(ID_COLUMN)
    return ids if ids is not None else columns.get(PLAIN_ID_COLUMN)


def masked_groups_note(outcome: BatchOutcome) -> str | None:
    """One line on the groups of this batch whose reward is None (TRL masks them), or None.

    TRL warns "All reward functions returned None ..." for such rows; this says how many groups
    that is, why (their errors) and that the warning refers to them.
    """
    masked = [r for r in outcome.results if r.failed and all(x is None for x in r.rewards)]
    if not masked:
        return None
    causes: dict[str, int] = {}
    for result in masked:
        cause = " ".join((result.error or "unknown error").split())
        causes[cause if len(cause) <= 200 else cause[:197] + "..."] = causes.get(cause, 0) + 1
    (first, count), *others = sorted(causes.items(), key=lambda kv: -kv[1])
    why = f"{first} ({count}x)" if len(causes) > 1 else first
    more = f"; and {len(others)} other causes" if others else ""
    return (
        f"ropd masked {len(masked)} of {len(outcome.results)} groups this step (reward None, "
        f"left out of the update): {why}{more}. TRL's warning that all reward functions "
        "returned None refers to these groups (`ropd inspect --list --failed` shows each)"
    )


_OBJECT_GROUPS: dict[str, Any] = {}


def _object_group() -> Any:
    """The process group the reward's object collectives use: the default one when it is
    gloo, else one gloo group over every rank, made once (on first use, which every rank
    reaches at the same step).

    TRL calls the reward on its background event loop thread. An NCCL object collective there
    would stage each rank's pickle on that thread's current CUDA device, which is device 0 on
    every rank unless the thread set its own (CUDA's current device is per thread): ranks would
    collide on one GPU or hang. The objects are Python lists of text anyway, so they travel on
    CPU over gloo, whatever the training backend.
    """
    import torch.distributed as dist

    if dist.get_backend() == "gloo":
        return None
    if "gloo" not in _OBJECT_GROUPS:
        _OBJECT_GROUPS["gloo"] = dist.new_group(backend="gloo")
    return _OBJECT_GROUPS["gloo"]


def _distributed() -> tuple[int, int]:
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover
        return 0, 1
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class RopdReward:
    """A TRL reward function scoring each group of completions with ROPD (or T-Judge).

    `config` is a `ScorerConfig` (ROPD), a `TJudgeConfig` (the scalar-judge baseline) or an
    `OVDConfig` (on-policy verbal distillation; its outcome reward reads the `answer` column).
    Teacher
    answers come from a `teacher_responses` dataset column (a list of strings per row) when the
    dataset has one, otherwise from `teacher_store` by prompt. The judge is opened on first use
    inside TRL's event loop and closed by `aclose()`. Per-step metrics go through TRL's
    `log_metric`; every rubric and verdict goes to `traces` when given. An `answer` column (a
    gold answer per row) adds the gold-agreement numbers to the `ropd/health/*` metrics, and
    `health` sets their alarms (a `stop` alarm ends training like the quality gate). With a
    `RaRConfig` (method rar) the `rubric` column gives each row's rubric (RaR's items, or ropd's
    rubric as JSON text); a row without a valid one fails its own group.

    Calls may overlap (TRL's async GRPO worker scores groups concurrently, see
    `integrations/trl/async_grpo.py`): the judge is still opened once. The reward pickles as
    long as it was never called (that trainer sends it to a spawned process); pass
    `teacher_store` and `traces` as paths then, not open stores.
    """

    def __init__(
        self,
        config: ScorerConfig | TJudgeConfig | OVDConfig | RaRConfig | None = None,
        *,
        teacher_store: str | Path | Any | None = None,
        limits: LimitsConfig | None = None,
        traces: str | Path | Any | None = None,
        num_generations: int | None = None,
        gate: GateConfig | QualityGate | None = None,
        health: HealthConfig | HealthMonitor | None = None,
        teacher_fingerprint: str | None = None,
        accept_any_fingerprint: bool = False,
        teacher_answers: int | None = None,
        client: ChatClient | None = None,
        run_id: str | None = None,
        name: str | None = None,
        probe: bool = True,
        run_info: dict[str, Any] | None = None,
    ):
        self.config = config or ScorerConfig()
        self.teacher_store = teacher_store
        self.limits = limits
        self.traces = traces
        self.num_generations = num_generations
        self.teacher_fingerprint = teacher_fingerprint
        self.accept_any_fingerprint = accept_any_fingerprint
        self.teacher_answers = teacher_answers
        self.client = client
        self.run_id = run_id
        self.probe = probe  # check the judge endpoints once, before the first step
        self.run_info = run_info or {}  # stored with the run in the trace store (e.g. the config)
        if isinstance(gate, GateConfig):
            gate = QualityGate.from_config(gate)
        self.batch_scorer = BatchScorer(self._open, gate, health)
        self.__name__ = name or method_of(self.config)
        self.stop_message: str | None = None
        self._masked_note_step: int | None = None  # the last step the masked-groups line named

    @classmethod
    def from_run_config(cls, run: RunConfig, **options: Any) -> RopdReward:
        """The reward a `RunConfig` describes (method, judge, limits, gate, teacher store and K,
        traces, run id, probe); `options` are the other keyword arguments (`client`, ...)."""
        teacher = run.teacher
        settings: dict[str, Any] = {
            "teacher_store": teacher.store,
            "limits": run.limits,
            "traces": run.traces,
            "gate": run.gate,
            "health": run.health,
            "teacher_fingerprint": teacher.fingerprint,
            "accept_any_fingerprint": teacher.accept_any_fingerprint,
            "teacher_answers": run.k,
            "run_id": run.run_id,
            "name": run.method,
            "probe": run.probe,
        }
        return cls(run.judge_config, **{**settings, **options})

    @property
    def run_config(self) -> RunConfig:
        """The run configuration this reward opens its session with."""
        store = self.teacher_store if isinstance(self.teacher_store, str | Path) else None
        method = method_of(self.config)
        return RunConfig(
            method=method,
            **{judge_field(method): self.config},
            teacher=TeacherConfig(
                store=store,
                fingerprint=self.teacher_fingerprint,
                accept_any_fingerprint=self.accept_any_fingerprint,
            ),
            limits=self.limits or LimitsConfig(),
            run_id=self.run_id,
            probe=self.probe and self.client is None,
        )

    @property
    def num_teacher_refs(self) -> int:
        """Answers looked up per prompt in the store: `teacher_answers`, else `RunConfig.k`."""
        if self.teacher_answers is not None:
            return self.teacher_answers
        return self.run_config.k

    async def _open(self, stack: AsyncExitStack) -> tuple[Scorer, ReferenceSource | None]:
        """Open the session (judge, trace store, teacher store) and the scorer on it (main
        process only)."""
        store = self.teacher_store
        return await open_engine(
            stack,
            self.run_config,
            client=self.client,
            traces=self.traces,
            run_info={"trainer": "trl", "reward": self.__name__, **self.run_info},
            teacher_store=None if store is None or isinstance(store, str | Path) else store,
            k=self.num_teacher_refs,
        )

    async def aclose(self) -> None:
        """Close the judge connection and stores (call on the loop that scored)."""
        await self.batch_scorer.aclose()

    async def __call__(
        self,
        prompts: Sequence[Any],
        completions: Sequence[Any],
        completion_ids: Any = None,
        trainer_state: Any = None,
        log_metric: Any = None,
        **columns: Any,
    ) -> list[float | None]:
        ids = _id_column(columns)
        teacher = columns.get(TEACHER_COLUMN)
        gold = columns.get(GOLD_COLUMN)
        # read only for RaR: another method's data may use the name for something else
        rubric = columns.get(RUBRIC_COLUMN) if isinstance(self.config, RaRConfig) else None
        local = [
            Rollout(
                group_id=str(ids[i]) if ids is not None else _prompt_id(prompts[i]),
                prompt=prompts[i],
                completion=completion_text(completions[i]),
                teacher_responses=tuple(teacher[i]) if teacher is not None else None,
                gold=gold_text(gold[i]) if gold is not None else None,
                rubric=rubric[i] if rubric is not None else None,
            )
            for i in range(len(prompts))
        ]
        # The step whose update these rollouts feed (TensorBoard shows logs at that step).
        step = trainer_state.global_step + 1 if trainer_state is not None else None
        outcome = await self._score_everywhere(local, step)
        if log_metric is not None:
            for name, value in sorted(outcome.metrics.items()):
                log_metric(name, value)
        self._note_masked(outcome, step)
        if outcome.stop_message is not None and self.stop_message is None:
            self.stop_message = outcome.stop_message
            log.error(outcome.stop_message)
        return outcome.rewards

    def _note_masked(self, outcome: BatchOutcome, step: int | None) -> None:
        """Say, once per step at most, how many groups were masked and why (main process)."""
        if _distributed()[0] != 0 or (step is not None and step == self._masked_note_step):
            return
        note = masked_groups_note(outcome)
        if note is not None:
            self._masked_note_step = step
            log.warning("%s", note)

    async def _score(self, rollouts: list[Rollout], step: int | None) -> BatchOutcome:
        return await self.batch_scorer.score(rollouts, group_size=self.num_generations, step=step)

    async def _score_everywhere(self, local: list[Rollout], step: int | None) -> BatchOutcome:
        rank, world = _distributed()
        if world == 1:
            return await self._score(local, step)
        import torch.distributed as dist

        group = _object_group()
        slices: list[Any] = [None] * world
        dist.all_gather_object(slices, local, group=group)
        sizes = [len(s) for s in slices]
        everything = [rollout for part in slices for rollout in part]
        payload: list[Any] = [None]
        if rank == 0:
            try:
                payload[0] = await self._score(everything, step)
            except Exception as exc:  # noqa: BLE001 - every rank must leave the collective
                payload[0] = exc
        dist.broadcast_object_list(payload, src=0, group=group)  # src: global rank 0
        result = payload[0]
        if isinstance(result, Exception):
            message = f"scoring failed on the main process: {result}"
            raise RuntimeError(message) from result  # noqa: TRY004
        start = sum(sizes[:rank])
        return BatchOutcome(
            rewards=result.rewards[start : start + sizes[rank]],
            metrics=result.metrics,
            stop_message=result.stop_message,
            results=result.results,
        )


class StopOnGateCallback(TrainerCallback):
    """Ends training gracefully (with a checkpoint) once the reward's quality gate trips."""

    def __init__(self, reward: RopdReward):
        self.reward = reward

    def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if self.reward.stop_message is not None:
            control.should_training_stop = True
            control.should_save = True
        return control
