"""Rubric validation and the reward formula."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from ropd.rubric import Rubric, weighted_score
from ropd.text import strip_think


def test_weighted_pass_rate():
    assert weighted_score([5, 2, 1], [True, False, True]) == 6 / 8
    assert weighted_score([5, 2], [False, False]) == 0.0


def test_perfect_answer_scores_exactly_one():
    assert weighted_score([5, 2, 1, 2], [True] * 4) == 1.0
    assert weighted_score([3] * 12, [True] * 12) == 1.0
    assert weighted_score([3, 0], [True, False]) == 1.0  # a 0-point criterion earns nothing


def test_zero_total_points_score_zero_not_a_division_error():
    assert weighted_score([], []) == 0.0
    assert weighted_score([0, 0], [True, True]) == 0.0


@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=0, max_size=12))
def test_score_is_in_unit_interval_and_one_only_when_everything_worth_points_passed(pairs):
    points, verdicts = zip(*pairs) if pairs else ((), ())
    score = weighted_score(points, verdicts)
    assert 0.0 <= score <= 1.0
    all_passed = all(v for p, v in pairs if p > 0)
    assert (score == 1.0) == (all_passed and sum(points) > 0)
    assert (score == 0.0) == (not any(v for p, v in pairs if p > 0))
    if sum(points) > 0:
        assert score == sum(p for p, v in pairs if v) / sum(points)


def test_verdict_count_must_match():
    with pytest.raises(ValueError, match="2 verdicts for 3 criteria"):
        weighted_score([1, 2, 3], [True, False])


@pytest.mark.parametrize("points", [0, 6, 2.5])
def test_points_must_be_integers_from_1_to_5(points):
    with pytest.raises(ValidationError):
        Rubric.model_validate({"criteria": [{"id": "C1", "criterion": "abc", "points": points}]})


def test_ids_must_be_unique_and_size_checked():
    crit = {"id": "C1", "criterion": "abc", "points": 2}
    with pytest.raises(ValidationError, match="unique"):
        Rubric.model_validate({"criteria": [crit, crit]})
    rubric = Rubric.model_validate({"criteria": [crit]})
    with pytest.raises(ValueError, match="between 4 and 12"):
        rubric.check_size(4, 12)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("<think>hmm</think>42", "42"),
        ("<THINK>a\nb</THINK>\n\nThe answer is 7", "The answer is 7"),
        ("reasoning only</think>final", "final"),
        ("answer <think>cut off", "answer"),
        ("no reasoning", "no reasoning"),
    ],
)
def test_strip_think(text, expected):
    assert strip_think(text) == expected
