"""The OVD scorer: score / 9, strict replies re-asked, rejection, outcome reward, group calls."""

from __future__ import annotations

import json
import re

import pytest

from ropd.data.gold import math_verify_available
from ropd.reward.config import OVDConfig
from ropd.reward.metrics import step_metrics
from ropd.reward.ovd import OVDScorer, combine
from ropd.reward.schemas import OVD_SCHEMA_NAME
from ropd.reward.types import Group
from ropd.testing import ScriptedChatClient, scripted_judge

PROMPT = [{"role": "user", "content": "What is 6 * 7?"}]
GROUP = Group(
    id="g1",
    prompt=PROMPT,
    student_responses=["The answer is 42.", "<think>hmm</think>It is 41.", "", "Maybe 40."],
    teacher_responses=["It is 42."],
)
SCORE_BY_WORD = {"42": 9, "41": 3, "40": 1}


def shown_answer(messages) -> str:
    """The one answer block of an OVD call (the boundary around it is random, so tests match
    on the answer, never on the whole message)."""
    text = messages[0]["content"]
    return re.search(r"ANSWER>>>\n(.*?)\n<<<", text, re.DOTALL).group(1)


def by_answer(messages, schema):
    """Scores the one shown answer by its number; the schema must be OVD's single form."""
    assert schema is not None and schema.name == OVD_SCHEMA_NAME
    assert schema.schema["required"] == ["score"]
    number = re.search(r"4[0-2]", shown_answer(messages)).group(0)
    return json.dumps({"score": SCORE_BY_WORD[number]})


async def test_scores_are_divided_by_nine_and_judges_see_no_reference_or_reasoning() -> None:
    client = ScriptedChatClient({"ovd": by_answer})
    result = await OVDScorer(OVDConfig(), client).score_group(GROUP)
    assert result.rewards == [1.0, 3 / 9, 0.0, 1 / 9]
    assert not result.failed
    assert len(client.calls) == 3  # the empty answer scores 0 without a call
    assert all("hmm" not in c.messages[0]["content"] for c in client.calls)
    assert all("It is 42." not in c.messages[0]["content"] for c in client.calls)
    assert result.settings["ovd"]["scores"] == [9, 3, 0, 1]
    assert result.settings["scorer"] == "ovd"


@pytest.mark.parametrize(
    "bad",
    [
        json.dumps({"score": 4.5}),
        json.dumps({"score": 10}),
        json.dumps({"score": "9"}),
        json.dumps({"score": True}),
        json.dumps({"score": 7, "reasoning": "extra key"}),
        '{"score": 2} {"score": 8}',
        "nine",
    ],
)
async def test_adversarial_replies_are_refused_and_asked_again(bad: str) -> None:
    replies = iter([bad, json.dumps({"score": 6})])
    client = ScriptedChatClient({"ovd": lambda m, s: next(replies)})
    group = GROUP.model_copy(update={"student_responses": ["42"]})
    result = await OVDScorer(OVDConfig(parse_retries=1), client).score_group(group)
    assert result.rewards == [6 / 9]
    assert len(client.calls) == 2
    again = client.calls[1].messages
    assert again[1] == {"role": "assistant", "content": bad}
    assert "invalid" in again[2]["content"] or "cannot be read" in again[2]["content"]


async def test_a_judge_that_keeps_failing_fails_the_answer_not_the_group() -> None:
    def reply(messages, schema):
        if "41" in shown_answer(messages):
            return json.dumps({"score": 10})
        return by_answer(messages, schema)

    client = ScriptedChatClient({"ovd": reply})
    config = OVDConfig(parse_retries=1, failure_policy="constant", constant_reward=0.5)
    result = await OVDScorer(config, client).score_group(GROUP)
    assert result.rewards == [1.0, 0.5, 0.0, 1 / 9]
    assert result.failed and "1/4" in (result.error or "")


async def test_reject_below_gives_zero_and_is_recorded() -> None:
    config = OVDConfig(reject_below=3)
    result = await OVDScorer(config, ScriptedChatClient({"ovd": by_answer})).score_group(GROUP)
    # scores 9, 3, 0 (empty), 1: 0 and 1 are below 3
    assert result.rewards == [1.0, 3 / 9, 0.0, 0.0]
    assert result.settings["ovd"]["rejected"] == [False, False, True, True]
    # the step's share of rejected answers, among the four scored (the empty one scores 0 too)
    assert step_metrics([result]).as_dict()["ropd/ovd/rejected_rate"] == 2 / 4
    unrejecting = await OVDScorer(OVDConfig(), ScriptedChatClient({"ovd": by_answer})).score_group(
        GROUP
    )
    assert "ropd/ovd/rejected_rate" not in step_metrics([unrejecting]).as_dict()


def test_combine_by_hand() -> None:
    assert combine(6, True, outcome_weight=0.25, reject_below=None) == (0.25 + 0.75 * 6 / 9, False)
    assert combine(6, False, outcome_weight=0.25, reject_below=None) == (0.75 * 6 / 9, False)
    assert combine(6, None, outcome_weight=0.25, reject_below=None) == (6 / 9, False)
    assert combine(2, True, outcome_weight=0.5, reject_below=3) == (0.0, True)
    assert combine(9, True, outcome_weight=0.0, reject_below=3) == (1.0, False)


@pytest.mark.skipif(not math_verify_available(), reason="math-verify not installed")
async def test_outcome_reward_mixes_in_the_gold_check() -> None:
    golden = GROUP.model_copy(update={"gold": "42"})
    config = OVDConfig(outcome_weight=0.5)
    scorer = OVDScorer(config, ScriptedChatClient({"ovd": by_answer}))
    result = await scorer.score_group(golden)
    assert result.settings["ovd"]["correct"] == [True, False, False, False]
    assert result.rewards == pytest.approx([1.0, 0.5 * 3 / 9, 0.0, 0.5 * 1 / 9])
    # a group without a gold answer: verbal only
    other = GROUP.model_copy(update={"prompt": "What is 7 * 6?"})
    assert (await scorer.score_group(other)).rewards == [1.0, 3 / 9, 0.0, 1 / 9]
    # weight 0 never looks at gold
    verbal = OVDScorer(OVDConfig(), ScriptedChatClient({"ovd": by_answer}))
    assert (await verbal.score_group(golden)).settings["ovd"]["correct"] == [None] * 4


async def test_group_call_scores_every_answer_on_its_own_key() -> None:
    def group_reply(messages, schema):
        assert schema.name == OVD_SCHEMA_NAME
        assert schema.schema["required"] == ["answer_1", "answer_2", "answer_3"]
        text = messages[0]["content"]
        blocks = re.findall(r"ANSWER (\d)>>>\n(.*?)\n<<<", text, re.DOTALL)
        return json.dumps(
            {f"answer_{n}": SCORE_BY_WORD[re.search(r"4[0-2]", a).group(0)] for n, a in blocks}
        )

    client = ScriptedChatClient({"ovd": group_reply})
    result = await OVDScorer(OVDConfig(per_call="group"), client).score_group(GROUP)
    assert len(client.calls) == 1
    assert result.rewards == [1.0, 3 / 9, 0.0, 1 / 9]


async def test_group_call_that_never_validates_fails_its_answers() -> None:
    bad = json.dumps({"answer_1": 9, "answer_2": 3})  # answer_3 missing
    client = ScriptedChatClient({"ovd": lambda m, s: bad})
    result = await OVDScorer(OVDConfig(per_call="group", parse_retries=1), client).score_group(
        GROUP
    )
    assert result.rewards == [None, None, 0.0, None]
    assert result.failed and "3/4" in (result.error or "")
    assert len(client.calls) == 2


async def test_scripted_judge_answers_both_forms() -> None:
    for per_call in ("one", "group"):
        result = await OVDScorer(OVDConfig(per_call=per_call), scripted_judge()).score_group(GROUP)
        assert not result.failed
        assert all(r is not None and 0 <= r <= 1 and (r * 9) % 1 < 1e-9 for r in result.rewards)
