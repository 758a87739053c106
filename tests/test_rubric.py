"""Rubric validation and the reward formula."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from ropd.rubric import EPSILON, Rubric, weighted_score
from ropd.text import strip_think


def test_weighted_pass_rate():
    assert weighted_score([5, 2, 1], [True, False, True]) == pytest.approx(6 / (8 + EPSILON))
    assert weighted_score([5, 2], [False, False]) == 0.0


@given(st.lists(st.tuples(st.integers(1, 5), st.booleans()), min_size=1, max_size=12))
def test_score_is_always_in_unit_interval(pairs):
    points, verdicts = zip(*pairs)
    assert 0.0 <= weighted_score(points, verdicts) < 1.0


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
