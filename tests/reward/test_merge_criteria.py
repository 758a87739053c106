"""Repeated criteria from a weak Rubricator are merged (kept once, higher weight) and recorded."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from ropd.reward.config import ScorerConfig
from ropd.reward.group_scorer import GroupScorer
from ropd.reward.induction import CriteriaMerge, check_rubric, comparable_text, validate_rubric
from ropd.reward.traces import TraceStore
from ropd.reward.types import Group
from ropd.testing import make_client


def rubric(*items: tuple[str, int] | tuple[str, int, str]) -> dict:
    return {
        "criteria": [
            {"category": item[2] if len(item) > 2 else "correctness", "criterion": item[0],
             "points": item[1]}
            for item in items
        ]
    }  # fmt: skip


def group() -> Group:
    return Group(
        id="g",
        prompt="What is 6 * 7?",
        student_responses=["42 because 6*7", "41"],
        teacher_responses=["42 because 6*7, check"],
    )


def test_the_same_text_up_to_case_spacing_and_punctuation_is_one_check():
    assert comparable_text("  The answer is 42. ") == comparable_text("the ANSWER is: 42!")
    assert comparable_text("states 4-2") == comparable_text("states 4 2")
    assert comparable_text("states 42") != comparable_text("states 4 2")  # digits differ
    assert comparable_text("answer is 42") != comparable_text("answer is not 42")


def test_a_repeat_is_kept_once_with_the_higher_weight_where_first_written():
    checked = check_rubric(
        rubric(
            ("Answer is 42.", 2),
            ("Shows the multiplication", 3),
            ("answer is 42", 5),
            ("Mentions units", 1),
        ),
        3,  # the judge wrote 4; 3 different checks are left
        12,
    )
    got = [(c.id, c.criterion, c.points) for c in checked.rubric.criteria]
    assert got == [
        ("C1", "answer is 42", 5),  # the 5-point copy's text, at the first copy's place
        ("C2", "Shows the multiplication", 3),
        ("C3", "Mentions units", 1),
    ]
    assert checked.merges == [
        CriteriaMerge(kept="C1", criterion="answer is 42", positions=[1, 3], points=[2, 5])
    ]
    assert checked.merges[0].as_dict() == {
        "kept": "C1",
        "criterion": "answer is 42",
        "positions": [1, 3],
        "points": [2, 5],
    }


def test_equal_weights_keep_the_first_copy_and_format_points_are_capped_first():
    checked = check_rubric(
        rubric(
            ("Uses a list", 4, "Format"),  # a format criterion counts 1 point at most
            ("uses a list.", 2, "correctness"),
            ("Gives 42", 3),
            ("gives 42", 3, "other"),
        ),
        2,
        12,
    )
    got = [(c.criterion, c.category, c.points) for c in checked.rubric.criteria]
    assert got == [("uses a list.", "correctness", 2), ("Gives 42", "correctness", 3)]
    assert [m.points for m in checked.merges] == [[1, 2], [3, 3]]


def test_a_rubric_without_repeats_is_unchanged_and_records_nothing():
    checked = check_rubric(rubric(("a is 1", 1), ("b is 2", 2), ("c is 3", 3), ("d is 4", 4)), 4, 6)
    assert [c.id for c in checked.rubric.criteria] == ["C1", "C2", "C3", "C4"]
    assert checked.merges == []
    assert validate_rubric(rubric(("a is 1", 1), ("b is 2", 2), ("c is 3", 3), ("d is 4", 4)), 4, 6)


def test_the_size_bounds_apply_to_what_the_judge_wrote_and_to_the_checks_left():
    # four copies of one check: the judge wrote 4 (in bounds), but one check separates nobody
    with pytest.raises(ValueError, match="4 criteria but only 1 different checks"):
        check_rubric(rubric(*[("1.1.1.1.", 1)] * 4), 4, 12)
    with pytest.raises(ValueError, match="only 2 different checks"):
        check_rubric(rubric(("a b c", 1), ("A B C", 2), ("d e f", 1)), 3, 12)
    with pytest.raises(ValueError, match="3 criteria"):
        check_rubric(rubric(("a b c", 1), ("A B C", 2), ("d e f", 1)), 4, 12)
    # enough different checks left: merged, not refused
    checked = check_rubric(rubric(("a b c", 1), ("A B C", 2), ("d e f", 1)), 2, 12)
    assert [c.criterion for c in checked.rubric.criteria] == ["A B C", "d e f"]
    assert checked.merges[0].positions == [1, 2]


@pytest.mark.parametrize(
    "data",
    [
        {"criteria": []},
        rubric(("a is 1", 1), ("a is 1", 9), ("c is 3", 3), ("d is 4", 4)),  # points out of range
        {"criteria": [{"criterion": "a is 1", "points": 1}, "not an object", {}, {}]},
        {"rubric": "none"},
    ],
)
def test_any_other_invalid_rubric_still_fails(data):
    with pytest.raises((ValueError, ValidationError)):
        check_rubric(data, 1, 12)


async def test_a_group_with_a_repeated_criterion_is_scored_and_the_merge_is_traced(tmp_path):
    reply = json.dumps(
        rubric(("Answer mentions 42.", 2), ("answer mentions because", 1),
               ("answer mentions 42", 3), ("answer mentions check", 1))
    )  # fmt: skip
    client = make_client(reply)
    with TraceStore(tmp_path / "t.db") as traces:
        scorer = GroupScorer(ScorerConfig(min_criteria=3), client, traces)
        result = await scorer.score_group(group())
        traced = traces.get("g").result
    assert result.error is None
    assert [(c.id, c.points) for c in result.rubric.criteria] == [("C1", 3), ("C2", 1), ("C3", 1)]
    # the verifier saw the merged rubric: C1..C3 only, and the rewards use the kept weight
    assert set(result.verdicts[0].verdicts) == {"C1", "C2", "C3"}
    assert result.rewards[0] == pytest.approx(4 / 5) and result.rewards[1] == 0.0
    merged = [
        {
            "kept": "C1",
            "criterion": "answer mentions 42",
            "positions": [1, 3],
            "points": [2, 3],
        }
    ]
    assert result.settings["context"]["rubricator"]["merged_criteria"] == merged
    assert traced.settings["context"]["rubricator"]["merged_criteria"] == merged
    assert len(client.calls_for("rubricator")) == 1  # merged, not asked again


async def test_a_group_without_repeats_records_an_empty_merge_list():
    reply = json.dumps(rubric(("answer mentions 42", 2), ("answer mentions check", 1)))
    result = await GroupScorer(ScorerConfig(min_criteria=2), make_client(reply)).score_group(
        group()
    )
    assert result.error is None
    assert result.settings["context"]["rubricator"]["merged_criteria"] == []
