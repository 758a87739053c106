"""`ropd.ranking` against scikit-learn (the reference it replaces) and against hand counts."""

from __future__ import annotations

import random

import pytest

from ropd.ranking import auc, pair_counts, roc_curve


def test_auc_and_roc_curve_equal_scikit_learns_on_scores_with_ties() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(7)
    for _ in range(50):
        n = rng.randint(2, 40)
        labels = [rng.random() < 0.4 for _ in range(n)]
        scores = [rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]) for _ in range(n)]  # many ties
        if len(set(labels)) < 2:
            assert auc(labels, scores) is None
            continue
        assert auc(labels, scores) == pytest.approx(metrics.roc_auc_score(labels, scores))
        fpr, tpr, _ = metrics.roc_curve(labels, scores, drop_intermediate=False)
        ours = roc_curve(labels, scores)
        assert ours[0] == pytest.approx(list(fpr)) and ours[1] == pytest.approx(list(tpr))


def test_pair_counts_by_hand() -> None:
    # correct 0.9 and 0.5 against incorrect 0.5 and 0.1: wins 1 + 1 + 0.5 (tie) + 1 of 4 pairs
    assert pair_counts([(True, 0.9), (True, 0.5), (False, 0.5), (False, 0.1)]) == (3.5, 4)
    assert pair_counts([(True, 1.0)]) == (0.0, 0)
