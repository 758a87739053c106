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

Redirects are followed only within the endpoint's own origin (scheme, host and port), on both
paths: aiohttp and the SDK's httpx both follow a 307/308 to any host, body included, so a
redirect elsewhere would hand every prompt to another server (both drop the Authorization
header there, bar httpx on an http to https hop). A redirect to another origin is
`RedirectRefused` before anything is sent there; `DirectPoster` follows the others itself.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

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
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
_DEFAULT_PORTS = {"http": 80, "https": 443}


class RedirectRefused(openai.APIConnectionError):
    """A redirect that was not followed: to another origin, or one too many (not retryable).

    An `APIConnectionError`, so the SDK passes it on as it is, and everything that reads the
    transport's errors sees one of the SDK's types.
    """


def origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and effective port: what must not change across a followed redirect."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is not a number
        port = None
    return scheme, (parts.hostname or "").lower(), port


def origin_text(url: str) -> str:
    """`scheme://host:port` of a URL, without credentials, path or query (safe to print)."""
    scheme, host, port = origin(url)
    return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"


def check_redirect(source: str, status: int, location: str, request: Any) -> str:
    """The URL a redirect from `source` leads to; `RedirectRefused` when it leaves the origin."""
    target = urljoin(source, location)
    if origin(target) != origin(source):
        raise RedirectRefused(
            message=f"HTTP {status} redirect from {origin_text(source)} to another origin, "
            f"{origin_text(target)}: not followed, nothing was sent there",
            request=request,
        )
    return target


def refused_redirect(error: BaseException) -> RedirectRefused | None:
    """The `RedirectRefused` behind an error (raised as is, or wrapped by an older SDK)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, RedirectRefused):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None


async def _same_origin_only(response: Any) -> None:
    """httpx response hook: a redirect to another origin is refused before httpx follows it."""
    if response.status_code not in REDIRECT_STATUSES:
        return
    location = response.headers.get("location")
    if location:
        request = response.request
        check_redirect(str(request.url), response.status_code, location, request)


def pool_size(limits: LimitsConfig) -> int:
    return limits.max_connections or limits.max_in_flight


def guarded_client(**options: Any) -> Any:
    """The SDK's default HTTP client (httpx), following redirects within the origin only."""
    return openai.DefaultAsyncHttpxClient(event_hooks={"response": [_same_origin_only]}, **options)


def http_client(limits: LimitsConfig) -> Any:
    """The SDK's own HTTP client (httpx) for one endpoint, with a pool as large as the limit."""
    size = pool_size(limits)
    return guarded_client(limits=HTTP.Limits(max_connections=size, max_keepalive_connections=size))


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
        """POST `body` as JSON; redirects followed within the origin, `timeout_s` for them all."""
        headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        data: bytes | None = json.dumps(body, ensure_ascii=False).encode()
        method, target = "POST", url
        deadline = asyncio.get_running_loop().time() + timeout_s
        for _ in range(MAX_REDIRECTS + 1):
            status, reply_headers, content = await self._exchange(
                method, target, data, headers, deadline
            )
            location = reply_headers.get("location") if status in REDIRECT_STATUSES else None
            if not location:
                break
            target = check_redirect(target, status, location, _request(target))
            if status == 303 or (status in (301, 302) and method == "POST"):
                method, data = "GET", None  # as httpx and aiohttp do (and browsers)
                headers = {"Authorization": headers["Authorization"]}
        else:
            raise RedirectRefused(
                message=f"more than {MAX_REDIRECTS} redirects from {origin_text(url)}",
                request=_request(url),
            )
        if status >= 300:
            raise _status_error(_request(target), status, reply_headers, content)
        return RawReply(content, reply_headers)

    async def _exchange(
        self,
        method: str,
        url: str,
        data: bytes | None,
        headers: dict[str, str],
        deadline: float,
    ) -> tuple[int, dict[str, str], bytes]:
        """One request, no redirect followed: status, headers (names lower-cased) and body."""
        left = max(deadline - asyncio.get_running_loop().time(), 0.001)
        try:
            async with self._open().request(
                method,
                url,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=left),
                allow_redirects=False,
            ) as reply:
                content = await reply.read()
                return reply.status, {k.lower(): v for k, v in reply.headers.items()}, content
        except (TimeoutError, asyncio.TimeoutError) as error:
            raise openai.APITimeoutError(request=_request(url)) from error
        except aiohttp.ClientError as error:
            raise openai.APIConnectionError(request=_request(url)) from error

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


__all__ = [
    "HTTP",
    "MAX_REDIRECTS",
    "RESPONSE",
    "DirectPoster",
    "RawReply",
    "RedirectRefused",
    "check_redirect",
    "guarded_client",
    "http_client",
    "origin",
    "origin_text",
    "pool_size",
    "refused_redirect",
]
