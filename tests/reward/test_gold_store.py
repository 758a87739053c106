"""Gold correctness in the trace store: `answers.correct`, written with the group or afterwards,
read back into every rebuilt step, and the gold health numbers computed from it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.inprocess import ropd_in_process

from ropd.io import GroupsFileError, read_groups
from ropd.report import build_report
from ropd.reward.health import health_metrics
from ropd.reward.traces import TraceStore
from ropd.reward.types import Group, GroupResult
from ropd.testing import StubJudgeServer, content_policy, rubric_reply
from ropd.testing.stub_server import STUB_MODEL

# (answer, reward, gold check): correct {0.9, 0.4, 0.6}, incorrect {0.5, 0.1}; of the 6 pairs
# the correct answer is higher in 5 (not 0.4 < 0.5): AUC 5/6. Within groups: a 1 of 2, b 1 of 1.
GROUPS = {
    "a": [("x", 0.9, True), ("y", 0.5, False), ("z", 0.4, True)],
    "b": [("u", 0.6, True), ("v", 0.1, False), ("w", 0.2, None)],
}


def group(gid: str, with_checks: bool = True) -> Group:
    rows = GROUPS[gid]
    return Group(
        id=gid,
        prompt=f"q {gid}",
        student_responses=[text for text, _, _ in rows],
        teacher_responses=["t"],
        student_correct=[ok for _, _, ok in rows] if with_checks else None,
    )


def result(gid: str) -> GroupResult:
    return GroupResult(id=gid, rewards=[r for _, r, _ in GROUPS[gid]], teacher_scores=[0.8])


def stored_column(path: Path) -> list[tuple[str, str, int, int | None]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT g.group_id, a.source, a.idx, a.correct FROM answers a "
            "JOIN groups g ON g.pk = a.group_pk ORDER BY g.pk, a.source, a.idx"
        ).fetchall()
    conn.close()
    return rows


def test_a_groups_gold_checks_round_trip_through_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with TraceStore(db, run_id="r") as store:
        for gid in GROUPS:
            store.record(group(gid), result(gid), step=2)
        store.record(group("a", with_checks=False), result("a"), step=3)
    assert stored_column(db)[:4] == [
        ("a", "student", 0, 1),
        ("a", "student", 1, 0),
        ("a", "student", 2, 1),
        ("a", "teacher", 0, None),  # teacher answers are not checked
    ]
    with TraceStore(db) as store:
        got = store.get("b", run_id="r", step=2)
        unchecked = store.get("a", run_id="r", step=3)
        step2, step3 = store.steps(run_id="r")
    assert got is not None and got.student_correct == [True, False, None]
    assert unchecked is not None and unchecked.student_correct is None
    assert step2.correct == [[True, False, True], [True, False, None]]
    assert step2.answers == [["x", "y", "z"], ["u", "v", "w"]]
    assert step3.correct == [None]

    health = step2.health()
    assert health.gold_auc == pytest.approx(5 / 6)
    assert health.gold_pair_accuracy == pytest.approx(2 / 3)
    assert health.gold_checked == 5 and health.gold_correct_rate == pytest.approx(3 / 5)
    expected = health_metrics(
        [result(g) for g in GROUPS], correct=[[ok for *_, ok in GROUPS[g]] for g in GROUPS]
    )
    assert health.gold_auc == expected.gold_auc
    assert step3.health().gold_auc is None  # nothing checked: left out, never 0


def test_the_gold_view_sums_a_steps_checked_answers(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with TraceStore(db, run_id="r") as store:
        for gid in GROUPS:
            store.record(group(gid), result(gid), step=1)
        failed = GroupResult(id="f", rewards=[0.0, 0.0, 0.0], error="judge down")
        store.record(group("a").model_copy(update={"id": "f"}), failed, step=1)
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        (row,) = conn.execute("SELECT * FROM gold_per_step").fetchall()
    conn.close()
    assert (row["checked"], row["correct"]) == (5, 3)  # the failed group is left out
    assert row["reward_correct_mean"] == pytest.approx((0.9 + 0.4 + 0.6) / 3)
    assert row["reward_incorrect_mean"] == pytest.approx((0.5 + 0.1) / 2)
    with TraceStore(db) as store:
        (step,) = store.steps()
    health = step.health()  # the view and the health numbers agree
    assert (row["checked"], row["correct_rate"]) == (health.gold_checked, health.gold_correct_rate)
    assert row["reward_correct_mean"] == pytest.approx(health.reward_correct_mean)


def test_checks_written_after_the_group_reach_its_answers(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    with TraceStore(db, run_id="r") as store:
        for gid in GROUPS:
            store.record(group(gid, with_checks=False), result(gid), step=1)
        store.record(group("a", with_checks=False), result("a"), step=2)
        updated = store.record_correct(
            {"a": [True, False, True], "b": None, "never-recorded": [True]}, step=1
        )
        assert updated == 3  # only group a of step 1: b has none, the third is not stored
        (step1, step2) = store.steps()
    assert step1.correct == [[True, False, True], None]
    assert step2.correct == [None]  # another step's record of the same group is untouched


def test_a_store_made_before_the_correct_column_opens_and_takes_it(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with TraceStore(db, run_id="r") as store:
        store.record(group("a", with_checks=False), result("a"), step=1)
    with sqlite3.connect(db) as conn:  # what a store written by an older ropd looks like
        conn.execute("DROP VIEW gold_per_step")
        conn.execute("ALTER TABLE answers DROP COLUMN correct")
        assert "correct" not in {r[1] for r in conn.execute("PRAGMA table_info(answers)")}
    conn.close()
    with TraceStore(db, run_id="r") as store:
        store.record(group("b"), result("b"), step=1)
        (step,) = store.steps()
    assert step.correct == [None, [True, False, None]]
    assert step.health().gold_checked == 2


def test_student_correct_needs_one_entry_per_answer() -> None:
    with pytest.raises(ValidationError, match="student_correct: 1 entries for 3 student answers"):
        Group(id="g", prompt="q", student_responses=["a", "b", "c"], student_correct=[True])
    with pytest.raises(ValidationError, match="valid boolean"):
        Group(id="g", prompt="q", student_responses=["a"], student_correct=["yes"])
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Group(id="g", prompt="q", student_responses=["a"], correct=[True])  # type: ignore[call-arg]


def test_a_groups_file_carries_student_correct(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    row = {"id": "g", "prompt": "q", "student_responses": ["a", "b"], "teacher_responses": ["t"]}
    lines = [{**row, "student_correct": [True, None], "answer": "4"}, {**row, "id": "h"}]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    first, second = read_groups(path)
    assert first.student_correct == [True, None] and second.student_correct is None

    path.write_text(json.dumps({**row, "student_correct": [True]}) + "\n", encoding="utf-8")
    with pytest.raises(GroupsFileError) as caught:
        read_groups(path)
    why = "1 entries for 2 student answers (one true, false or null per answer)"
    assert [str(e) for e in caught.value.errors] == [f"{path}:1: field 'student_correct': {why}"]


RUBRIC = rubric_reply([("4", 5), ("zz", 1), ("yy", 1), ("xx", 1)])  # 8 points


def test_ropd_score_stores_the_files_checks_and_the_report_shows_the_auc(tmp_path: Path) -> None:
    groups = tmp_path / "groups.jsonl"
    answers = ["It is 4", "It is 5 xx", "4? no, 5", "zz"]  # rewards 5/8, 1/8, 5/8, 1/8
    line = {
        "id": "g",
        "prompt": "What is 2 + 2?",
        "student_responses": answers,
        "teacher_responses": ["4"],
        "student_correct": [True, False, False, None],
    }
    groups.write_text(json.dumps(line) + "\n", encoding="utf-8")
    traces = tmp_path / "t.db"
    with StubJudgeServer(latency_s=0.0, policy=content_policy(RUBRIC)) as stub:
        done = ropd_in_process(
            ["score", groups, "-o", tmp_path / "s.jsonl", "--traces", traces,
             "--base-url", stub.base_url, "--model", STUB_MODEL]
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with TraceStore(traces) as store:
        (step,) = store.steps()
    assert step.correct == [[True, False, False, None]]
    # correct {5/8}, incorrect {1/8, 5/8}: one win, one tie of two pairs
    assert step.health().gold_auc == pytest.approx(0.75)

    stats = ropd_in_process(["inspect", "--traces", traces, "--stats"], env={"COLUMNS": "240"})
    (health,) = [x for x in stats.stdout.splitlines() if x.startswith("reward health")]
    assert "gold_auc 0.75," in health and "gold_pair_accuracy 0.75," in health

    page = tmp_path / "report.html"
    data = build_report(traces, page, run_id=None)
    assert data.is_score and data.totals["last"]["health"]["gold_auc"] == pytest.approx(0.75)
    html = page.read_text(encoding="utf-8")
    assert 'data-total="gold_auc">0.750<' in html
    assert 'data-total="gold_pair_accuracy">0.750<' in html
