"""Regrouping, batch scoring with the real engine and a scripted judge, metrics, quality gate."""

from __future__ import annotations

import math

import pytest

from ropd.reward.batch import BatchScorer, Rollout, regroup
from ropd.reward.config import ScorerConfig
from ropd.reward.gate import QualityGate
from ropd.reward.group_scorer import GroupScorer
from ropd.reward.metrics import batch_metrics
from ropd.reward.types import AnswerVerdicts, GroupResult
from ropd.rubric import Criterion, Rubric
from ropd.testing import ScriptedChatClient, schema_reply, scripted_judge

P1 = [{"role": "user", "content": "What is 2 + 2?"}]
P2 = [{"role": "user", "content": "What is 3 + 3?"}]


def rollouts(*spec: tuple[str, list, str]) -> list[Rollout]:
    return [Rollout(gid, prompt, text) for gid, prompt, text in spec]


def test_regroup_keeps_consecutive_chunks_and_falls_back_to_keys() -> None:
    batch = rollouts(("a", P1, "1"), ("a", P1, "2"), ("a", P1, "3"), ("a", P1, "4"))
    assert regroup(batch, 2) == [[0, 1], [2, 3]]  # the same prompt drawn twice: two groups
    shuffled = rollouts(("a", P1, "1"), ("b", P2, "2"), ("a", P1, "3"), ("b", P2, "4"))
    assert regroup(shuffled, 2) == [[0, 2], [1, 3]]
    assert regroup(shuffled, None) == [[0, 2], [1, 3]]


class FixedReferences:
    async def references(self, prompt):
        return ["Reference one: 4.", "Reference two: four."]


def opener_for(client, **config):
    async def opener(stack):
        return GroupScorer(ScorerConfig(**config), client), FixedReferences()

    return opener


async def test_batch_scorer_scores_each_group_once_in_input_order() -> None:
    client = scripted_judge()
    scorer = BatchScorer(opener_for(client), QualityGate())
    batch = rollouts(
        ("a", P1, "4"),
        ("a", P1, "5"),
        ("b", P2, "6"),
        ("b", P2, "7"),
        ("a", P1, "four"),
        ("a", P1, "four"),
    )
    outcome = await scorer.score(batch, group_size=2, step=3)
    assert len(outcome.rewards) == 6
    assert all(r is not None and 0.0 <= r <= 1.0 for r in outcome.rewards)
    assert len(client.calls_for("rubricator")) == 3  # one rubric per group
    assert len(client.calls_for("verifier")) == 3
    m = outcome.metrics
    assert m["ropd/groups"] == 3 and m["ropd/failed_group_rate"] == 0
    assert m["ropd/rubric_size"] == 4
    assert "ropd/teacher_score_mean" in m and "ropd/beat_teacher_rate" in m
    assert m["ropd/judge/rubricator/calls"] == 3
    assert any(k.startswith("ropd/pass_rate/") for k in m)
    # identical answers of one group share one verdict, so rewards stay aligned with rollouts
    assert outcome.rewards[4] == outcome.rewards[5]
    schema = client.calls_for("verifier")[2].json_schema
    assert len(schema.schema["required"]) == 3  # 1 distinct student + K = 2


async def test_failed_groups_are_nan_and_trip_the_gate() -> None:
    def broken(messages, schema):
        return "not json at all"

    client = ScriptedChatClient({"rubricator": broken, "verifier": schema_reply})
    gate = QualityGate(window=4, threshold=0.4, min_groups=2)
    scorer = BatchScorer(opener_for(client, parse_retries=0), gate)
    batch = rollouts(("a", P1, "4"), ("a", P1, "5"), ("b", P2, "6"), ("b", P2, "7"))
    outcome = await scorer.score(batch, group_size=2, step=7)
    assert outcome.rewards == [None] * 4
    assert outcome.metrics["ropd/failed_group_rate"] == 1.0
    assert outcome.stop_message is not None and "step 7" in outcome.stop_message
    assert "100%" in outcome.stop_message


def test_gate_needs_min_groups_and_uses_a_window() -> None:
    gate = QualityGate(window=4, threshold=0.4, min_groups=3)
    gate.update([True, True])
    assert not gate.tripped  # too few groups yet
    gate.update([False, False, False, False])
    assert gate.failed_share == 0.0 and not gate.tripped  # old failures left the window
    gate.update([True, True])
    assert gate.failed_share == 0.5 and gate.tripped


def test_metrics_from_results() -> None:
    rubric = Rubric(
        criteria=[
            Criterion(id="C1", category="correctness", criterion="right result", points=5),
            Criterion(id="C2", category="format", criterion="boxed answer", points=1),
        ]
    )
    ok = GroupResult(
        id="a",
        rewards=[1.0, 0.0],
        teacher_scores=[0.5],
        rubrics=[rubric],
        verdicts=[
            AnswerVerdicts(source="student", index=0, verdicts={"C1": True, "C2": True}, score=1),
            AnswerVerdicts(source="student", index=1, verdicts={"C1": False, "C2": True}, score=0),
            AnswerVerdicts(source="teacher", index=0, verdicts={"C1": False, "C2": False}, score=0),
        ],
        usage={
            "verifier": {"calls": 2, "prompt_tokens": 10, "completion_tokens": 6, "latency_s": 3.0}
        },
    )
    failed = GroupResult(id="b", rewards=[None, None], error="JudgeError: down")
    m = batch_metrics([ok, failed])
    assert m["ropd/failed_group_rate"] == 0.5
    assert m["ropd/reward_mean"] == 0.5 and math.isclose(m["ropd/reward_std"], math.sqrt(0.5))
    assert math.isclose(m["ropd/reward_std_within_group_mean"], math.sqrt(0.5))
    assert m["ropd/beat_teacher_rate"] == 1.0
    assert m["ropd/pass_rate/correctness"] == 0.5 and m["ropd/pass_rate/format"] == 1.0
    assert m["ropd/judge/verifier/latency_s"] == 1.5 and m["ropd/judge/verifier/tokens"] == 16


@pytest.mark.parametrize("policy", ["nan", "constant"])
async def test_policies_flow_through(policy: str) -> None:
    def down(messages, schema):
        from ropd.llm.types import JudgeError

        raise JudgeError("endpoint down")

    client = ScriptedChatClient({"rubricator": down, "verifier": down})
    scorer = BatchScorer(opener_for(client, failure_policy=policy, constant_reward=0.25), None)
    outcome = await scorer.score(rollouts(("a", P1, "1"), ("a", P1, "2")), group_size=2)
    assert outcome.rewards == ([None, None] if policy == "nan" else [0.25, 0.25])
