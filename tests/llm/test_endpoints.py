"""Several endpoints per role: least-loaded routing, per-endpoint caps, failing ones skipped."""

from __future__ import annotations

import asyncio

import pytest

from ropd.llm.client import OpenAIChatClient
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.llm.endpoints import EndpointRouter
from ropd.reward.config import ScorerConfig
from ropd.testing import StubJudgeServer
from ropd.testing.stub_server import STUB_MODEL


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_the_least_loaded_endpoint_gets_the_next_request() -> None:
    router = EndpointRouter()
    a = await router.acquire(["http://a", "http://b"])
    b = await router.acquire(["http://a", "http://b"])
    assert {a.url, b.url} == {"http://a", "http://b"}
    router.release(a, failed=False)
    again = await router.acquire(["http://a", "http://b"])
    assert again is a  # a has nothing in flight now, b has one


async def test_a_capped_endpoint_makes_requests_wait_for_a_free_slot() -> None:
    router = EndpointRouter()
    router.set_cap("http://local", 1)
    first = await router.acquire(["http://local"])
    second = asyncio.ensure_future(router.acquire(["http://local"]))
    await asyncio.sleep(0.01)
    assert not second.done()
    router.release(first, failed=False)
    assert (await asyncio.wait_for(second, 1)).url == "http://local"


async def test_an_endpoint_failing_in_a_row_is_skipped_for_a_while_then_tried_again() -> None:
    clock = Clock()
    router = EndpointRouter(clock=clock, failures_to_skip=2, skip_s=10)
    urls = ["http://bad", "http://good"]
    bad = router.state("http://bad")
    for _ in range(2):
        router.release(await router.acquire(["http://bad"]), failed=True)
    for _ in range(5):  # skipped although it has nothing in flight
        endpoint = await router.acquire(urls)
        assert endpoint.url == "http://good"
    assert bad.down_until == 10
    clock.now = 10.5
    assert (await router.acquire(urls)).url == "http://bad"  # back after the pause
    router.release(bad, failed=True)
    router.release(bad, failed=True)
    assert bad.down_until == 10.5 + 20  # the pause doubles on a new strike
    router.release(await router.acquire(["http://bad"]), failed=False)
    assert bad.down_until == 0 and bad.skips == 0  # one success: healthy again


async def test_when_every_endpoint_is_skipped_the_first_to_return_is_used() -> None:
    clock = Clock()
    router = EndpointRouter(clock=clock, failures_to_skip=1, skip_s=10)
    router.release(await router.acquire(["http://a"]), failed=True)
    clock.now = 1
    router.release(await router.acquire(["http://b"]), failed=True)
    assert (await router.acquire(["http://a", "http://b"])).url == "http://a"


async def test_a_4xx_says_nothing_about_the_endpoint() -> None:
    router = EndpointRouter(failures_to_skip=1)
    router.release(await router.acquire(["http://a"]), failed=None)
    assert router.state("http://a").down_until == 0


def test_endpoint_lists_in_configs() -> None:
    role = RoleConfig(base_url="http://a/v1, http://b/v1", model="m")
    assert role.endpoints == ["http://a/v1", "http://b/v1"]
    assert RoleConfig(base_url=["http://a/v1", "http://b/v1"], model="m").base_urls == [
        "http://b/v1"
    ]
    with pytest.raises(ValueError, match="listed twice"):
        RoleConfig(base_url="http://a/v1,http://a/v1/", model="m")
    # a role with its own endpoint does not inherit the judge's replicas
    config = ScorerConfig(
        judge={"base_url": ["http://a/v1", "http://b/v1"], "model": "m"},
        verifier={"base_url": "http://c/v1", "model": "m2"},
    )
    assert config.rubricator.endpoints == ["http://a/v1", "http://b/v1"]
    assert config.verifier.endpoints == ["http://c/v1"]


def ask(client: OpenAIChatClient, role: RoleConfig, count: int):
    return asyncio.gather(
        *(client.chat(role, [{"role": "user", "content": f"q{i}"}]) for i in range(count))
    )


async def test_replicas_share_the_load_over_http() -> None:
    with StubJudgeServer(latency_s=0.2) as one, StubJudgeServer(latency_s=0.2) as two:
        role = RoleConfig(base_url=[one.base_url, two.base_url], model=STUB_MODEL)
        async with OpenAIChatClient(LimitsConfig(max_in_flight=40)) as client:
            replies = await ask(client, role, 40)
        assert len(replies) == 40
        assert one.requests == two.requests == 20  # least-loaded: equal latency, equal share


async def test_a_dead_replica_is_skipped_and_no_request_is_lost() -> None:
    with StubJudgeServer(latency_s=0.05) as alive:
        with StubJudgeServer(latency_s=0) as gone:
            dead_url = gone.base_url
        role = RoleConfig(base_url=[dead_url, alive.base_url], model=STUB_MODEL)

        async def no_sleep(_: float) -> None:
            return None

        limits = LimitsConfig(max_in_flight=4, max_retries=3)
        async with OpenAIChatClient(limits, sleep=no_sleep) as client:
            replies = await ask(client, role, 30)
            dead = client.router.state(dead_url)
        assert len(replies) == 30 and alive.requests == 30
        # the dead one was tried until it was set aside, then left alone
        assert dead.failures <= 3 + 4 and dead.skips >= 1
