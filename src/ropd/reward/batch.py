"""Engine-agnostic batch scoring: regroup rollouts by prompt, add teacher answers, score, report.

Training adapters (TRL, verl) hand over a flat batch of rollouts; this module turns it into whole
groups (one prompt, its G student answers and its K teacher answers), scores them all
concurrently, and returns one reward per rollout in the original order plus the step metrics
(reward health included: answers are checked against a row's gold answer when it has one).

The gold check is CPU work (math-verify), so it runs in a worker thread beside the judge calls
rather than before them, and its results reach the trace store once both are done
(`TraceStore.record_correct`): judging never waits for it.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol

from ropd import redact
from ropd.llm.types import UsageBook
from ropd.reward.gate import QualityGate
from ropd.reward.health import (
    HEALTH,
    TEACHER_FAIL_BELOW,
    GoldChecker,
    HealthConfig,
    HealthMonitor,
)
from ropd.reward.metrics import PREFIX, step_metrics
from ropd.reward.types import Group, GroupResult, Prompt

log = redact.logger(__name__)
GoldChecks = list[list[bool | None] | None]  # per group, each answer's gold check


class Scorer(Protocol):
    """`GroupScorer` and `TJudgeScorer` both fit (their `traces` and `run_id`, where a scorer
    has them, receive the gold checks)."""

    usage: UsageBook

    async def score_groups(
        self, groups: Sequence[Group | Mapping[str, Any]], *, step: int | None = None
    ) -> list[GroupResult]: ...

    async def reject(
        self, raw: Mapping[str, Any], cause: str, *, step: int | None = None
    ) -> GroupResult: ...


class ReferenceSource(Protocol):
    """Where a group's teacher answers come from (the teacher store, usually)."""

    async def references(self, prompt: Prompt) -> list[str]: ...


Opener = Callable[[AsyncExitStack], Awaitable[tuple[Scorer, ReferenceSource | None]]]


@dataclass(frozen=True)
class Rollout:
    """One student completion of one prompt; `group_id` names the dataset row.

    `teacher_responses` carries the row's teacher answers when the dataset has them (a
    `teacher_responses` column); otherwise they are looked up by prompt. `gold` is the row's
    checkable answer (an `answer` column), used only by the reward-health metrics. `rubric` is
    the row's own rubric (a `rubric` column; `method: rar`), a `Rubric` or the data's form,
    validated with the group (a bad one fails its group, not the batch).
    """

    group_id: str
    prompt: Prompt
    completion: str
    teacher_responses: tuple[str, ...] | None = None
    gold: str | None = None
    rubric: Any = None


@dataclass
class BatchOutcome:
    rewards: list[float | None]
    metrics: dict[str, float] = field(default_factory=dict)
    stop_message: str | None = None
    results: list[GroupResult] = field(default_factory=list)  # one per group, in group order
    alarms: list[str] = field(default_factory=list)  # reward-health breaches of this batch
    # per group (results' order), each answer checked against its row's gold answer; None
    # altogether when no rollout had one, None for a group without any
    correct: GoldChecks | None = None


def prompt_text_key(prompt: Prompt) -> str:
    """One string per distinct prompt (a text, or messages serialised with sorted keys)."""
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)


def regroup(rollouts: Sequence[Rollout], group_size: int | None = None) -> list[list[int]]:
    """Indices of the rollouts of each group, in first-appearance order.

    Trainers put the G completions of a prompt next to each other, so consecutive chunks of
    `group_size` are the groups (this keeps two draws of the same prompt in one batch apart).
    When the batch does not have that shape, rollouts are grouped by (id, prompt) instead.
    """
    n = len(rollouts)
    keys = [(r.group_id, prompt_text_key(r.prompt)) for r in rollouts]
    if group_size and n % group_size == 0:
        chunks = [list(range(i, i + group_size)) for i in range(0, n, group_size)]
        if all(len({keys[i] for i in chunk}) == 1 for chunk in chunks):
            return chunks
    groups: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return list(groups.values())


class BatchScorer:
    """Scores a trainer's batch group by group; opens the judge client on first use.

    The client is opened lazily inside the event loop that calls `score` (HTTP clients bind to
    the loop they first run on) and closed by `aclose` on that same loop.
    """

    def __init__(
        self,
        opener: Opener,
        gate: QualityGate | None = None,
        health: HealthConfig | HealthMonitor | None = None,
    ):
        self._opener = opener
        self._stack: AsyncExitStack | None = None
        self.scorer: Scorer | None = None
        self.references: ReferenceSource | None = None
        self.gate = gate
        # No alarms without a config; the health numbers are logged either way.
        self.health = HealthMonitor(health) if isinstance(health, HealthConfig) else health
        self._gold = GoldChecker()
        self.run_cost: float | None = None  # judge cost of every batch so far (priced roles)
        self._opening: asyncio.Lock | None = None

    async def open(self) -> Scorer:
        """The scorer, opened on the first call; calls that overlap it wait for that one opening
        (TRL's async worker and verl's reward loop start many groups at once)."""
        if self.scorer is None:
            if self._opening is None:
                self._opening = asyncio.Lock()  # made in the loop that scores
            async with self._opening:
                if self.scorer is None:
                    stack = AsyncExitStack()
                    await stack.__aenter__()
                    try:
                        self.scorer, self.references = await self._opener(stack)
                    except BaseException:
                        await stack.aclose()
                        raise
                    self._stack = stack
        return self.scorer

    def __getstate__(self) -> dict[str, Any]:
        """Picklable until opened (a trainer may send its reward to another process first)."""
        if self.scorer is not None:
            raise TypeError(
                "an opened scorer cannot be pickled: pickle it (or hand it to a trainer that "
                "spawns its reward process) before its first use"
            )
        return {**self.__dict__, "_opening": None}

    async def aclose(self) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()

    async def _teacher_answers(self, rollout: Rollout) -> list[str]:
        """The row's own teacher answers, else the reference source's, else none."""
        if rollout.teacher_responses is not None:
            return list(rollout.teacher_responses)
        if self.references is not None:
            return await self.references.references(rollout.prompt)
        return []

    async def score(
        self, rollouts: Sequence[Rollout], *, group_size: int | None = None, step: int | None = None
    ) -> BatchOutcome:
        scorer = await self.open()
        index_groups = regroup(rollouts, group_size)
        groups: list[dict[str, Any]] = []
        refused: dict[int, str] = {}  # group number -> why it cannot be judged
        seen: dict[str, int] = {}
        for number, indices in enumerate(index_groups):
            first = rollouts[indices[0]]
            count = seen[first.group_id] = seen.get(first.group_id, 0) + 1
            try:
                teacher = await self._teacher_answers(first)
            except Exception as exc:  # noqa: BLE001 - a store error fails this group, not the step
                refused[number] = f"teacher answers: {type(exc).__name__}: {exc}"
                teacher = []
            # Plain mappings: `score_groups` validates each one, so an answer that is not valid
            # text (a lone surrogate) fails its own group instead of the whole batch.
            group: dict[str, Any] = {
                "id": first.group_id if count == 1 else f"{first.group_id}#{count}",
                "prompt": first.prompt,
                "student_responses": [rollouts[i].completion for i in indices],
                "teacher_responses": teacher,
            }
            if first.rubric is not None:
                group["rubric"] = first.rubric
            if first.gold is not None:
                group["gold"] = first.gold
            groups.append(group)
        judged = [g for n, g in enumerate(groups) if n not in refused]
        gold = asyncio.create_task(self._check_gold(rollouts, index_groups))  # beside the judges
        try:
            scored = iter(await scorer.score_groups(judged, step=step))
            results = [
                await scorer.reject(group, refused[n], step=step) if n in refused else next(scored)
                for n, group in enumerate(groups)
            ]
        except BaseException:
            gold.cancel()
            raise
        correct = await gold
        if correct is not None:
            await self._store_gold(scorer, [g["id"] for g in groups], correct, step)
        rewards: list[float | None] = [None] * len(rollouts)
        for indices, result in zip(index_groups, results, strict=True):
            for i, reward in zip(indices, result.rewards, strict=True):
                rewards[i] = None if reward is None or math.isnan(reward) else float(reward)
        answers = [[rollouts[i].completion for i in indices] for indices in index_groups]
        below = self.health.config.teacher_fail_below if self.health else TEACHER_FAIL_BELOW
        numbers = step_metrics(results, answers=answers, correct=correct, teacher_fail_below=below)
        metrics = numbers.as_dict() if results else {}
        alarms = self.health.review(numbers.health, step) if self.health is not None else None
        if alarms is not None:
            metrics[PREFIX + HEALTH + "alarms"] = float(len(alarms))
        if (cost := metrics.get(PREFIX + "judge/cost")) is not None:
            self.run_cost = (self.run_cost or 0.0) + cost
            metrics[PREFIX + "judge/cost_run"] = self.run_cost
        stop = None
        if self.gate is not None:
            metrics[PREFIX + "gate/failed_share"] = self.gate.update(
                (r.failed for r in results), step=step
            )
            stop = self.gate.message
        if stop is None and self.health is not None:
            stop = self.health.stop_message
        return BatchOutcome(
            rewards=rewards,
            metrics=metrics,
            stop_message=stop,
            results=results,
            alarms=alarms or [],
            correct=correct,
        )

    async def _check_gold(
        self, rollouts: Sequence[Rollout], index_groups: list[list[int]]
    ) -> GoldChecks | None:
        """Per group, each answer checked against its row's gold answer (None for a group
        without any; None altogether when no rollout has one)."""
        if all(r.gold is None for r in rollouts):
            return None

        def check() -> GoldChecks:
            return [
                [self._gold.check(rollouts[i].completion, rollouts[i].gold) for i in indices]
                if any(rollouts[i].gold is not None for i in indices)
                else None
                for indices in index_groups
            ]

        return await asyncio.to_thread(check)  # math-verify is CPU work: keep the loop free

    async def _store_gold(
        self, scorer: Scorer, ids: list[str], correct: GoldChecks, step: int | None
    ) -> None:
        """The gold checks into the scorer's trace store, beside the groups it recorded.

        A store that cannot take them costs only the stored checks (a warning): the rewards and
        the logged health numbers stand.
        """
        traces = getattr(scorer, "traces", None)
        if traces is None:
            return
        checks = {str(gid): c for gid, c in zip(ids, correct, strict=True) if c is not None}
        try:
            await asyncio.to_thread(
                traces.record_correct, checks, step=step, run_id=getattr(scorer, "run_id", None)
            )
        except Exception as exc:  # noqa: BLE001 - sqlite3 errors, a full disk, a closed store
            where = getattr(traces, "path", "the trace store")
            log.warning("gold checks not recorded in %s: %s: %s", where, type(exc).__name__, exc)
