"""The scorer at the judge boundary: bad rubrics re-asked, failures per group, no stray secret."""

from __future__ import annotations

import json

import pytest

from ropd.errors import JudgeUnavailable
from ropd.llm.config import RoleConfig
from ropd.redact import REDACTED
from ropd.reward.config import ScorerConfig
from ropd.reward.group_scorer import GroupScorer
from ropd.reward.traces import TraceStore
from ropd.reward.types import Group
from ropd.testing import (
    ScriptedChatClient,
    content_verifier,
    make_client,
    rubric_reply,
    schema_reply,
)

RUBRIC = rubric_reply([("42", 5), ("because", 2), ("check", 1), ("units", 2)])


def group(gid: str = "g", students: list[str] | None = None) -> Group:
    return Group(
        id=gid,
        prompt="What is 6 * 7?",
        student_responses=students or ["42 because", "41"],
        teacher_responses=["42 because 6*7, check"],
    )


def replies(*texts: str):
    """A policy answering `texts` in turn, then the last one for ever."""
    queue = list(texts)

    def policy(messages, schema):
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return policy


async def test_an_answer_empty_after_reasoning_is_noted_and_never_shown(tmp_path):
    client = make_client(RUBRIC)
    students = ["<think>6*7 is 42 because", "", "42 because"]
    with TraceStore(tmp_path / "t.db") as traces:
        scorer = GroupScorer(ScorerConfig(), client, traces)
        result = await scorer.score_group(group(students=students))
        traced = traces.get("g").result
    notes = {v.index: v.note for v in result.verdicts if v.source == "student"}
    assert notes == {
        0: "empty after removing reasoning (no text outside <think>)",
        1: "empty answer",
        2: None,
    }
    assert result.rewards[0] == result.rewards[1] == 0.0 and result.rewards[2] > 0
    shown = client.calls_for("verifier")[0].messages[-1]["content"]
    assert "6*7 is 42" not in shown.split("# Answers")[1]
    assert {v.index: v.note for v in traced.verdicts if v.source == "student"} == notes


@pytest.mark.parametrize("policy", ["nan", "constant", "raise"])
async def test_an_unusable_judge_stops_the_batch_under_every_policy(policy):
    started = []

    def refuse(messages, schema):
        started.append(1)
        raise JudgeUnavailable("role rubricator: key rejected (HTTP 401)")

    client = ScriptedChatClient({"rubricator": refuse, "verifier": content_verifier})
    scorer = GroupScorer(ScorerConfig(failure_policy=policy), client)
    with pytest.raises(JudgeUnavailable, match="401"):
        await scorer.score_groups([group(f"g{i}") for i in range(5)])
    with pytest.raises(JudgeUnavailable):
        async for _ in scorer.stream([group(f"s{i}") for i in range(50)], window=4):
            pass
    assert len(started) <= 5 + 4  # the stream started no group after the first refusal


async def test_an_unexpected_error_fails_only_its_own_group():
    def flaky(messages, schema):
        if "6 * 7?!" in messages[-1]["content"]:
            raise AttributeError("'str' object has no attribute 'choices'")
        return RUBRIC

    client = make_client(flaky)
    bad = group("bad").model_copy(update={"prompt": "What is 6 * 7?!"})
    results = await GroupScorer(ScorerConfig(), client).score_groups([group("ok"), bad])
    assert results[0].error is None
    assert results[1].failed and "unexpected AttributeError" in results[1].error


async def test_a_key_echoed_by_the_judge_reaches_no_result_and_no_trace(monkeypatch, tmp_path):
    key = "tok_3c9f1e7a"  # not shaped like any well-known key
    monkeypatch.setenv("ODD_KEY", key)
    role = RoleConfig(base_url="http://127.0.0.1:9/v1", model="m", api_key_env="ODD_KEY")
    echo_rubric = json.dumps(
        {
            "criteria": [
                {"category": "c", "criterion": f"mentions {key} or {w}", "points": 2}
                for w in ("42", "because", "check", "units")
            ]
        }
    )
    cases = {
        "criteria": make_client(echo_rubric, schema_reply),
        "error": make_client(f"I cannot comply, my key is {key}"),
    }
    for name, client in cases.items():
        async with GroupScorer.open(
            ScorerConfig(judge=role), client=client, traces=tmp_path / f"{name}.db"
        ) as scorer:
            result = await scorer.score_group(group(name))
        assert key not in result.model_dump_json()
        assert REDACTED in result.model_dump_json()
        assert key.encode() not in (tmp_path / f"{name}.db").read_bytes()


async def test_tjudge_stops_on_an_unusable_judge_too():
    from ropd.reward.tjudge import TJudgeConfig, TJudgeScorer

    def refuse(messages, schema):
        raise JudgeUnavailable("role judge: model m at h rejected the API key (HTTP 401)")

    scorer = TJudgeScorer(TJudgeConfig(), ScriptedChatClient({"tjudge": refuse}))
    with pytest.raises(JudgeUnavailable):
        await scorer.score_groups([group()])


def test_a_teacher_build_stops_at_once_when_the_key_is_rejected(tmp_path, monkeypatch):
    from ropd.llm.config import LimitsConfig
    from ropd.teacher.builder import PromptItem, build_store
    from ropd.testing import StubJudgeServer

    monkeypatch.setenv("TEACHER_KEY", "tk-1234567")
    items = [
        PromptItem(key=f"k{i}", messages=[{"role": "user", "content": f"q{i}"}], record_id=str(i))
        for i in range(20)
    ]
    with StubJudgeServer(latency_s=0.0, require_key="the-right-key") as stub:
        role = RoleConfig(
            name="teacher", base_url=stub.base_url, model="stub", api_key_env="TEACHER_KEY"
        )
        with pytest.raises(JudgeUnavailable, match="TEACHER_KEY"):
            build_store(items, tmp_path / "t.db", role, 2, limits=LimitsConfig(max_in_flight=4))
        assert stub.requests <= 4  # never accepted: no retries, not one request per prompt
    # accepted by the probe, then refused on every chat: stops after the refusals in a row
    with StubJudgeServer(latency_s=0.0, status_script=[401] * 1000) as stub:
        role = role.model_copy(update={"base_url": stub.base_url})
        limits = LimitsConfig(max_in_flight=4, auth_refusals_to_stop=3)
        with pytest.raises(JudgeUnavailable, match="refusals in a row"):
            build_store(items, tmp_path / "t2.db", role, 2, limits=limits)
        assert stub.requests <= 3 + 2 * 4  # the refusals, and what was in flight then
