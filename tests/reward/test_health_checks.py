"""Sampled reward-health checks (verdict stability, audit judge) inside the group scorer.

Scripted in-memory judges answer by role name, so the stability pass (`verifier_check`) and the
audit judge (`audit`) can be told apart from the Verifier. A judge whose first criterion follows
the answer's number in the pool (a position bias) flips verdicts when the pool is reshuffled;
the figures below are computed by hand from which answer was shown first in each pass.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.inprocess import ropd_in_process

from ropd.errors import JudgeUnavailable
from ropd.llm.config import RoleConfig
from ropd.llm.local_server import free_port
from ropd.reward.config import ScorerConfig
from ropd.reward.group_scorer import GroupScorer
from ropd.reward.health_checks import CHECK_ROLE, sampled
from ropd.reward.schemas import answer_key
from ropd.reward.traces import TraceStore
from ropd.reward.types import Group
from ropd.testing import (
    ReplyError,
    ScriptedChatClient,
    StubJudgeServer,
    answers_in,
    content_policy,
    content_verifier,
    rubric_reply,
)
from ropd.testing.stub_server import STUB_MODEL

RUBRIC = rubric_reply([("42", 5), ("because", 2), ("check", 1), ("units", 2)])  # 10 points
STUDENTS = ["42 because 6*7", "41", "42", "42 because, check, units"]
TEACHERS = ["It is 42 because 6*7=42, check: 42/7=6, units none", "forty-two"]


def group(gid: str = "g1") -> Group:
    return Group(
        id=gid, prompt="What is 6 * 7?", student_responses=STUDENTS, teacher_responses=TEACHERS
    )


def rubricator(messages, schema) -> str:
    return RUBRIC


def position_verifier(messages, schema) -> str:
    """By content, except C1 ("mentions 42"), which is true for Answer 1 only."""
    reply = json.loads(content_verifier(messages, schema))
    for key, verdicts in reply.items():
        verdicts["C1"] = key == answer_key(1)
    return json.dumps(reply)


def audit_verifier(messages, schema) -> str:
    """By content, except C2 ("mentions because"), which it always answers the other way."""
    reply = json.loads(content_verifier(messages, schema))
    for verdicts in reply.values():
        verdicts["C2"] = not verdicts["C2"]
    return json.dumps(reply)


def failing(messages, schema) -> str:
    raise ReplyError("the check's endpoint is down", status=500)


def client(verifier=content_verifier, check=None, audit=None) -> ScriptedChatClient:
    handlers = {"rubricator": rubricator, "verifier": verifier, CHECK_ROLE: check or verifier}
    if audit is not None:
        handlers["audit"] = audit
    return ScriptedChatClient(handlers)


def first_shown(fake: ScriptedChatClient, role: str) -> str:
    (call,) = fake.calls_for(role)
    return answers_in(call.messages)[1]


AUDIT = RoleConfig(name="x", base_url="http://127.0.0.1:9/v1", model="other-family")


# -- verdict stability --------------------------------------------------------------------------


async def test_a_reshuffle_flips_position_dependent_verdicts_and_rewards_stay_the_first_pass():
    fake = client(position_verifier)
    config = ScorerConfig(seed=2, stability_check_share=1.0)
    result = await GroupScorer(config, fake).score_group(group())
    assert result.error is None
    # seed 2: "41" is Answer 1 of the first pass, "42 because 6*7" of the reshuffled one
    assert first_shown(fake, "verifier") == "41"
    assert first_shown(fake, CHECK_ROLE) == "42 because 6*7"
    # rewards are the first pass's: "41" got C1 (5 of 10 points) for being Answer 1
    assert result.rewards == pytest.approx([0.2, 0.5, 0.0, 0.5])
    # C1 flips for those two answers only; "41": 0.5 -> 0, "42 because 6*7": 0.2 -> 0.7
    assert result.checks == pytest.approx(
        {
            "stability_verdicts": 24,  # 6 answers (4 students, 2 teachers) x 4 criteria
            "stability_flips": 2,
            "stability_answers": 4,
            "stability_reward_abs_change_sum": 1.0,
        }
    )


async def test_a_flip_on_a_teacher_answer_counts_as_a_verdict_not_a_reward_change():
    fake = client(position_verifier)
    config = ScorerConfig(seed=1, stability_check_share=1.0)
    result = await GroupScorer(config, fake).score_group(group())
    # seed 1: the student "42" first (C1: 0.5), then the teacher's "forty-two" (student: 0)
    assert (first_shown(fake, "verifier"), first_shown(fake, CHECK_ROLE)) == ("42", "forty-two")
    assert result.checks["stability_flips"] == 2
    assert result.checks["stability_reward_abs_change_sum"] == pytest.approx(0.5)


async def test_a_stable_judge_flips_nothing_and_the_check_is_shown_another_order():
    fake = client()
    result = await GroupScorer(ScorerConfig(stability_check_share=1.0), fake).score_group(group())
    assert result.checks == {
        "stability_verdicts": 24.0,
        "stability_flips": 0.0,
        "stability_answers": 4.0,
        "stability_reward_abs_change_sum": 0.0,
    }
    first, second = (answers_in(fake.calls_for(r)[0].messages) for r in ("verifier", CHECK_ROLE))
    assert sorted(first.values()) == sorted(second.values()) and first != second


async def test_checks_are_off_by_default_and_cost_nothing():
    fake = client(position_verifier)
    result = await GroupScorer(ScorerConfig(), fake).score_group(group())
    assert result.checks == {}
    assert [c.role for c in fake.calls] == ["rubricator", "verifier"]
    assert ScorerConfig().stability_check_share == 0.0 and ScorerConfig().audit_share == 0.0


async def test_the_check_role_shows_apart_in_usage():
    scorer = GroupScorer(ScorerConfig(stability_check_share=1.0), client())
    result = await scorer.score_group(group())
    assert set(result.usage) == {"rubricator", "verifier", CHECK_ROLE}
    assert result.usage[CHECK_ROLE]["calls"] == 1 and result.usage["verifier"]["calls"] == 1
    assert scorer.usage.roles[CHECK_ROLE].calls == 1  # the scorer's running total too


async def test_a_failing_check_never_fails_its_group():
    fake = client(check=failing)
    config = ScorerConfig(stability_check_share=1.0, parse_retries=0)
    result = await GroupScorer(config, fake).score_group(group())
    assert result.error is None
    unchecked = await GroupScorer(ScorerConfig(), client()).score_group(group())
    assert result.rewards == unchecked.rewards
    assert result.checks == {"stability_failed": 1.0}
    assert result.usage[CHECK_ROLE]["failed_calls"] == 1


async def test_a_failing_first_pass_fails_the_group_as_without_checks():
    fake = client(verifier=failing, check=content_verifier)
    config = ScorerConfig(stability_check_share=1.0, parse_retries=0)
    result = await GroupScorer(config, fake).score_group(group())
    assert result.failed and "check's endpoint is down" in (result.error or "")
    assert result.checks == {}


async def test_per_pair_rubrics_are_each_checked_and_summed():
    config = ScorerConfig(rubric_mode="per_pair", stability_check_share=1.0)
    result = await GroupScorer(config, client()).score_group(group())
    assert len(result.rubrics) == 4
    # each rubric's pool: its student answer and the 2 teacher answers, 4 criteria each
    assert result.checks["stability_verdicts"] == 4 * 3 * 4
    assert result.checks["stability_answers"] == 4
    assert result.checks["stability_flips"] == 0


# -- the sample ---------------------------------------------------------------------------------


def test_the_sample_is_deterministic_and_respects_the_share():
    ids = [f"prompt-{n}" for n in range(4000)]
    chosen = [g for g in ids if sampled("stability", g, 0, 0.1)]
    assert 340 <= len(chosen) <= 460  # 10 % of 4000 (binomial sd about 19)
    assert chosen == [g for g in ids if sampled("stability", g, 0, 0.1)]
    smaller = {g for g in ids if sampled("stability", g, 0, 0.05)}
    assert smaller < set(chosen)  # a smaller share checks a subset of the same groups
    assert {g for g in ids if sampled("stability", g, 1, 0.1)} != set(chosen)  # the seed counts
    assert {g for g in ids if sampled("audit", g, 0, 0.1)} != set(chosen)  # each kind its own
    assert not any(sampled("stability", g, 0, 0.0) for g in ids)
    assert all(sampled("stability", g, 0, 1.0) for g in ids)


async def test_the_scorer_checks_the_sampled_groups_and_a_rerun_the_same_ones():
    groups = [group(f"g{n}") for n in range(40)]
    config = ScorerConfig(stability_check_share=0.25)

    async def checked() -> list[str]:
        results = await GroupScorer(config, client()).score_groups(groups)
        return [r.id for r in results if r.checks]

    first = await checked()
    assert first == [g.id for g in groups if sampled("stability", g.id, 0, 0.25)]
    assert 0 < len(first) < 40
    assert await checked() == first  # a resumed run (a new scorer) checks the same groups


# -- the audit judge ----------------------------------------------------------------------------


async def test_an_audit_judge_that_disagrees_on_one_criterion_is_counted():
    fake = client(audit=audit_verifier)
    config = ScorerConfig(audit=AUDIT, audit_share=1.0)
    result = await GroupScorer(config, fake).score_group(group())
    unchecked = await GroupScorer(ScorerConfig(), client()).score_group(group())
    assert result.rewards == unchecked.rewards  # the audit never changes a reward
    # C2 (2 of 10 points) differs on every answer: 6 verdicts, 0.2 on each of 4 students
    assert result.checks == pytest.approx(
        {
            "audit_verdicts": 24,
            "audit_disagreements": 6,
            "audit_answers": 4,
            "audit_reward_abs_diff_sum": 0.8,
        }
    )
    assert result.usage["audit"]["calls"] == 1
    (call,) = fake.calls_for("audit")
    # the audit sees the first pass's order, so only the judge differs
    assert answers_in(call.messages) == answers_in(fake.calls_for("verifier")[0].messages)


async def test_both_checks_together_and_a_failing_audit():
    fake = client(position_verifier, audit=failing)
    config = ScorerConfig(
        seed=2, stability_check_share=1.0, audit=AUDIT, audit_share=1.0, parse_retries=0
    )
    result = await GroupScorer(config, fake).score_group(group())
    assert result.error is None
    assert result.checks["stability_flips"] == 2 and result.checks["audit_failed"] == 1
    assert "audit_verdicts" not in result.checks


def test_the_audit_role_is_opened_with_the_others_when_used():
    on = ScorerConfig(audit=AUDIT, audit_share=0.1)
    assert [r.name for r in on.roles()] == ["rubricator", "verifier", "audit"]
    assert on.audit is not None and on.audit.model == "other-family"
    assert [r.name for r in ScorerConfig(audit=AUDIT).roles()] == ["rubricator", "verifier"]
    resolved = [r.model_copy(update={"base_url": "http://resolved/v1"}) for r in on.roles()]
    assert on.with_roles(resolved).audit.base_url == "http://resolved/v1"  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="scorer.audit"):
        ScorerConfig(audit_share=0.1)
    with pytest.raises(ValidationError):
        ScorerConfig(stability_check_share=1.5)


async def test_a_dead_audit_endpoint_stops_the_run_before_any_group():
    dead = RoleConfig(base_url=f"http://127.0.0.1:{free_port()}/v1", model="other-family")
    with StubJudgeServer(latency_s=0.0, policy=content_policy(RUBRIC)) as stub:
        judge = RoleConfig(base_url=stub.base_url, model=STUB_MODEL)
        config = ScorerConfig(judge=judge, audit=dead, audit_share=0.1)
        with pytest.raises(JudgeUnavailable, match="role audit"):
            async with GroupScorer.open(config):
                pytest.fail("no scorer with a dead audit judge")
        assert stub.requests == 0


# -- the trace store ----------------------------------------------------------------------------


async def test_checks_round_trip_through_the_trace_store(tmp_path: Path):
    fake = client(position_verifier, audit=audit_verifier)
    config = ScorerConfig(seed=2, stability_check_share=1.0, audit=AUDIT, audit_share=1.0)
    with TraceStore(tmp_path / "t.db") as store:
        scorer = GroupScorer(config, fake, store)
        checked = await scorer.score_group(group("a"), step=0)
        plain = await GroupScorer(ScorerConfig(), client(), store).score_group(group("b"), step=0)
    with TraceStore(tmp_path / "t.db") as store:
        back = {r.id: r for s in store.steps() for r in s.results}
    assert back["a"].checks == checked.checks and len(checked.checks) == 8
    assert back["b"].checks == {} == plain.checks


async def test_a_store_made_before_the_checks_column_opens_and_takes_them(tmp_path: Path):
    path = tmp_path / "old.db"
    with TraceStore(path) as store:
        await GroupScorer(ScorerConfig(), client(), store).score_group(group("old"))
    with sqlite3.connect(path) as conn:  # what a store written by an older ropd looks like
        conn.execute("ALTER TABLE groups DROP COLUMN checks")
        assert "checks" not in {r[1] for r in conn.execute("PRAGMA table_info(groups)")}
    conn.close()
    config = ScorerConfig(stability_check_share=1.0)
    with TraceStore(path) as store:
        new = await GroupScorer(config, client(), store).score_group(group("new"))
        back = {r.id: r.checks for s in store.steps() for r in s.results}
    assert back == {"old": {}, "new": new.checks} and new.checks["stability_verdicts"] == 24


# -- ropd score ---------------------------------------------------------------------------------


def test_ropd_score_runs_both_checks_from_its_flag_and_file(tmp_path: Path):
    policy = content_policy(RUBRIC)
    groups = tmp_path / "groups.jsonl"
    groups.write_text(json.dumps(group().model_dump()) + "\n", encoding="utf-8")
    with (
        StubJudgeServer(latency_s=0.0, policy=policy) as stub,
        StubJudgeServer(latency_s=0.0, policy=policy) as audit,
    ):
        config = tmp_path / "ropd.yaml"
        config.write_text(
            f"ropd:\n  scorer:\n    audit:\n      base_url: {audit.base_url}\n"
            f"      model: {STUB_MODEL}\n    audit_share: 1.0\n",
            encoding="utf-8",
        )
        done = ropd_in_process(
            ["score", groups, "-o", tmp_path / "s.jsonl", "--traces", tmp_path / "t.db",
             "-c", config, "--base-url", stub.base_url, "--model", STUB_MODEL,
             "--stability-check-share", "1"]
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert audit.models_requests == 1 and audit.requests == 1  # probed, then one audit call
    (line,) = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert {"verifier_check", "audit"} <= set(line["usage"])
    with TraceStore(tmp_path / "t.db") as store:
        (result,) = store.steps()[0].results
    assert result.checks["stability_verdicts"] == result.checks["audit_verdicts"] == 24
    assert result.checks["stability_flips"] == result.checks["audit_disagreements"] == 0
