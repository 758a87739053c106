"""Failed samples are counted and make `ropd eval` exit 1: a real CLI against a real HTTP stub."""

from __future__ import annotations

import json
import re
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

from tests.eval.cli_run import ropd as run_ropd

from ropd.llm.types import JsonSchema
from ropd.testing import StubJudgeServer
from ropd.testing.replies import ReplyError

FIXTURES = Path(__file__).parent / "fixtures"
MATH = f"math={FIXTURES / 'math.jsonl'}"  # 3 items
RUBRIC = f"rubric={FIXTURES / 'rubric.jsonl'}"  # 2 items


def ropd(*args: str) -> CompletedProcess[str]:
    """The command line, with room for the slower failure runs."""
    return run_ropd(*args, timeout=180)


def eval_args(stub: StubJudgeServer, tasks: str, out: Path) -> list[str]:
    return [
        "eval",
        "--base-url",
        stub.base_url,
        "--model",
        "stub",
        "--tasks",
        tasks,
        "--num-samples",
        "2",
        "--max-tokens",
        "32",
        "--max-retries",
        "0",
        "--grader-base-url",
        stub.base_url,
        "--grader-model",
        "stub",
        "-o",
        str(out),
    ]


def row(stdout: str, task: str) -> list[str]:
    """The cells of `task`'s row in the printed table."""
    for line in stdout.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if cells and cells[0] == task:
            return cells
    raise AssertionError(f"no row for {task} in:\n{stdout}")


def down(messages: list[dict[str, Any]], schema: JsonSchema | None) -> str:
    raise ReplyError("model crashed", status=500)


def test_fully_failed_eval_shows_all_failed_and_exits_1(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with StubJudgeServer(latency_s=0, policy=down) as stub:
        result = ropd(*eval_args(stub, MATH, out))
    assert result.returncode == 1, result.stderr
    # task, pass@1, std, items, n, failed, truncated
    assert row(result.stdout, "math") == ["math", "n/a", "n/a", "3", "2", "6", "0"]
    assert "failed 6 of 6" in result.stdout
    message = " ".join(result.stderr.split())
    assert "error: all 6 samples failed (6 could not be generated, 0 could not be graded)" in (
        message
    )
    assert "model crashed" in message
    task = json.loads((out / "summary.json").read_text())["tasks"]["math"]
    assert (task["failed"], task["failed_generation"], task["pass_at_1"]) == (6, 6, None)
    markdown = (out / "summary.md").read_text()
    assert "| math | math | n/a | n/a | 3 | 2 | 6 | 0 |" in markdown
    assert "**6 samples failed**: 6 could not be generated" in markdown


def flaky(messages: list[dict[str, Any]], schema: JsonSchema | None) -> str:
    """The student fails on one math item; the grader is down."""
    if schema is not None:
        raise ReplyError("grader overloaded", status=503)
    if "square root" in messages[-1]["content"]:
        raise ReplyError("model crashed", status=500)
    return "Apply pressure. \\boxed{391}"


def healthy(messages: list[dict[str, Any]], schema: JsonSchema | None) -> str:
    if schema is not None:
        return json.dumps({"explanation": "ok", "criteria_met": True})
    return "Apply pressure. \\boxed{391}"


def test_generation_and_grading_failures_are_counted_then_retried(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with StubJudgeServer(latency_s=0, policy=flaky) as stub:
        first = ropd(*eval_args(stub, f"{MATH},{RUBRIC}", out))
        assert first.returncode == 1, first.stderr
        assert row(first.stdout, "math")[5] == "2"  # p3 × 2 samples not generated
        assert row(first.stdout, "rubric")[5] == "4"  # 2 items × 2 samples not graded
        assert "failed 6 of 10" in first.stdout
        message = " ".join(first.stderr.split())
        assert "6 of 10 samples failed (2 could not be generated, 4 could not be graded)" in (
            message
        )
        assert "4 samples could not be graded" in message
        summary = json.loads((out / "summary.json").read_text())["tasks"]
        # over the 4 scored samples only: p1 right twice, p2 wrong twice (p3 not counted as 0)
        assert summary["math"]["pass_at_1"] == 0.5
        assert (summary["rubric"]["failed_grading"], summary["rubric"]["scored"]) == (4, 0)

        stub.policy = healthy
        second = ropd(*eval_args(stub, f"{MATH},{RUBRIC}", out))
    assert second.returncode == 0, second.stderr
    assert "generated 2 samples, re-used 8" in second.stdout
    assert "failed 0 of 10" in second.stdout
    summary = json.loads((out / "summary.json").read_text())["tasks"]
    assert summary["math"]["failed"] == summary["rubric"]["failed"] == 0


def test_a_model_the_endpoint_does_not_list_stops_before_generating(tmp_path: Path) -> None:
    """Like every command, eval probes the endpoint first; --no-probe is the way out."""
    out = tmp_path / "out"
    with StubJudgeServer(latency_s=0, policy=healthy) as stub:  # lists only the model "stub"
        args = eval_args(stub, MATH, out)
        args[args.index("stub")] = "not-served"
        refused = ropd(*args)
        assert refused.returncode == 2, refused.stderr
        assert "not-served" in refused.stderr and stub.requests == 0
        assert not (out / "samples.jsonl").exists()

        unprobed = ropd(*args, "--no-probe")  # the stub answers any name it is asked for
    assert unprobed.returncode == 0, unprobed.stderr
    assert "failed 0 of 6" in unprobed.stdout
