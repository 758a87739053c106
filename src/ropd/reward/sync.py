"""`score_groups` for scripts and notebooks: the async scorer behind one blocking call."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine, Iterable
from pathlib import Path
from typing import Any, TypeVar

from ropd.llm.config import LimitsConfig
from ropd.llm.types import ChatClient
from ropd.reward.base import GroupLike
from ropd.reward.config import ScorerConfig
from ropd.reward.types import GroupResult

T = TypeVar("T")


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to the end, also from inside a running event loop (Jupyter, IPython).

    With a loop already running in this thread, the coroutine runs on a fresh loop in a worker
    thread, so a notebook cell can call a blocking function without `await`.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def score_groups(
    groups: Iterable[GroupLike],
    config: ScorerConfig | None = None,
    *,
    limits: LimitsConfig | None = None,
    traces: str | Path | Any | None = None,
    client: ChatClient | None = None,
    step: int | None = None,
    probe: bool = True,
) -> list[GroupResult]:
    """Score `groups` with ROPD and return one result per group, in input order.

    Opens the judge (starting the embedded model when a role has no `base_url`), scores every
    group concurrently within `limits`, and closes everything again. Groups may be `Group`s or
    plain dicts with the same fields. Endpoints are probed once first (reachable, key accepted,
    model served) unless `probe=False`.
    """
    from ropd.reward.group_scorer import GroupScorer

    async def go() -> list[GroupResult]:
        async with GroupScorer.open(
            config or ScorerConfig(), limits=limits, traces=traces, client=client, probe=probe
        ) as scorer:
            return await scorer.score_groups(list(groups), step=step)

    return run_blocking(go())
