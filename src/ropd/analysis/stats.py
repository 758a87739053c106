"""How well a reward separates correct from incorrect responses, from one method's outcomes.

Only scored groups count: a failed group (its `error` set) is left out whole, as training
masks it; a response without a reward inside a scored group (an empty answer under
`teacher_logprob`) is left out alone. Numbers are None when undefined (one class only).

- `auc`: ROC AUC of reward vs correctness over all counted responses (`ropd.ranking`).
- `auc_within_prompt`: the mean of each prompt's own AUC, over prompts with both classes:
  whether the reward ranks answers to the *same* prompt, which is what GRPO's advantages use.
- `pair_accuracy`: over every (correct, incorrect) pair inside a group, the share where the
  correct one has the higher reward, ties counting half.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from ropd.analysis.methods import Outcome
from ropd.ranking import auc, pair_counts, roc_curve


def scored_pairs(outcome: Outcome) -> list[tuple[bool, float]]:
    """(correct, reward) of the responses of a scored group that have a reward."""
    if outcome.error is not None:
        return []
    return [
        (ok, float(r))
        for ok, r in zip(outcome.correct, outcome.rewards, strict=True)
        if r is not None and not math.isnan(r)
    ]


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def method_stats(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The figures of one method (see the module doc), plus usage and counts."""
    responses = [pair for outcome in outcomes for pair in scored_pairs(outcome)]
    labels = [ok for ok, _ in responses]
    rewards = [r for _, r in responses]
    within: list[float] = []
    wins, pairs = 0.0, 0
    for outcome in outcomes:
        group = scored_pairs(outcome)
        prompt_auc = auc([ok for ok, _ in group], [r for _, r in group])
        if prompt_auc is not None:
            within.append(prompt_auc)
        group_wins, group_pairs = pair_counts(group)
        wins += group_wins
        pairs += group_pairs
    return {
        "auc": auc(labels, rewards),
        "auc_within_prompt": _mean(within),
        "prompts_with_both_classes": len(within),
        "pair_accuracy": wins / pairs if pairs else None,
        "pairs": pairs,
        "reward_mean_correct": _mean([r for ok, r in responses if ok]),
        "reward_mean_incorrect": _mean([r for ok, r in responses if not ok]),
        "groups": len(outcomes),
        "failed_groups": sum(1 for o in outcomes if o.error is not None),
        "responses_scored": len(responses),
        "judge_usage": summed_usage(o.usage for o in outcomes),
    }


def summed_usage(books: Iterable[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per role, every key of the usage books summed (calls, tokens, `cost` when present)."""
    totals: dict[str, dict[str, list[float]]] = {}
    for book in books:
        for role, usage in book.items():
            for key, value in usage.items():
                totals.setdefault(role, {}).setdefault(key, []).append(float(value))
    out: dict[str, dict[str, float]] = {}
    for role, keys in sorted(totals.items()):
        out[role] = {}
        for key, values in sorted(keys.items()):
            total = math.fsum(values)
            out[role][key] = int(total) if total.is_integer() and key != "cost" else total
    return out


def category_pass_rates(outcomes: Iterable[Outcome]) -> dict[str, dict[str, float | None]]:
    """Per metric category, the share of criteria passed by correct vs incorrect responses.

    Only scored groups count (a failed group has no verdicts anyway).
    """
    counts: dict[str, dict[str, list[int]]] = {}
    for outcome in outcomes:
        if outcome.error is not None:
            continue
        for category, by_truth in outcome.categories.items():
            for truth, (passed, total) in by_truth.items():
                slot = counts.setdefault(category, {}).setdefault(truth, [0, 0])
                slot[0] += passed
                slot[1] += total
    out: dict[str, dict[str, float | None]] = {}
    for category, by_truth in sorted(counts.items()):
        right = by_truth.get("correct", [0, 0])
        wrong = by_truth.get("incorrect", [0, 0])
        out[category] = {
            "pass_rate_correct": right[0] / right[1] if right[1] else None,
            "pass_rate_incorrect": wrong[0] / wrong[1] if wrong[1] else None,
            "verdicts_correct": right[1],
            "verdicts_incorrect": wrong[1],
        }
    return out


def roc_points(outcomes: Sequence[Outcome]) -> tuple[list[float], list[float]] | None:
    """False and true positive rates of the pooled ROC curve (None with one class only)."""
    responses = [pair for outcome in outcomes for pair in scored_pairs(outcome)]
    labels = [ok for ok, _ in responses]
    if len(set(labels)) < 2:
        return None
    return roc_curve(labels, [r for _, r in responses])
