"""The HTTP layer under the OpenAI SDK: which library, and a pool as large as the work.

Measured with `ropd bench judge` (1 s stub judge in its own process, G = 8, K = 4): at 256 and
1,024 groups in flight the SDK's default (httpx, a pool of 1,000 connections of which only 100
are kept alive) spends 9-13 ms of client CPU per group, much of it opening connections again;
aiohttp with every connection kept alive spends about half. The pool is sized to the in-flight
limit so that no request waits for a connection while the limit lets it go.
"""

from __future__ import annotations

import sys
from typing import Any

import openai

from ropd import redact
from ropd.llm.config import LimitsConfig

log = redact.logger(__name__)


def _http_module() -> Any:
    """The HTTP library the installed SDK is built on (httpx2 in openai 3, httpx before)."""
    base = openai.DefaultAsyncHttpxClient.__mro__[1]  # the library's own AsyncClient
    return sys.modules[base.__module__.partition(".")[0]]


HTTP = _http_module()
# What the SDK returns unparsed when asked for it (`cast_to=RESPONSE`).
RESPONSE: type = HTTP.Response


def pool_size(limits: LimitsConfig) -> int:
    return limits.max_connections or limits.max_in_flight


def http_client(limits: LimitsConfig) -> Any:
    """The SDK's HTTP client for one endpoint, with the configured library and pool size."""
    size = pool_size(limits)
    pool = HTTP.Limits(max_connections=size, max_keepalive_connections=size)
    if limits.http_transport == "aiohttp":
        try:
            return openai.DefaultAioHttpClient(limits=pool)
        except (AttributeError, RuntimeError) as error:  # an SDK without it, or no aiohttp
            log.warning("aiohttp transport unavailable (%s); using httpx", error)
    return openai.DefaultAsyncHttpxClient(limits=pool)


__all__ = ["HTTP", "RESPONSE", "http_client", "pool_size"]
