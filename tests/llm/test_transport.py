"""The HTTP library under the SDK: both choices work end to end, the pool holds the in-flight limit."""

from __future__ import annotations

import asyncio

import pytest

from ropd.llm.client import OpenAIChatClient
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.llm.transport import pool_size
from ropd.testing import StubJudgeServer, held_until
from ropd.testing.stub_server import STUB_MODEL


@pytest.mark.parametrize("transport", ["aiohttp", "openai"])
async def test_every_allowed_request_is_in_flight_at_once(transport: str) -> None:
    """150 requests under a limit of 150: the server holds all of them together (the SDK's
    own default pool keeps 100 connections alive, and aiohttp's default connector opens 100).
    Each request waits at the stub until all 150 are there: counted, not raced against a latency."""
    with StubJudgeServer(latency_s=0.0, policy=held_until(150)) as stub:
        role = RoleConfig(base_url=stub.base_url, model=STUB_MODEL)
        limits = LimitsConfig(max_in_flight=150, http_transport=transport)
        async with OpenAIChatClient(limits) as client:
            replies = await asyncio.gather(
                *(client.chat(role, [{"role": "user", "content": f"q{i}"}]) for i in range(150))
            )
        assert all(r[0].text for r in replies)
        assert stub.max_concurrent == 150
        assert client.usage.roles["judge"].calls == 150


def test_pool_size_follows_the_in_flight_limit_unless_set() -> None:
    assert pool_size(LimitsConfig(max_in_flight=300)) == 300
    assert pool_size(LimitsConfig(max_in_flight=300, max_connections=50)) == 50


async def test_a_refused_connection_is_named_as_such_not_as_a_timeout() -> None:
    """aiohttp's refusal reaches the SDK as a connect timeout; the message says what happened."""
    from ropd.llm.types import JudgeError

    with StubJudgeServer(latency_s=0) as stub:
        url = stub.base_url
    role = RoleConfig(base_url=url, model=STUB_MODEL)  # the server is gone: connection refused

    async def no_sleep(_: float) -> None:
        return None

    async with OpenAIChatClient(LimitsConfig(max_retries=0), sleep=no_sleep) as client:
        with pytest.raises(JudgeError, match=r"no response: connection error \(\w+"):
            await client.chat(role, [{"role": "user", "content": "q"}])


@pytest.mark.parametrize("proxy", [None, "http://proxy.invalid:3128"])
async def test_proxy_variables_are_honoured_only_when_set(monkeypatch, proxy) -> None:
    """trust_env costs a thread hop per request (proxy and ~/.netrc lookups): off without one."""
    from ropd.llm.transport import PROXY_VARIABLES, DirectPoster

    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    if proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy)
    poster = DirectPoster(LimitsConfig())
    session = poster._open()
    try:
        assert session.trust_env is bool(proxy)
    finally:
        await poster.aclose()
