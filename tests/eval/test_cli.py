"""`ropd eval` end to end with a tiny local model, resume, `ropd eval compare`, CLI errors."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ropd.cli import app
from ropd.eval.items import load_items
from ropd.eval.runner import score_sync
from ropd.eval.tasks import parse_tasks

FIXTURES = Path(__file__).parent / "fixtures"
HAS_LM_EVAL = importlib.util.find_spec("lm_eval") is not None
TASKS = f"math={FIXTURES / 'math.jsonl'},mcq={FIXTURES / 'mcq.jsonl'}" + (
    f",ifeval={FIXTURES / 'ifeval.jsonl'}" if HAS_LM_EVAL else ""
)
SIZES = {"math": 3, "mcq": 2, **({"ifeval": 2} if HAS_LM_EVAL else {})}
TOTAL = 2 * sum(SIZES.values())
runner = CliRunner()


def _eval(model: Path, out: Path, *extra: str):
    args = [
        "eval",
        "--model",
        str(model),
        "--tasks",
        TASKS,
        "--n",
        "2",
        "--max-tokens",
        "8",
        "--batch-size",
        "4",
        "-o",
        str(out),
        *extra,
    ]
    return runner.invoke(app, args)


def _samples(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def test_eval_with_a_tiny_local_model_and_resume(tiny_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _eval(tiny_model_dir, out)
    assert result.exit_code == 0, result.output
    assert f"generated {TOTAL} samples, re-used 0" in result.output

    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"] == "transformers"
    assert summary["model_fingerprint"].startswith("sha256:")
    assert summary["generation"] == {
        "n": 2,
        "temperature": 1.0,
        "top_p": 0.95,
        "max_new_tokens": 8,
        "system_prompt": None,
        "seed": 0,
    }
    assert set(summary["tasks"]) == set(SIZES)
    for name, items in SIZES.items():
        task = summary["tasks"][name]
        assert (task["items"], task["n"], task["samples"], task["failed"]) == (
            items,
            2,
            2 * items,
            0,
        )
        assert 0.0 <= task["pass_at_1"] <= 1.0
    assert (out / "summary.md").read_text().startswith("# Evaluation of")

    # Every stored score is what the scorer gives for the stored completion.
    samples = _samples(out)
    assert len(samples) == TOTAL
    items = {(s.name, i.item_id): (s, i) for s in parse_tasks(TASKS) for i in load_items(s)}
    for sample in samples:
        spec, item = items[(sample["task"], sample["item_id"])]
        assert sample["completion_tokens"] <= 8
        assert sample["score"] == score_sync(spec.family, item, sample["completion"]).score

    # Same command again: nothing is regenerated.
    again = _eval(tiny_model_dir, out)
    assert again.exit_code == 0, again.output
    assert f"generated 0 samples, re-used {TOTAL}" in again.output
    assert _samples(out) == samples

    # Same seed in a fresh folder: the same completions (sampling is seeded).
    fresh = tmp_path / "fresh"
    assert _eval(tiny_model_dir, fresh).exit_code == 0
    by_key = {(s["task"], s["item_id"], s["sample_index"]): s["completion"] for s in samples}
    assert {
        (s["task"], s["item_id"], s["sample_index"]): s["completion"] for s in _samples(fresh)
    } == by_key


def _summary(folder: Path, model: str, scores: dict[str, float]) -> Path:
    folder.mkdir(parents=True)
    tasks = {
        t: {"family": "math", "pass_at_1": v, "pass_at_1_std": 0.01, "n": 16, "items": 30}
        for t, v in scores.items()
    }
    (folder / "summary.json").write_text(json.dumps({"model": model, "tasks": tasks}))
    return folder


def test_compare_table_and_gap_closed(tmp_path: Path) -> None:
    base = _summary(tmp_path / "base", "student-0", {"aime24": 0.20, "aime25": 0.10})
    teacher = _summary(tmp_path / "teacher", "big", {"aime24": 0.60, "aime25": 0.50})
    ropd = _summary(tmp_path / "ropd", "student-ropd", {"aime24": 0.50, "aime25": 0.30})

    result = runner.invoke(app, ["eval", "compare", str(base), str(teacher), str(ropd), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["base"], data["teacher"]) == ("base", "teacher")
    gaps = data["runs"]["ropd"]["gap_closed"]
    assert gaps["aime24"] == pytest.approx(0.75)
    assert gaps["aime25"] == pytest.approx(0.5)
    assert gaps["average"] == pytest.approx((0.40 - 0.15) / (0.55 - 0.15))

    table = runner.invoke(app, ["eval", "compare", str(base), str(teacher), str(ropd)])
    assert table.exit_code == 0, table.output
    assert "50.0 ± 1.0" in table.output and "75.0%" in table.output


def test_compare_with_explicit_base_and_teacher(tmp_path: Path) -> None:
    small = _summary(tmp_path / "runs" / "a", "s", {"t": 0.1})
    large = _summary(tmp_path / "runs" / "b", "l", {"t": 0.9})
    mid = _summary(tmp_path / "runs" / "c", "m", {"t": 0.5})
    result = runner.invoke(
        app, ["eval", "compare", str(mid), "--base", str(small), "--teacher", str(large), "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["runs"]["c"]["gap_closed"]["t"] == pytest.approx(0.5)
    assert set(data["runs"]) == {"a", "b", "c"}


def test_compare_without_summary_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", "compare", str(tmp_path)])
    assert result.exit_code == 2
    assert "no summary.json" in result.output


def test_eval_usage_errors(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["eval", "--model", "x", "-o", str(tmp_path)])
    assert missing.exit_code == 2 and "missing --tasks" in missing.output
    bad = runner.invoke(
        app,
        [
            "eval",
            "--model",
            "x",
            "-o",
            str(tmp_path),
            "--tasks",
            f"math={FIXTURES / 'bad_math.jsonl'}",
        ],
    )
    assert bad.exit_code == 2
    assert "bad_math.jsonl:2: field 'answer'" in bad.output.replace("\n", "")


def test_help_reads_well() -> None:
    top = runner.invoke(app, ["eval", "--help"])
    assert top.exit_code == 0
    for word in ("--model", "--tasks", "--output", "--base-url", "--grader-model", "compare"):
        assert word in top.output
    sub = runner.invoke(app, ["eval", "compare", "--help"])
    assert sub.exit_code == 0 and "--teacher" in sub.output


def test_unreachable_hub_says_so(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ropd",
            "eval",
            "--model",
            "x",
            "--tasks",
            "aime24",
            "-o",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    message = " ".join(proc.stderr.split())
    assert "Hugging Face" in message and "aime24=PATH" in message
