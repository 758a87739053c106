"""`ropd report` on the command line, and `write_report` as a training recipe calls it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.report.helpers import OTHER_RUN, RUN
from typer.testing import CliRunner

from ropd.cli import app
from ropd.report import write_report


def ropd(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["report", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


def test_a_run_folder_finds_traces_db_and_its_run(run_dir: Path, analysis_dir: Path) -> None:
    (run_dir / "analysis").mkdir()
    for f in analysis_dir.iterdir():  # where `ropd analyze` writes in a run folder
        (run_dir / "analysis" / f.name).write_bytes(f.read_bytes())
    code, out, err = ropd(run_dir)
    assert code == 0, err
    page = (run_dir / "report.html").read_text()
    assert "report:" in out and "2 steps, 4 of 4 groups" in out
    assert "trace store:" in err and "traces.db (found)" in err
    assert f'id="run-id">{RUN}<' in page and "g-other" not in page
    assert 'id="analysis"' in page  # picked up from RUN_DIR/analysis


def test_a_trace_file_and_a_run_flag(run_dir: Path, tmp_path: Path, eval_dir: Path) -> None:
    out = tmp_path / "sub" / "r.html"
    code, stdout, err = ropd(
        run_dir / "traces.db", "-o", out, "--run", OTHER_RUN, "--eval", eval_dir
    )
    assert code == 0, err
    page = out.read_text()
    assert "g-other" in page and "g-alpha" not in page and "math500" in page
    assert "a scoring run, 1 of 1 groups" in stdout  # its groups have no training step


def test_without_run_file_the_newest_run_and_a_note_on_the_others(run_dir: Path) -> None:
    (run_dir / "ropd_run.json").unlink()
    code, _, err = ropd(run_dir, "-o", run_dir / "out.html")
    assert code == 0, err
    assert f"run {OTHER_RUN}; the store holds 1 other run(s) ({RUN})" in err


def test_the_group_cap_is_reported(run_dir: Path) -> None:
    code, out, err = ropd(run_dir, "--max-groups", "1")
    assert code == 0, err
    assert "1 of 4 groups" in out and "3 left out" in err


def test_bad_paths_are_clear_input_errors(tmp_path: Path, run_dir: Path) -> None:
    code, _, err = ropd(tmp_path / "nowhere")
    assert code == 2 and "nowhere: no such run folder or trace database" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = ropd(empty)
    assert code == 2 and "no trace store in" in err
    code, _, err = ropd(run_dir, "--analysis", empty)
    assert code == 2 and "no analysis.json" in err
    code, _, err = ropd(run_dir, "--eval", empty)
    assert code == 2 and "summary.json" in err
    code, _, err = ropd(run_dir, "--run", "nope")
    assert code == 2 and "no run 'nope'" in err
    code, _, err = ropd(run_dir / "traces.db", "-o", run_dir / "traces.db")
    assert code == 2 and "that is the trace database" in err
    not_a_store = tmp_path / "x.db"
    sqlite3.connect(not_a_store).execute("CREATE TABLE t (a)").connection.commit()
    code, _, err = ropd(not_a_store, "-o", tmp_path / "x.html")
    assert code == 2 and "error:" in err
    assert not (run_dir / "report.html").exists()


def test_write_report_writes_the_run_folders_page(run_dir: Path) -> None:
    path = write_report(run_dir)
    assert path == run_dir / "report.html"
    assert f'id="run-id">{RUN}<' in path.read_text()
