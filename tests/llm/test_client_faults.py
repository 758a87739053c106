"""OpenAIChatClient against misbehaving endpoints over real HTTP: nothing but JudgeError gets out.

Malformed 200 replies (HTML, cut or invalid JSON, no usable choices) are retried like transport
failures and end as "malformed reply" JudgeErrors; a refused key or an unknown model stops at
once with JudgeUnavailable; secrets never reach a message.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from openai import AsyncOpenAI
from ropd_dev.faults import ENVELOPE_FAULTS, HANG, RESET, FaultJudgeServer
from tests.llm.local_http import LocalHTTPServer, QuietHandler

from ropd import redact
from ropd.errors import JudgeError, JudgeUnavailable
from ropd.llm.client import OpenAIChatClient
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.llm.transport import DirectPoster
from ropd.reward.induction import validate_rubric
from ropd.reward.schemas import rubric_schema
from ropd.testing import StubJudgeServer

MESSAGES = [{"role": "user", "content": "Grade this."}]


class Sleeps:
    """A sleep that records and returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await asyncio.sleep(0)


def role_for(server: StubJudgeServer, **update: object) -> RoleConfig:
    return RoleConfig(name="verifier", base_url=server.base_url, model="stub").model_copy(
        update=update
    )


class RawServer(LocalHTTPServer):
    """An endpoint answering every POST with status 200 and the same raw bytes."""

    def __init__(self, body: bytes, content_type: str = "application/json") -> None:
        self.body, self.content_type, self.requests = body, content_type, 0
        outer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                self.body()
                outer.requests += 1
                self.send(200, outer.body, outer.content_type)

        super().__init__(Handler)


@pytest.fixture
def faulty() -> Iterator[FaultJudgeServer]:
    with FaultJudgeServer(fault_rate=0.0) as server:
        yield server


# -- malformed 200 replies --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ENVELOPE_FAULTS)
async def test_malformed_200_is_a_judge_error(kind: str):
    with FaultJudgeServer(fault_rate=1.0, faults=[kind]) as server:
        async with OpenAIChatClient(LimitsConfig(max_retries=0)) as client:
            with pytest.raises(JudgeError) as info:
                await client.chat(role_for(server), MESSAGES, json_schema=rubric_schema(4, 6))
        assert server.requests == 1
    assert type(info.value) is JudgeError
    assert info.value.__cause__ is None and info.value.__suppress_context__
    message = str(info.value)
    assert "malformed reply: " in message
    assert "role verifier" in message and "model stub" in message and "127.0.0.1" in message
    assert client.usage.roles["verifier"].failed_calls == 1
    assert client.in_flight == 0


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "empty body"),
        (b"[1, 2]", "JSON array, not an object"),
        (b'"ok"', "JSON string, not an object"),
        (b'{"error": {"message": "upstream failed"}}', "no choices (error: upstream failed)"),
        (b'{"choices": "none"}', "choices is a JSON string"),
        (b'{"choices": []}', "choices is empty"),
        (b'{"choices": [7]}', "choice 0 is a JSON number"),
        (b'{"choices": [{"finish_reason": "stop"}]}', "choice 0 has no message"),
        (b'{"choices": [{"message": {"content": {"a": 1}}}]}', "content is a JSON object"),
        (b'{"choices": [{"message": {"content": ["x"]}}]}', "content is a JSON array"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
    ],
)
async def test_every_unusable_envelope_is_malformed(body: bytes, says: str):
    with RawServer(body) as server:
        async with OpenAIChatClient(LimitsConfig(max_retries=0)) as client:
            with pytest.raises(JudgeError, match="malformed reply") as info:
                await client.chat(role_for(server), MESSAGES)
    assert type(info.value) is JudgeError and says in str(info.value)
    assert server.requests == 1


async def test_malformed_replies_are_retried_then_reported():
    sleeps = Sleeps()
    with RawServer(b"<html>busy</html>", "text/html") as server:
        async with OpenAIChatClient(LimitsConfig(max_retries=2), sleep=sleeps) as client:
            with pytest.raises(JudgeError) as info:
                await client.chat(role_for(server), MESSAGES)
    assert "malformed reply after 3 attempts: body is not valid JSON (text/html" in str(info.value)
    assert server.requests == 3 and len(sleeps.calls) == 2
    assert client.retries == {"verifier": 2}


async def test_null_content_and_missing_usage_are_accepted():
    body = {"choices": [{"message": {"role": "assistant", "content": None}}]}
    with RawServer(json.dumps(body).encode()) as server:
        async with OpenAIChatClient(LimitsConfig(max_retries=0)) as client:
            out = await client.chat(role_for(server), MESSAGES)
    assert out[0].text == "" and out[0].finish_reason is None
    assert client.usage.roles["verifier"].calls == 1


@pytest.mark.parametrize("kind", [*ENVELOPE_FAULTS, RESET])
async def test_one_bad_reply_then_a_good_one_succeeds(kind: str):
    sleeps = Sleeps()
    with FaultJudgeServer(fault_rate=0.0, script=[kind]) as server:
        async with OpenAIChatClient(LimitsConfig(max_retries=3), sleep=sleeps) as client:
            out = await client.chat(role_for(server), MESSAGES, json_schema=rubric_schema(4, 6))
        assert server.requests == 2 and server.stats()["faults"] == {kind: 1}
    validate_rubric(json.loads(out[0].text), 4, 6)
    assert client.retries == {"verifier": 1} and len(sleeps.calls) == 1
    usage = client.usage.roles["verifier"]
    assert usage.calls == 1 and usage.failed_calls == 0
    assert client.in_flight == 0


async def test_a_hang_past_the_timeout_is_retried():
    with FaultJudgeServer(fault_rate=0.0, hang_s=1.0, script=[HANG, HANG]) as server:
        role = role_for(server, timeout_s=0.3)
        limits = LimitsConfig(max_retries=0)
        async with OpenAIChatClient(limits) as client:
            with pytest.raises(JudgeError, match="no response: timed out") as info:
                await client.chat(role, MESSAGES)
            assert type(info.value) is JudgeError
        limits = LimitsConfig(max_retries=2, backoff_base_s=0.0)
        async with OpenAIChatClient(limits) as client:
            out = await client.chat(role, MESSAGES)
        assert out[0].text and client.retries == {"verifier": 1}
        assert server.outcomes == [HANG, HANG, "clean"]


class _OnceBroken(httpx2.AsyncBaseTransport):
    """A real transport that first fails with an exception the SDK does not wrap."""

    def __init__(self) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.failed = False

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if not self.failed:
            self.failed = True
            raise RuntimeError("transport bug")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class _BrokenTransportClient(OpenAIChatClient):
    def _sdk_client(self, role: RoleConfig, base_url: str) -> AsyncOpenAI:
        key = (base_url, role.api_key_env)
        if key not in self._sdk:
            http = httpx2.AsyncClient(transport=_OnceBroken())
            self._sdk[key] = AsyncOpenAI(
                base_url=base_url, api_key="none", max_retries=0, http_client=http
            )
        return self._sdk[key]


class _OnceBrokenPoster(DirectPoster):
    """The direct path's poster, failing its first request with an unforeseen exception."""

    broken = True

    async def post(self, *args: Any, **kwargs: Any) -> Any:
        if self.broken:
            self.broken = False
            raise RuntimeError("transport bug")
        return await super().post(*args, **kwargs)


class _BrokenDirectClient(OpenAIChatClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._direct = _OnceBrokenPoster(self.limits)


@pytest.mark.parametrize(
    ("transport", "client_class"),
    [("openai", _BrokenTransportClient), ("aiohttp", _BrokenDirectClient)],
)
async def test_an_unforeseen_exception_is_a_retryable_transport_failure(
    faulty, transport, client_class
):
    sleeps = Sleeps()
    limits = LimitsConfig(max_retries=0, http_transport=transport)
    async with client_class(limits, sleep=sleeps) as client:
        with pytest.raises(JudgeError, match="transport error: RuntimeError: transport bug"):
            await client.chat(role_for(faulty), MESSAGES)
        assert client.in_flight == 0
    limits = limits.model_copy(update={"max_retries": 1})
    async with client_class(limits, sleep=sleeps) as client:
        out = await client.chat(role_for(faulty), MESSAGES)
    assert out[0].text and client.retries == {"verifier": 1}


async def test_cancellation_goes_through_and_frees_the_slot():
    with FaultJudgeServer(fault_rate=0.0, hang_s=2.0, script=[HANG]) as server:
        async with OpenAIChatClient(LimitsConfig(max_in_flight=1)) as client:
            task = asyncio.create_task(client.chat(role_for(server), MESSAGES))
            await asyncio.sleep(0.2)
            assert client.in_flight == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert client.in_flight == 0
            out = await asyncio.wait_for(client.chat(role_for(server), MESSAGES), 5)
            assert out[0].text


# -- requests that cannot succeed at all ------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_key_stops_at_once(status: int, monkeypatch):
    monkeypatch.setenv("ROPD_FAULTS_KEY", "some-key-value")
    sleeps = Sleeps()
    with StubJudgeServer(0.0, status_script=[status], error_message="invalid key") as server:
        role = role_for(server, api_key_env="ROPD_FAULTS_KEY")
        async with OpenAIChatClient(LimitsConfig(max_retries=5), sleep=sleeps) as client:
            with pytest.raises(JudgeUnavailable) as info:
                await client.chat(role, MESSAGES)
        assert server.requests == 1
    assert sleeps.calls == [] and client.retries == {}
    message = str(info.value)
    assert f"rejected the API key (HTTP {status}): invalid key" in message
    assert "check the variable ROPD_FAULTS_KEY" in message
    assert message.startswith("role verifier: model stub at 127.0.0.1:")
    assert client.usage.roles["verifier"].failed_calls == 1


async def test_refused_default_key_names_openai_api_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with StubJudgeServer(0.0, status_script=[401]) as server:
        async with OpenAIChatClient() as client:
            with pytest.raises(JudgeUnavailable, match="no key was sent: name the variable"):
                await client.chat(role_for(server), MESSAGES)


async def test_unknown_model_stops_at_once():
    sleeps = Sleeps()
    with StubJudgeServer(0.0, status_script=[404], error_message="model 'x' not found") as stub:
        async with OpenAIChatClient(LimitsConfig(max_retries=5), sleep=sleeps) as client:
            with pytest.raises(JudgeUnavailable) as info:
                await client.chat(role_for(stub), MESSAGES)
        assert stub.requests == 1 and sleeps.calls == []
    message = str(info.value)
    assert "HTTP 404" in message and "not served there" in message
    assert "base URL path /v1 is wrong" in message and "model 'x' not found" in message


async def test_wrong_base_url_path_stops_at_once(faulty):
    role = role_for(faulty).model_copy(update={"base_url": faulty.base_url[:-3] + "/api"})
    async with OpenAIChatClient(LimitsConfig(max_retries=5)) as client:
        with pytest.raises(JudgeUnavailable, match=r"base URL path /api is wrong: no route"):
            await client.chat(role, MESSAGES)


@pytest.mark.parametrize("status", [400, 422])
async def test_other_client_errors_stay_per_request(status: int):
    with StubJudgeServer(0.0, status_script=[status], error_message="context too long") as stub:
        async with OpenAIChatClient() as client:
            with pytest.raises(JudgeError) as info:
                await client.chat(role_for(stub), MESSAGES)
    assert type(info.value) is JudgeError
    assert f"HTTP {status}: context too long" in str(info.value)


# -- secrets ----------------------------------------------------------------------------------


async def test_a_key_echoed_by_the_server_never_reaches_a_message(monkeypatch, caplog):
    key = "weird-key-12345"  # no well-known shape: only the remembered value can catch it
    monkeypatch.setenv("MY_KEY", key)
    caplog.set_level(logging.WARNING, logger="ropd.llm")
    messages = []
    sleeps = Sleeps()
    for script in ([401], [503, 400]):
        with StubJudgeServer(
            0.0, status_script=script, error_message=f"Incorrect API key provided: {key}."
        ) as stub:
            role = role_for(stub, api_key_env="MY_KEY")
            async with OpenAIChatClient(LimitsConfig(max_retries=3), sleep=sleeps) as client:
                with pytest.raises(JudgeError) as info:
                    await client.chat(role, MESSAGES)
            assert stub.headers[0]["authorization"] == f"Bearer {key}"  # it was really sent
        messages.append(str(info.value))
    assert isinstance(info.value, JudgeError) and not isinstance(info.value, JudgeUnavailable)
    assert "check the variable MY_KEY" in messages[0]
    assert all(f"Incorrect API key provided: {redact.REDACTED}." in m for m in messages)
    assert caplog.records  # the 503 was logged before its retry
    for text in [*messages, caplog.text]:
        assert key not in text


# -- structured flag --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "schema", "structured"),
    [
        ("json_schema", True, True),
        ("json_object_schema", True, True),
        ("json_object", True, False),
        ("none", True, False),
        ("json_schema", False, False),
    ],
)
async def test_structured_says_whether_the_endpoint_enforced_the_schema(
    faulty, mode: str, schema: bool, structured: bool
):
    async with OpenAIChatClient() as client:
        client.set_format_mode(faulty.base_url, mode)  # type: ignore[arg-type]
        out = await client.chat(
            role_for(faulty), MESSAGES, json_schema=rubric_schema(4, 6) if schema else None, n=2
        )
    assert [c.structured for c in out] == [structured, structured]


async def test_structured_follows_a_downgrade():
    with StubJudgeServer(0.0, reject_formats={"json_schema", "json_object_schema"}) as stub:
        async with OpenAIChatClient() as client:
            out = await client.chat(role_for(stub), MESSAGES, json_schema=rubric_schema(4, 6))
    assert client.format_mode(stub.base_url) == "json_object" and not out[0].structured
