"""The in-memory scripted chat client and its two ready-made judges."""

from __future__ import annotations

import asyncio
import json

import pytest

from ropd.errors import JudgeError
from ropd.llm.config import RoleConfig
from ropd.reward.schemas import rubric_schema, verdicts_schema
from ropd.testing import (
    ReplyError,
    ScriptedCall,
    ScriptedChatClient,
    make_client,
    rubric_reply,
    schema_reply,
    scripted_judge,
)

MESSAGES = [{"role": "user", "content": "What is 6 * 7?"}]
VERIFIER = RoleConfig(name="verifier")
RUBRICATOR = RoleConfig(name="rubricator")


async def test_calls_are_answered_by_role_and_recorded():
    client = ScriptedChatClient({"verifier": lambda m, s: "yes"})
    out = await client.chat(VERIFIER, MESSAGES, n=2)
    assert [c.text for c in out] == ["yes", "yes"]
    assert out[0].finish_reason == "stop" and out[0].prompt_tokens == 10
    assert client.calls == [ScriptedCall("verifier", MESSAGES, None, 2)]
    assert client.calls_for("verifier") == client.calls and client.calls_for("rubricator") == []


async def test_a_role_without_handler_and_a_failing_handler_raise_judge_errors():
    def down(messages, json_schema):
        raise ReplyError("endpoint down", status=503)

    client = ScriptedChatClient({"verifier": down})
    with pytest.raises(JudgeError, match="no scripted handler for role 'rubricator'"):
        await client.chat(RUBRICATOR, MESSAGES)
    with pytest.raises(JudgeError, match="endpoint down"):
        await client.chat(VERIFIER, MESSAGES)
    assert client.in_flight == 0


async def test_latency_overlaps_and_in_flight_is_counted():
    client = ScriptedChatClient({"verifier": lambda m, s: "ok"}, latency_s=0.05)
    await asyncio.gather(*(client.chat(VERIFIER, MESSAGES) for _ in range(5)))
    assert client.max_in_flight == 5 and client.in_flight == 0


async def test_scripted_judge_answers_every_role_from_the_schema():
    client = scripted_judge()
    assert set(client.handlers) == {"rubricator", "verifier", "tjudge", "ovd", "teacher"}
    (rubric,) = await client.chat(RUBRICATOR, MESSAGES, json_schema=rubric_schema(4, 6))
    assert rubric.text == schema_reply(MESSAGES, rubric_schema(4, 6))
    teacher = await client.chat(RoleConfig(name="teacher"), MESSAGES, n=3, seed=1)
    assert len({c.text for c in teacher}) == 3  # sampled per choice, like the HTTP stub
    assert set(scripted_judge(roles=("teacher",)).handlers) == {"teacher"}


async def test_make_client_pairs_a_fixed_rubric_with_the_content_verifier():
    rubric = rubric_reply([("42", 5)])
    client = make_client(rubric)
    (reply,) = await client.chat(RUBRICATOR, MESSAGES, json_schema=rubric_schema(1, 4))
    assert reply.text == rubric
    verifier_prompt = [
        {"role": "system", "content": "Verifier"},
        {
            "role": "user",
            "content": "<<<ROPD-AB CRITERION C1>>>\nanswer mentions 42\n<<<ROPD-AB END>>>\n\n"
            "<<<ROPD-AB ANSWER 1>>>\nit is 42\n<<<ROPD-AB END>>>",
        },
    ]
    (verdicts,) = await client.chat(
        VERIFIER, verifier_prompt, json_schema=verdicts_schema(1, ["C1"])
    )
    assert json.loads(verdicts.text) == {"answer_1": {"C1": True}}
    custom = make_client(lambda m, s: "custom rubric", latency_s=0.01)
    assert (await custom.chat(RUBRICATOR, MESSAGES))[0].text == "custom rubric"
