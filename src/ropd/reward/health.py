"""Reward health: does the judge's reward still track quality, step by step, during training?

A judge reward can go wrong without any error: the rubric stops separating answers, fails the
teacher's known-strong answers, starts paying for length, or the student learns to write what
the judge wants to read. These numbers watch for that from what scoring already produces; each
is logged as `ropd/health/<name>` and is absent (never 0) when a step cannot compute it.

- gold agreement (rows with a checkable gold answer): `gold_auc`, `gold_pair_accuracy`,
  `reward_correct_mean`, `reward_incorrect_mean`, `gold_checked`, `gold_correct_rate`;
- anchor validity: `teacher_fail_rate`, `no_spread_rate`;
- hacking signs: `length_reward_corr`, `judge_imitation_rate`;
- sampled checks (`GroupResult.checks`): `verdict_flip_rate`, `stability_reward_change`,
  `audit_disagreement_rate`, `audit_reward_diff`, `checked_groups`;
- `reinduced_rate`: groups given a second rubric (`ScorerConfig.reinduce_on_bad_anchor`).

Failed groups carry no judgement, so they are left out of every number except the imitation
rate (the answers were written all the same) and the sampled checks (whatever ran is counted).
Sums use `math.fsum`: the same groups in another order give identical numbers, so the training
log and `ropd inspect --stats` agree. `HealthConfig` (the `ropd.health` section) sets the alarm
thresholds and what a breach does (`HealthMonitor`); see `docs/health.md`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ropd import redact
from ropd.data.gold import GoldError, check_math
from ropd.ranking import auc, pair_counts
from ropd.reward.types import GroupResult

log = redact.logger(__name__)
HEALTH = "health/"
TEACHER_FAIL_BELOW = 0.5
COPIED_CRITERION_CHARS = 40  # a criterion at least this long, copied verbatim, is imitation
# Verdict-like or rubric-like JSON in a student answer: the judges' own reply keys
# (`reward/schemas.py`) and the usual names of verdict fields.
JUDGE_JSON = re.compile(
    r'"(?:verdicts?|criteria_met|criteria|criterion|answer_\d+)"\s*:'
    r'|"(?:passed|pass|met|C\d+)"\s*:\s*(?:true|false)',
    re.IGNORECASE,
)

Alarm = Literal["off", "warn", "stop"]


class HealthConfig(BaseModel):
    """Reward-health alarms (`ropd.health`): thresholds on the `ropd/health/*` step metrics."""

    model_config = ConfigDict(extra="forbid")

    alarm: Alarm = Field(
        default="warn",
        description="What a breached threshold does: off, warn (one stderr line per step and "
        "the ropd/health/alarms count) or stop (the run stops with a checkpoint, exit 3).",
    )
    teacher_fail_below: float = Field(
        default=TEACHER_FAIL_BELOW,
        ge=0.0,
        le=1.0,
        description="A group whose best teacher answer scores below this fails its anchor.",
    )
    min_groups: int = Field(
        default=4, ge=1, description="Scored groups a step needs before it can raise an alarm."
    )
    min_gold_auc: float | None = Field(
        default=0.6, ge=0.0, le=1.0, description="Alarm when health/gold_auc is below (null: off)."
    )
    max_teacher_fail_rate: float | None = Field(default=0.5, ge=0.0, le=1.0)
    max_no_spread_rate: float | None = Field(default=0.8, ge=0.0, le=1.0)
    max_verdict_flip_rate: float | None = Field(default=0.2, ge=0.0, le=1.0)
    max_abs_length_reward_corr: float | None = Field(default=0.6, ge=0.0, le=1.0)
    max_judge_imitation_rate: float | None = Field(default=0.05, ge=0.0, le=1.0)
    max_audit_disagreement_rate: float | None = Field(default=0.3, ge=0.0, le=1.0)


@dataclass(frozen=True)
class HealthMetrics:
    """The health numbers of one step; None where the step cannot compute one."""

    scored_groups: int = 0
    gold_auc: float | None = None
    gold_pair_accuracy: float | None = None
    reward_correct_mean: float | None = None
    reward_incorrect_mean: float | None = None
    gold_checked: int | None = None
    gold_correct_rate: float | None = None
    teacher_fail_rate: float | None = None
    no_spread_rate: float | None = None
    length_reward_corr: float | None = None
    judge_imitation_rate: float | None = None
    verdict_flip_rate: float | None = None
    stability_reward_change: float | None = None
    audit_disagreement_rate: float | None = None
    audit_reward_diff: float | None = None
    checked_groups: int | None = None
    reinduced_rate: float | None = None

    def as_dict(self, prefix: str = HEALTH) -> dict[str, float]:
        """`health/<name>` for every number present (`scored_groups` is `ropd/groups` less
        the failed ones, so it is not repeated)."""
        return {
            prefix + f.name: float(value)
            for f in fields(self)
            if f.name != "scored_groups" and (value := getattr(self, f.name)) is not None
        }


def health_metrics(
    results: Sequence[GroupResult],
    answers: Sequence[Sequence[str] | None] | None = None,
    correct: Sequence[Sequence[bool | None] | None] | None = None,
    *,
    teacher_fail_below: float = TEACHER_FAIL_BELOW,
) -> HealthMetrics:
    """The health numbers of these groups.

    `answers[g]` are group g's student answer texts and `correct[g]` their gold checks (None:
    not checkable), both in `results[g].rewards` order; either may be None for a group (or
    altogether), and the numbers that need them are then left out.
    """
    n = len(results)
    texts = list(answers) if answers is not None else [None] * n
    golds = list(correct) if correct is not None else [None] * n
    if len(texts) != n or len(golds) != n:
        raise ValueError(f"{n} results but {len(texts)} answer lists and {len(golds)} gold lists")
    scored = [g for g in range(n) if not results[g].failed]
    return HealthMetrics(
        scored_groups=len(scored),
        **_gold([results[g] for g in scored], [golds[g] for g in scored]),
        **_anchors([results[g] for g in scored], teacher_fail_below),
        length_reward_corr=_length_corr([results[g] for g in scored], [texts[g] for g in scored]),
        judge_imitation_rate=_imitation(results, texts),
        **_checks(results),
    )


def _valid(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _gold(
    results: Sequence[GroupResult], golds: Sequence[Sequence[bool | None] | None]
) -> dict[str, float | int | None]:
    pos: list[float] = []
    neg: list[float] = []
    wins, pairs = 0.0, 0
    for res, checks in zip(results, golds, strict=True):
        if checks is None or len(checks) != len(res.rewards):
            continue
        known = [
            (ok, float(r))
            for r, ok in zip(res.rewards, checks, strict=True)
            if _valid(r) and ok is not None
        ]  # type: ignore[arg-type]
        pos += [r for ok, r in known if ok]
        neg += [r for ok, r in known if not ok]
        group_wins, group_pairs = pair_counts(known)
        wins += group_wins
        pairs += group_pairs
    checked = len(pos) + len(neg)
    if not checked:
        return {}
    return {
        "gold_auc": auc([True] * len(pos) + [False] * len(neg), pos + neg),
        "gold_pair_accuracy": wins / pairs if pairs else None,
        "reward_correct_mean": _mean(pos),
        "reward_incorrect_mean": _mean(neg),
        "gold_checked": checked,
        "gold_correct_rate": len(pos) / checked,
    }


def _anchors(results: Sequence[GroupResult], below: float) -> dict[str, float | None]:
    teacher_best = [
        max(float(s) for s in res.teacher_scores if _valid(s))  # type: ignore[arg-type]
        for res in results
        if any(_valid(s) for s in res.teacher_scores)
    ]
    spreads = [[r for r in res.rewards if _valid(r)] for res in results]
    spreads = [rewards for rewards in spreads if len(rewards) > 1]
    flat = sum(max(rewards) == min(rewards) for rewards in spreads)  # type: ignore[type-var]
    return {
        "teacher_fail_rate": (
            sum(best < below for best in teacher_best) / len(teacher_best) if teacher_best else None
        ),
        "no_spread_rate": flat / len(spreads) if spreads else None,
    }


def _length_corr(
    results: Sequence[GroupResult], texts: Sequence[Sequence[str] | None]
) -> float | None:
    """Pearson correlation of reward with answer length in characters, pooled over the step."""
    points = [
        (float(len(text)), float(r))  # type: ignore[arg-type]
        for res, answers in zip(results, texts, strict=True)
        if answers is not None and len(answers) == len(res.rewards)
        for text, r in zip(answers, res.rewards, strict=True)
        if _valid(r)
    ]
    if len(points) < 3:
        return None
    mx = math.fsum(x for x, _ in points) / len(points)
    my = math.fsum(y for _, y in points) / len(points)
    sxy = math.fsum((x - mx) * (y - my) for x, y in points)
    sxx = math.fsum((x - mx) ** 2 for x, _ in points)
    syy = math.fsum((y - my) ** 2 for _, y in points)
    if sxx <= 0 or syy <= 0:
        return None
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def _squash(text: str) -> str:
    return " ".join(text.split()).casefold()


def imitates_judge(answer: str, criteria: Iterable[str] = ()) -> bool:
    """Verdict- or rubric-like JSON, or a long criterion of the group's rubric copied verbatim."""
    if JUDGE_JSON.search(answer):
        return True
    flat = _squash(answer)
    return any(len(c) >= COPIED_CRITERION_CHARS and c in flat for c in map(_squash, criteria))


def _imitation(
    results: Sequence[GroupResult], texts: Sequence[Sequence[str] | None]
) -> float | None:
    flags = [
        imitates_judge(text, [c.criterion for rubric in res.rubrics for c in rubric.criteria])
        for res, answers in zip(results, texts, strict=True)
        if answers is not None
        for text in answers
    ]
    return sum(flags) / len(flags) if flags else None


def _checks(results: Sequence[GroupResult]) -> dict[str, float | int | None]:
    # `reinduced_rate`: share of scored groups given a second rubric, among those scored with
    # `reinduce_on_bad_anchor` on (their `settings` say so); `reinduced` is no sampled check
    on = [res for res in results if not res.failed and "reinduced" in res.settings]
    reinduced = sum(res.checks.get("reinduced", 0) > 0 for res in on)
    rate = {"reinduced_rate": reinduced / len(on)} if on else {}
    checked = [res.checks for res in results if set(res.checks) - {"reinduced"}]
    if not checked:
        return rate

    def total(key: str) -> float:
        return math.fsum(float(c.get(key, 0.0)) for c in checked)

    def ratio(num: str, den: str) -> float | None:
        return total(num) / total(den) if total(den) > 0 else None

    return {
        "verdict_flip_rate": ratio("stability_flips", "stability_verdicts"),
        "stability_reward_change": ratio("stability_reward_abs_change_sum", "stability_answers"),
        "audit_disagreement_rate": ratio("audit_disagreements", "audit_verdicts"),
        "audit_reward_diff": ratio("audit_reward_abs_diff_sum", "audit_answers"),
        "checked_groups": len(checked),
        **rate,
    }


# --- gold checks of rollouts -----------------------------------------------------------------


class GoldChecker:
    """Checks student answers against gold answers (math-verify), saying once when it cannot."""

    def __init__(self, purpose: str = "reward health") -> None:
        self._told: set[str] = set()
        self.purpose = purpose  # what the checks are for, named in the warning

    def check(self, completion: str, gold: str | None) -> bool | None:
        """True / False, or None when there is no gold or it cannot be checked."""
        if gold is None or not gold.strip():
            return None
        try:
            return check_math(completion, gold).correct
        except GoldError as exc:
            self._tell(str(exc) if "pip install" in str(exc) else "unreadable gold answers")
            return None
        except Exception as exc:  # noqa: BLE001 - math-verify on hostile text: skip that answer
            self._tell(f"gold check failed ({type(exc).__name__})")
            return None

    def _tell(self, why: str) -> None:
        if why not in self._told:
            self._told.add(why)
            log.warning("%s: some answers not checked against gold: %s", self.purpose, why)


# --- the alarm policy ------------------------------------------------------------------------

# (metric, threshold field, "min": alarm below, "max": alarm above; abs: compare |value|)
RULES: tuple[tuple[str, str, str, bool], ...] = (
    ("gold_auc", "min_gold_auc", "min", False),
    ("teacher_fail_rate", "max_teacher_fail_rate", "max", False),
    ("no_spread_rate", "max_no_spread_rate", "max", False),
    ("verdict_flip_rate", "max_verdict_flip_rate", "max", False),
    ("length_reward_corr", "max_abs_length_reward_corr", "max", True),
    ("judge_imitation_rate", "max_judge_imitation_rate", "max", False),
    ("audit_disagreement_rate", "max_audit_disagreement_rate", "max", False),
)


def breaches(metrics: HealthMetrics, config: HealthConfig, step: int | None) -> list[str]:
    """One message per threshold this step breaks (none on a step with too few groups)."""
    if metrics.scored_groups < config.min_groups:
        return []
    where = f" at step {step}" if step is not None else ""
    out = []
    for name, field_name, kind, absolute in RULES:
        value, limit = getattr(metrics, name), getattr(config, field_name)
        if value is None or limit is None:
            continue
        seen = abs(value) if absolute else value
        if (seen < limit) if kind == "min" else (seen > limit):
            shown = f"|{HEALTH}{name}| {seen:.3g}" if absolute else f"{HEALTH}{name} {seen:.3g}"
            out.append(f"reward health: {shown} {'<' if kind == 'min' else '>'} {limit:g}{where}")
    return out


class HealthMonitor:
    """Applies `HealthConfig` to each step's numbers: warn once per step, or stop the run."""

    def __init__(self, config: HealthConfig | None = None):
        self.config = config or HealthConfig()
        self.stop_message: str | None = None
        self._warned_step: int | None = None

    def review(self, metrics: HealthMetrics, step: int | None) -> list[str] | None:
        """This step's alarm messages, or None when the step was not checked (alarm off, or
        fewer scored groups than `min_groups`)."""
        config = self.config
        if config.alarm == "off" or metrics.scored_groups < config.min_groups:
            return None
        messages = breaches(metrics, config, step)
        if messages and (step is None or step != self._warned_step):
            self._warned_step = step
            for message in messages:
                log.warning("%s", message)
        if messages and config.alarm == "stop" and self.stop_message is None:
            self.stop_message = (
                f"{messages[0]}; stopping (ropd.health.alarm: stop). `ropd inspect --stats` "
                "shows the step's numbers and docs/health.md how to read them; raise the "
                "threshold or set ropd.health.alarm: warn, then resume the run (`ropd train "
                "--resume`, or verl from its last checkpoint)."
            )
        return messages


__all__ = [
    "HEALTH",
    "JUDGE_JSON",
    "RULES",
    "GoldChecker",
    "HealthConfig",
    "HealthMetrics",
    "HealthMonitor",
    "breaches",
    "health_metrics",
    "imitates_judge",
]
