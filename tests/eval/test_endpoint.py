"""The OpenAI-compatible path against the real embedded llama.cpp server (SmolLM2-135M)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ropd.cli import app

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.slow
def test_eval_against_the_local_llama_cpp_server(local_server, tmp_path: Path) -> None:
    out = tmp_path / "served"
    url, model = local_server.base_url, local_server.model
    args = [
        "eval",
        "--base-url",
        url,
        "--model",
        model,
        "--tasks",
        f"math={FIXTURES / 'math.jsonl'},rubric={FIXTURES / 'rubric.jsonl'}",
        "--num-samples",
        "2",
        "--limit",
        "1",
        "--max-tokens",
        "48",
        "--max-in-flight",
        "2",
        "--grader-base-url",
        url,
        "--grader-model",
        model,
        "--grader-max-tokens",
        "96",
        "-o",
        str(out),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"] == "openai-compatible"
    assert summary["model_fingerprint"] == f"endpoint:{model}"
    assert summary["grader"] == model
    settings = summary["settings"]
    assert (settings["grader"], settings["grader_max_tokens"], settings["limit"]) == (model, 96, 1)
    assert (settings["num_samples"], settings["max_tokens"]) == (2, 48)
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 4 and all(s["completion"].strip() for s in samples)
    assert all(s["completion_tokens"] <= 48 for s in samples)
    rubric = [s for s in samples if s["task"] == "rubric"]
    # The grader answered every rubric item of every sample with parseable JSON.
    assert all(s["score"] is not None and len(s["details"]["met"]) == 3 for s in rubric)
    assert all(len(s["gold"]) == 3 and s["prompt"][-1]["role"] == "user" for s in rubric)
    assert summary["tasks"]["rubric"]["failed"] == 0

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "generated 0 samples, re-used 4" in again.output
