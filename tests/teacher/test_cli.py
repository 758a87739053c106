"""`ropd teacher ...` end to end: the real CLI against the stub endpoint, SIGKILL and resume."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.inprocess import ropd_in_process
from typer.testing import CliRunner

from ropd.cli import app
from ropd.data import load_records, sample_path
from ropd.testing import StubJudgeServer

runner = CliRunner()


def answers_in(db: Path) -> list[tuple[str, int, str]]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            return conn.execute("SELECT prompt_key, sample_index, status FROM answers").fetchall()
    except sqlite3.OperationalError:  # the builder has not created its tables yet
        return []


PYTHON_M_ROPD = [sys.executable, "-m", "ropd"]


def build_cmd(stub: StubJudgeServer, db: Path, *extra: str) -> list[str]:
    return [
        *PYTHON_M_ROPD, "teacher", "build", str(sample_path()),
        "--store", str(db), "-k", "4", "--base-url", stub.base_url, "--model", "stub",
        "--no-progress", *extra,
    ]  # fmt: skip


def test_sigkill_midway_then_resume_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "teacher.db"
    prompts = len(load_records(sample_path()))
    with StubJudgeServer(latency_s=0.1) as stub:
        cmd = build_cmd(stub, db, "--no-n", "--max-in-flight", "4")
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(answers_in(db)) < prompts * 4 // 3 and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        assert process.returncode == -signal.SIGKILL
        before = answers_in(db)
        assert prompts * 4 // 3 <= len(before) < prompts * 4
        served_before = stub.requests

        # the resume needs no process of its own
        resumed = ropd_in_process([*cmd[len(PYTHON_M_ROPD) :], "--json"])
        assert resumed.returncode == 0, resumed.stderr
        report = json.loads(resumed.stdout)
        assert report["complete_before"] < prompts
        assert report["answers_needed"] == prompts * 4 - len(before)
        assert stub.requests - served_before == report["requests"] == report["answers_needed"]

    after = answers_in(db)
    assert len(after) == prompts * 4
    assert len({(key, index) for key, index, _ in after}) == len(after)
    per_prompt: dict[str, list[int]] = {}
    for key, index, status in after:
        assert status == "ok"
        per_prompt.setdefault(key, []).append(index)
    assert len(per_prompt) == prompts
    assert all(sorted(indexes) == [0, 1, 2, 3] for indexes in per_prompt.values())
    assert set(before) <= set(after)  # nothing that was committed before the kill went away


def test_build_stats_export_import_commands(tmp_path: Path) -> None:
    db, out, copy = tmp_path / "t.db", tmp_path / "refs.jsonl", tmp_path / "copy.db"
    with StubJudgeServer(latency_s=0.0) as stub:
        result = ropd_in_process(
            [*build_cmd(stub, db, "--limit", "5")[len(PYTHON_M_ROPD) :], "--json"]
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["answers_stored"] == 20
        assert stub.requests == 5  # n = 4 in one request per prompt
        assert all(body["n"] == 4 and body["temperature"] == 1.0 for body in stub.bodies)

    result = runner.invoke(app, ["teacher", "stats", "--store", str(db), "-k", "4", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["prompts"] == 5 and info["by_status"]["ok"] == 20
    assert info["fingerprints"][0]["prompts_with_4_ok"] == 5
    assert info["fingerprints"][0]["fields"]["model"] == "stub"
    table = runner.invoke(app, ["teacher", "stats", "--store", str(db)])
    assert table.exit_code == 0 and "stub" in table.stdout

    result = runner.invoke(app, ["teacher", "export", "--store", str(db), "-o", str(out)])
    assert result.exit_code == 0 and "exported 20 answers" in result.stdout
    result = runner.invoke(app, ["teacher", "import", str(out), "--store", str(copy)])
    assert result.exit_code == 0 and "imported 20 answers" in result.stdout
    result = runner.invoke(app, ["teacher", "import", str(out), "--store", str(copy)])
    assert "imported 0 answers (20 already present" in result.stdout


def test_cli_errors_are_clear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "prompt": "ok"}\n{"id": 2, "question": "no prompt"}\n')
    db = str(tmp_path / "t.db")
    url = "http://127.0.0.1:9/v1"
    result = runner.invoke(app, ["teacher", "build", str(bad), "--store", db,
                                 "--base-url", url, "--model", "m"])  # fmt: skip
    assert result.exit_code == 2
    assert f"{bad}:2: missing field 'prompt'" in result.output
    result = runner.invoke(app, ["teacher", "build", str(bad), "--store", db, "--base-url", url])
    assert result.exit_code == 2 and "--model is required" in result.output
    monkeypatch.delenv("ROPD_TEST_MISSING_KEY", raising=False)
    result = runner.invoke(app, ["teacher", "build", str(bad), "--store", db, "--base-url", url,
                                 "--model", "m", "--api-key-env", "ROPD_TEST_MISSING_KEY"])  # fmt: skip
    assert result.exit_code == 2 and "ROPD_TEST_MISSING_KEY is not set" in result.output
    result = runner.invoke(app, ["teacher", "stats", "--store", str(tmp_path / "none.db")])
    assert result.exit_code == 2 and "no such teacher store" in result.output
    assert not (tmp_path / "none.db").exists()


def test_unreachable_endpoint_keeps_going_then_reports_incomplete(tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": 1, "prompt": "hi"}\n')
    result = runner.invoke(app, ["teacher", "build", str(data), "--store", str(tmp_path / "t.db"),
                                 "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
                                 "--max-retries", "0", "--no-progress", "--no-probe"])  # fmt: skip
    assert result.exit_code == 1
    assert "1 prompts still have fewer than 4 usable answers" in result.output
    assert "connection error" in result.output
