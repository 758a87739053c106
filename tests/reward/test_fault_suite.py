"""The scorer and `ropd score` against a judge that fails 55% of requests, lies and leaks.

Rewards are audited against the answers' content (the fake judge judges by content), so a
reward the booleans or the content do not justify, a silent zero, a forged reward or a leaked
key is found, not just a crash.
"""

from __future__ import annotations

import json

import pytest
from ropd_dev.bench.faults import (
    KEY,
    KEY_ENV,
    POLICIES,
    LyingJudge,
    audit,
    content_reward,
    make_groups,
    run_fault_bench,
)
from ropd_dev.faults import FaultJudgeServer

from ropd.errors import JudgeUnavailable
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.reward.base import GroupScoringError
from ropd.reward.config import ScorerConfig
from ropd.reward.group_scorer import GroupScorer
from ropd.rubric import weighted_score
from ropd.testing import StubJudgeServer
from ropd.testing.stub_server import STUB_MODEL

FAST = LimitsConfig(max_retries=4, backoff_base_s=0.01, backoff_max_s=0.05)


@pytest.fixture(scope="module")
def fault_server():
    server = FaultJudgeServer(
        fault_rate=0.55,
        seed=3,
        policy=LyingJudge(3),
        hang_s=0.6,
        reject_formats=("json_schema", "json_object_schema"),  # prose allowed: forgery matters
    )
    with server:
        yield server


def judge(server, monkeypatch) -> RoleConfig:
    monkeypatch.setenv(KEY_ENV, KEY)
    return RoleConfig(
        base_url=server.base_url, model=STUB_MODEL, api_key_env=KEY_ENV, timeout_s=0.3
    )


@pytest.mark.parametrize("policy", POLICIES)
async def test_the_scorer_survives_a_55_percent_fault_mix(fault_server, monkeypatch, policy):
    groups = make_groups(30, seed=1)
    config = ScorerConfig(judge=judge(fault_server, monkeypatch), failure_policy=policy)
    async with GroupScorer.open(config, limits=FAST) as scorer:
        try:
            results = await scorer.score_groups(groups)
        except GroupScoringError as exc:  # policy raise: one clean, named stop
            assert policy == "raise" and exc.cause
            return
    assert len(results) == len(groups)
    scored = 0
    for group, result in zip(groups, results):
        text = result.model_dump_json()
        assert KEY not in text
        if result.failed:
            assert result.error and result.failure_policy == policy
            expected = None if policy == "nan" else config.constant_reward
            assert result.rewards == [expected] * len(group["student_responses"])
            continue
        scored += 1
        rubric = result.rubric
        for i, reward in enumerate(result.rewards):
            record = next(v for v in result.verdicts if (v.source, v.index) == ("student", i))
            booleans = [record.verdicts[c.id] for c in rubric.criteria]
            assert reward == weighted_score(rubric.points, booleans)
            assert reward == content_reward(group["student_responses"][i])  # forger included
    assert scored >= len(groups) // 2


@pytest.mark.slow  # ~40 s: three policies, SIGKILL and resume through the real CLI
def test_ropd_score_killed_and_resumed_under_faults_loses_nothing(tmp_path):
    figures = run_fault_bench(
        groups=24, kills=1, seed=5, timeout_s=0.4, work_dir=tmp_path, bad_inputs=False
    )
    for report in figures["policies"]:
        assert report["crashed_runs"] == 0, report["notes"]
        assert report["groups_lost"] == report["groups_duplicated"] == 0
        assert report["groups_failed_without_cause"] == 0
        assert report["unjustified_rewards"] == report["silent_zeros"] == 0
        assert report["forged_reward_successes"] == 0
        assert report["key_occurrences"] == 0
        assert report["groups_scored"] + report["groups_failed_with_cause"] == 24
    assert sum(figures["server"]["faults"].values()) > 0
    assert figures["requests_to_other_origin"] == 0  # redirects to another origin: not followed
    calls = figures["reward_calls"]  # the TRL reward in process, under the same faults
    assert calls["calls"] == 12 and calls["exceptions"] == 0, calls["notes"]
    assert calls["unjustified_rewards"] == calls["forged_reward_successes"] == 0
    assert calls["invalid_answer_groups"] == calls["invalid_answer_groups_failed"] > 0
    assert calls["locked_store_calls"] > 0 and calls["locked_store_rewards_used"] == 0


def test_the_audit_catches_what_it_claims_to(tmp_path):
    """A forged reward, a silent zero, a lost group and a leaked key are each counted."""
    from ropd_dev.bench.faults import PolicyReport

    groups = make_groups(3, seed=0)
    row = {
        "id": "f0",
        "rewards": [1.0, 0.0, 0.0, 0.0],
        "rubric": {"criteria": [{"id": f"C{i}", "points": p} for i, (_, p) in
                                enumerate([("a", 5), ("b", 3), ("c", 2), ("d", 1)], 1)]},
        "verdicts": [
            {"source": "student", "index": i, "verdicts": {f"C{c}": i == 0 for c in range(1, 5)}}
            for i in range(4)
        ],
        "error": f"judge said {KEY}",
    }  # fmt: skip
    failed = {**row, "id": "f1"}
    row["error"] = None
    forger = groups[0]["student_responses"][0]
    groups[0]["student_responses"] = [forger, "alpha", "none", "none"]  # "alpha" earns 5/11, got 0
    (tmp_path / "nan.jsonl").write_text(json.dumps(row) + "\n" + json.dumps(failed) + "\n")
    report = PolicyReport(policy="nan")
    audit(report, groups, tmp_path, printed="")
    assert report.forged_reward_successes == 1
    assert report.silent_zeros == 1
    assert report.groups_lost == 1  # f2 never written
    assert report.key_occurrences == 1
    assert report.groups_failed_with_cause == 1


def test_a_rejected_key_stops_ropd_score_at_once_with_exit_2(tmp_path, monkeypatch):
    from tests.inprocess import ropd_in_process

    groups = tmp_path / "g.jsonl"
    groups.write_text("".join(json.dumps(g) + "\n" for g in make_groups(8, seed=0)))
    with StubJudgeServer(latency_s=0.0, status_script=[401] * 1000) as stub:
        env = {KEY_ENV: KEY, "OPENAI_API_KEY": None}  # `ropd score` in process, this key only
        for policy in POLICIES:
            command = ["score", groups, "-o", tmp_path / f"{policy}.jsonl",
                       "--base-url", stub.base_url, "--model", "stub", "--api-key-env", KEY_ENV,
                       "--failure-policy", policy]  # fmt: skip
            out = ropd_in_process(command, env=env)
            assert out.returncode == 2, out.stderr
            assert "rejected the API key (HTTP 401)" in out.stderr
            assert KEY_ENV in out.stderr and "Traceback" not in out.stderr
            assert stub.requests <= 64  # stopped at once, not after retrying every group
            stub.reset_stats()


async def test_the_scorer_raises_judge_unavailable_for_an_unknown_model(monkeypatch):
    with StubJudgeServer(latency_s=0.0, status_script=[404] * 100) as stub:
        config = ScorerConfig(judge=judge(stub, monkeypatch))
        async with GroupScorer.open(config, limits=FAST) as scorer:
            with pytest.raises(JudgeUnavailable, match="not served"):
                await scorer.score_groups(make_groups(4, seed=0))
