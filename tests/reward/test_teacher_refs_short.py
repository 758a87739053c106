"""Fewer teacher answers than K: counted where a user looks (trace settings, step metrics, the
`ropd score` summary), and refused when `min_teacher_refs` says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from ropd.cli import app
from ropd.reward.config import ScorerConfig
from ropd.reward.group_scorer import GroupScorer
from ropd.reward.metrics import batch_metrics
from ropd.reward.types import Group
from ropd.testing import StubJudgeServer, content_policy, make_client, rubric_reply

RUBRIC = rubric_reply([("391", 5), ("because", 2), ("check", 1), ("units", 2)])


def group(gid: str, teachers: int) -> Group:
    return Group(
        id=gid,
        prompt="What is 17 * 23?",
        student_responses=["391 because", "401"],
        teacher_responses=[f"391 because check units ({i})" for i in range(teachers)],
    )


async def test_short_groups_are_judged_counted_and_traced() -> None:
    scorer = GroupScorer(ScorerConfig(num_teacher_refs=4), make_client(RUBRIC))
    results = await scorer.score_groups([group("full", 4), group("short", 2), group("more", 6)])
    assert [r.settings["teacher_refs_short"] for r in results] == [False, True, False]
    assert [r.settings["teacher_refs_used"] for r in results] == [4, 2, 4]
    assert not any(r.failed for r in results)
    assert batch_metrics(results)["ropd/teacher_refs_short_rate"] == pytest.approx(1 / 3)


async def test_min_teacher_refs_fails_groups_below_it() -> None:
    config = ScorerConfig(num_teacher_refs=4, min_teacher_refs=3)
    results = await GroupScorer(config, make_client(RUBRIC)).score_groups(
        [group("ok", 3), group("thin", 2)]
    )
    assert not results[0].failed and results[0].settings["teacher_refs_short"]
    assert results[1].failed and "2 teacher answers; min_teacher_refs is 3" in results[1].error
    assert results[1].rewards == [None, None]


def test_min_teacher_refs_above_k_is_refused() -> None:
    with pytest.raises(ValidationError, match="min_teacher_refs"):
        ScorerConfig(num_teacher_refs=2, min_teacher_refs=3)
    assert ScorerConfig(num_teacher_refs=None, min_teacher_refs=3).min_teacher_refs == 3


def test_ropd_score_says_how_many_groups_were_short(tmp_path: Path) -> None:
    rows = [group("full", 2).model_dump(), group("short", 1).model_dump()]
    source = tmp_path / "groups.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with StubJudgeServer(latency_s=0.0, policy=content_policy(RUBRIC)) as stub:
        judge = ["--base-url", stub.base_url, "--model", "stub", "-k", "2"]
        out = tmp_path / "s.jsonl"
        result = CliRunner().invoke(app, ["score", str(source), "-o", str(out), *judge])
        assert result.exit_code == 0, result.output
        assert "1 of 2 groups had fewer teacher answers than K=2" in result.stderr
        strict = tmp_path / "strict.jsonl"
        result = CliRunner().invoke(
            app, ["score", str(source), "-o", str(strict), *judge, "--min-teacher-refs", "2"]
        )
    assert result.exit_code == 0, result.output
    failed = [json.loads(x) for x in strict.read_text().splitlines() if json.loads(x)["error"]]
    assert [r["id"] for r in failed] == ["short"]
