"""The group scorer's logic, against a scripted judge (no network)."""

from __future__ import annotations

import asyncio
import json

import pytest

from ropd.reward.base import GroupScoringError
from ropd.reward.config import ScorerConfig
from ropd.reward.group_scorer import GroupScorer
from ropd.reward.types import Group
from ropd.rubric import weighted_score
from ropd.testing import answers_in, content_verifier, make_client, rubric_reply

RUBRIC = rubric_reply([("42", 5), ("because", 2), ("check", 1), ("units", 2)])
POINTS = [5, 2, 1, 2]


def group(**kw) -> Group:
    base = {
        "id": "g1",
        "prompt": "What is 6 * 7?",
        "student_responses": ["42 because 6*7", "41", "42", "42 because, check, units"],
        "teacher_responses": ["It is 42 because 6*7=42, check: 42/7=6, units none", "42"],
    }
    base.update(kw)
    return Group(**base)


def expected(text: str) -> float:
    words = ["42", "because", "check", "units"]
    return weighted_score(POINTS, [w in text for w in words])


async def test_rewards_are_recomputed_from_booleans_and_mapped_back():
    client = make_client(RUBRIC)
    g = group()
    result = await GroupScorer(ScorerConfig(), client).score_group(g)
    assert result.error is None
    assert result.rewards == pytest.approx([expected(t) for t in g.student_responses])
    assert result.teacher_scores == pytest.approx([expected(t) for t in g.teacher_responses])
    assert all(0.0 <= r <= 1.0 for r in result.rewards)
    assert [c.id for c in result.rubric.criteria] == ["C1", "C2", "C3", "C4"]
    assert len(client.calls_for("rubricator")) == 1
    assert len(client.calls_for("verifier")) == 1
    assert result.usage["verifier"]["calls"] == 1


async def test_judge_written_totals_are_ignored():
    def verifier(messages, schema):
        reply = json.loads(content_verifier(messages, schema))
        listed = [{"answer": int(k.split("_")[1]), "verdicts": v} for k, v in reply.items()]
        for entry in listed:
            entry["score"] = 99
        return json.dumps({"answers": listed, "total_score": 17.0})

    result = await GroupScorer(ScorerConfig(), make_client(RUBRIC, verifier)).score_group(group())
    assert result.rewards == [expected(t) for t in group().student_responses]  # not 99


async def test_pool_is_shuffled_reproducibly_and_teachers_anonymised():
    client = make_client(RUBRIC)
    config = ScorerConfig(seed=3)
    await GroupScorer(config, client).score_group(group())
    await GroupScorer(config, client).score_group(group())
    first, second = (answers_in(c.messages) for c in client.calls_for("verifier"))
    assert first == second  # same seed, same order
    assert "teacher" not in client.calls_for("verifier")[0].messages[-1]["content"].lower()
    # 4 distinct students + 2 teacher answers, under anonymous labels
    assert len(first) == 6
    other = make_client(RUBRIC)
    orders = set()
    for seed in range(6):
        await GroupScorer(ScorerConfig(seed=seed), other).score_group(group())
        orders.add(tuple(answers_in(other.calls[-1].messages).values()))
    assert len(orders) > 1


async def test_identical_answers_are_judged_once_and_share_the_verdict():
    client = make_client(RUBRIC)
    g = group(student_responses=["42", "42", "41", "42"])
    result = await GroupScorer(ScorerConfig(), client).score_group(g)
    shown = answers_in(client.calls_for("verifier")[0].messages)
    assert sorted(shown.values()).count("42") == 2  # one student "42" + teacher "42"
    assert result.rewards[0] == result.rewards[1] == result.rewards[3]
    dupes = {v.index: v.duplicate_of for v in result.verdicts if v.source == "student"}
    assert dupes == {0: None, 1: 0, 2: None, 3: 0}


async def test_dedupe_can_be_switched_off():
    client = make_client(RUBRIC)
    g = group(student_responses=["42", "42"])
    await GroupScorer(ScorerConfig(dedupe=False), client).score_group(g)
    assert len(answers_in(client.calls_for("verifier")[0].messages)) == 4


async def test_think_blocks_are_stripped_before_judging():
    client = make_client(RUBRIC)
    g = group(student_responses=["<think>maybe 42 because</think>41", "42"])
    result = await GroupScorer(ScorerConfig(), client).score_group(g)
    assert result.rewards[0] == 0.0
    shown = " ".join(answers_in(client.calls_for("verifier")[0].messages).values())
    assert "maybe" not in shown
    kept = make_client(RUBRIC)
    result = await GroupScorer(ScorerConfig(strip_think=False), kept).score_group(g)
    assert result.rewards[0] > 0


async def test_k_limits_references_and_teacher_pool_switch():
    client = make_client(RUBRIC)
    g = group(teacher_responses=["42 alpha", "42 beta", "42 gamma"])
    result = await GroupScorer(ScorerConfig(num_teacher_refs=1), client).score_group(g)
    rubric_prompt = client.calls_for("rubricator")[0].messages[-1]["content"]
    assert "42 alpha" in rubric_prompt and "42 beta" not in rubric_prompt
    assert len(result.teacher_scores) == 1
    alone = make_client(RUBRIC)
    result = await GroupScorer(ScorerConfig(teacher_in_pool=False), alone).score_group(g)
    assert len(answers_in(alone.calls_for("verifier")[0].messages)) == 4
    assert result.teacher_scores == [None, None, None]
    assert result.rewards == pytest.approx([expected(t) for t in g.student_responses])


async def test_identities_revealed_when_not_blind():
    client = make_client(RUBRIC)
    result = await GroupScorer(ScorerConfig(blind=False), client).score_group(group())
    content = client.calls_for("verifier")[0].messages[-1]["content"]
    assert "(written by the teacher model)" in content
    assert "(written by the student model)" in content
    assert result.error is None


async def test_per_pair_rubrics():
    client = make_client(RUBRIC)
    g = group()
    result = await GroupScorer(ScorerConfig(rubric_mode="per_pair"), client).score_group(g)
    distinct = len(set(g.student_responses))
    assert len(client.calls_for("rubricator")) == distinct
    assert len(result.rubrics) == distinct
    for call in client.calls_for("rubricator"):
        assert call.messages[-1]["content"].count(" STUDENT 1>>>") == 1
        assert " STUDENT 2>>>" not in call.messages[-1]["content"]
    assert result.rewards == pytest.approx([expected(t) for t in g.student_responses])


async def test_verifier_pool_can_be_chunked():
    client = make_client(RUBRIC)
    g = group()
    result = await GroupScorer(ScorerConfig(max_answers_per_verifier_call=2), client).score_group(g)
    assert len(client.calls_for("verifier")) == 3  # 6 answers in chunks of 2
    assert result.rewards == pytest.approx([expected(t) for t in g.student_responses])


async def test_empty_answers_fail_every_criterion_without_a_judge_call():
    client = make_client(RUBRIC)
    result = await GroupScorer(ScorerConfig(), client).score_group(
        group(student_responses=["", "42"])
    )
    assert result.rewards[0] == 0.0
    assert len(answers_in(client.calls_for("verifier")[0].messages)) == 3


async def test_malformed_reply_is_retried_with_feedback():
    replies = iter(["not json at all", '{"criteria": [{"criterion": "x", "points": 9}]}', RUBRIC])
    client = make_client(lambda m, s: next(replies))
    result = await GroupScorer(ScorerConfig(parse_retries=2), client).score_group(group())
    assert result.error is None
    calls = client.calls_for("rubricator")
    assert len(calls) == 3
    assert "invalid" in calls[1].messages[-1]["content"]
    assert result.usage["rubricator"]["calls"] == 3


@pytest.mark.parametrize("policy,expected_rewards", [("nan", None), ("constant", 0.25)])
async def test_failure_policies(policy, expected_rewards):
    client = make_client(lambda m, s: "nope")
    result = await GroupScorer(
        ScorerConfig(failure_policy=policy, constant_reward=0.25, parse_retries=1), client
    ).score_group(group())
    assert result.error and "rubricator" in result.error
    assert result.rewards == [expected_rewards] * 4
    assert result.failure_policy == policy
    assert len(client.calls_for("rubricator")) == 2


async def test_failure_policy_raise():
    client = make_client(lambda m, s: "nope")
    scorer = GroupScorer(ScorerConfig(failure_policy="raise", parse_retries=0), client)
    with pytest.raises(GroupScoringError, match="g1"):
        await scorer.score_group(group())


async def test_verifier_structure_is_validated_strictly():
    bad_replies = [
        # wrong count
        lambda m, s: json.dumps({"answers": [{"answer": 1, "verdicts": {"C1": True}}]}),
        # duplicate index
        lambda m, s: json.dumps(
            {"answers": [{"answer": 1, "verdicts": {f"C{i}": True for i in range(1, 5)}}] * 5}
        ),
        # missing criterion
        lambda m, s: json.dumps(
            {
                "answers": [
                    {"answer": n, "verdicts": {"C1": True, "C2": True, "C3": True}}
                    for n in range(1, 6)
                ]
            }
        ),
        # index out of range
        lambda m, s: json.dumps(
            {
                "answers": [
                    {"answer": n + 1, "verdicts": {f"C{i}": True for i in range(1, 5)}}
                    for n in range(1, 6)
                ]
            }
        ),
    ]
    for verifier in bad_replies:
        client = make_client(RUBRIC, verifier)
        result = await GroupScorer(ScorerConfig(parse_retries=0), client).score_group(group())
        assert result.error is not None and "verifier" in result.error
        assert result.rewards == [None] * 4


async def test_rubric_size_bounds_are_enforced():
    client = make_client(rubric_reply([("42", 5)]))
    result = await GroupScorer(ScorerConfig(parse_retries=0), client).score_group(group())
    assert "between 4 and 12" in result.error
    ok = make_client(rubric_reply([("42", 5)]))
    result = await GroupScorer(ScorerConfig(min_criteria=1, max_criteria=3), ok).score_group(
        group()
    )
    assert result.error is None


async def test_format_criteria_are_capped_at_one_point():
    client = make_client(rubric_reply([("42", 5), ("a", 4), ("b", 4), ("c", 3)], "format"))
    result = await GroupScorer(ScorerConfig(), client).score_group(group())
    assert result.rubric.points == [1, 1, 1, 1]


async def test_missing_teacher_answers_is_a_recorded_failure():
    client = make_client(RUBRIC)
    result = await GroupScorer(ScorerConfig(), client).score_group(group(teacher_responses=[]))
    assert "no teacher answers" in result.error
    assert client.calls == []
    alone = make_client(RUBRIC)
    result = await GroupScorer(ScorerConfig(num_teacher_refs=0), alone).score_group(
        group(teacher_responses=[])
    )
    assert result.error is None


async def test_groups_are_scored_concurrently():
    client = make_client(RUBRIC, latency_s=0.2)
    groups = [group(id=f"g{i}") for i in range(16)]
    scorer = GroupScorer(ScorerConfig(), client)
    results = await scorer.score_groups(groups)
    assert [r.id for r in results] == [g.id for g in groups]
    # every group's judge call in flight at once: two judge latencies in all, not 32
    assert client.max_in_flight == 16
    assert scorer.usage.roles["verifier"].calls == 16


async def test_chat_messages_prompt_is_rendered_as_transcript():
    client = make_client(RUBRIC)
    g = group(
        prompt=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "6*7?"}]
    )
    await GroupScorer(ScorerConfig(), client).score_group(g)
    content = client.calls_for("rubricator")[0].messages[-1]["content"]
    assert "[system]\nBe brief." in content and "[user]\n6*7?" in content


async def test_traces_receive_every_group():
    recorded = []

    class Traces:
        def record(self, group, result, *, step=None, run_id=None):
            recorded.append((group.id, result.error, step, run_id))

    client = make_client(lambda m, s: "nope")
    scorer = GroupScorer(ScorerConfig(parse_retries=0), client, Traces(), run_id="r1")
    await scorer.score_groups([group(id="a"), group(id="b")], step=7)
    assert sorted(r[0] for r in recorded) == ["a", "b"]
    assert all(r[1] and r[2] == 7 and r[3] == "r1" for r in recorded)


def test_score_groups_runs_in_plain_asyncio_run():
    client = make_client(RUBRIC)
    results = asyncio.run(GroupScorer(ScorerConfig(), client).score_groups([group()]))
    assert results[0].error is None
