"""The stub endpoint: over raw HTTP (no SDK in between), then behind the real client.

The last part checks the point of one reply policy for every fake: a policy answers the same in
memory (`ScriptedChatClient`) and over HTTP (`StubJudgeServer` + `OpenAIChatClient`), whatever
form of structured output the client falls back to.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from ropd.llm.client import OpenAIChatClient
from ropd.llm.config import RoleConfig
from ropd.reward.induction import validate_rubric
from ropd.reward.schemas import ovd_schema, rubric_schema, scalar_schema, verdicts_schema
from ropd.testing import (
    ReplyError,
    ReplyPolicy,
    ScriptedChatClient,
    StubJudgeServer,
    content_policy,
    held_until,
    rubric_reply,
    schema_reply,
)

WORDS = [("42", 5), ("because", 2), ("check", 1)]


def post(stub: StubJudgeServer, body: dict) -> tuple[int, dict, dict]:
    request = urllib.request.Request(
        f"{stub.base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def schema_request(schema, **extra) -> dict:
    rf = {"type": "json_schema", "json_schema": {"name": schema.name, "schema": schema.schema}}
    return {
        "model": "stub",
        "messages": [{"role": "user", "content": "x"}],
        "response_format": rf,
        **extra,
    }


def test_models_and_schema_replies():
    with StubJudgeServer(0.0) as stub:
        with urllib.request.urlopen(f"{stub.base_url}/models") as response:
            assert json.loads(response.read())["data"][0]["id"] == "stub"

        status, body, _ = post(stub, schema_request(rubric_schema(4, 12)))
        assert status == 200
        rubric = json.loads(body["choices"][0]["message"]["content"])
        assert 4 <= len(rubric["criteria"]) <= 12
        validate_rubric(rubric, 4, 12)  # what the scorer accepts
        assert body["usage"]["prompt_tokens"] >= 1 and body["usage"]["completion_tokens"] > 10

        status, body, _ = post(stub, schema_request(rubric_schema(2, 3)))
        assert len(json.loads(body["choices"][0]["message"]["content"])["criteria"]) == 3

        ids = ["c1", "c2", "c3"]
        status, body, _ = post(stub, schema_request(verdicts_schema(7, ids)))
        reply = json.loads(body["choices"][0]["message"]["content"])
        assert list(reply) == [f"answer_{n}" for n in range(1, 8)]
        assert all(set(v) == set(ids) for v in reply.values())
        values = [v for verdicts in reply.values() for v in verdicts.values()]
        assert True in values and False in values

        status, body, _ = post(stub, schema_request(scalar_schema()))
        assert 0 <= json.loads(body["choices"][0]["message"]["content"])["score"] <= 10

        status, body, _ = post(
            stub, {"model": "stub", "messages": [{"role": "user", "content": "q"}], "n": 3}
        )
        texts = [c["message"]["content"] for c in body["choices"]]
        assert len(texts) == 3 and len(set(texts)) == 3 and "answer" in texts[0]

        assert stub.stats()["calls"] == {
            "ropd_rubric": 2,
            "ropd_verdicts": 1,
            "ropd_scalar_score": 1,
            "text": 1,
        }


def test_verdicts_are_reproducible_for_the_same_request():
    with StubJudgeServer(0.0) as stub:
        request = schema_request(verdicts_schema(5, ["a", "b"]))
        first = post(stub, request)[1]["choices"][0]["message"]["content"]
        second = post(stub, request)[1]["choices"][0]["message"]["content"]
    assert first == second


def test_status_script_and_retry_after_header():
    with StubJudgeServer(0.0, status_script=[429, 503], retry_after_s=2) as stub:
        first = post(stub, schema_request(rubric_schema(4, 6)))
        second = post(stub, schema_request(rubric_schema(4, 6)))
        third = post(stub, schema_request(rubric_schema(4, 6)))
    assert (first[0], second[0], third[0]) == (429, 503, 200)
    assert first[2]["Retry-After"] == "2" and "error" in first[1]


def test_rejects_json_schema_but_answers_json_object():
    with StubJudgeServer(0.0, reject_json_schema=True) as stub:
        status, body, _ = post(stub, schema_request(rubric_schema(4, 6)))
        assert status == 400 and body["error"]["param"] == "response_format"
        request = {
            "model": "stub",
            "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_object"},
        }
        status, body, _ = post(stub, request)
        assert status == 200
        assert isinstance(json.loads(body["choices"][0]["message"]["content"]), dict)


@pytest.mark.parametrize("count", [320])
def test_hundreds_of_concurrent_requests_each_sleep_the_latency(count: int):
    # every request waits in the reply policy until all `count` are there: a stub serving them
    # one after another holds each to the timeout and shows max_concurrent 1; counted, not timed
    with StubJudgeServer(0.05, policy=held_until(count)) as stub:
        with ThreadPoolExecutor(max_workers=count) as pool:
            statuses = list(
                pool.map(lambda _: post(stub, schema_request(rubric_schema(4, 6)))[0], range(count))
            )
        assert statuses == [200] * count
        assert stub.max_concurrent == count and stub.requests == count


def test_llama_cpp_form_is_answered_by_the_schema_shape():
    with StubJudgeServer(0.0) as stub:
        shapes = (rubric_schema(4, 6), verdicts_schema(2, ["C1"]), scalar_schema())
        shapes += (ovd_schema(), ovd_schema(3))
        for schema in shapes:
            request = {
                "model": "stub",
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_object", "schema": schema.schema},
            }
            status, body, _ = post(stub, request)
            reply = body["choices"][0]["message"]["content"]
            assert status == 200
            assert reply == schema_reply(request["messages"], schema)  # recognised by its shape
        assert stub.stats()["calls"] == {"json_object_schema": 5}


def test_policy_errors_become_http_statuses_and_the_policy_can_be_swapped():
    def overloaded(messages, json_schema):
        raise ReplyError("judge overloaded", status=503)

    with StubJudgeServer(0.0, policy=overloaded) as stub:
        status, body, _ = post(stub, schema_request(rubric_schema(4, 6)))
        assert status == 503 and body["error"]["message"] == "judge overloaded"
        stub.policy = lambda messages, json_schema: "fine"
        status, body, _ = post(stub, schema_request(rubric_schema(4, 6)))
        assert status == 200 and body["choices"][0]["message"]["content"] == "fine"
        assert stub.stats()["statuses"] == {"200": 1, "503": 1}


def test_the_stub_seed_changes_sampled_text_only():
    request = {"model": "stub", "messages": [{"role": "user", "content": "q"}]}
    replies = []
    for seed in (0, 1):
        with StubJudgeServer(0.0, seed=seed) as stub:
            text = post(stub, request)[1]["choices"][0]["message"]["content"]
            rubric = post(stub, schema_request(rubric_schema(4, 6)))[1]["choices"][0]
            replies.append((text, rubric["message"]["content"]))
    assert replies[0][0] != replies[1][0] and replies[0][1] == replies[1][1]


# -- one policy, in memory and over HTTP -----------------------------------------------------

FORMS = ["json_schema", "json_object_schema", "json_object", "none"]


def policies() -> dict[str, ReplyPolicy]:
    return {"schema_reply": schema_reply, "content_policy": content_policy(rubric_reply(WORDS))}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", ["schema_reply", "content_policy"])
async def test_a_policy_replies_the_same_in_memory_and_over_http(name, form, verifier_messages):
    policy = policies()[name]
    answers = ["42 because 6*7", "It is 41", "check: 42"]
    requests = [
        ("rubricator", [{"role": "user", "content": "Write a rubric."}], rubric_schema(4, 12)),
        (
            "verifier",
            verifier_messages(answers, rubric_reply(WORDS)),
            verdicts_schema(3, ["C1", "C2", "C3"]),
        ),
    ]
    memory = ScriptedChatClient({"rubricator": policy, "verifier": policy})
    with StubJudgeServer(0.0, policy=policy) as stub:
        async with OpenAIChatClient() as client:
            client.set_format_mode(stub.base_url, form)
            for role_name, messages, schema in requests:
                role = RoleConfig(name=role_name, base_url=stub.base_url, model="stub")
                over_http = await client.chat(role, messages, json_schema=schema)
                in_memory = await memory.chat(role, messages, json_schema=schema)
                assert over_http[0].text == in_memory[0].text
        assert stub.requests == 2  # every form was answered, none rejected


async def test_sampled_text_is_the_same_in_memory_and_over_http():
    messages = [{"role": "user", "content": "What is 2 + 2?"}]
    role = RoleConfig(name="teacher", model="stub", temperature=1.0)
    memory = ScriptedChatClient({"teacher": schema_reply})
    in_memory = await memory.chat(role, messages, n=3, seed=7)
    with StubJudgeServer(0.0) as stub:
        async with OpenAIChatClient() as client:
            http_role = role.model_copy(update={"base_url": stub.base_url})
            over_http = await client.chat(http_role, messages, n=3, seed=7)
    assert [c.text for c in over_http] == [c.text for c in in_memory]
    assert len({c.text for c in in_memory}) == 3


async def test_content_policy_verdicts_over_http_follow_answer_content(verifier_messages):
    answers = ["42 because 6*7", "It is 41", "check: 42", "no idea"]
    messages = verifier_messages(answers, rubric_reply(WORDS))
    with StubJudgeServer(0.0, policy=content_policy(rubric_reply(WORDS))) as stub:
        role = RoleConfig(name="verifier", base_url=stub.base_url, model="stub")
        async with OpenAIChatClient() as client:
            (reply,) = await client.chat(
                role, messages, json_schema=verdicts_schema(4, ["C1", "C2", "C3"])
            )
    verdicts = json.loads(reply.text)
    for number, answer in enumerate(answers, start=1):
        expected = {f"C{i}": word in answer for i, (word, _) in enumerate(WORDS, start=1)}
        assert verdicts[f"answer_{number}"] == expected
