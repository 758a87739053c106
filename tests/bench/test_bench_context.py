"""`ropd bench judge --context` on a tiny batch: declared window, then learned from the 400s."""

from __future__ import annotations

import json

from ropd_dev.bench.context import long_groups, run_context_bench
from typer.testing import CliRunner

from ropd.cli import app


async def test_every_group_scored_with_and_without_a_declared_window():
    figures = await run_context_bench(
        context=8192, answer_tokens=2048, groups=3, group_size=2, teacher_refs=2, latency_s=0.0
    )
    declared, undeclared = figures["runs"]["declared"], figures["runs"]["undeclared"]
    assert declared["scored"] == undeclared["scored"] == 3
    assert declared["failed"] == undeclared["failed"] == 0
    assert declared["context_errors"] == 0 and declared["resplits"] == 0
    assert undeclared["context_errors"] > 0
    assert undeclared["resplits"] == undeclared["context_errors"]
    assert declared["window_sources"] == ["declared"]
    assert undeclared["window_sources"] == ["context_error"]
    assert declared["verifier_calls"] > 3  # 4 answers of 2,048 tokens do not fit one call


def test_the_flags_run_it_from_the_judge_command():
    result = CliRunner().invoke(
        app,
        [
            "bench", "judge", "--context", "8192", "--answer-tokens", "2048", "--groups", "2",
            "--group-size", "2", "--teacher-refs", "1", "--latency", "0",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert figures["context"] == 8192 and figures["groups"] == 2
    assert {run["scored"] for run in figures["runs"].values()} == {2}


def test_long_answers_have_the_asked_size_and_differ():
    (group,) = long_groups(1, 3, 2, 1000)
    answers = group.student_responses + group.teacher_responses
    assert len(set(answers)) == 5
    assert all(len(text) == 4000 for text in answers)  # 1,000 tokens as the stub counts them
