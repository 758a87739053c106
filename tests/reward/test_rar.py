"""RaR: the dataset's rubric parsed, verified by the blind Verifier, rewards pinned by hand."""

from __future__ import annotations

import json

import pytest

from ropd.data import load_records, rar_sample_path
from ropd.data.records import DataError
from ropd.data.rubrics import parse_rubric, record_rubric
from ropd.reward.config import RaRConfig
from ropd.reward.induction import check_rubric
from ropd.reward.rar import NO_RUBRIC, RaRScorer, union
from ropd.reward.types import Group
from ropd.rubric import Rubric, weighted_score
from ropd.run_config import RunConfig, method_of
from ropd.testing import make_client, rubric_reply

# RaR's layout; the Verifier (by content) meets "answer mentions W" when W is in the answer
DATA_RUBRIC = [
    {"title": "Formula", "description": "answer mentions water", "weight": 5},
    {"title": "Count", "description": "answer mentions three", "weight": 3},
    {"title": "Essential Criteria", "description": "answer mentions oxygen", "weight": 2},
    {"title": "Wrong formula", "description": "answer mentions peroxide", "weight": -2},
]


def group(**kw) -> Group:
    base = {
        "id": "g1",
        "prompt": "What is water made of?",
        "student_responses": [
            "water has three atoms with oxygen",  # 5 + 3 + 2 = 10 of 10
            "water is a peroxide",  # 5 - 2 = 3 of 10
            "peroxide",  # -2 -> clipped to 0
            "three atoms of oxygen but peroxide",  # 3 + 2 - 2 = 3 of 10
        ],
        "rubric": DATA_RUBRIC,
    }
    base.update(kw)
    return Group(**base)


# -- the formula ------------------------------------------------------------------------------


def test_pitfall_met_takes_its_points_off_and_the_score_is_clipped():
    assert weighted_score([5, 3, 2, -2], [True, True, True, False]) == 1.0
    assert weighted_score([5, 3, 2, -2], [True, True, True, True]) == 8 / 10
    assert weighted_score([5, 3, 2, -2], [True, False, False, True]) == 3 / 10
    assert weighted_score([5, 3, 2, -2], [False, False, False, True]) == 0.0  # not -0.2
    assert weighted_score([5, -1], [False, False]) == 0.0
    assert weighted_score([-2], [True]) == 0.0  # nothing to earn


def test_positive_rubric_keeps_the_plain_pass_rate():
    assert weighted_score([5, 2, 1], [True, False, True]) == 6 / 8


# -- parsing ----------------------------------------------------------------------------------


def test_rar_items_become_criteria_with_ids_categories_and_signed_points():
    rubric = parse_rubric(
        [
            {
                "title": "Correct formula",
                "description": "Essential Criteria: says H2O",
                "weight": 5,
            },
            {"title": "Wrong", "description": "Pitfall Criteria: says H2O2", "weight": -1},
            {"title": "Extra", "description": "Names both elements", "weight": 2},
        ]
    )
    assert [c.id for c in rubric.criteria] == ["C1", "C2", "C3"]
    assert [c.category for c in rubric.criteria] == ["essential", "pitfall", "Extra"]
    assert rubric.points == [5, -1, 2] and rubric.total_points == 7
    assert [c.pitfall for c in rubric.criteria] == [False, True, False]
    assert rubric.criteria[1].criterion == "Pitfall Criteria: says H2O2"


def test_ropd_form_and_json_text_read_the_same():
    rubric = parse_rubric(DATA_RUBRIC)
    again = parse_rubric(rubric.model_dump_json())
    assert again == rubric
    assert parse_rubric(json.dumps(DATA_RUBRIC)) == rubric


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([{"description": "abc", "weight": 0}], "item 1: field 'weight': 0 is not"),
        ([{"description": "abc", "weight": 9}], "item 1: field 'weight': 9 is not"),
        ([{"description": "abc", "weight": "5"}], "item 1: field 'weight'"),
        ([{"description": "abc", "weight": True}], "item 1: field 'weight'"),
        ([{"description": "abc", "weight": 2}, {"weight": 2}], "item 2: field 'description'"),
        ([{"description": "abc"}], "item 1: field 'weight': missing"),
        ([{"description": "abc", "weight": -1}], "only pitfalls"),
        ([], "no items"),
        ("not json", "not JSON"),
        (5, "must be a list"),
    ],
)
def test_bad_rubrics_name_the_item_and_field(value, message):
    with pytest.raises(ValueError, match=message):
        parse_rubric(value)


def test_bad_rows_name_file_line_and_field(tmp_path):
    path = tmp_path / "rows.jsonl"
    good = {"question": "q", "rubric": DATA_RUBRIC}
    bad = {"question": "q", "rubric": [{"description": "abc", "weight": 7}]}
    path.write_text("\n".join(json.dumps(r) for r in (good, bad, {"question": "q"})) + "\n")
    first, second, third = load_records(path)
    assert len(record_rubric(first).criteria) == 4
    with pytest.raises(DataError, match=r"rows.jsonl:2: field 'rubric': item 1: field 'weight'"):
        record_rubric(second)
    with pytest.raises(DataError, match=r"rows.jsonl:3: missing field 'rubric'"):
        record_rubric(third)


def test_bundled_sample_has_rar_layout_and_pitfalls():
    records = load_records(rar_sample_path())
    assert len(records) >= 3
    for record in records:
        assert {"question", "reference_answer", "rubric", "rubric_count"} <= set(record.data)
        rubric = record_rubric(record)
        assert len(rubric.criteria) == record.get("rubric_count")
    assert any(c.pitfall for r in records for c in record_rubric(r).criteria)


def test_group_refuses_a_bad_rubric_naming_the_field():
    with pytest.raises(ValueError, match="rubric: item 1: field 'weight'"):
        group(rubric=[{"description": "abc", "weight": 0}])


# -- the scorer -------------------------------------------------------------------------------


async def test_rewards_by_hand_and_no_rubricator_call():
    client = make_client(rubric_reply([("unused", 1)]))
    result = await RaRScorer(RaRConfig(), client).score_group(group())
    assert result.error is None
    assert result.rewards == pytest.approx([1.0, 0.3, 0.0, 0.3])
    assert not client.calls_for("rubricator") and len(client.calls_for("verifier")) == 1
    assert result.rubric == parse_rubric(DATA_RUBRIC)
    assert result.settings["scorer"] == "rar" and result.settings["dataset_criteria"] == 4
    assert result.teacher_scores == []


async def test_teacher_answers_join_the_pool_when_k_is_set():
    g = group(teacher_responses=["water: three atoms, hydrogen and oxygen"])
    result = await RaRScorer(RaRConfig(num_teacher_refs=1), make_client("{}")).score_group(g)
    assert result.teacher_scores == [1.0]


async def test_group_without_rubric_fails_with_the_cause():
    g = group(rubric=None)
    result = await RaRScorer(RaRConfig(), make_client("{}")).score_group(g)
    assert result.failed and NO_RUBRIC in (result.error or "")
    assert result.rewards == [None] * 4


async def test_mix_counts_one_rubricator_call_and_verifies_the_union():
    induced = rubric_reply([("atoms", 4), ("water", 1), ("hydrogen", 2), ("bond", 1)])
    client = make_client(induced)
    config = RaRConfig(mix_induced=True, num_teacher_refs=0)
    result = await RaRScorer(config, client).score_group(group())
    assert len(client.calls_for("rubricator")) == 1 and len(client.calls_for("verifier")) == 1
    rubric = result.rubric
    # the data's four first, then the induced ones that do not repeat one ("water" does)
    assert [c.id for c in rubric.criteria] == [f"C{n}" for n in range(1, 8)]
    assert [c.criterion for c in rubric.criteria][4:] == [
        "answer mentions atoms",
        "answer mentions hydrogen",
        "answer mentions bond",
    ]
    assert rubric.points == [5, 3, 2, -2, 4, 2, 1]
    # by hand over 17 points: "water has three atoms with oxygen" 5+3+2+4 = 14
    assert result.rewards[0] == pytest.approx(14 / 17)
    assert result.rewards[1] == pytest.approx(3 / 17)  # water - peroxide
    assert result.rewards[3] == pytest.approx((3 + 2 - 2 + 4) / 17)


def test_union_renumbers():
    data = parse_rubric(DATA_RUBRIC[:1])
    induced = Rubric.model_validate(
        {"criteria": [{"id": "C1", "criterion": "answer mentions x", "points": 2}]}
    )
    assert [(c.id, c.points) for c in union(data, induced).criteria] == [("C1", 5), ("C2", 2)]


def test_config_roles_k_and_method():
    run = RunConfig(method="rar")
    assert run.k == 0 and [r.name for r in run.judge_roles()] == ["verifier"]
    mixed = RunConfig.model_validate({"method": "rar", "rar": {"mix_induced": True}})
    assert mixed.k == 4 and [r.name for r in mixed.judge_roles()] == ["rubricator", "verifier"]
    assert method_of(mixed.rar) == "rar"
    with pytest.raises(ValueError, match="rubric_mode must be shared"):
        RaRConfig(rubric_mode="per_pair")


def test_rubricator_still_cannot_write_negative_points():
    items = [{"criterion": f"answer mentions w{n}", "points": 2} for n in range(4)]
    assert len(check_rubric({"criteria": items}, 4, 12).rubric.criteria) == 4
    items[0]["points"] = -2
    with pytest.raises(ValueError, match="from 1 to 5"):
        check_rubric({"criteria": items}, 4, 12)


async def test_open_scores_groups_read_from_a_groups_file(tmp_path):
    from ropd.io.groups import read_groups

    path = tmp_path / "groups.jsonl"
    line = {"id": "g1", "prompt": "p", "student_responses": ["water"], "rubric": DATA_RUBRIC}
    bad = {**line, "id": "g2", "rubric": [{"description": "abc", "weight": 0}]}
    path.write_text(json.dumps(line) + "\n")
    (groups,) = [read_groups(path, require_teacher=False)]
    client = make_client("{}")
    async with RaRScorer.open(RaRConfig(), client=client, traces=tmp_path / "t.db") as scorer:
        (result,) = await scorer.score_groups(groups)
    assert result.rewards == [0.5]
    path.write_text(json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match=r"groups.jsonl:1: field 'rubric'"):
        read_groups(path, require_teacher=False)
