"""The trace store's SQL views give the numbers `reward/metrics.py` computes in Python."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from tests.reward.test_metrics import RUBRIC, STUDENTS, flaky_verifier, group, hand_results

from ropd.llm.config import Price, RoleConfig
from ropd.reward.config import ScorerConfig
from ropd.reward.group_scorer import GroupScorer
from ropd.reward.traces import VIEWS, TraceStore
from ropd.reward.types import Group, GroupResult
from ropd.rubric import Criterion, Rubric
from ropd.testing import make_client


def rows(db: Path, sql: str) -> list[dict]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(r) for r in conn.execute(sql)]


async def scored_store(tmp_path: Path) -> Path:
    """Two traced steps, a failed group in each, the judge priced."""
    db = tmp_path / "traces.db"
    price = Price(input_per_mtok=3.0, output_per_mtok=15.0)
    config = ScorerConfig(judge=RoleConfig(price=price), failure_policy="constant")
    with TraceStore(db, run_id="train") as store:
        scorer = GroupScorer(config, make_client(RUBRIC, flaky_verifier), store, run_id="train")
        for step in (1, 2):
            await scorer.score_groups([group(g) for g in STUDENTS], step=step)
    return db


async def test_views_agree_with_the_step_metrics(tmp_path: Path) -> None:
    db = await scored_store(tmp_path)
    with TraceStore(db) as store:
        summaries = {s.step: s.metrics for s in store.summary(run_id="train")}
    assert set(summaries) == {1, 2}

    for row in rows(db, "SELECT * FROM step_summary ORDER BY step"):
        m = summaries[row["step"]]
        assert (row["groups"], row["failed_groups"]) == (m.groups, m.failed_groups) == (4, 1)
        assert row["failed_group_rate"] == pytest.approx(m.failed_group_rate)
        assert row["reward_mean"] == pytest.approx(m.reward_mean)
        assert row["teacher_score_mean"] == pytest.approx(m.teacher_score_mean)

    by_category: dict[int, dict[str, float]] = {}
    for row in rows(db, "SELECT * FROM category_pass_rate"):
        by_category.setdefault(row["step"], {})[row["category"]] = row["pass_rate"]
    assert by_category == {step: pytest.approx(m.pass_rate) for step, m in summaries.items()}

    for row in rows(db, "SELECT * FROM cost_per_step"):
        m = summaries[row["step"]]
        assert row["input_tokens"] == sum(u.input_tokens for u in m.judge.values())
        assert row["output_tokens"] == sum(u.output_tokens for u in m.judge.values())
        assert row["cost"] == pytest.approx(m.judge_cost) and row["cost"] > 0

    usage = rows(db, "SELECT * FROM usage_per_step WHERE step = 1 ORDER BY role")
    assert [u["role"] for u in usage] == ["rubricator", "verifier"]
    assert usage[1]["failed_calls"] == summaries[1].judge["verifier"].failed_calls >= 1

    failures = rows(db, "SELECT * FROM failures_per_step ORDER BY step")
    assert [(f["step"], f["failed_groups"]) for f in failures] == [(1, 1), (2, 1)]
    assert "503" in failures[0]["first_error"]


async def test_criterion_view_has_one_row_per_criterion_of_scored_groups(tmp_path: Path) -> None:
    db = await scored_store(tmp_path)
    per_criterion = rows(db, "SELECT * FROM criterion_pass_rate WHERE step = 1")
    assert {r["group_id"] for r in per_criterion} == {"g0", "g1", "g3"}  # g2 failed
    g0 = {r["criterion_id"]: r for r in per_criterion if r["group_id"] == "g0"}
    # g0's students: "391 because 17*23" twice and "401"; criterion C1 asks for "391"
    assert g0["C1"]["student_verdicts"] == 3 and g0["C1"]["student_passed"] == 2
    assert g0["C1"]["pass_rate"] == pytest.approx(2 / 3)
    assert g0["C1"]["metric_category"] == "correctness"


def test_judge_written_categories_are_mapped_and_old_stores_get_the_column(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    rubric = Rubric(
        criteria=[
            Criterion(id="C1", category="revised_referee-style}", criterion="first one", points=2),
            Criterion(id="C2", category="Instruction Following", criterion="second one", points=1),
        ]
    )
    result = GroupResult(id="g", rewards=[], rubrics=[rubric])
    with TraceStore(db) as store:
        store.record(Group(id="g", prompt="q", student_responses=["x"]), result)
    with sqlite3.connect(db) as conn:  # a store written before the column existed
        conn.execute("UPDATE criteria SET metric_category = NULL")
        conn.execute("DROP VIEW step_summary")
    TraceStore(db).close()
    got = rows(db, "SELECT category, metric_category FROM criteria ORDER BY criterion_id")
    assert got == [
        {"category": "revised_referee-style}", "metric_category": "other"},
        {"category": "Instruction Following", "metric_category": "instruction_following"},
    ]
    names = {r["name"] for r in rows(db, "SELECT name FROM sqlite_master WHERE type = 'view'")}
    assert names == set(VIEWS)


def test_hand_built_groups_give_the_same_step_summary(tmp_path: Path) -> None:
    results = hand_results()
    db = tmp_path / "traces.db"
    with TraceStore(db, run_id="r") as store:
        for res in results:
            traced = Group(
                id=res.id,
                prompt="q",
                student_responses=[f"s{i}" for i in range(len(res.rewards))],
                teacher_responses=[f"t{j}" for j in range(len(res.teacher_scores))],
            )
            store.record(traced, res, step=1)
        (summary,) = store.summary(step=1)
    (row,) = rows(db, "SELECT * FROM step_summary")
    assert row["reward_mean"] == pytest.approx(summary.metrics.reward_mean)  # NaN left out
    assert row["teacher_score_mean"] == pytest.approx(summary.metrics.teacher_score_mean)
    by_category = {
        r["category"]: r["pass_rate"] for r in rows(db, "SELECT * FROM category_pass_rate")
    }
    assert by_category == pytest.approx(summary.metrics.pass_rate)
