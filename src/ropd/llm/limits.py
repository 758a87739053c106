"""Client-side rate limits: requests per minute and tokens per minute over a sliding window.

Requests are also paced: providers enforce a per-minute quota over shorter periods (a 600 RPM
limit behaves like 10 per second), so a burst of a whole minute's requests at once would be
answered with 429s. A cell-rate pacer spaces requests 60/rpm seconds apart on average and allows
bursts of at most one second's worth.

Token budgets are booked with an *estimate* when a request is sent (prompt estimate plus a
fraction of `max_tokens`) and corrected with the real usage when the reply arrives. Booking the
full `max_tokens` up front would throttle a judge whose answers are short far below its quota.
The clock and the sleep function are injectable so tests can run minutes of traffic instantly.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

WINDOW_S = 60.0

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]


def estimate_prompt_tokens(messages: Sequence[dict[str, Any]]) -> int:
    """A tokenizer-free estimate (about 4 characters a token, plus a few per message)."""
    chars = 0
    for message in messages:
        content = message.get("content", "")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):  # multi-part content: count the text parts
            chars += sum(
                len(str(part.get("text", ""))) for part in content if isinstance(part, dict)
            )
    return chars // 4 + 4 * len(messages) + 1


@dataclass
class Booking:
    """One request's entry in the window; `tokens` is corrected once the usage is known."""

    at: float
    tokens: int


class RateLimiter:
    """Sliding 60-second window plus request pacing, shared by every role of one client.

    `acquire` waits until one more request (and its estimated tokens) fits in both budgets.
    Waiters queue behind a lock, so they are served in arrival order. A single request larger
    than the whole token budget is let through when the window is empty, rather than never.
    """

    def __init__(
        self,
        requests_per_minute: float | None,
        tokens_per_minute: float | None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.rpm = requests_per_minute
        self.tpm = tokens_per_minute
        self._clock = clock
        self._sleep = sleep
        self._window: deque[Booking] = deque()
        self._lock: asyncio.Lock | None = None
        # pacing (GCRA): theoretical arrival time of the next request, spacing, burst tolerance
        self._interval = WINDOW_S / requests_per_minute if requests_per_minute else 0.0
        burst = max(1.0, (requests_per_minute or 0.0) / WINDOW_S)
        self._tolerance = (burst - 1.0) * self._interval
        self._tat = float("-inf")

    @property
    def enabled(self) -> bool:
        return self.rpm is not None or self.tpm is not None

    def _expire(self, now: float) -> None:
        while self._window and self._window[0].at <= now - WINDOW_S:
            self._window.popleft()

    def _wait_needed(self, now: float, tokens: int) -> float:
        """Seconds until the request fits (0 if it fits now)."""
        self._expire(now)
        waits = [0.0]
        if self.rpm is not None:
            waits.append(max(self._tat, now) - self._tolerance - now)
        if not self._window:
            return max(waits)
        if self.rpm is not None and len(self._window) + 1 > self.rpm:
            # the oldest entries must leave until one slot is free
            excess = len(self._window) + 1 - int(self.rpm)
            waits.append(self._window[excess - 1].at + WINDOW_S - now)
        if self.tpm is not None:
            used = sum(b.tokens for b in self._window)
            if used + tokens > self.tpm:
                freed = 0
                for booking in self._window:
                    freed += booking.tokens
                    if used - freed + tokens <= self.tpm:
                        break
                waits.append(booking.at + WINDOW_S - now)
        return max(waits)

    async def acquire(self, tokens: int) -> Booking:
        """Wait for room, then book one request with `tokens` estimated tokens."""
        if not self.enabled:
            return Booking(at=self._clock(), tokens=tokens)
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            while True:
                now = self._clock()
                wait = self._wait_needed(now, tokens)
                if wait <= 1e-9:  # float rounding of the pacing arithmetic
                    booking = Booking(at=now, tokens=tokens)
                    self._window.append(booking)
                    self._tat = max(self._tat, now) + self._interval
                    return booking
                await self._sleep(wait + 1e-3)

    @staticmethod
    def correct(booking: Booking, actual_tokens: int) -> None:
        """Replace the estimate with what the request really used."""
        booking.tokens = max(0, int(actual_tokens))

    def booked_tokens(self) -> int:
        """Tokens in the current window (for tests and progress displays)."""
        self._expire(self._clock())
        return sum(b.tokens for b in self._window)

    def booked_requests(self) -> int:
        self._expire(self._clock())
        return len(self._window)
