"""Big local runs are flagged before any model is loaded, with the way to serve the checkpoint."""

from __future__ import annotations

from pathlib import Path

from tests.eval.cli_run import one_line, ropd

from ropd.eval.plan import LOCAL_TOKENS_WARNING, estimate_work, human_tokens, local_run_warning
from ropd.eval.runner import prepare
from ropd.eval.tasks import parse_tasks
from ropd.eval.types import GenerationSettings

FIXTURES = Path(__file__).parent / "fixtures"
TASKS = f"math={FIXTURES / 'math.jsonl'},mcq={FIXTURES / 'mcq.jsonl'}"  # 3 + 2 items


def test_estimate_is_items_times_samples_times_tokens() -> None:
    tasks = prepare(parse_tasks(f"{TASKS},rubric={FIXTURES / 'rubric.jsonl'}"))
    estimate = estimate_work(tasks, GenerationSettings(n=16, max_new_tokens=8192))
    assert (estimate.items, estimate.samples) == (7, 112)
    assert estimate.max_generated_tokens == 7 * 16 * 8192
    assert estimate.grader_calls == (3 + 2) * 16  # rubric items of r1 and r2, per sample
    assert human_tokens(estimate.max_generated_tokens) == "917.5k"
    assert local_run_warning(estimate, "ckpt") is None  # 917k: under the threshold

    bigger = estimate_work(tasks, GenerationSettings(n=16, max_new_tokens=8192 * 2))
    assert bigger.max_generated_tokens > LOCAL_TOKENS_WARNING
    warning = local_run_warning(bigger, "./ckpt")
    assert warning is not None and "1.8M tokens (7 items × 16 samples × 16384" in warning
    assert "vllm serve ./ckpt" in warning


def test_dry_run_warns_about_a_big_local_run_and_loads_nothing(tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoint-200"  # does not even exist: a dry run never loads it
    out = tmp_path / "out"
    result = ropd(
        "eval",
        "--model",
        str(ckpt),
        "--tasks",
        TASKS,
        "--max-tokens",
        "32768",
        "--dry-run",
        "-o",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    warning = one_line(result.stderr)
    assert "up to 2.6M tokens (5 items × 16 samples × 32768 max tokens)" in warning
    assert f"vllm serve {ckpt} --port 8000" in warning
    assert f"ropd eval --base-url http://127.0.0.1:8000/v1 --model {ckpt}" in warning
    assert "up to 2.6M generated tokens" in one_line(result.stdout)  # the plan
    assert "dry run: nothing was loaded" in result.stdout
    assert not out.exists()


def test_small_local_and_served_runs_are_not_warned(tmp_path: Path) -> None:
    common = ["--tasks", TASKS, "--dry-run", "-o", str(tmp_path / "out")]
    small = ropd("eval", "--model", "ckpt", "--num-samples", "2", "--max-tokens", "64", *common)
    assert small.returncode == 0 and "warning" not in small.stderr
    served = ropd(
        "eval",
        "--base-url",
        "http://127.0.0.1:8000/v1",
        "--model",
        "ckpt",
        "--max-tokens",
        "32768",
        *common,
    )
    assert served.returncode == 0 and "warning" not in served.stderr
    assert "planned work (endpoint http://127.0.0.1:8000/v1)" in served.stdout


def test_a_real_big_local_run_warns_before_loading_the_model(tmp_path: Path) -> None:
    empty = tmp_path / "not-a-checkpoint"
    empty.mkdir()
    result = ropd(
        "eval",
        "--model",
        str(empty),
        "--tasks",
        TASKS,
        "--max-tokens",
        "32768",
        "-o",
        str(tmp_path / "out"),
    )
    assert result.returncode == 2  # the folder holds no model
    stderr = one_line(result.stderr)
    warned, failed = stderr.index("up to 2.6M tokens"), stderr.index("could not load model")
    assert warned < failed
