"""`ropd score` as a user runs it: a real process starting the embedded llama.cpp judge."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ropd.reward.traces import TraceStore

pytestmark = pytest.mark.slow

GROUPS = [
    {
        "id": "mul",
        "prompt": "What is 17 * 23? Give the number.",
        "student_responses": ["17 * 23 = 391.", "<think>17*20=340</think>It is 401."],
        "teacher_responses": ["17 * 23 = 340 + 51 = 391."],
    },
    {
        "id": "capital",
        "prompt": [{"role": "user", "content": "Name the capital of France."}],
        "student_responses": ["Paris.", "Lyon"],
        "teacher_responses": ["The capital of France is Paris."],
    },
]


def test_score_with_the_embedded_judge(tmp_path: Path):
    pytest.importorskip("llama_cpp", reason="the embedded judge needs ropd[local]")
    groups = tmp_path / "groups.jsonl"
    groups.write_text("".join(json.dumps(g) + "\n" for g in GROUPS))
    out = tmp_path / "scores.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "ropd", "score", str(groups), "-o", str(out),
         "-k", "1", "--min-criteria", "2", "--max-criteria", "4", "--max-tokens", "512"],
        check=False, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == ["capital", "mul"]
    for row in rows:
        assert {"id", "rewards", "teacher_scores", "rubric", "verdicts", "usage", "error"} <= set(
            row
        )
        assert len(row["rewards"]) == 2
        if row["error"] is None:
            assert all(0.0 <= r <= 1.0 for r in row["rewards"])
            assert 2 <= len(row["rubric"]["criteria"]) <= 4
            assert row["usage"]["rubricator"]["completion_tokens"] > 0
            assert len(row["verdicts"]) == 3  # two students and the teacher answer
        else:
            assert row["rewards"] == [None, None]  # failure policy nan: never a silent 0
    assert "groups 2 (scored 2" in proc.stdout

    db = tmp_path / "scores.traces.db"
    with TraceStore(db) as store:
        traced = store.get("mul")
        assert traced is not None and traced.teacher_responses == GROUPS[0]["teacher_responses"]
        assert traced.result.settings["rubricator_model"] != "local"  # the served model's name
    shown = subprocess.run(
        [sys.executable, "-m", "ropd", "inspect", "--traces", str(db), "mul"],
        check=False, capture_output=True, text=True, timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "17 * 23" in shown.stdout
    first = next((r for r in rows if r["id"] == "mul"), None)
    if first and first["error"] is None:
        assert first["rubric"]["criteria"][0]["criterion"].splitlines()[0][:40] in shown.stdout
