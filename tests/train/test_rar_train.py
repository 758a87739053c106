"""`method: rar` trains two real TRL steps on the tiny model, the rubric from a data column."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ropd.data import load_records, rar_sample_path
from ropd.data.records import DataError
from ropd.data.rubrics import record_rubric
from ropd.reward.traces import TraceStore
from ropd.testing import scripted_judge
from ropd.train.config import load_config
from ropd.train.runner import run


def rar_overrides(tiny_overrides: dict[str, Any], source: Path) -> dict[str, Any]:
    overrides = {
        **tiny_overrides,
        "ropd.method": "rar",
        "ropd.data.source": str(source),
        "ropd.data.prompt_field": "question",
        "ropd.data.answer_field": None,
    }
    for key in ("ropd.teacher.store", "ropd.teacher.build_missing", "ropd.scorer.num_teacher_refs"):
        overrides.pop(key)
    return overrides


def test_rar_trains_two_steps_with_the_rows_rubrics(
    tiny_overrides: dict[str, Any], tiny_student: Path
) -> None:
    config = load_config(None, rar_overrides(tiny_overrides, rar_sample_path()))
    assert not config.ropd.needs_teacher_store and config.ropd.k == 0
    judge = scripted_judge()
    report = run(config, client=judge)
    assert report.global_step == 2 and report.stopped is None
    assert not judge.calls_for("rubricator") and not judge.calls_for("teacher")
    assert judge.calls_for("verifier")
    with sqlite3.connect(report.traces) as db:
        rows = db.execute("SELECT group_id, step, num_student, num_teacher FROM groups").fetchall()
        (run_id,) = db.execute("SELECT run_id FROM runs").fetchone()
    assert len(rows) == 4 and {step for _, step, _, _ in rows} == {1, 2}
    data = {r.get("id"): record_rubric(r) for r in load_records(rar_sample_path())}
    with TraceStore(report.traces, run_id=run_id) as traces:
        for gid, step, n_student, n_teacher in rows:
            assert (n_student, n_teacher) == (2, 0)
            result = traces.get(gid, run_id=run_id, step=step).result
            assert result.error is None
            # the row's own rubric reached the scorer through TRL's column, and the trace store
            assert result.rubric == data[gid]
            assert result.settings["scorer"] == "rar"
            for answer in result.verdicts:
                points = [c.points for c in result.rubric.criteria]
                met = [answer.verdicts[c.id] for c in result.rubric.criteria]
                assert answer.score == pytest.approx(
                    max(
                        0.0,
                        min(
                            1.0,
                            sum(p for p, v in zip(points, met) if v)
                            / sum(p for p in points if p > 0),
                        ),
                    )
                )


def test_rows_without_a_rubric_stop_before_training(
    tiny_overrides: dict[str, Any], tiny_student: Path, tmp_path: Path
) -> None:
    rows = [json.loads(line) for line in rar_sample_path().read_text().splitlines()]
    del rows[1]["rubric"]
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = load_config(None, rar_overrides(tiny_overrides, source))
    with pytest.raises(DataError, match=r"rows.jsonl:2: missing field 'rubric'"):
        run(config, client=scripted_judge())


def test_dry_run_says_what_rar_needs(tmp_path: Path) -> None:
    from ropd.cli import app

    result = CliRunner().invoke(
        app,
        [
            "train",
            "--method",
            "rar",
            "--dry-run",
            "--set",
            "ropd.data.prompt_field=question",
            "--set",
            f"ropd.data.source={rar_sample_path()}",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "needs a rubric on every row (column data.rubric" in result.output
    assert "no rubricator, K=0" in result.output


def test_only_the_roles_rar_calls_are_checked_before_training(
    tiny_overrides: dict[str, Any],
) -> None:
    from ropd.train.preflight import used_roles

    plain = load_config(None, rar_overrides(tiny_overrides, rar_sample_path()))
    assert [r.name for r in used_roles(plain)] == ["verifier"]
    mixed = load_config(
        None,
        {
            **rar_overrides(tiny_overrides, rar_sample_path()),
            "ropd.rar.mix_induced": True,
            "ropd.teacher.store": tiny_overrides["ropd.teacher.store"],
            "ropd.teacher.build_missing": True,
        },
    )
    assert mixed.ropd.needs_teacher_store  # K = 4 with mix_induced unless set
    assert [r.name for r in used_roles(mixed, teacher=False)] == ["rubricator", "verifier"]


def test_mixed_rar_trains_with_one_rubricator_call_per_group(
    tiny_overrides: dict[str, Any], tiny_student: Path
) -> None:
    overrides = {
        **rar_overrides(tiny_overrides, rar_sample_path()),
        "ropd.rar.mix_induced": True,
        "ropd.rar.num_teacher_refs": 0,
        "max_steps": 1,
    }
    judge = scripted_judge()
    report = run(load_config(None, overrides), client=judge)
    assert report.global_step == 1
    assert len(judge.calls_for("rubricator")) == 2  # two groups in the one step
    data = {r.get("id"): record_rubric(r) for r in load_records(rar_sample_path())}
    with sqlite3.connect(report.traces) as db:
        rows = db.execute("SELECT group_id, step FROM groups").fetchall()
        (run_id,) = db.execute("SELECT run_id FROM runs").fetchone()
    with TraceStore(report.traces, run_id=run_id) as traces:
        for gid, step in rows:
            rubric = traces.get(gid, run_id=run_id, step=step).result.rubric
            own = data[gid].criteria
            # the row's criteria first, then the induced ones, renumbered
            assert [c.criterion for c in rubric.criteria[: len(own)]] == [c.criterion for c in own]
            assert len(rubric.criteria) > len(own)
            assert [c.id for c in rubric.criteria] == [
                f"C{n}" for n in range(1, len(rubric.criteria) + 1)
            ]


def test_the_bundled_rar_example_reads_its_rows_and_their_rubrics() -> None:
    """examples/embedded-rar.yaml: `data.source: sample-rar` names the bundled RaR-layout rows."""
    from ropd.train.data import load_prompts

    config = load_config("examples/embedded-rar.yaml", check_paths=False)
    assert config.method == "rar"
    prompts = load_prompts(config.ropd.data, rubrics=True)
    rows = load_records(str(rar_sample_path()))
    assert len(prompts) == min(4, len(rows))
    assert prompts[0].messages[-1]["content"] == rows[0].data["question"]
    assert all(p.rubric is not None and p.rubric.criteria for p in prompts)
