"""How well a score ranks correct answers above incorrect ones: ROC AUC, ROC curve, pair wins.

One implementation for every reader: `ropd analyze` (offline, on a fixed pool), the report (its
ROC charts and bootstrap intervals) and the online reward-health metrics (`ropd/health/gold_*`).
Pure Python, so the core's health metrics need no scikit-learn; the AUC equals scikit-learn's
`roc_auc_score` (Mann-Whitney U over the pairs, ties counting half).
"""

from __future__ import annotations

from collections.abc import Sequence


def auc(labels: Sequence[bool], scores: Sequence[float]) -> float | None:
    """ROC AUC of `scores` against `labels` (True: correct); None with one class only."""
    positive = sum(1 for ok in labels if ok)
    negative = len(labels) - positive
    if not positive or not negative:
        return None
    order = sorted(range(len(scores)), key=scores.__getitem__)
    rank_sum = 0.0
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        mid = (i + j) / 2 + 1  # the mean rank of a run of ties
        rank_sum += mid * sum(1 for k in order[i : j + 1] if labels[k])
        i = j + 1
    return (rank_sum - positive * (positive + 1) / 2) / (positive * negative)


def roc_curve(labels: Sequence[bool], scores: Sequence[float]) -> tuple[list[float], list[float]]:
    """(false positive rates, true positive rates), from (0, 0), one point per distinct score."""
    positive = sum(1 for ok in labels if ok) or 1
    negative = (len(labels) - sum(1 for ok in labels if ok)) or 1
    pairs = sorted(zip(scores, labels, strict=True), key=lambda p: -p[0])
    fpr, tpr = [0.0], [0.0]
    tp = fp = 0
    for n, (score, ok) in enumerate(pairs):
        tp += bool(ok)
        fp += not ok
        if n + 1 == len(pairs) or pairs[n + 1][0] != score:
            fpr.append(fp / negative)
            tpr.append(tp / positive)
    return fpr, tpr


def pair_counts(responses: Sequence[tuple[bool, float]]) -> tuple[float, int]:
    """(wins, pairs): correct-over-incorrect wins (ties half) among one group's responses.

    Summed over groups, wins / pairs is the pair accuracy: whether the score ranks answers to the
    same prompt, which is what GRPO's group-relative advantages use.
    """
    right = [r for ok, r in responses if ok]
    wrong = [r for ok, r in responses if not ok]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in right for b in wrong)
    return wins, len(right) * len(wrong)


__all__ = ["auc", "pair_counts", "roc_curve"]
