"""The HTTP layer of judge requests: which library, and a pool as large as the work.

Measured with `ropd bench judge` (1 s stub judge in its own process, G = 8, K = 4, two requests
per group) on a 2-core machine, client CPU per group:

- through the OpenAI SDK on its default httpx stack (a pool of 1,000 connections of which only
  100 stay open): 9-18 ms at 256-1,024 groups in flight, much of it opening connections again;
- through the SDK on aiohttp with every connection kept alive: 3.4-3.6 ms;
- posted directly on a kept-alive aiohttp session (`DirectPoster`, the default): the SDK's
  request building and response wrapping, about 1 ms per request, are gone.

`DirectPoster` raises the SDK's own error types (`openai.APIStatusError` with the body and
headers, `APITimeoutError`, `APIConnectionError`), so everything that reads errors (retries,
Retry-After, the messages) is the same on either path. `http_transport: openai` keeps the whole
request inside the SDK (httpx, its proxy and environment handling), for endpoints that need it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

import aiohttp
import openai

from ropd.llm.config import LimitsConfig


def _http_module() -> Any:
    """The HTTP library the installed SDK is built on (httpx2 in openai 3, httpx before)."""
    base = openai.DefaultAsyncHttpxClient.__mro__[1]  # the library's own AsyncClient
    return sys.modules[base.__module__.partition(".")[0]]


HTTP = _http_module()
PROXY_VARIABLES = tuple(
    case(name) for name in ("http_proxy", "https_proxy", "all_proxy") for case in (str, str.upper)
)
# What the SDK returns unparsed when asked for it (`cast_to=RESPONSE`).
RESPONSE: type = HTTP.Response


def pool_size(limits: LimitsConfig) -> int:
    return limits.max_connections or limits.max_in_flight


def http_client(limits: LimitsConfig) -> Any:
    """The SDK's own HTTP client (httpx) for one endpoint, with a pool as large as the limit."""
    size = pool_size(limits)
    pool = HTTP.Limits(max_connections=size, max_keepalive_connections=size)
    return openai.DefaultAsyncHttpxClient(limits=pool)


@dataclass(frozen=True)
class RawReply:
    """A 2xx reply: its body and headers (names lower-cased), read whole."""

    content: bytes
    headers: dict[str, str]


class DirectPoster:
    """JSON POSTs on one kept-alive aiohttp session, failures raised as the SDK raises them.

    One session (one connection pool of `pool_size(limits)`) serves every endpoint; it is made
    on first use, in the event loop that sends, and closed by `aclose`.
    """

    def __init__(self, limits: LimitsConfig) -> None:
        self.limits = limits
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=pool_size(self.limits), limit_per_host=0)
            # Proxy variables apply as they do for the SDK; without any, trust_env stays off:
            # it makes aiohttp read proxy settings and ~/.netrc in a thread on every request.
            proxied = any(os.environ.get(name) for name in PROXY_VARIABLES)
            self._session = aiohttp.ClientSession(connector=connector, trust_env=proxied)
        return self._session

    async def post(
        self, url: str, body: dict[str, Any], *, api_key: str, timeout_s: float
    ) -> RawReply:
        headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        data = json.dumps(body, ensure_ascii=False).encode()
        try:
            async with self._open().post(
                url, data=data, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as reply:
                content = await reply.read()
                status = reply.status
                reply_headers = {k.lower(): v for k, v in reply.headers.items()}
        except (TimeoutError, asyncio.TimeoutError) as error:
            raise openai.APITimeoutError(request=_request(url)) from error
        except aiohttp.ClientError as error:
            raise openai.APIConnectionError(request=_request(url)) from error
        if status >= 300:
            raise _status_error(_request(url), status, reply_headers, content)
        return RawReply(content, reply_headers)

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()


def _request(url: str) -> Any:
    """The request as the SDK's error types want it (built only for errors: it costs a URL
    parse, a third of a millisecond, which thousands of successful requests need not pay)."""
    return HTTP.Request("POST", url)


def _status_error(
    request: Any, status: int, headers: dict[str, str], content: bytes
) -> openai.APIStatusError:
    """The SDK's error for a refused request, with the server's body and headers."""
    response = HTTP.Response(status, headers=headers, content=content, request=request)
    try:
        body: Any = json.loads(content)
    except ValueError:
        body = content.decode("utf-8", "replace")
    return openai.APIStatusError(f"Error code: {status} - {body}", response=response, body=body)


__all__ = ["HTTP", "RESPONSE", "DirectPoster", "RawReply", "http_client", "pool_size"]
