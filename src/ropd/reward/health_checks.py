"""Sampled reward-health checks: would the Verifier say the same again, and would another judge?

On a seeded share of groups the pool is verified once more against the same rubric, beside the
pass that gives the rewards (the extra call runs concurrently with it, so a checked group takes
about as long as any other):

- stability (`ScorerConfig.stability_check_share`): the same Verifier, the pool reshuffled under
  another shuffle key, so each answer is usually shown under another number among other
  neighbours. Its calls are made under the role `verifier_check`, so their usage and cost show
  apart from the Verifier's.
- audit (`ScorerConfig.audit`, `audit_share`): the audit judge (usually another model family), the
  pool in the first pass's order, so only the judge differs. Role `audit`.

A check never changes a reward: its verdicts are only compared with the first pass's, and the
sums go into `GroupResult.checks` (documented there; `reward/health.py` turns them into
metrics). Sums, so groups and steps add up. A check that fails (judge error, unreadable reply)
leaves the group as it is: only `<kind>_failed` is counted. Which groups are checked depends on
the group id, the scorer's seed and the training step when the scorer is given one (a resumed
run checks the same groups; a later epoch other ones), and each kind draws its own sample.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ropd import redact
from ropd.llm.types import ChatClient, UsageBook
from ropd.reward.config import ScorerConfig
from ropd.reward.types import ContextRecord
from ropd.reward.verification import BlindVerifier, PoolEntry, Verdict
from ropd.rubric import Rubric, weighted_score

log = redact.logger("ropd.reward")

STABILITY = "stability"
AUDIT = "audit"
CHECK_ROLE = "verifier_check"  # the stability pass's calls: the Verifier's model, its own usage


@dataclass(frozen=True)
class CheckKeys:
    """The `GroupResult.checks` keys one kind of check writes."""

    verdicts: str  # criterion verdicts compared (student and teacher answers)
    differing: str  # of them, verdicts that differ from the first pass's
    answers: str  # student answers compared
    reward: str  # sum over those answers of |reward of the check - reward of the first pass|
    failed: str  # checks that could not be completed (judge error)


KEYS = {
    STABILITY: CheckKeys(
        "stability_verdicts",
        "stability_flips",
        "stability_answers",
        "stability_reward_abs_change_sum",
        "stability_failed",
    ),
    AUDIT: CheckKeys(
        "audit_verdicts",
        "audit_disagreements",
        "audit_answers",
        "audit_reward_abs_diff_sum",
        "audit_failed",
    ),
}


def sampled(kind: str, group_id: str, seed: int, share: float, step: int | None = None) -> bool:
    """Whether check `kind` runs on group `group_id`: a hash of both, the seed and the training
    step (when known) below `share`.

    Deterministic (no process state), so a resumed run or another process checks the same
    groups; the kind is hashed in as well, so the two checks draw independent samples. Training
    groups are named after their prompt: the step makes each step (and epoch) draw its own
    prompts instead of checking the same ones every time.
    """
    if share <= 0.0:
        return False
    if share >= 1.0:
        return True
    key = f"ropd-check\0{kind}\0{seed}\0{group_id}"
    if step is not None:
        key += f"\0step\0{step}"
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < share


def compare(
    kind: str, rubric: Rubric, pool: list[PoolEntry], first: list[Verdict], second: list[Verdict]
) -> dict[str, float]:
    """The `checks` sums of one pool verified twice against `rubric` (pool order in both).

    Answers no judge saw in either pass (empty after cleaning: no criterion met, no call) are
    left out; they would only add verdicts that cannot differ.
    """
    keys = KEYS[kind]
    ids = [c.id for c in rubric.criteria]
    verdicts = differing = answers = 0
    changes: list[float] = []
    for entry, (label_a, a), (label_b, b) in zip(pool, first, second, strict=True):
        if label_a is None or label_b is None:
            continue
        verdicts += len(ids)
        differing += sum(a[cid] != b[cid] for cid in ids)
        if entry.source == "student":
            answers += 1
            before = weighted_score(rubric.points, [a[cid] for cid in ids])
            after = weighted_score(rubric.points, [b[cid] for cid in ids])
            changes.append(abs(after - before))
    return {
        keys.verdicts: float(verdicts),
        keys.differing: float(differing),
        keys.answers: float(answers),
        keys.reward: math.fsum(changes),
    }


def add_into(total: dict[str, float], part: dict[str, float]) -> None:
    """Add the sums of `part` into `total` (several rubrics of a per-pair group)."""
    for key, value in part.items():
        total[key] = total.get(key, 0.0) + value


class SampledChecks:
    """The checks of one scorer: which groups they sample, and the verification with them."""

    def __init__(self, config: ScorerConfig, verifier: BlindVerifier):
        self.config = config
        self.verifiers: dict[str, BlindVerifier] = {}
        if config.stability_check_share > 0:
            self.verifiers[STABILITY] = verifier.calling(verifier.role.with_name(CHECK_ROLE))
        if config.audit is not None and config.audit_share > 0:
            self.verifiers[AUDIT] = verifier.calling(config.audit)

    def kinds(self, group_id: str, step: int | None = None) -> tuple[str, ...]:
        """The checks group `group_id` gets at training step `step` (none for most groups)."""
        shares = {STABILITY: self.config.stability_check_share, AUDIT: self.config.audit_share}
        return tuple(
            kind
            for kind in self.verifiers
            if sampled(kind, group_id, self.config.seed, shares[kind], step)
        )

    async def verify(
        self,
        verifier: BlindVerifier,
        client: ChatClient,
        prompt_text: str,
        rubric: Rubric,
        pool: list[PoolEntry],
        book: UsageBook,
        shuffle_key: str,
        record: ContextRecord,
        kinds: tuple[str, ...],
    ) -> tuple[list[Verdict], dict[str, float]]:
        """`verifier.verify` (the verdicts that give rewards) with the checks `kinds` run
        beside it; returns those verdicts and the checks' sums.

        The checks' usage goes into `book` under their own roles; their context handling is not
        added to `record` (it describes the pass that gave the rewards). When the first pass
        fails, the checks are cancelled and its error is raised as it would be without them.
        """

        def run(judge: BlindVerifier, key: str, into: ContextRecord) -> Awaitable[list[Verdict]]:
            return judge.verify(client, prompt_text, rubric, pool, book, key, into)

        tasks = {
            kind: asyncio.ensure_future(self._second(kind, run, shuffle_key)) for kind in kinds
        }
        try:
            first = await run(verifier, shuffle_key, record)
        except BaseException:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            raise
        sums: dict[str, float] = {}
        for kind, task in tasks.items():
            second = await task
            if second is None:
                add_into(sums, {KEYS[kind].failed: 1.0})
            else:
                add_into(sums, compare(kind, rubric, pool, first, second))
        return first, sums

    async def _second(
        self,
        kind: str,
        run: Callable[[BlindVerifier, str, ContextRecord], Awaitable[list[Verdict]]],
        shuffle_key: str,
    ) -> list[Verdict] | None:
        """The check's own pass, or None when it fails (logged; the group goes on)."""
        # stability: another shuffle of the same pool; audit: the first pass's order
        key = f"{shuffle_key}:{STABILITY}" if kind == STABILITY else shuffle_key
        try:
            return await run(self.verifiers[kind], key, ContextRecord())
        except Exception as exc:  # noqa: BLE001 - a check must never fail its group
            log.warning(
                "group %s: the %s check failed (the reward stands): %s: %s",
                shuffle_key,
                kind,
                type(exc).__name__,
                exc,
            )
            return None


__all__ = ["AUDIT", "CHECK_ROLE", "KEYS", "STABILITY", "SampledChecks", "compare", "sampled"]
