"""Reward health where a finished run is read back: `ropd inspect --stats` and the report."""

from __future__ import annotations

from pathlib import Path

from tests.report.helpers import RUN, build_store
from typer.testing import CliRunner

from ropd.cli import app
from ropd.report import build_report
from ropd.reward.traces import TraceStore
from ropd.reward.types import Group, GroupResult


def record(store: TraceStore, gid: str, answers: list[str], rewards, teacher) -> None:
    group = Group(id=gid, prompt="q", student_responses=answers, teacher_responses=["t"])
    store.record(group, GroupResult(id=gid, rewards=rewards, teacher_scores=teacher), step=3)


def test_inspect_stats_prints_the_steps_health_from_stored_answers(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    with TraceStore(db, run_id="train") as store:
        record(store, "flat", ['{"verdicts": {"C1": true}}', "plain"], [0.5, 0.5], [0.2])
        record(store, "apart", ["a", "b" * 10], [0.1, 0.9], [0.9])
    result = CliRunner().invoke(
        app, ["inspect", "--traces", str(db), "--stats"], env={"COLUMNS": "240"}
    )
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("reward health")]
    assert line.startswith("reward health, run train step 3: ")
    assert "teacher_fail_rate 0.5" in line and "no_spread_rate 0.5" in line
    assert "judge_imitation_rate 0.25" in line  # one of four stored answers
    assert "length_reward_corr" in line and "gold" not in line  # this store holds no gold checks


def test_the_report_draws_the_health_rates_per_step(tmp_path: Path) -> None:
    traces = build_store(tmp_path / "traces.db")
    out = tmp_path / "report.html"
    data = build_report(traces, out, run_id=RUN)
    assert "no_spread_rate" in data.steps[0]["health"]
    assert 'id="chart-health"' in out.read_text()
