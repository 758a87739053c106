"""`ropd.ScorerConfig(judge=...)`, `GroupScorer.open`, `stream` and the blocking `score_groups`."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

import ropd
from ropd.testing import ScriptedChatClient, StubJudgeServer, content_policy, rubric_reply

RUBRIC = rubric_reply([("391", 5), ("because", 2), ("check", 1), ("units", 2)])


def groups(n: int = 3) -> list[dict]:
    return [
        {
            "id": f"g{i}",
            "prompt": "What is 17 * 23?",
            "student_responses": ["391 because", "401"],
            "teacher_responses": ["391 because check units"],
        }
        for i in range(n)
    ]


def test_judge_sets_both_roles_and_partial_overrides_merge() -> None:
    judge = ropd.RoleConfig(base_url="http://h/v1", model="m", max_tokens=100)
    config = ropd.ScorerConfig(judge=judge, verifier={"max_tokens": 4096})
    assert (config.rubricator.name, config.rubricator.model, config.rubricator.max_tokens) == (
        "rubricator", "m", 100,
    )  # fmt: skip
    assert (config.verifier.name, config.verifier.base_url, config.verifier.max_tokens) == (
        "verifier", "http://h/v1", 4096,
    )  # fmt: skip
    own = ropd.RoleConfig(base_url="http://other/v1", model="big")
    assert ropd.ScorerConfig(judge=judge, rubricator=own).rubricator.model == "big"


def test_score_groups_over_http_with_traces(tmp_path: Path) -> None:
    with StubJudgeServer(latency_s=0.0, policy=content_policy(RUBRIC)) as stub:
        config = ropd.ScorerConfig(
            judge=ropd.RoleConfig(base_url=stub.base_url, model="stub"), num_teacher_refs=1
        )
        results = ropd.score_groups(groups(), config, traces=tmp_path / "t.sqlite")
    assert [r.id for r in results] == ["g0", "g1", "g2"]
    # "391 because" meets 391 (5) + because (2) of 10 points; "401" meets none
    assert all(r.rewards == [pytest.approx(0.7), 0.0] for r in results)
    assert all(r.teacher_scores == [pytest.approx(1.0)] for r in results)
    with sqlite3.connect(tmp_path / "t.sqlite") as db:
        assert db.execute("SELECT count(*) FROM groups").fetchone() == (3,)


async def test_score_groups_works_inside_a_running_event_loop() -> None:
    """Notebooks run a loop already: the blocking call must still work there."""
    client = ScriptedChatClient({"rubricator": lambda m, s: RUBRIC, "verifier": _verifier()})
    config = ropd.ScorerConfig(num_teacher_refs=1)
    results = ropd.score_groups(groups(1), config, client=client)
    assert results[0].rewards == [pytest.approx(0.7), 0.0]


def _verifier():
    from ropd.testing import content_verifier

    return content_verifier


def verifier(messages, schema):
    """Verdicts by content, except for groups holding the answer FAIL: their judge is down."""
    if "FAIL" in messages[-1]["content"]:
        raise ropd.JudgeError("judge down for this group")
    return _verifier()(messages, schema)


async def test_open_checks_api_keys_before_any_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROPD_TEST_UNSET_KEY", raising=False)
    role = ropd.RoleConfig(
        base_url="http://127.0.0.1:9/v1", model="m", api_key_env="ROPD_TEST_UNSET_KEY"
    )
    with pytest.raises(ropd.ConfigError, match="ROPD_TEST_UNSET_KEY is not set"):
        async with ropd.GroupScorer.open(ropd.ScorerConfig(judge=role)):
            pass


async def test_stream_yields_as_groups_finish_and_respects_the_window() -> None:
    client = ScriptedChatClient(
        {"rubricator": lambda m, s: RUBRIC, "verifier": _verifier()}, latency_s=0.01
    )
    config = ropd.ScorerConfig(num_teacher_refs=1)
    async with ropd.GroupScorer.open(config, client=client) as scorer:
        seen = [r.id async for r in scorer.stream(groups(6), window=2)]
    assert sorted(seen) == [f"g{i}" for i in range(6)]
    assert client.max_in_flight <= 2  # two groups at a time, one call each at any moment


async def test_stream_under_policy_raise_finishes_in_flight_then_raises() -> None:
    client = ScriptedChatClient({"rubricator": lambda m, s: RUBRIC, "verifier": verifier})
    bad = groups(4)
    bad[1]["student_responses"] = ["FAIL"]
    config = ropd.ScorerConfig(num_teacher_refs=1, failure_policy="raise")
    seen = []
    async with ropd.GroupScorer.open(config, client=client) as scorer:
        with pytest.raises(ropd.JudgeError, match="g1"):
            async for result in scorer.stream(bad, window=2):
                seen.append(result.id)
    assert "g0" in seen and "g1" not in seen
    assert "g3" not in seen  # nothing new starts after the failure


async def test_a_failed_group_never_fails_the_batch_under_nan() -> None:
    client = ScriptedChatClient({"rubricator": lambda m, s: RUBRIC, "verifier": verifier})
    batch = groups(3)
    batch[1]["student_responses"] = ["FAIL", "x"]
    async with ropd.GroupScorer.open(ropd.ScorerConfig(num_teacher_refs=1), client=client) as s:
        results = await s.score_groups(batch)
    assert results[1].rewards == [None, None] and "judge down" in (results[1].error or "")
    assert results[0].rewards == [pytest.approx(0.7), 0.0] and not results[2].failed


def test_tjudge_clips_answers_like_ropd() -> None:
    """One clipping rule for both scorers: the head and the tail survive, not the head only."""
    long = "HEAD " + "x" * 1000 + " TAIL"
    ropd_scorer = ropd.GroupScorer(ropd.ScorerConfig(max_answer_chars=100), client=None)
    tjudge = ropd.TJudgeScorer(ropd.TJudgeConfig(max_answer_chars=100), client=None)
    assert ropd_scorer.clean(long) == tjudge.clean(long)
    assert tjudge.clean(long).startswith("HEAD") and tjudge.clean(long).endswith("TAIL")


def test_groups_may_be_plain_dicts_and_are_validated() -> None:
    with pytest.raises(ropd.InputError):
        asyncio.run(_score_one({"id": "x", "prompt": "", "student_responses": ["a"]}))


async def _score_one(group: dict) -> None:
    client = ScriptedChatClient({})
    async with ropd.GroupScorer.open(ropd.ScorerConfig(num_teacher_refs=0), client=client) as s:
        await s.score_group(group)


async def test_a_batch_larger_than_the_in_flight_limit_is_said_once(caplog) -> None:
    """Requests that queue behind max_in_flight cost whole judge latencies: the user is told."""
    import logging

    from ropd.llm.client import OpenAIChatClient
    from ropd.llm.config import LimitsConfig, RoleConfig
    from ropd.reward.config import ScorerConfig
    from ropd.reward.group_scorer import GroupScorer
    from ropd.reward.types import Group
    from ropd.testing import StubJudgeServer
    from ropd.testing.stub_server import STUB_MODEL

    def batch(count: int) -> list[Group]:
        return [
            Group(id=f"g{i}", prompt=f"q{i}", student_responses=["a", "b"], teacher_responses=["t"])
            for i in range(count)
        ]

    with StubJudgeServer(latency_s=0.0) as stub:
        role = RoleConfig(base_url=stub.base_url, model=STUB_MODEL)
        config = ScorerConfig(judge=role)
        async with OpenAIChatClient(LimitsConfig(max_in_flight=4)) as client:
            scorer = GroupScorer(config, client)
            with caplog.at_level(logging.WARNING, logger="ropd.reward"):
                await scorer.score_groups(batch(2))  # 4 requests fit: nothing said
                assert "requests will queue" not in caplog.text
                await scorer.score_groups(batch(3))
                await scorer.score_groups(batch(5))
    said = [r for r in caplog.records if "requests will queue" in r.getMessage()]
    assert len(said) == 1
    assert "3 groups are scored at once but at most 4 requests" in said[0].getMessage()
