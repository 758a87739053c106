"""Per-step metrics of scored groups, computed in one place for every reader.

The training log (`reward/batch.py`) and `ropd inspect --stats` (groups rebuilt from the trace
store) both call `step_metrics`, so the two can never disagree. Everything here depends only on
the `GroupResult`s, not on their order: sums use `math.fsum`, so a batch and the same groups read
back from the trace store in another order give identical numbers.

A failed group's rewards are what its failure policy put there (None, or one constant for every
answer), not a judgement of its answers, so failed groups are left out of every reward, teacher
score, rubric and pass-rate number; they count in the group total, the failure rate and the
judge usage (their calls were spent).

Reward spread, two numbers that answer two questions:

- `ropd/reward_std`: the sample standard deviation (Bessel's n-1) of every student reward of the
  step, all groups pooled. It is TRL's definition of its own `reward_std` (GRPOTrainer logs
  `nanstd(rewards)` over the gathered batch, with Bessel's correction), so the two agree for the
  same rewards. They still differ when a failure policy other than `nan` put a constant into a
  failed group: TRL counts that constant, ropd leaves the failed group out. Up to ropd 0.2.0
  this name held the population std (divide by n), smaller by a factor sqrt((n-1)/n): 0.33
  against TRL's 0.47 for a step of two rewards.
- `ropd/reward_std_within_group_mean`: the mean over groups of each group's sample std (groups
  with fewer than two rewards left out). GRPO's advantage is a reward minus its group's mean
  (divided by the group's std under TRL's default `scale_rewards="group"`), so this is the spread
  that carries a learning signal: 0 when every group's answers scored alike, however different
  the groups are from each other. The pooled `reward_std` also counts differences between
  prompts (an easy prompt beside a hard one), which teach nothing.

Reward health (`ropd/health/*`, `reward/health.py`): the numbers a result alone gives (anchor
validity, sampled checks) are always part of the step; those that need the answer texts (length
correlation, judge imitation) or gold checks come in when the caller passes them (`BatchScorer`
does; `ropd inspect --stats` passes the stored answers).
"""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ropd.reward.health import TEACHER_FAIL_BELOW, HealthMetrics, health_metrics
from ropd.reward.induction import FORMAT_CATEGORIES
from ropd.reward.types import GroupResult

PREFIX = "ropd/"


@dataclass(frozen=True)
class RoleUsage:
    """Judge traffic of one role (rubricator, verifier, ...) summed over groups.

    Input (prompt) and output (completion) tokens are kept apart: they are priced apart. `cost`
    is None when no group of the role had a price (`RoleConfig.price`).
    """

    calls: float = 0.0
    failed_calls: float = 0.0
    prompt_tokens: float = 0.0
    completion_tokens: float = 0.0
    latency_s: float = 0.0
    cost: float | None = None

    @property
    def tokens(self) -> float:
        return self.prompt_tokens + self.completion_tokens

    @property
    def input_tokens(self) -> float:
        return self.prompt_tokens

    @property
    def output_tokens(self) -> float:
        return self.completion_tokens

    @property
    def mean_latency_s(self) -> float | None:
        return self.latency_s / self.calls if self.calls else None


@dataclass(frozen=True)
class StepMetrics:
    """The numbers of one training step (or any set of scored groups)."""

    groups: int
    failed_groups: int
    reward_mean: float | None = None
    reward_std: float | None = None  # pooled sample std, TRL's `reward_std` definition
    reward_std_within_group_mean: float | None = None  # mean of the groups' sample stds
    teacher_score_mean: float | None = None
    beat_teacher_rate: float | None = None
    rubric_size: float | None = None
    pass_rate: dict[str, float] = field(default_factory=dict)
    judge: dict[str, RoleUsage] = field(default_factory=dict)
    # groups judged with fewer teacher answers than K (None: the scorer uses no K, e.g. T-Judge)
    teacher_refs_short: int | None = None
    # OVD with `reject_below`: share of the scored answers rejected (reward 0); None otherwise
    ovd_rejected_rate: float | None = None
    health: HealthMetrics = field(default_factory=HealthMetrics)

    @property
    def failed_group_rate(self) -> float:
        return self.failed_groups / self.groups if self.groups else 0.0

    @property
    def judge_tokens(self) -> float:
        return sum(u.tokens for u in self.judge.values())

    @property
    def judge_input_tokens(self) -> float:
        return sum(u.input_tokens for u in self.judge.values())

    @property
    def judge_output_tokens(self) -> float:
        return sum(u.output_tokens for u in self.judge.values())

    @property
    def judge_cost(self) -> float | None:
        """Cost of every priced role's calls; None when no role has a price."""
        costs = [u.cost for u in self.judge.values() if u.cost is not None]
        return math.fsum(costs) if costs else None

    def as_dict(self, prefix: str = PREFIX) -> dict[str, float]:
        """The flat names a training logger gets (absent numbers are left out, never 0)."""
        out: dict[str, float] = {
            "groups": float(self.groups),
            "failed_group_rate": self.failed_group_rate,
        }
        optional = {
            "reward_mean": self.reward_mean,
            "reward_std": self.reward_std,
            "reward_std_within_group_mean": self.reward_std_within_group_mean,
            "teacher_score_mean": self.teacher_score_mean,
            "beat_teacher_rate": self.beat_teacher_rate,
            "rubric_size": self.rubric_size,
            "ovd/rejected_rate": self.ovd_rejected_rate,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        if self.teacher_refs_short is not None and self.groups:
            out["teacher_refs_short_rate"] = self.teacher_refs_short / self.groups
        out.update({f"pass_rate/{c}": rate for c, rate in self.pass_rate.items()})
        for role, u in self.judge.items():
            out[f"judge/{role}/calls"] = u.calls
            out[f"judge/{role}/failed_calls"] = u.failed_calls
            out[f"judge/{role}/tokens"] = u.tokens
            out[f"judge/{role}/input_tokens"] = u.input_tokens
            out[f"judge/{role}/output_tokens"] = u.output_tokens
            if u.mean_latency_s is not None:
                out[f"judge/{role}/latency_s"] = u.mean_latency_s
            if u.cost is not None:
                out[f"judge/{role}/cost"] = u.cost
        if self.judge_cost is not None:
            out["judge/cost"] = self.judge_cost
        out.update(self.health.as_dict())
        return {prefix + k: v for k, v in out.items()}


Answers = Sequence[Sequence[str] | None]
GoldChecks = Sequence[Sequence[bool | None] | None]


def batch_metrics(
    results: Sequence[GroupResult],
    *,
    answers: Answers | None = None,
    correct: GoldChecks | None = None,
    teacher_fail_below: float = TEACHER_FAIL_BELOW,
) -> dict[str, float]:
    """Reward spread, teacher score, beat-teacher share, failures, judge usage, rubric stats,
    reward health."""
    if not results:
        return {}
    return step_metrics(
        results, answers=answers, correct=correct, teacher_fail_below=teacher_fail_below
    ).as_dict()


def step_metrics(
    results: Iterable[GroupResult],
    *,
    answers: Answers | None = None,
    correct: GoldChecks | None = None,
    teacher_fail_below: float = TEACHER_FAIL_BELOW,
) -> StepMetrics:
    """All step numbers of these groups; see the module docstring for what failed groups add.

    `answers` / `correct`: per group, the student answer texts / gold checks in reward order
    (`reward/health.py`); without them the health numbers that need them are left out.
    """
    results = list(results)
    scored = [res for res in results if not res.failed]
    per_group = [_valid(res.rewards) for res in scored]
    rewards = [r for group in per_group for r in group]
    group_stds = [statistics.stdev(group) for group in per_group if len(group) > 1]
    teacher = [s for res in scored for s in _valid(res.teacher_scores)]
    comparable = [res for res in scored if _valid(res.rewards) and _valid(res.teacher_scores)]
    beats = sum(max(_valid(res.rewards)) > max(_valid(res.teacher_scores)) for res in comparable)
    sizes = [len(rubric.criteria) for res in scored for rubric in res.rubrics]
    short = [
        res.settings["teacher_refs_short"]
        for res in results
        if "teacher_refs_short" in res.settings
    ]
    return StepMetrics(
        groups=len(results),
        failed_groups=len(results) - len(scored),
        reward_mean=statistics.fmean(rewards) if rewards else None,
        reward_std=statistics.stdev(rewards) if len(rewards) > 1 else None,
        reward_std_within_group_mean=statistics.fmean(group_stds) if group_stds else None,
        teacher_score_mean=statistics.fmean(teacher) if teacher else None,
        beat_teacher_rate=beats / len(comparable) if comparable else None,
        rubric_size=statistics.fmean(sizes) if sizes else None,
        pass_rate=category_pass_rates(scored),
        judge=judge_usage(res.usage for res in results),
        teacher_refs_short=sum(map(bool, short)) if short else None,
        ovd_rejected_rate=_ovd_rejected_rate(scored),
        health=health_metrics(results, answers, correct, teacher_fail_below=teacher_fail_below),
    )


def _ovd_rejected_rate(scored: list[GroupResult]) -> float | None:
    """Of the answers OVD scored (a score, not a failure), the share `reject_below` rejected;
    None when no group was scored by OVD with rejection on."""
    rejected = scored_answers = 0
    for res in scored:
        ovd = res.settings.get("ovd")
        if not isinstance(ovd, dict) or ovd.get("reject_below") is None:
            continue
        for score, out in zip(ovd.get("scores", []), ovd.get("rejected", []), strict=False):
            if score is not None:
                scored_answers += 1
                rejected += bool(out)
    return rejected / scored_answers if scored_answers else None


# The categories the Rubricator prompt names. A metric name never comes from judge-written text:
# any other category counts as "other" (the judge's own words stay in the trace store), so a
# judge inventing categories cannot flood TensorBoard or W&B with new metric names.
METRIC_CATEGORIES = (
    "correctness",
    "reasoning",
    "completeness",
    "accuracy",
    "instruction_following",
    "clarity",
    "format",
)
OTHER_CATEGORY = "other"
_CATEGORY_ALIASES = {name: "format" for name in FORMAT_CATEGORIES}


def metric_category(category: str) -> str:
    """The fixed metric category of a criterion's free-text category."""
    key = re.sub(r"[\s\-]+", "_", category.strip().casefold())
    key = _CATEGORY_ALIASES.get(key, key)
    return key if key in METRIC_CATEGORIES else OTHER_CATEGORY


def category_pass_rates(results: Iterable[GroupResult]) -> dict[str, float]:
    """Share of passed student verdicts per metric category (`metric_category`), sorted by name."""
    passed: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for res in results:
        for answer in res.verdicts:
            if answer.source != "student" or answer.rubric_index >= len(res.rubrics):
                continue
            categories = {c.id: c.category for c in res.rubrics[answer.rubric_index].criteria}
            for cid, ok in answer.verdicts.items():
                category = metric_category(categories.get(cid, OTHER_CATEGORY))
                total[category] += 1
                passed[category] += bool(ok)
    return {c: passed[c] / total[c] for c in sorted(total)}


def judge_usage(books: Iterable[Mapping[str, Mapping[str, float]]]) -> dict[str, RoleUsage]:
    """Per-role totals of `GroupResult.usage` books, roles sorted by name (order-independent)."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for book in books:
        for role, totals in book.items():
            for key, value in totals.items():
                values[role][key].append(float(value))
    return {
        role: RoleUsage(
            calls=math.fsum(v["calls"]),
            failed_calls=math.fsum(v["failed_calls"]),
            prompt_tokens=math.fsum(v["prompt_tokens"]),
            completion_tokens=math.fsum(v["completion_tokens"]),
            latency_s=math.fsum(v["latency_s"]),
            cost=math.fsum(v["cost"]) if v["cost"] else None,
        )
        for role, v in sorted(values.items())
    }


def _valid(values: Iterable[float | None]) -> list[float]:
    """The numbers among rewards or scores (None and NaN are masked answers)."""
    return [v for v in values if v is not None and not math.isnan(v)]


__all__ = [
    "PREFIX",
    "RoleUsage",
    "StepMetrics",
    "batch_metrics",
    "category_pass_rates",
    "judge_usage",
    "metric_category",
    "step_metrics",
]
