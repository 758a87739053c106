"""The sliding-window rate limiter and Retry-After parsing, on a fake clock."""

from __future__ import annotations

import asyncio
import email.utils
import itertools

from ropd.llm.client import parse_retry_after
from ropd.llm.limits import RateLimiter, estimate_prompt_tokens


class FakeTime:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


async def test_requests_per_minute_are_paced_evenly():
    t = FakeTime()
    limiter = RateLimiter(3, None, clock=t.clock, sleep=t.sleep)
    times = []
    for _ in range(7):
        await limiter.acquire(10)
        times.append(t.now - 1000.0)
    # 3 per minute: one every 20 s, never more than 3 in any 60 s window
    assert times[0] == 0.0
    for earlier, later in itertools.pairwise(times):
        assert 20.0 <= later - earlier < 20.1
    assert all(sum(a <= x < a + 60.0 for x in times) <= 3 for a in times)


async def test_bursts_of_one_second_worth_are_allowed():
    t = FakeTime()
    limiter = RateLimiter(600, None, clock=t.clock, sleep=t.sleep)
    for _ in range(10):
        await limiter.acquire(1)
    assert t.sleeps == []  # 600 RPM = 10 a second may go at once
    for _ in range(600):
        await limiter.acquire(1)
    # the long-run rate is the limit: 610 requests take about a minute, not less
    assert 60.0 <= t.now - 1000.0 < 61.0


async def test_tokens_per_minute_books_estimates_and_corrections():
    t = FakeTime()
    limiter = RateLimiter(None, 1000, clock=t.clock, sleep=t.sleep)
    first = await limiter.acquire(600)
    # the estimate was pessimistic: the reply used only 100 tokens
    RateLimiter.correct(first, 100)
    assert limiter.booked_tokens() == 100
    await limiter.acquire(600)  # 100 + 600 <= 1000: no wait
    assert t.sleeps == []
    await limiter.acquire(600)  # 700 + 600 > 1000: waits until the first leaves the window
    assert len(t.sleeps) == 1 and 60.0 <= t.now - 1000.0 < 61.0


async def test_a_request_larger_than_the_budget_passes_on_an_empty_window():
    t = FakeTime()
    limiter = RateLimiter(None, 100, clock=t.clock, sleep=t.sleep)
    await limiter.acquire(500)
    assert t.sleeps == []
    await limiter.acquire(500)  # must wait for the window to empty, then pass
    assert 60.0 <= t.now - 1000.0 < 61.0


async def test_concurrent_waiters_all_get_through_in_order():
    t = FakeTime()
    limiter = RateLimiter(2, None, clock=t.clock, sleep=t.sleep)
    order: list[int] = []

    async def one(i: int) -> None:
        await limiter.acquire(1)
        order.append(i)

    await asyncio.gather(*(one(i) for i in range(6)))
    assert order == list(range(6))
    assert 150.0 <= t.now - 1000.0 < 151.0  # 2 per minute: one every 30 s


async def test_disabled_limiter_never_sleeps():
    t = FakeTime()
    limiter = RateLimiter(None, None, clock=t.clock, sleep=t.sleep)
    for _ in range(100):
        await limiter.acquire(10**6)
    assert t.sleeps == [] and not limiter.enabled


def test_retry_after_forms():
    assert parse_retry_after({"retry-after": "7"}) == 7.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    # ms wins over seconds when both are present (finer)
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "3"}) == 0.25
    date = email.utils.formatdate(1_000_030.0, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=1_000_000.0) == 30.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    assert parse_retry_after(None) is None


def test_prompt_estimate_grows_with_text():
    short = estimate_prompt_tokens([{"role": "user", "content": "hi"}])
    long = estimate_prompt_tokens([{"role": "user", "content": "x" * 4000}])
    assert short < 10 and 1000 <= long < 1010
    parts = [{"role": "user", "content": [{"type": "text", "text": "y" * 400}]}]
    assert estimate_prompt_tokens(parts) >= 100
