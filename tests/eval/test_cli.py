"""`ropd eval` end to end with a tiny local model: settings, samples, resume, flags, CLI errors."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.inprocess import ropd_in_process
from typer.testing import CliRunner

from ropd.cli import app
from ropd.eval.items import load_items
from ropd.eval.runner import gold, score_sync
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
        "--num-samples",
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
    model_dir = tiny_model_dir
    out = tmp_path / "run"
    result = _eval(tiny_model_dir, out)
    assert result.exit_code == 0, result.output
    assert f"generated {TOTAL} samples, re-used 0" in result.output

    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"] == "transformers"
    assert summary["model_fingerprint"].startswith("sha256:")
    assert summary["settings"] == {
        "model": str(model_dir),
        "backend": "transformers",
        "dtype": "float32",  # --dtype auto resolved to what the weights were loaded in
        "device": "cpu",
        "num_samples": 2,
        "temperature": 1.0,
        "top_p": 0.95,
        "max_tokens": 8,
        "seed": 0,
        "system_prompt": None,
        "system_prompt_sha256": None,
        "limit": None,
        "grader": None,
        "grader_max_tokens": None,
    }
    assert summary["generation"]["n"] == 2  # the older block stays for older readers
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
    markdown = (out / "summary.md").read_text()
    assert markdown.startswith("# Evaluation of")
    assert "| dtype | `float32` |" in markdown and "| max new tokens | 8 |" in markdown
    assert "| limit (first N items per task) | none (all items) |" in markdown

    # Every stored score is what the scorer gives for the stored completion.
    samples = _samples(out)
    assert len(samples) == TOTAL
    items = {(s.name, i.item_id): (s, i) for s in parse_tasks(TASKS) for i in load_items(s)}
    for sample in samples:
        spec, item = items[(sample["task"], sample["item_id"])]
        assert sample["completion_tokens"] <= 8
        assert sample["score"] == score_sync(spec.family, item, sample["completion"]).score
        # What was asked and what the scorer compared with travel with every sample.
        assert sample["prompt"] == item.messages and sample["gold"] == gold(spec.family, item)
    by_item = {(s["task"], s["item_id"]): s for s in samples}
    assert by_item[("math", "p2")]["gold"] == "\\frac{3}{4}"
    assert "17 * 23" in by_item[("math", "p1")]["prompt"][-1]["content"]
    red = by_item[("mcq", "q1")]
    assert f"{red['gold']}) Mars" in red["prompt"][-1]["content"]  # the letter of Mars

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


def test_old_n_flag_and_limit_are_recorded(tiny_model_dir: Path, tmp_path: Path) -> None:
    """`--n` (the old name of --num-samples) still works; `--limit` is in summary and report."""
    out = tmp_path / "quick"
    proc = ropd_in_process(
        ["eval", "--model", tiny_model_dir, "--tasks", f"math={FIXTURES / 'math.jsonl'}",
         "--n", "3", "--limit", "1", "--max-tokens", "4", "-o", out],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["settings"]["num_samples"], summary["settings"]["limit"]) == (3, 1)
    task = summary["tasks"]["math"]
    assert (task["items"], task["n"], task["limit"], task["samples"]) == (1, 3, 1, 3)
    assert "| limit (first N items per task) | 1 |" in (out / "summary.md").read_text()
    assert "--limit 1: only the first 1 items" in " ".join(proc.stderr.split())
    assert "failed 0 of 3" in proc.stdout
    assert "warning" not in proc.stderr  # 3 samples of 4 tokens: no big-run warning


def test_n_and_num_samples_must_agree(tmp_path: Path) -> None:
    args = ["eval", "--model", "x", "--tasks", f"math={FIXTURES / 'math.jsonl'}", "-o"]
    both = runner.invoke(app, [*args, str(tmp_path), "--n", "2", "--num-samples", "3"])
    assert both.exit_code == 2
    assert "--n 2 and --num-samples 3 disagree" in both.output


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
    top = ropd_in_process(["eval", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert top.returncode == 0
    words = (
        "--model",
        "--tasks",
        "--output",
        "--num-samples",
        "--max-tokens",
        "--base-url",
        "--api-key-env",
        "--max-in-flight",
        "--rpm",
        "--tpm",
        "--max-retries",
        "--timeout",
        "--dry-run",
        "--no-probe",
        "--grader-model",
        "compare",
        "vllm serve",
    )
    for word in words:
        assert word in top.stdout, word
    assert "--n " not in top.stdout  # the old name works but is not advertised
    sub = runner.invoke(app, ["eval", "compare", "--help"])
    assert sub.exit_code == 0 and "--teacher" in sub.output and "--force" in sub.output


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
