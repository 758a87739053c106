"""Rollouts arrive one by one, in any order; ROPD judges a prompt's G answers together.

verl calls its reward manager once per rollout, as soon as that rollout finishes. The collector
parks each rollout under its group id (verl's `uid`) until all G siblings are there, scores the
group once with ropd's engine (`reward.batch.BatchScorer`), and answers every parked rollout
with its own reward. Groups are therefore judged while other rollouts of the same step are still
generating.

verl has no per-sample mask: a group that cannot be scored gets one float for all its members
(equal rewards: zero GRPO advantage) and `failed` set.

No rollout waits longer than it must:
- A rollout whose group is already being scored or scored (verl's padding rows, duplicates of a
  real row; REMAX's extra greedy rollout; V1's per-prompt `__rollout_n__`) gets its group's mean
  reward (zero advantage), flagged, as soon as the group's score is known: it never opens a new
  group that would wait out a timeout.
- A group whose siblings never all arrive (an aborted rollout) is scored with what arrived once
  its wait is over. verl sends no abort signal to the reward manager, so the wait is learned:
  `spread_factor` times the longest first-to-last arrival spread of the last complete groups,
  at least `min_timeout_s`, at most `timeout_s` (the ceiling, also the wait before any group has
  completed).
Training groups carry verl's step number (`global_steps`, which verl's V1 trainer hands every
rollout); without it they are numbered into steps as they start scoring (`groups_per_step` per
step). The trace store and the metrics carry those step numbers, and a completed step's metrics
go to `step_log` (verl's tracking backends, `tracking.py`) at that step, on a thread of their
own: a backend's first write imports its library (verl's console and W&B adapters take about 5 s)
and must not hold the event loop every waiting rollout is answered from.

Reward health (`reward/health.py`) is judged per step, not per group: a group's answers are
checked against their gold answers (verl's `ground_truth`) while its judges work (by the
`BatchScorer`, which also writes the checks to the trace store), and when a step's last group
is in, the step's `ropd/health/*` numbers join its metrics and the health monitor reviews the
whole step. A `stop` alarm stops the run like the quality gate: the next rollout
raises `QualityGateTripped`.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from ropd import redact
from ropd.reward.batch import BatchScorer, Rollout
from ropd.reward.gate import QualityGateTripped
from ropd.reward.health import HEALTH, HealthConfig, HealthMonitor
from ropd.reward.metrics import PREFIX, step_metrics
from ropd.reward.types import GroupResult

log = redact.logger(__name__)

# Every rollout answers with these keys, scored or not: verl stacks the extra info of a batch
# by the keys of its first sample.
EXTRA_KEYS = ("ropd_failed", "ropd_partial", "ropd_group_size", "ropd_step")
REMEMBERED_GROUPS = 100_000  # closed groups kept to answer late siblings
SPREADS_KEPT = 256  # complete groups whose arrival spread sets the wait of new groups
MIN_SPREADS = 8  # complete groups seen before the learned wait replaces the ceiling


class StepLog(Protocol):
    """Where a completed step's `ropd/*` metrics go besides the log line."""

    def log(self, metrics: dict[str, float], step: int) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class VerlRollout:
    """One finished rollout as the collector sees it (plain data: it may travel to an actor)."""

    uid: str
    rollout: Rollout
    group_size: int
    validation: bool = False
    global_step: int | None = None  # verl's `global_steps` when it passes one (V1 does)


@dataclass(frozen=True)
class RolloutScore:
    """The reward of one rollout and how it came about."""

    reward: float
    failed: bool = False  # its group could not be scored (or it came after its group was)
    partial: bool = False  # scored in a group cut short by the timeout
    group_size: int = 0  # answers judged together with it (0: not judged by ropd)
    step: int = -1  # training step its group was counted in (-1: validation, not ropd)

    def extra_info(self) -> dict[str, Any]:
        return {
            "ropd_failed": float(self.failed),
            "ropd_partial": float(self.partial),
            "ropd_group_size": self.group_size,
            "ropd_step": self.step,
        }


@dataclass
class _Pending:
    size: int
    validation: bool
    opened: float  # loop time of the first rollout
    items: list[VerlRollout] = field(default_factory=list)
    futures: list[asyncio.Future[RolloutScore]] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


@dataclass(frozen=True)
class _Scored:
    """What a step's health needs of one scored group."""

    result: GroupResult
    answers: list[str]
    correct: list[bool | None] | None  # gold checks, in answer order (None: no gold answers)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


class GroupCollector:
    """Parks rollouts per group id and scores each group once, whole or after its wait.

    One collector must see every sibling of a group, so a run has exactly one: in verl's only
    reward worker, or in the named actor (`actor.py`). It lives on one event loop.
    """

    def __init__(
        self,
        scorer: BatchScorer,
        *,
        groups_per_step: int,
        timeout_s: float,
        failure_reward: float = 0.0,
        health: HealthConfig | None = None,
        step_log: StepLog | None = None,
        min_timeout_s: float = 30.0,
        spread_factor: float = 3.0,
    ):
        self.scorer = scorer
        self.groups_per_step = max(1, groups_per_step)
        self.timeout_s = timeout_s
        self.min_timeout_s = min(min_timeout_s, timeout_s)
        self.spread_factor = spread_factor
        self._spreads: deque[float] = deque(maxlen=SPREADS_KEPT)
        self.failure_reward = failure_reward
        self.stop_message: str | None = None
        self.step_log = step_log
        # one thread: steps are written in order, never on the loop
        self._step_writer = ThreadPoolExecutor(1, thread_name_prefix="ropd-step-log")
        self.step_metrics: dict[int, dict[str, float]] = {}  # metrics of each completed step
        self._pending: dict[str, _Pending] = {}
        # each closed group's (mean reward, step), a future while it is being scored
        self._closed: OrderedDict[str, asyncio.Future[tuple[float, int]]] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._train_groups = 0
        self._step_groups: dict[int, list[_Scored]] = {}
        # Per step, never per group: the scorer gets no monitor (one group is below min_groups).
        # Without a config the numbers are logged and nothing raises an alarm.
        self.health = HealthMonitor(health or HealthConfig(alarm="off"))

    async def submit(self, item: VerlRollout) -> RolloutScore:
        """Wait for the rollout's group to be scored; its reward."""
        if self.stop_message is not None:
            raise QualityGateTripped(self.stop_message)
        closed = self._closed.get(item.uid)
        if closed is not None:
            reward, step = await asyncio.shield(closed)
            log.warning("rollout of group %s arrived after its group was closed", item.uid)
            return RolloutScore(reward, failed=True, partial=True, step=step)
        loop = asyncio.get_running_loop()
        group = self._pending.get(item.uid)
        if group is None:
            size = max(1, item.group_size)
            group = self._pending[item.uid] = _Pending(size, item.validation, loop.time())
            group.timer = loop.call_later(self.wait_s, self._close, item.uid)
        future: asyncio.Future[RolloutScore] = loop.create_future()
        group.items.append(item)
        group.futures.append(future)
        if len(group.items) >= group.size:
            self._close(item.uid)
        return await future

    @property
    def wait_s(self) -> float:
        """How long a new group waits for its siblings: learned from the spreads of complete
        groups (`spread_factor` x the longest, within [`min_timeout_s`, `timeout_s`])."""
        if len(self._spreads) < MIN_SPREADS:
            return self.timeout_s
        learned = self.spread_factor * max(self._spreads)
        return min(self.timeout_s, max(self.min_timeout_s, learned))

    @property
    def waiting(self) -> int:
        """Rollouts parked until their group is complete."""
        return sum(len(g.items) for g in self._pending.values())

    def _close(self, uid: str) -> None:
        group = self._pending.pop(uid, None)
        if group is None:
            return
        if group.timer is not None:
            group.timer.cancel()
        loop = asyncio.get_running_loop()
        waited = loop.time() - group.opened
        if len(group.items) < group.size:
            log.warning(
                "group %s: %d of %d rollouts after %.0f s; scoring what arrived",
                uid, len(group.items), group.size, waited,
            )  # fmt: skip
        else:
            self._spreads.append(waited)
        closed = self._closed[uid] = loop.create_future()
        closed.add_done_callback(_retrieve)  # late siblings may be none: no "never retrieved"
        step = None if group.validation else self._next_step(group.items[0].global_step)
        task = loop.create_task(self._score(uid, group, step, closed))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _next_step(self, given: int | None) -> int:
        """verl's step when it passed one, else the count of `groups_per_step` groups."""
        counted = 1 + self._train_groups // self.groups_per_step
        self._train_groups += 1
        return counted if given is None else given

    async def _score(
        self,
        uid: str,
        group: _Pending,
        step: int | None,
        closed: asyncio.Future[tuple[float, int]],
    ) -> None:
        rollouts = [item.rollout for item in group.items]
        try:
            outcome = await self.scorer.score(rollouts, group_size=len(rollouts), step=step)
        except BaseException as exc:  # policy `raise`, judge unusable, cancelled: tell every waiter
            for future in group.futures:
                if not future.done():
                    future.set_exception(exc)
            if self._closed.get(uid) is closed:  # a later sibling opens a group of its own
                del self._closed[uid]
            if isinstance(exc, asyncio.CancelledError):
                closed.cancel()
                raise
            closed.set_exception(exc)
            return
        result = outcome.results[0]
        rewards = outcome.rewards
        failed = result.failed or any(r is None or math.isnan(r) for r in rewards)
        values = [self.failure_reward] * len(rewards) if failed else [float(r) for r in rewards]  # type: ignore[arg-type]
        shown_step = -1 if step is None else step
        closed.set_result((math.fsum(values) / len(values), shown_step))
        while len(self._closed) > REMEMBERED_GROUPS:
            self._closed.popitem(last=False)
        partial = len(rollouts) < group.size
        for future, value in zip(group.futures, values, strict=True):
            if not future.done():
                score = RolloutScore(value, failed, partial, len(rollouts), shown_step)
                future.set_result(score)
        self._stop(outcome.stop_message)
        if step is not None:
            correct = outcome.correct[0] if outcome.correct else None
            self._count(step, _Scored(result, [r.completion for r in rollouts], correct))

    def _stop(self, message: str | None) -> None:
        """The first stop message (quality gate or health alarm) stops every later rollout."""
        if message is not None and self.stop_message is None:
            self.stop_message = message
            log.error("%s", message)

    def _count(self, step: int, scored: _Scored) -> None:
        """Log a step's metrics once all its groups are scored (the numbers TRL would log),
        reward health included, and review the step's health."""
        groups = self._step_groups.setdefault(step, [])
        groups.append(scored)
        if len(groups) < self.groups_per_step:
            return
        del self._step_groups[step]
        numbers = step_metrics(
            [g.result for g in groups],
            answers=[g.answers for g in groups],
            correct=[g.correct for g in groups],
            teacher_fail_below=self.health.config.teacher_fail_below,
        )
        metrics = numbers.as_dict()
        alarms = self.health.review(numbers.health, step)  # warns once per step itself
        if alarms is not None:
            metrics[PREFIX + HEALTH + "alarms"] = float(len(alarms))
        self.step_metrics[step] = metrics
        while len(self.step_metrics) > 1000:
            del self.step_metrics[min(self.step_metrics)]
        log.info("ropd step %d metrics %s", step, json.dumps(metrics, sort_keys=True))
        if self.step_log is not None:
            self._step_writer.submit(self._write_step, self.step_log, metrics, step)
        self._stop(self.health.stop_message)

    @staticmethod
    def _write_step(step_log: StepLog, metrics: dict[str, float], step: int) -> None:
        try:
            step_log.log(metrics, step)
        except Exception as exc:  # noqa: BLE001 - a logging backend must not stop training
            log.warning("ropd: step %d metrics not written to verl's tracking: %s", step, exc)

    async def flush(self) -> None:
        """Wait until every group that started scoring is scored and counted (a step's metrics
        are counted just after its last group's rollouts have their rewards) and every counted
        step is written to `step_log`."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await asyncio.wrap_future(self._step_writer.submit(lambda: None))

    async def aclose(self) -> None:
        """Fail what still waits, then close the judge and stores (on the collector's loop)."""
        for uid in list(self._pending):
            group = self._pending.pop(uid)
            if group.timer is not None:
                group.timer.cancel()
            for future in group.futures:
                future.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.to_thread(self._step_writer.shutdown, wait=True)
        if self.step_log is not None:
            self.step_log.close()
        await self.scorer.aclose()
