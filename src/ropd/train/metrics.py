"""Per-step training metrics computed from the scored groups of one batch."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence

from ropd.reward.types import GroupResult

PREFIX = "ropd/"


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def batch_metrics(results: Sequence[GroupResult]) -> dict[str, float]:
    """Reward spread, teacher score, beat-teacher share, failures, judge usage, rubric stats."""
    out: dict[str, float] = {}
    if not results:
        return out
    rewards = [r for res in results for r in res.rewards if r is not None and not math.isnan(r)]
    teacher = [s for res in results for s in res.teacher_scores if s is not None]
    out["groups"] = float(len(results))
    out["failed_group_rate"] = sum(res.failed for res in results) / len(results)
    if rewards:
        out["reward_mean"] = statistics.fmean(rewards)
        out["reward_std"] = statistics.pstdev(rewards)
    if teacher:
        out["teacher_score_mean"] = statistics.fmean(teacher)
    comparable = [
        res
        for res in results
        if any(s is not None for s in res.teacher_scores)
        and any(r is not None for r in res.rewards)
    ]
    if comparable:
        beats = sum(
            max(r for r in res.rewards if r is not None)
            > max(s for s in res.teacher_scores if s is not None)
            for res in comparable
        )
        out["beat_teacher_rate"] = beats / len(comparable)
    sizes = [len(rub.criteria) for res in results if not res.failed for rub in res.rubrics]
    if sizes:
        out["rubric_size"] = statistics.fmean(sizes)
    out.update(_category_pass_rates(results))
    out.update(_usage(results))
    return {PREFIX + k: v for k, v in out.items()}


def _category_pass_rates(results: Sequence[GroupResult]) -> dict[str, float]:
    passed: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for res in results:
        if res.failed:
            continue
        for answer in res.verdicts:
            if answer.source != "student" or answer.rubric_index >= len(res.rubrics):
                continue
            categories = {c.id: c.category for c in res.rubrics[answer.rubric_index].criteria}
            for cid, ok in answer.verdicts.items():
                category = categories.get(cid, "general")
                total[category] += 1
                passed[category] += bool(ok)
    return {f"pass_rate/{c}": passed[c] / total[c] for c in sorted(total)}


def _usage(results: Sequence[GroupResult]) -> dict[str, float]:
    roles: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for res in results:
        for role, totals in res.usage.items():
            for key, value in totals.items():
                roles[role][key] += float(value)
    out: dict[str, float] = {}
    for role, t in sorted(roles.items()):
        calls = t.get("calls", 0.0)
        out[f"judge/{role}/calls"] = calls
        out[f"judge/{role}/failed_calls"] = t.get("failed_calls", 0.0)
        out[f"judge/{role}/tokens"] = t.get("prompt_tokens", 0.0) + t.get("completion_tokens", 0.0)
        if calls:
            out[f"judge/{role}/latency_s"] = t.get("latency_s", 0.0) / calls
    return out
