"""`ropd analyze` end to end over real HTTP against the stub judge (model STUB_MODEL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.analysis.conftest import judge_policy, pool_rows, read_jsonl, write_jsonl
from typer.testing import CliRunner

from ropd.cli import app
from ropd.testing import StubJudgeServer
from ropd.testing.stub_server import STUB_MODEL


@pytest.fixture
def stub() -> Iterator[StubJudgeServer]:
    with StubJudgeServer(latency_s=0.0, policy=judge_policy) as server:
        yield server


def run(*args: object):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "240"})


def flags(stub: StubJudgeServer) -> list[str]:
    return ["--base-url", stub.base_url, "--model", STUB_MODEL, "--no-progress"]


def test_analyze_end_to_end(stub: StubJudgeServer, pool_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "analysis"
    result = run("analyze", pool_file, "-o", out, "--methods", "ropd,tjudge", *flags(stub))
    assert result.exit_code == 0, result.output
    assert "ropd: auc 0.852" in result.output
    data = json.loads((out / "analysis.json").read_text())
    assert data["methods"]["ropd"]["pair_accuracy"] == pytest.approx(6.5 / 7)
    assert data["methods"]["tjudge"]["auc"] == pytest.approx(24 / 27)
    assert len(read_jsonl(out / "rewards.jsonl")) == 24
    assert (out / "roc.svg").is_file() and (out / "traces.db").is_file()
    again = run("analyze", pool_file, "-o", out, "--methods", "ropd,tjudge", *flags(stub))
    assert again.exit_code == 2 and "--resume" in again.output
    calls = stub.requests
    resumed = run("analyze", "run", pool_file, "-o", out, "--methods", "ropd,tjudge", "--resume",
                  *flags(stub))  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    assert stub.requests == calls and "6 already done" in resumed.output


def test_bad_pool_lines_exit_2_before_any_judge_call(stub: StubJudgeServer, tmp_path: Path) -> None:
    rows = pool_rows()
    rows[1].pop("correct")
    rows[2]["teacher_responses"] = []
    path = write_jsonl(tmp_path / "pool.jsonl", rows)
    result = run("analyze", path, "-o", tmp_path / "out", *flags(stub))
    assert result.exit_code == 2
    assert f"{path}:2: field 'correct': give exactly one of" in result.output
    assert f"{path}:3: field 'teacher_responses': no teacher answers" in result.output
    assert stub.requests == 0 and stub.models_requests == 0


def test_unknown_method_exits_2(stub: StubJudgeServer, pool_file: Path, tmp_path: Path) -> None:
    result = run("analyze", pool_file, "-o", tmp_path / "o", "--methods", "ropd:k=1+nope",
                 *flags(stub))  # fmt: skip
    assert result.exit_code == 2
    assert "unknown switch 'nope'" in result.output and "revealed" in result.output
    assert stub.requests == 0


def test_an_endpoint_without_prompt_logprobs_is_one_clear_error(
    stub: StubJudgeServer, pool_file: Path, tmp_path: Path
) -> None:
    result = run("analyze", pool_file, "-o", tmp_path / "o", "--methods", "teacher_logprob",
                 *flags(stub))  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "prompt log-probabilities need an OpenAI-compatible completions endpoint" in (
        " ".join(result.output.split())
    )


def test_pool_from_eval_command(tmp_path: Path) -> None:
    sample = {"task": "t", "item_id": "1", "sample_index": 0, "gen_key": "k",
              "prompt": "q", "completion": "a", "score": 1.0}  # fmt: skip
    samples = write_jsonl(tmp_path / "samples.jsonl", [sample])
    result = run("analyze", "pool-from-eval", samples, "-o", tmp_path / "pool.jsonl")
    assert result.exit_code == 0, result.output
    assert "pool: 1 groups, 1 responses, 1 correct" in result.output


def test_analyze_reads_its_judge_from_a_config_file(
    stub: StubJudgeServer, pool_file: Path, tmp_path: Path
) -> None:
    """`-c ropd.yaml`: the judge and limits of the file's `ropd:` section, as `ropd score`."""
    config = tmp_path / "ropd.yaml"
    config.write_text(
        f"ropd:\n  scorer:\n    judge: {{base_url: '{stub.base_url}', model: {STUB_MODEL}}}\n"
        "  limits: {max_in_flight: 2}\n",
        encoding="utf-8",
    )
    out = tmp_path / "analysis"
    result = run(
        "analyze", pool_file, "-o", out, "--methods", "ropd", "-c", config, "--no-progress"
    )
    assert result.exit_code == 0, result.output
    assert "ropd: auc 0.852" in result.output
    assert stub.max_concurrent <= 2 and stub.models_requests == 1


def test_no_completions_endpoint_stops_before_any_group_is_judged(
    stub: StubJudgeServer, pool_file: Path, tmp_path: Path
) -> None:
    """The stub has no /v1/completions: one error line, exit 2, no group judged, no traceback."""
    result = run("analyze", pool_file, "-o", tmp_path / "o", "--methods",
                 "ropd,tjudge,teacher_logprob", *flags(stub))  # fmt: skip
    assert result.exit_code == 2, result.output
    assert stub.requests == 0
    assert "Traceback" not in result.output and "never retrieved" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: role teacher")
    assert "/v1/completions" in lines[0]
