"""The T-Judge baseline scorer: score / 10, retries on bad replies, failure policies, traces."""

from __future__ import annotations

import json

import pytest

from ropd.llm.types import JudgeError
from ropd.reward.schemas import SCALAR_SCHEMA_NAME
from ropd.reward.tjudge import TJudgeConfig, TJudgeError, TJudgeScorer
from ropd.reward.types import Group
from ropd.testing import ScriptedChatClient

GROUP = Group(
    id="g1",
    prompt=[{"role": "user", "content": "What is 6 * 7?"}],
    student_responses=["42", "<think>hmm</think>41", ""],
    teacher_responses=["It is 42."],
)


def by_answer(messages, schema):
    assert schema is not None and schema.name == SCALAR_SCHEMA_NAME
    text = messages[0]["content"]
    score = 10 if "\n42\n" in text else 3 if "\n41\n" in text else 0
    return json.dumps({"reasoning": "checked", "score": score})


async def test_scores_are_normalised_and_reasoning_is_stripped() -> None:
    client = ScriptedChatClient({"tjudge": by_answer})
    result = await TJudgeScorer(TJudgeConfig(), client).score_group(GROUP)
    assert result.rewards == [1.0, 0.3, 0.0]
    assert not result.failed
    assert all("hmm" not in c.messages[0]["content"] for c in client.calls)
    assert all("It is 42." not in c.messages[0]["content"] for c in client.calls)
    with_refs = ScriptedChatClient({"tjudge": by_answer})
    await TJudgeScorer(TJudgeConfig(num_references=1), with_refs).score_group(GROUP)
    assert all("It is 42." in c.messages[0]["content"] for c in with_refs.calls)


async def test_invalid_reply_is_asked_again() -> None:
    replies = iter(
        [
            "no json",
            json.dumps({"reasoning": "x", "score": 11}),
            json.dumps({"reasoning": "x", "score": 8}),
        ]
    )
    client = ScriptedChatClient({"tjudge": lambda m, s: next(replies)})
    group = GROUP.model_copy(update={"student_responses": ["42"]})
    result = await TJudgeScorer(TJudgeConfig(parse_retries=2), client).score_group(group)
    assert result.rewards == [0.8]
    assert len(client.calls) == 3


@pytest.mark.parametrize("policy", ["nan", "constant", "raise"])
async def test_failure_policies(policy: str) -> None:
    def flaky(messages, schema):
        if "\n41\n" in messages[0]["content"]:
            raise JudgeError("endpoint down")
        return by_answer(messages, schema)

    client = ScriptedChatClient({"tjudge": flaky})
    config = TJudgeConfig(failure_policy=policy, constant_reward=0.5)
    scorer = TJudgeScorer(config, client)
    if policy == "raise":
        with pytest.raises(TJudgeError, match="g1"):
            await scorer.score_group(GROUP)
        return
    result = await scorer.score_group(GROUP)
    assert result.rewards == [1.0, None if policy == "nan" else 0.5, 0.0]
    assert result.failed and "1/3" in (result.error or "")
    assert scorer.usage.roles["tjudge"].failed_calls == 1


async def test_traces_are_recorded(tmp_path) -> None:
    from ropd.reward.traces import TraceStore

    with TraceStore(tmp_path / "t.sqlite", run_id="r") as traces:
        scorer = TJudgeScorer(TJudgeConfig(), ScriptedChatClient({"tjudge": by_answer}), traces)
        await scorer.score_groups([GROUP], step=5)
        stored = traces.get("g1", run_id="r", step=5)
    assert stored is not None and stored.result.rewards == [1.0, 0.3, 0.0]
