"""`method: ovd` trains two real TRL steps on the tiny model, with the outcome reward on."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ropd.data.gold import math_verify_available
from ropd.reward.traces import TraceStore
from ropd.testing import scripted_judge
from ropd.train.config import load_config
from ropd.train.runner import run

pytestmark = pytest.mark.skipif(not math_verify_available(), reason="math-verify not installed")


def test_ovd_trains_two_steps_with_gold_from_the_data(
    tiny_overrides: dict[str, Any], tiny_student: Path, tmp_path: Path
) -> None:
    overrides = {
        **tiny_overrides,
        "ropd.method": "ovd",
        "learning_rate": 1e-3,
        "ropd.ovd.outcome_weight": 0.5,
        "ropd.ovd.reject_below": 2,
    }
    for key in ("ropd.teacher.store", "ropd.teacher.build_missing", "ropd.scorer.num_teacher_refs"):
        overrides.pop(key)
    config = load_config(None, overrides)
    assert not config.ropd.needs_teacher_store and config.ropd.k == 0
    judge = scripted_judge()
    report = run(config, client=judge)
    assert report.global_step == 2 and report.stopped is None
    assert not judge.calls_for("teacher") and not judge.calls_for("rubricator")
    with sqlite3.connect(report.traces) as db:
        rows = db.execute("SELECT group_id, step, num_student, num_teacher FROM groups").fetchall()
        (run_id,) = db.execute("SELECT run_id FROM runs").fetchone()
    assert len(rows) == 4 and {step for _, step, _, _ in rows} == {1, 2}
    assert all(n_student == 2 and n_teacher == 0 for *_, n_student, n_teacher in rows)
    with TraceStore(report.traces, run_id=run_id) as traces:
        results = [traces.get(gid, run_id=run_id, step=step).result for gid, step, *_ in rows]
    for result in results:
        ovd = result.settings["ovd"]
        # the gold answer reached the scorer through TRL's prompt column (checked, not None)
        assert all(ok is not None for ok in ovd["correct"])
        for score, ok, rejected, reward in zip(
            ovd["scores"], ovd["correct"], ovd["rejected"], result.rewards, strict=True
        ):
            assert rejected == (score < 2)
            expected = 0.0 if rejected else 0.5 * ok + 0.5 * score / 9
            assert reward == pytest.approx(expected)
    assert 0 < len(judge.calls_for("ovd")) <= 8  # one call per non-empty trajectory
