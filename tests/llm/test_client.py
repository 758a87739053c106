"""OpenAIChatClient against the real stub endpoint over HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid

import pytest

from ropd.llm.client import OpenAIChatClient
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.llm.connect import open_chat_client
from ropd.llm.limits import estimate_prompt_tokens
from ropd.llm.local_server import free_port
from ropd.llm.types import JudgeError
from ropd.reward.schemas import rubric_schema, verdicts_schema
from ropd.testing import StubJudgeServer, held_until

MESSAGES = [{"role": "user", "content": "Grade this."}]


class Sleeps:
    """A sleep that records and returns at once, with a clock it advances."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.now = 0.0

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)

    def clock(self) -> float:
        return self.now


def role_for(stub: StubJudgeServer, **update: object) -> RoleConfig:
    return RoleConfig(name="verifier", base_url=stub.base_url, model="stub").model_copy(
        update=update
    )


@pytest.fixture
def stub():
    with StubJudgeServer(latency_s=0.0) as server:
        yield server


# -- retries ----------------------------------------------------------------------------------


async def test_retries_429_then_503_and_honours_retry_after():
    sleeps = Sleeps()
    with StubJudgeServer(0.0, status_script=[429, 503], retry_after_s=7) as stub:
        async with OpenAIChatClient(LimitsConfig(max_retries=4), sleep=sleeps) as client:
            out = await client.chat(role_for(stub), MESSAGES, json_schema=rubric_schema(4, 6))
        assert json.loads(out[0].text)["criteria"]
        assert stub.stats()["statuses"] == {"200": 1, "429": 1, "503": 1}
    assert sleeps.calls == [7.0, 7.0]
    assert client.retries == {"verifier": 2}
    assert client.usage.roles["verifier"].calls == 1
    assert client.usage.roles["verifier"].failed_calls == 0


async def test_backoff_is_exponential_with_jitter_when_no_retry_after():
    sleeps = Sleeps()
    limits = LimitsConfig(max_retries=3, backoff_base_s=0.5, backoff_max_s=1.5)
    with StubJudgeServer(0.0, status_script=[500, 502, 504]) as stub:
        client = OpenAIChatClient(limits, sleep=sleeps, rng=random.Random(1))
        await client.chat(role_for(stub), MESSAGES)
        await client.aclose()
    a, b, c = sleeps.calls
    assert 0.25 <= a <= 0.5 and 0.5 <= b <= 1.0 and 0.75 <= c <= 1.5  # capped at 1.5


@pytest.mark.parametrize("status", [408, 409, 429, 500, 503])
async def test_retryable_statuses(status: int):
    sleeps = Sleeps()
    with StubJudgeServer(0.0, status_script=[status]) as stub:
        async with OpenAIChatClient(sleep=sleeps) as client:
            await client.chat(role_for(stub), MESSAGES)
        assert stub.requests == 2
    assert len(sleeps.calls) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_non_retryable_statuses_fail_at_once(status: int):
    sleeps = Sleeps()
    with StubJudgeServer(0.0, status_script=[status], error_message="bad request") as stub:
        async with OpenAIChatClient(sleep=sleeps) as client:
            with pytest.raises(JudgeError) as info:
                await client.chat(role_for(stub), MESSAGES)
        assert stub.requests == 1
    assert sleeps.calls == []
    message = str(info.value)
    assert f"HTTP {status}" in message and "bad request" in message
    assert "role verifier" in message and "model stub" in message and "127.0.0.1" in message
    assert client.usage.roles["verifier"].failed_calls == 1


async def test_gives_up_after_max_retries_with_a_clear_error():
    sleeps = Sleeps()
    with StubJudgeServer(0.0, status_script=[503] * 10, error_message="overloaded") as stub:
        async with OpenAIChatClient(LimitsConfig(max_retries=2), sleep=sleeps) as client:
            with pytest.raises(JudgeError, match=r"HTTP 503 after 3 attempts: overloaded"):
                await client.chat(role_for(stub), MESSAGES)
        assert stub.requests == 3
    assert len(sleeps.calls) == 2


async def test_connection_errors_are_retried_then_reported():
    sleeps = Sleeps()
    role = RoleConfig(base_url=f"http://127.0.0.1:{free_port()}/v1", model="m")
    async with OpenAIChatClient(LimitsConfig(max_retries=2), sleep=sleeps) as client:
        with pytest.raises(JudgeError, match="no response after 3 attempts: connection error"):
            await client.chat(role, MESSAGES)
    assert len(sleeps.calls) == 2


async def test_timeouts_are_retried_then_reported():
    with StubJudgeServer(0.5) as stub:
        role = role_for(stub, timeout_s=0.1)
        async with OpenAIChatClient(LimitsConfig(max_retries=1, backoff_base_s=0.0)) as client:
            with pytest.raises(JudgeError, match="timed out"):
                await client.chat(role, MESSAGES)
        assert stub.requests == 2


async def test_role_without_endpoint_is_refused():
    async with OpenAIChatClient() as client:
        with pytest.raises(JudgeError, match="no base_url"):
            await client.chat(RoleConfig(), MESSAGES)


# -- structured output ------------------------------------------------------------------------


async def test_request_carries_json_schema_and_role_settings(stub):
    role = role_for(stub, temperature=0.7, top_p=0.9, max_tokens=333, extra_body={"top_k": 20})
    async with OpenAIChatClient() as client:
        out = await client.chat(role, MESSAGES, json_schema=verdicts_schema(3, ["a", "b"]), seed=5)
    body = stub.bodies[-1]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["name"] == "ropd_verdicts"
    assert len(body["response_format"]["json_schema"]["schema"]["required"]) == 3
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.7, 0.9, 333)
    assert (body["seed"], body["top_k"], body["model"]) == (5, 20, "stub")
    reply = json.loads(out[0].text)
    assert list(reply) == ["answer_1", "answer_2", "answer_3"]
    assert all(set(v) == {"a", "b"} for v in reply.values())


async def test_max_completion_tokens_in_extra_body_replaces_max_tokens(stub):
    role = role_for(stub, extra_body={"max_completion_tokens": 99})
    async with OpenAIChatClient() as client:
        await client.chat(role, MESSAGES)
    assert "max_tokens" not in stub.bodies[-1] and stub.bodies[-1]["max_completion_tokens"] == 99


async def test_json_schema_rejected_falls_back_and_is_remembered():
    with StubJudgeServer(0.0, reject_json_schema=True) as stub:
        async with OpenAIChatClient() as client:
            out = await client.chat(role_for(stub), MESSAGES, json_schema=rubric_schema(4, 6))
            assert json.loads(out[0].text) is not None
            assert client.format_mode(stub.base_url) == "json_object_schema"
            assert [b["response_format"]["type"] for b in stub.bodies] == [
                "json_schema",
                "json_object",
            ]
            before = stub.requests
            await client.chat(role_for(stub), MESSAGES, json_schema=rubric_schema(4, 6))
            assert stub.requests == before + 1  # no second rejection
            assert client.retries == {}  # a downgrade is not a retry


async def test_falls_back_to_plain_json_object_with_the_schema_in_the_prompt():
    with StubJudgeServer(0.0, reject_formats={"json_schema", "json_object_schema"}) as stub:
        async with OpenAIChatClient() as client:
            out = await client.chat(role_for(stub), MESSAGES, json_schema=rubric_schema(4, 6))
            assert client.format_mode(stub.base_url) == "json_object"
        last = stub.bodies[-1]
        assert last["response_format"] == {"type": "json_object"}
        assert '"criteria"' in last["messages"][-1]["content"]
        assert isinstance(json.loads(out[0].text), dict)
        assert stub.calls["json_object"] == 1


async def test_falls_back_to_no_response_format_at_all():
    rejected = {"json_schema", "json_object_schema", "json_object"}
    with StubJudgeServer(0.0, reject_formats=rejected) as stub:
        async with OpenAIChatClient() as client:
            await client.chat(role_for(stub), MESSAGES, json_schema=rubric_schema(4, 6))
            assert client.format_mode(stub.base_url) == "none"
        assert "response_format" not in stub.bodies[-1]
        assert stub.requests == 4
        assert MESSAGES[0]["content"] == "Grade this."  # the caller's messages are not mutated


# -- n, limits, usage -------------------------------------------------------------------------


async def test_n_choices_in_one_request(stub):
    async with OpenAIChatClient() as client:
        out = await client.chat(role_for(stub, temperature=1.0), MESSAGES, n=3, seed=1)
    assert len(out) == 3 and len({c.text for c in out}) == 3
    assert stub.requests == 1 and stub.bodies[0]["n"] == 3
    usage = client.usage.roles["verifier"]
    assert usage.calls == 1
    assert sum(c.completion_tokens for c in out) == usage.completion_tokens
    assert sum(c.prompt_tokens for c in out) == usage.prompt_tokens


async def test_endpoints_that_ignore_n_are_asked_again_with_new_seeds():
    with StubJudgeServer(0.0, ignore_n=True) as stub:
        async with OpenAIChatClient() as client:
            out = await client.chat(role_for(stub, temperature=1.0), MESSAGES, n=3, seed=10)
        assert len(out) == 3 and stub.requests == 3
        assert [b.get("seed") for b in stub.bodies] == [10, 11, 12]
        assert len({c.text for c in out}) == 3


async def test_in_flight_limit_is_shared_by_all_roles():
    with StubJudgeServer(0.05) as stub:
        roles = [role_for(stub, name="rubricator"), role_for(stub, name="verifier")]
        async with OpenAIChatClient(LimitsConfig(max_in_flight=3)) as client:
            await asyncio.gather(*(client.chat(roles[i % 2], MESSAGES) for i in range(20)))
        assert client.max_in_flight_seen == 3
        assert stub.max_concurrent <= 3
        assert client.usage.roles["rubricator"].calls == 10
        assert client.usage.roles["verifier"].calls == 10


async def test_many_requests_run_concurrently_without_a_low_limit():
    # each request waits at the stub until all 64 are there: a client that sent them in rounds
    # would be held to the timeout and show fewer at once; concurrency is counted, not timed
    with StubJudgeServer(0.0, policy=held_until(64)) as stub:
        async with OpenAIChatClient(LimitsConfig(max_in_flight=256)) as client:
            await asyncio.gather(*(client.chat(role_for(stub), MESSAGES) for i in range(64)))
        assert client.max_in_flight_seen == 64 and stub.max_concurrent == 64
        assert stub.requests == 64


async def test_requests_per_minute_with_a_fake_clock(stub):
    sleeps = Sleeps()
    client = OpenAIChatClient(LimitsConfig(requests_per_minute=4), sleep=sleeps, clock=sleeps.clock)
    await asyncio.gather(*(client.chat(role_for(stub), MESSAGES) for _ in range(9)))
    await client.aclose()
    assert stub.requests == 9
    assert 120.0 <= sleeps.now < 122.0  # paced 15 s apart: the 9th goes at two minutes
    assert client.rate_limiter.booked_requests() == 4  # at 75, 90, 105 and 120 s


async def test_tokens_per_minute_books_an_estimate_then_the_real_usage(stub):
    sleeps = Sleeps()
    limits = LimitsConfig(tokens_per_minute=10_000, expected_completion_fraction=0.25)
    client = OpenAIChatClient(limits, sleep=sleeps, clock=sleeps.clock)
    role = role_for(stub, max_tokens=2000)
    # the estimate (prompt + 500) is booked, not the full max_tokens: 15 calls fit a minute
    # only because each booking is corrected to the real, small usage afterwards
    for _ in range(15):
        await client.chat(role, MESSAGES)
    assert sleeps.calls == []
    usage = client.usage.roles["verifier"]
    assert client.rate_limiter.booked_tokens() == usage.prompt_tokens + usage.completion_tokens
    assert estimate_prompt_tokens(MESSAGES) + 500 < 10_000 / 15 * 2
    await client.aclose()


async def test_usage_and_latency_are_accounted_per_role():
    with StubJudgeServer(0.05) as stub:
        async with OpenAIChatClient() as client:
            a = [await client.chat(role_for(stub, name="rubricator"), MESSAGES) for _ in range(2)]
            b = await client.chat(role_for(stub, name="verifier"), MESSAGES, n=2)
    book = client.usage.as_dict()
    assert book["rubricator"]["calls"] == 2 and book["verifier"]["calls"] == 1
    assert book["rubricator"]["completion_tokens"] == sum(c[0].completion_tokens for c in a)
    assert book["verifier"]["completion_tokens"] == sum(c.completion_tokens for c in b)
    expected_prompt = max(1, len(MESSAGES[0]["content"]) // 4)
    assert book["rubricator"]["prompt_tokens"] == 2 * expected_prompt
    assert all(c[0].latency_s >= 0.05 for c in a)
    assert book["rubricator"]["latency_s"] >= 0.1
    assert client.usage.total_tokens > 0


# -- secrets ----------------------------------------------------------------------------------


async def test_api_key_never_reaches_errors_or_logs(monkeypatch, caplog):
    secret = f"sk-ropd-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("ROPD_TEST_JUDGE_KEY", secret)
    caplog.set_level(logging.DEBUG)
    sleeps = Sleeps()
    messages: list[str] = []
    # a server that echoes the key in its error message, then a retried failure, then a 401
    with StubJudgeServer(
        0.0, status_script=[503, 503, 401], error_message=f"Incorrect API key provided: {secret}"
    ) as stub:
        role = role_for(stub, api_key_env="ROPD_TEST_JUDGE_KEY")
        async with OpenAIChatClient(LimitsConfig(max_retries=3), sleep=sleeps) as client:
            with pytest.raises(JudgeError) as info:
                await client.chat(role, MESSAGES)
            messages.append(str(info.value))
            assert info.value.__cause__ is None and info.value.__suppress_context__
        # the key was really sent (so the test can fail)
        assert stub.headers[0]["authorization"] == f"Bearer {secret}"
    unreachable = RoleConfig(
        base_url=f"http://user:{secret}@127.0.0.1:{free_port()}/v1?key={secret}",
        model="m",
        api_key_env="ROPD_TEST_JUDGE_KEY",
    )
    async with OpenAIChatClient(LimitsConfig(max_retries=1), sleep=sleeps) as client:
        with pytest.raises(JudgeError) as info:
            await client.chat(unreachable, MESSAGES)
        messages.append(str(info.value))
    assert "HTTP 401" in messages[0] and "[redacted]" in messages[0]
    for text in [*messages, caplog.text, *(r.getMessage() for r in caplog.records)]:
        assert secret not in text
    assert any("retry" in r.getMessage() for r in caplog.records)


async def test_missing_key_variable_is_named_and_nothing_is_sent(stub, monkeypatch):
    monkeypatch.delenv("ROPD_TEST_MISSING_KEY", raising=False)
    async with OpenAIChatClient() as client:
        with pytest.raises(JudgeError, match="ROPD_TEST_MISSING_KEY is not set"):
            await client.chat(role_for(stub, api_key_env="ROPD_TEST_MISSING_KEY"), MESSAGES)
    assert stub.requests == 0


async def test_key_is_read_at_call_time(stub, monkeypatch):
    role = role_for(stub, api_key_env="ROPD_TEST_ROTATING_KEY")
    async with OpenAIChatClient() as client:
        monkeypatch.setenv("ROPD_TEST_ROTATING_KEY", "first-key")
        await client.chat(role, MESSAGES)
        monkeypatch.setenv("ROPD_TEST_ROTATING_KEY", "second-key")
        await client.chat(role, MESSAGES)
    assert [h["authorization"] for h in stub.headers] == ["Bearer first-key", "Bearer second-key"]


# -- open_chat_client -------------------------------------------------------------------------


async def test_open_chat_client_keeps_roles_with_an_endpoint(stub):
    roles = [role_for(stub, name="rubricator"), role_for(stub, name="verifier")]
    async with open_chat_client(roles, LimitsConfig(max_in_flight=2)) as (client, resolved):
        assert resolved == roles
        assert client.limits.max_in_flight == 2
        await client.chat(resolved[0], MESSAGES)
    assert stub.requests == 1
