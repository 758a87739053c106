"""Several endpoints serving one model (vLLM replicas, several gateways): which one gets a request.

A request goes to the healthy endpoint with the fewest requests in flight (least-loaded: a slow
or busy replica gets less, without any weights to tune). An endpoint that fails
`failures_to_skip` times in a row (connection errors, timeouts, 5xx, malformed replies) is
skipped for `skip_s` seconds, doubled on each new strike up to `max_skip_s`; one success makes it
healthy again. When every endpoint is being skipped, the one that comes back first is used anyway:
a request is never refused for health alone (the retry loop decides when to give up).

An endpoint may have its own cap on requests in flight (the embedded llama.cpp server answers
one request at a time: queueing hundreds there would only run into timeouts); a request waits
while every endpoint it may use is at its cap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ropd.llm.limits import Clock


@dataclass
class EndpointState:
    """Load and health of one endpoint, seen by one client."""

    url: str
    cap: int | None = None
    in_flight: int = 0
    requests: int = 0
    failures: int = 0
    strikes: int = 0  # consecutive failures
    skips: int = 0  # times it was set aside
    down_until: float = 0.0

    def full(self) -> bool:
        return self.cap is not None and self.in_flight >= self.cap


class EndpointRouter:
    """Least-loaded choice among healthy endpoints, per-endpoint caps, failure cool-down."""

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        failures_to_skip: int = 3,
        skip_s: float = 30.0,
        max_skip_s: float = 300.0,
    ) -> None:
        self._clock = clock
        self.failures_to_skip = failures_to_skip
        self.skip_s = skip_s
        self.max_skip_s = max_skip_s
        self.endpoints: dict[str, EndpointState] = {}
        self._waiters: list[asyncio.Future[None]] = []

    def state(self, url: str) -> EndpointState:
        key = url.rstrip("/")
        if key not in self.endpoints:
            self.endpoints[key] = EndpointState(key)
        return self.endpoints[key]

    def set_cap(self, url: str, cap: int | None) -> None:
        """At most `cap` requests in flight at `url` (None: only the client's global limit)."""
        self.state(url).cap = cap

    async def acquire(self, urls: Sequence[str]) -> EndpointState:
        """The endpoint for the next request among `urls`, counted in flight until `release`."""
        states = [self.state(u) for u in urls]
        while True:
            chosen = self._choose(states)
            if chosen is not None:
                chosen.in_flight += 1
                chosen.requests += 1
                return chosen
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _choose(self, states: list[EndpointState]) -> EndpointState | None:
        open_ = [s for s in states if not s.full()]
        if not open_:
            return None
        now = self._clock()
        healthy = [s for s in open_ if s.down_until <= now]
        pool = healthy or [min(open_, key=lambda s: s.down_until)]
        return min(pool, key=lambda s: s.in_flight / (s.cap or 1) if s.cap else s.in_flight)

    def release(self, endpoint: EndpointState, *, failed: bool | None) -> None:
        """The request at `endpoint` ended: `failed` True (an endpoint fault), False (answered),
        None (said nothing about the endpoint's health, e.g. a 429 or a 400)."""
        endpoint.in_flight -= 1
        if failed is True:
            endpoint.failures += 1
            endpoint.strikes += 1
            if endpoint.strikes >= self.failures_to_skip:
                pause = min(self.max_skip_s, self.skip_s * 2**endpoint.skips)
                endpoint.down_until = self._clock() + pause
                endpoint.skips += 1
                endpoint.strikes = 0
        elif failed is False:
            endpoint.strikes = 0
            endpoint.skips = 0
            endpoint.down_until = 0.0
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:  # each looks again; whoever finds its endpoints full waits again
            if not waiter.done():
                waiter.set_result(None)

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Per endpoint: requests, failures, in flight and whether it is being skipped now."""
        now = self._clock()
        return {
            url: {
                "requests": s.requests,
                "failures": s.failures,
                "in_flight": s.in_flight,
                "skipped": float(s.down_until > now),
            }
            for url, s in sorted(self.endpoints.items())
        }


__all__ = ["EndpointRouter", "EndpointState"]
