"""`ropd score -c ropd.yaml` scores with the method the file names: RaR on each group's own
rubric, OVD with the teacher's 0-9 score; methods without a judge are refused.

The real CLI and the real OpenAI client talk HTTP to the stub judge (`stub` fixture), whose
verdicts follow answer content ("answer mentions W" is met when W is in the answer).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ropd.cli import app
from ropd.reward.rar import NO_RUBRIC
from ropd.reward.schemas import RUBRIC_SCHEMA_NAME, VERDICTS_SCHEMA_NAME
from ropd.reward.traces import TraceStore
from ropd.testing import StubJudgeServer

# RaR's layout; a met pitfall (negative weight) takes its points off
RUBRIC = [
    {"title": "Formula", "description": "answer mentions water", "weight": 5},
    {"title": "Count", "description": "answer mentions three", "weight": 3},
    {"title": "Gas", "description": "answer mentions oxygen", "weight": 2},
    {"title": "Wrong", "description": "answer mentions peroxide", "weight": -2},
]
STUDENTS = [
    "water has three atoms with oxygen",  # 5 + 3 + 2 of 10
    "water is a peroxide",  # 5 - 2 of 10
    "three atoms of oxygen but peroxide",  # 3 + 2 - 2 of 10
]
REWARDS = [1.0, 0.3, 0.3]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def row(gid: str, **extra: object) -> dict:
    return {"id": gid, "prompt": f"What is water made of? ({gid})",
            "student_responses": STUDENTS, **extra}  # fmt: skip


def config(tmp_path: Path, stub: StubJudgeServer, method: str, section: str = "") -> Path:
    judge = f"{{base_url: '{stub.base_url}', model: stub}}"
    path = tmp_path / "ropd.yaml"
    path.write_text(
        f"ropd:\n  method: {method}\n"
        f"  {section or method}:\n    judge: {judge}\n"
        "  limits: {max_in_flight: 8}\n",
        encoding="utf-8",
    )
    return path


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "240"})


def score_rar(tmp_path: Path, stub: StubJudgeServer, *flags: object):
    """`ropd score -c` of method rar on one line carrying its rubric, with `flags` added."""
    groups = write_jsonl(tmp_path / "g.jsonl", [row("g1", rubric=RUBRIC)])
    path = config(tmp_path, stub, "rar")
    return run("score", groups, "-o", tmp_path / "s.jsonl", "-c", path, "--no-progress", *flags)


def schemas(stub: StubJudgeServer) -> list[str | None]:
    return [
        (body.get("response_format") or {}).get("json_schema", {}).get("name")
        for body in stub.bodies
    ]


def test_rar_scores_each_group_on_its_own_rubric_without_a_rubricator(
    tmp_path: Path, stub: StubJudgeServer
) -> None:
    groups = write_jsonl(tmp_path / "g.jsonl", [row("g1", rubric=RUBRIC), row("g2")])
    out = tmp_path / "scores.jsonl"
    result = run("score", groups, "-o", out, "-c", config(tmp_path, stub, "rar"), "--no-progress")
    assert result.exit_code == 0, result.output
    lines = {line["id"]: line for line in read_jsonl(out)}
    good, bad = lines["g1"], lines["g2"]
    assert good["error"] is None
    assert good["rewards"] == REWARDS  # the row's weights, pitfall included
    assert [c["criterion"] for c in good["rubric"]["criteria"]] == [
        r["description"] for r in RUBRIC
    ]
    assert bad["rewards"] is None or all(r is None for r in bad["rewards"])
    assert NO_RUBRIC in bad["error"]  # the group without a rubric fails, naming why
    asked = schemas(stub)
    assert RUBRIC_SCHEMA_NAME not in asked  # the data's rubric: no Rubricator call
    assert asked.count(VERDICTS_SCHEMA_NAME) == 1  # g1's pool; g2 failed before any call
    assert "1 of 2 groups failed" in result.output
    with TraceStore(tmp_path / "scores.traces.db") as traces:
        info = traces.runs()[0]["info"]
    assert info["method"] == "rar"
    assert [r["name"] for r in info["roles"]] == ["verifier"]  # the Rubricator not connected


def test_rar_with_teacher_answers_needs_them_on_every_line(
    tmp_path: Path, stub: StubJudgeServer
) -> None:
    result = score_rar(tmp_path, stub, "--set", "rar.num_teacher_refs=1")
    assert result.exit_code != 0
    assert "g.jsonl:1" in result.output and "teacher_responses" in result.output
    assert stub.bodies == []  # refused before any judge call


@pytest.mark.parametrize("method", ["ovd", "tjudge"])
def test_scalar_judges_score_one_call_per_answer(tmp_path: Path, method: str) -> None:
    with StubJudgeServer(0.0) as stub:
        groups = write_jsonl(tmp_path / "g.jsonl", [row("g1")])
        out = tmp_path / "scores.jsonl"
        result = run("score", groups, "-o", out, "-c", config(tmp_path, stub, method),
                     "--no-progress")  # fmt: skip
        asked = schemas(stub)
    assert result.exit_code == 0, result.output
    (line,) = read_jsonl(out)
    assert line["error"] is None and len(line["rewards"]) == 3
    assert all(0.0 <= r <= 1.0 for r in line["rewards"])
    assert RUBRIC_SCHEMA_NAME not in asked and VERDICTS_SCHEMA_NAME not in asked
    assert len(asked) == 3  # one call per answer (OVD's per_call one; T-Judge always)
    with TraceStore(tmp_path / "scores.traces.db") as traces:
        assert traces.runs()[0]["info"]["roles"][0]["name"] == method


def test_methods_without_a_judge_are_refused(tmp_path: Path, stub: StubJudgeServer) -> None:
    groups = write_jsonl(tmp_path / "g.jsonl", [row("g1", rubric=RUBRIC)])
    for method in ("sft", "lopd"):
        path = config(tmp_path, stub, method, section="scorer")
        result = run("score", groups, "-o", tmp_path / "s.jsonl", "-c", path, "--no-progress")
        assert result.exit_code != 0
        assert f"method: {method} trains without a judge" in result.output
    assert stub.bodies == []


def test_ropd_scorer_flags_are_refused_under_another_method(
    tmp_path: Path, stub: StubJudgeServer
) -> None:
    flags = ("--base-url", stub.base_url, "--model", "other", "--min-criteria", "3")
    result = score_rar(tmp_path, stub, *flags)
    assert result.exit_code != 0
    assert "--base-url, --model, scorer.min_criteria set the ROPD scorer" in result.output
    assert "--set rar.<field>" in result.output
    assert stub.bodies == []
