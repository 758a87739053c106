"""The production chat client: any OpenAI-compatible endpoint through the official SDK.

Why our own retry loop instead of the SDK's: the shared in-flight limit and the rate window must
be released while a request waits to retry, Retry-After must be honoured exactly, structured
output must downgrade per endpoint, and errors must come out secret-free. The SDK's retries are
therefore switched off (`max_retries=0`).

Whatever goes wrong, `chat` raises a `JudgeError` and nothing else (bar cancellation): the
reply body is read raw and checked here, so a 200 carrying an HTML page, cut or invalid JSON, or
an object without usable choices is a "malformed reply", retried like a transport failure. A
model the endpoint does not serve (HTTP 404) is `JudgeUnavailable` at once: no later request can
succeed either. So is a key it refuses (HTTP 401/403), when that key was never accepted there or
after `limits.auth_refusals_to_stop` refusals in a row (`KeyAcceptance`); a refusal of a key
that has worked is more often a firewall or a flaky gateway, and is retried like a 503.

A wait the server asks for (Retry-After) is capped at the role's `timeout_s`: a call never
sleeps longer on one Retry-After than it would wait for one reply (see `_backoff`).
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import random
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import openai
from openai import AsyncOpenAI
from typing_extensions import Self

from ropd import redact
from ropd.errors import ContextOverflow, JudgeUnavailable
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.llm.endpoints import EndpointRouter
from ropd.llm.limits import Clock, RateLimiter, Sleep, estimate_prompt_tokens
from ropd.llm.tokens import read_overflow
from ropd.llm.transport import RESPONSE, DirectPoster, http_client, refused_redirect
from ropd.llm.types import Completion, JsonSchema, JudgeError, UsageBook

log = redact.logger("ropd.llm")

# How structured output is asked for, best first. "json_object_schema" is the form
# llama-cpp-python's server understands ({"type": "json_object", "schema": ...}).
FormatMode = Literal["json_schema", "json_object_schema", "json_object", "none"]
_DOWNGRADE: dict[FormatMode, FormatMode] = {
    "json_schema": "json_object_schema",
    "json_object_schema": "json_object",
    "json_object": "none",
}
_FORMAT_WORDS = ("response_format", "json_schema", "json_object", "structured output", "grammar")
MAX_RETRY_AFTER_S = 600.0  # the longest wait on Retry-After, whatever the role's timeout_s
AUTH_STATUSES = frozenset({401, 403})
# The embedded server generates for one request at a time: the next one waits here, not in its
# queue, so that a request's timeout covers its own generation only (`local_server.py`).
MAX_CAUSE_CHARS = 200


def endpoint_host(base_url: str | None) -> str:
    """Host and port of an endpoint, without credentials, path or query (safe to print)."""
    if not base_url:
        return "<local>"
    parts = urlsplit(base_url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def parse_retry_after(headers: Any, *, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `retry-after` as seconds or an HTTP date."""
    if headers is None:
        return None
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


class MalformedReply(Exception):
    """A 2xx reply whose body is not a usable chat completion (its `usage` kept when readable)."""

    def __init__(self, reason: str, usage: tuple[int, int] | None = None) -> None:
        super().__init__(reason)
        self.usage = usage


@dataclass
class ReplyBody:
    """The parts of a checked chat-completion body the client uses."""

    choices: list[tuple[str, str | None]]  # (content, finish_reason)
    usage: tuple[int, int] | None  # (prompt, completion) tokens, None when not reported


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}


def _json_type(value: object) -> str:
    return _JSON_TYPES.get(type(value), "number" if isinstance(value, int | float) else "value")


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _usage(body: dict[str, Any]) -> tuple[int, int] | None:
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return None
    return _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))


def parse_completion_body(data: bytes, content_type: str = "") -> ReplyBody:
    """Check a chat-completion body; raise `MalformedReply` with a short reason when unusable.

    Unusable: not JSON (an HTML error page, a body cut short), not an object, `choices`
    missing, empty or not a list, a choice that is not an object or has no message, content
    that is neither a string nor null. Usage numbers that are missing or odd count as 0.
    """
    try:
        body = json.loads(data)
    except ValueError:  # JSONDecodeError and undecodable bytes alike
        if not data.strip():
            raise MalformedReply("empty body") from None
        kind = content_type.split(";")[0].strip() or "no content type"
        raise MalformedReply(f"body is not valid JSON ({kind}, {len(data)} bytes)") from None
    if not isinstance(body, dict):
        raise MalformedReply(f"body is a JSON {_json_type(body)}, not an object")
    usage = _usage(body)
    if "choices" not in body or body["choices"] is None:
        inner = body.get("error")
        said = inner.get("message") if isinstance(inner, dict) else inner
        detail = f" (error: {said})" if isinstance(said, str) and said else ""
        raise MalformedReply(f"no choices{detail}", usage)
    choices = body["choices"]
    if not isinstance(choices, list):
        raise MalformedReply(f"choices is a JSON {_json_type(choices)}, not an array", usage)
    if not choices:
        raise MalformedReply("choices is empty", usage)
    out: list[tuple[str, str | None]] = []
    for index, choice in enumerate(choices):
        if not isinstance(choice, dict):
            raise MalformedReply(f"choice {index} is a JSON {_json_type(choice)}", usage)
        message = choice.get("message")
        if not isinstance(message, dict):
            raise MalformedReply(f"choice {index} has no message", usage)
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            kind = _json_type(content)
            raise MalformedReply(f"choice {index}: content is a JSON {kind}, not a string", usage)
        finish = choice.get("finish_reason")
        out.append((content or "", finish if isinstance(finish, str) else None))
    return ReplyBody(choices=out, usage=usage)


def clean_cause(text: str, limit: int = MAX_CAUSE_CHARS) -> str:
    """One short line with every secret scrubbed (scrubbed before cutting: no half keys)."""
    return " ".join(redact.scrub(text).split())[:limit]


def status_cause(error: openai.APIStatusError) -> str:
    """What the server said about a refused request (its message, not the raw body)."""
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
        if body.get("detail"):
            return str(body["detail"])
    if isinstance(body, str) and body:
        return body
    return error.message


def key_fix(role: RoleConfig) -> str:
    """What to do about a key an endpoint rejected (said by the client and the probe alike)."""
    variable = role.key_variable
    if variable:
        return f"check the variable {variable}"
    return (
        "no key was sent: name the variable holding this endpoint's key with "
        "--api-key-env / api_key_env (OPENAI_API_KEY is sent unnamed only to api.openai.com)"
    )


# (endpoint base URL, key variable, fingerprint of the key's value): a rotated key is a new key
KeyId = tuple[str, str | None, str]


def key_identity(base_url: str, role: RoleConfig, key: str | None = None) -> KeyId:
    """Which key goes to which endpoint, without keeping the key (a hash of it)."""
    value = role.api_key() if key is None else key
    digest = hashlib.sha256(value.encode()).hexdigest()[:16]
    return base_url.rstrip("/"), role.key_variable, digest


@dataclass
class _KeyRecord:
    accepted: bool = False  # any 2xx from this endpoint with this key
    refusals: int = 0  # 401/403 in a row since the last 2xx


class KeyAcceptance:
    """Which keys each endpoint has accepted, and how many refusals in a row since.

    Why: a 401/403 for a key that has just worked is more often a firewall, a WAF or a flaky
    gateway than a revoked key, and stopping the run for it loses every group in flight. So a
    refusal stops the run only for a key the endpoint never accepted, or after
    `refusals_to_stop` refusals in a row; any other one is a failed attempt, retried.
    """

    def __init__(self, refusals_to_stop: int) -> None:
        self.refusals_to_stop = refusals_to_stop
        self._keys: dict[KeyId, _KeyRecord] = {}

    def accept(self, key: KeyId) -> None:
        """The endpoint answered a request with this key (a 2xx)."""
        record = self._keys.setdefault(key, _KeyRecord())
        record.accepted, record.refusals = True, 0

    def refusal(
        self, key: KeyId, status: int, cause: str, where: str, role: RoleConfig
    ) -> JudgeUnavailable | None:
        """Count a 401/403; the error that stops the run, or None: retry it (the key worked)."""
        record = self._keys.setdefault(key, _KeyRecord())
        record.refusals += 1
        if record.accepted and record.refusals < self.refusals_to_stop:
            return None
        streak = f" ({record.refusals} refusals in a row)" if record.accepted else ""
        return JudgeUnavailable(
            redact.scrub(
                f"{where} rejected the API key (HTTP {status}): {cause}; {key_fix(role)}{streak}"
            )
        )


def give_up_message(where: str, error: Exception, attempt: int, cause: str) -> str:
    """The message of a call that failed for good after `attempt` retries (secret-free)."""
    tries = f" after {attempt + 1} attempts" if attempt else ""
    note = ""
    if http_status(error) in AUTH_STATUSES:
        note = " (this key was accepted by this endpoint before; refused now and then)"
    return redact.scrub(f"{where}: {failure_kind(error)}{tries}: {cause}{note}")


def error_cause(error: Exception) -> str:
    """A short human cause from an SDK error (the server's message, not the raw body)."""
    if isinstance(error, MalformedReply):
        return str(error)
    redirect = refused_redirect(error)
    if redirect is not None:
        return str(redirect)
    root = _root_cause(error)
    refused = isinstance(root, OSError) and not isinstance(root, TimeoutError)
    if isinstance(error, openai.APITimeoutError) and not refused:
        return "timed out"
    if isinstance(error, openai.APIConnectionError):  # (aiohttp reports a refusal as a timeout)
        return f"connection error ({type(root).__name__})"
    if isinstance(error, openai.APIStatusError):
        return status_cause(error)
    return f"{type(error).__name__}: {error}"


def _root_cause(error: BaseException) -> BaseException:
    """The first exception of a chain (the transport's own, under the SDK's)."""
    seen = {id(error)}
    while error.__cause__ is not None and id(error.__cause__) not in seen:
        error = error.__cause__
        seen.add(id(error))
    return error


def _endpoint_fault(error: Exception | None) -> bool | None:
    """Does this outcome count against the endpoint's health? No error: False (healthy again);
    no answer, a 5xx or a malformed reply: True; a 4xx (429 included) is about the request or
    the account, not the endpoint: None."""
    if error is None:
        return False
    status = http_status(error)
    return status is None or status >= 500


def http_status(error: Exception) -> int | None:
    return error.status_code if isinstance(error, openai.APIStatusError) else None


def retryable(error: Exception) -> bool:
    """Worth another attempt? A 401/403 too: one that must stop the run is raised before
    (`KeyAcceptance`); a refused redirect never (it would only be refused again)."""
    status = http_status(error)
    if status is None:  # connection errors, timeouts, malformed replies, anything unforeseen
        return refused_redirect(error) is None
    return status in (408, 409, 429) or status in AUTH_STATUSES or status >= 500


def failure_kind(error: Exception) -> str:
    """What kind of failure, as the error message says it: HTTP 503, malformed reply, ..."""
    status = http_status(error)
    if status is not None:
        return f"HTTP {status}"
    if isinstance(error, MalformedReply):
        return "malformed reply"
    if refused_redirect(error) is not None:
        return "redirect refused"
    if isinstance(error, openai.APIError):
        return "no response"  # connection errors and timeouts
    return "transport error"


def _mentions_format(error: Exception) -> bool:
    """Did the endpoint reject the way structured output was requested?

    Some servers answer a request they cannot validate with a 500 (llama-cpp-python does), so
    a 5xx counts too when it names `response_format` explicitly.
    """
    status = http_status(error)
    if status is None:
        return False
    text = error_cause(error) + " " + json.dumps(getattr(error, "body", None), default=str)
    text = text.lower()
    if status in (400, 422):
        return any(word in text for word in _FORMAT_WORDS)
    return status >= 500 and "response_format" in text


def _with_schema_hint(messages: list[dict[str, Any]], schema: JsonSchema) -> list[dict[str, Any]]:
    """Carry the schema in the prompt when the endpoint cannot enforce it."""
    hint = "\n\nReply with one JSON object only, matching this JSON schema:\n" + json.dumps(
        schema.schema, separators=(",", ":")
    )
    out = [dict(m) for m in messages]
    for message in reversed(out):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            message["content"] = message["content"] + hint
            return out
    out.append({"role": "user", "content": hint.strip()})
    return out


@dataclass
class _Attempt:
    completions: list[Completion] | None = None
    error: Exception | None = None
    url: str = ""  # the endpoint it went to (set by `_send`)
    mode: FormatMode = "none"  # how structured output was asked for (set by `_send`)
    key: KeyId = ("", None, "")  # the key it was sent with (set by `_send`)


# Format modes in which the endpoint itself enforces the schema (json_schema or a grammar).
_ENFORCED: frozenset[FormatMode] = frozenset({"json_schema", "json_object_schema"})


class OpenAIChatClient:
    """Async chat client with shared limits, retries, structured output and usage accounting.

    One SDK client is kept per (base URL, API-key variable). Every request, whatever its role,
    takes one of `limits.max_in_flight` slots, and books the optional requests/tokens-per-minute
    window. `usage` holds calls, tokens and latency per role; `max_in_flight_seen` the highest
    number of requests that were in flight together; `retries` the retries per role;
    `waiting_retry_after` the calls sleeping on a server's Retry-After now, `retry_after_s` the
    seconds slept on Retry-After so far; `keys` which keys each endpoint has accepted.
    """

    def __init__(
        self,
        limits: LimitsConfig | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.limits = limits or LimitsConfig()
        self._sleep = sleep
        self._clock = clock
        self._rng = rng or random.Random()
        self._slots = asyncio.Semaphore(self.limits.max_in_flight)
        self.rate_limiter = RateLimiter(
            self.limits.requests_per_minute,
            self.limits.tokens_per_minute,
            clock=clock,
            sleep=sleep,
        )
        self._sdk: dict[tuple[str, str | None], AsyncOpenAI] = {}
        self.router = EndpointRouter(clock=clock)
        self._direct = DirectPoster(self.limits)
        self._format_mode: dict[str, FormatMode] = {}
        self.usage = UsageBook()
        self.retries: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight_seen = 0
        self.waiting_retry_after = 0
        self.retry_after_s = 0.0
        self.keys = KeyAcceptance(self.limits.auth_refusals_to_stop)
        self._capped_hosts: set[str] = set()  # endpoints whose capped Retry-After was logged

    # -- public API ---------------------------------------------------------------------------

    async def chat(
        self,
        role: RoleConfig,
        messages: list[dict[str, Any]],
        *,
        json_schema: JsonSchema | None = None,
        n: int = 1,
        seed: int | None = None,
    ) -> list[Completion]:
        """Return `n` completions for `messages`; raise JudgeError when it fails for good.

        Endpoints that ignore `n` (llama.cpp's server returns one choice) are asked again for
        the missing choices, with the seed moved on so the extra samples differ.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        completions: list[Completion] = []
        for round_index in range(n):
            round_seed = None if seed is None else seed + round_index
            got = await self._request(role, messages, json_schema, n - len(completions), round_seed)
            completions.extend(got)
            if len(completions) >= n:
                return completions[:n]
        raise JudgeError(
            f"role {role.name}: model {role.model} at {endpoint_host(role.base_url)} returned "
            f"{len(completions)} of {n} requested choices"
        )

    def format_mode(self, base_url: str) -> FormatMode:
        """How structured output is currently requested from this endpoint."""
        return self._format_mode.get(base_url.rstrip("/"), "json_schema")

    def set_format_mode(self, base_url: str, mode: FormatMode) -> None:
        """Start an endpoint known not to take json_schema at the form it does take."""
        self._format_mode[base_url.rstrip("/")] = mode

    async def aclose(self) -> None:
        """Close the HTTP connection pools (the direct session and every SDK client)."""
        await self._direct.aclose()
        clients, self._sdk = list(self._sdk.values()), {}
        for sdk in clients:
            await sdk.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- internals ----------------------------------------------------------------------------

    def _sdk_client(self, role: RoleConfig, base_url: str) -> AsyncOpenAI:
        key = (base_url, role.api_key_env)
        sdk = self._sdk.get(key)
        if sdk is None:
            reader = role.model_copy()

            async def api_key() -> str:  # read from the environment at every request
                return reader.api_key()

            sdk = AsyncOpenAI(
                base_url=base_url,
                api_key=api_key,
                max_retries=0,
                http_client=http_client(self.limits),
            )
            self._sdk[key] = sdk
        return sdk

    def _request_kwargs(
        self,
        role: RoleConfig,
        messages: list[dict[str, Any]],
        schema: JsonSchema | None,
        mode: FormatMode,
        n: int,
        seed: int | None,
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": role.model,
            "messages": messages,
            "temperature": role.temperature,
        }
        if "max_completion_tokens" not in role.extra_body:
            kwargs["max_tokens"] = role.max_tokens
        if role.top_p is not None:
            kwargs["top_p"] = role.top_p
        if n > 1:
            kwargs["n"] = n
        if seed is not None:
            kwargs["seed"] = seed
        extra = dict(role.extra_body)
        if schema is not None:
            response_format: dict[str, Any] | None = None
            if mode == "json_schema":
                response_format = {
                    "type": "json_schema",
                    "json_schema": {
                        "name": schema.name,
                        "schema": schema.schema,
                        "strict": schema.strict,
                    },
                }
            elif mode == "json_object_schema":
                response_format = {"type": "json_object", "schema": schema.schema}
            else:
                kwargs["messages"] = _with_schema_hint(messages, schema)
                if mode == "json_object":
                    response_format = {"type": "json_object"}
            if response_format is not None:
                extra.setdefault("response_format", response_format)
        # extra_body fields go into the body as they are, overriding ropd's (as the SDK's
        # `extra_body` does)
        return {**kwargs, **extra}

    def _estimate_tokens(self, role: RoleConfig, messages: list[dict[str, Any]], n: int) -> int:
        expected = self.limits.expected_completion_fraction * role.max_tokens * n
        return estimate_prompt_tokens(messages) + int(expected)

    def _backoff(
        self, attempt: int, error: Exception, *, budget_s: float, host: str
    ) -> tuple[float, bool]:
        """Seconds before the next attempt, and whether the server asked for them.

        A server's `retry-after-ms` / `Retry-After` is honoured up to the call's own budget,
        `budget_s` (the role's `timeout_s`; never over `MAX_RETRY_AFTER_S`): a step must not
        sleep 40 minutes because a gateway said 600 s four times. A call makes at most
        `max_retries` such waits, so its Retry-After waits total at most `max_retries` ×
        `timeout_s`. Otherwise exponential backoff with jitter.
        """
        if isinstance(error, openai.APIStatusError):
            asked = parse_retry_after(error.response.headers)
            if asked is not None:
                cap = min(budget_s, MAX_RETRY_AFTER_S)
                if asked > cap:
                    self._note_capped(host, asked, cap)
                return min(asked, cap), True
        delay = min(self.limits.backoff_max_s, self.limits.backoff_base_s * 2**attempt)
        return delay * self._rng.uniform(0.5, 1.0), False

    def _note_capped(self, host: str, asked: float, cap: float) -> None:
        """Say once per endpoint that its Retry-After was cut to the call's budget."""
        if host in self._capped_hosts:
            return
        self._capped_hosts.add(host)
        log.warning(
            "%s asked to wait %gs before retrying (Retry-After); waiting %gs at most, the "
            "role's timeout_s (said once per endpoint)",
            host,
            asked,
            cap,
        )

    async def _sleep_retry_after(self, delay: float) -> None:
        """Sleep on a server's Retry-After, counted while it lasts (also when cancelled)."""
        self.waiting_retry_after += 1
        started = self._clock()
        slept = False
        try:
            await self._sleep(delay)
            slept = True
        finally:
            self.waiting_retry_after -= 1
            elapsed = delay if slept else min(delay, max(0.0, self._clock() - started))
            self.retry_after_s += elapsed

    async def _send(
        self,
        role: RoleConfig,
        messages: list[dict[str, Any]],
        schema: JsonSchema | None,
        n: int,
        seed: int | None,
    ) -> _Attempt:
        """One HTTP request inside an in-flight slot, to the endpoint the router picks then.

        The endpoint is chosen once the slot is held, so requests queued behind the in-flight
        limit are not pinned to an endpoint that may fail or fill up while they wait.
        """
        async with self._slots:
            endpoint = await self.router.acquire(role.endpoints)
            fault: bool | None = None  # unknown if cancelled: says nothing about the endpoint
            try:
                mode = self.format_mode(endpoint.url)
                kwargs = self._request_kwargs(role, messages, schema, mode, n, seed)
                structured = schema is not None and mode in _ENFORCED
                try:
                    api_key = role.api_key()
                except ValueError as error:  # unset since the call began: a failed attempt
                    return _Attempt(error=error, url=endpoint.url, mode=mode)
                attempt = await self._post(endpoint.url, kwargs, role, n, structured, api_key)
                attempt.url, attempt.mode = endpoint.url, mode
                attempt.key = key_identity(endpoint.url, role, api_key)
                fault = _endpoint_fault(attempt.error)
                return attempt
            finally:
                self.router.release(endpoint, failed=fault)

    async def _post(
        self,
        base_url: str,
        kwargs: dict[str, Any],
        role: RoleConfig,
        n: int,
        structured: bool,
        api_key: str,
    ) -> _Attempt:
        """One HTTP request inside the rate window, with `api_key` on the direct path (the
        SDK reads it itself).

        Every failure comes back as `_Attempt.error` (never raised): SDK errors, a malformed
        body, or anything unforeseen while sending or reading. Only cancellation goes through.
        """
        self.in_flight += 1
        self.max_in_flight_seen = max(self.max_in_flight_seen, self.in_flight)
        try:
            booking = await self.rate_limiter.acquire(
                self._estimate_tokens(role, kwargs["messages"], n)
            )
            started = self._clock()
            try:
                # The body is sent as built: `chat.completions.create` would walk every
                # message through the SDK's typed-parameter transform first, about 2 ms of
                # CPU per verifier request of 12 answers (`llm/transport.py` has the figures).
                if self.limits.http_transport == "aiohttp":
                    http = await self._direct.post(
                        f"{base_url}/chat/completions",
                        kwargs,
                        api_key=api_key,
                        timeout_s=role.timeout_s,
                    )
                else:
                    http = await self._sdk_client(role, base_url).post(
                        "/chat/completions",
                        cast_to=RESPONSE,
                        body=kwargs,
                        options={"timeout": role.timeout_s},
                    )
                latency = self._clock() - started
                reply = parse_completion_body(http.content, http.headers.get("content-type") or "")
            except openai.APIStatusError as error:
                self.rate_limiter.correct(booking, 0)  # refused: nothing was generated
                return _Attempt(error=error)
            except MalformedReply as error:
                if error.usage is not None:
                    self.rate_limiter.correct(booking, sum(error.usage))
                return _Attempt(error=error)
            except Exception as error:  # noqa: BLE001 - any other failure is a transport one
                return _Attempt(error=error)  # the estimate stays booked
        finally:
            self.in_flight -= 1
        prompt_tokens, completion_tokens = reply.usage or (0, 0)
        if reply.usage is not None:
            self.rate_limiter.correct(booking, prompt_tokens + completion_tokens)
        self.usage.add(
            role.name,
            Completion(
                text="",
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                latency_s=latency,
            ),
            role.price,
        )
        # Split the request's tokens over its choices so that summing completions never counts
        # a request twice; every choice carries the request's latency.
        share, rest = divmod(completion_tokens, len(reply.choices))
        completions = [
            Completion(
                text=text,
                finish_reason=finish_reason,
                prompt_tokens=prompt_tokens if i == 0 else 0,
                completion_tokens=share + (rest if i == 0 else 0),
                latency_s=latency,
                structured=structured,
            )
            for i, (text, finish_reason) in enumerate(reply.choices)
        ]
        return _Attempt(completions=completions)

    async def _request(
        self,
        role: RoleConfig,
        messages: list[dict[str, Any]],
        schema: JsonSchema | None,
        n: int,
        seed: int | None,
    ) -> list[Completion]:
        if not role.base_url:
            where = f"role {role.name}: model {role.model} at {endpoint_host(role.base_url)}"
            raise JudgeError(
                f"{where}: no base_url (open it with Session.open, which starts the local server)"
            )
        try:
            role.api_key()  # fails early when unset; remembers the value for redact.scrub
        except ValueError as error:
            self.usage.fail(role.name)
            raise JudgeError(redact.scrub(str(error))) from None
        attempt = 0
        while True:
            # every attempt, a retry too, goes to the least-loaded healthy endpoint of the role
            result = await self._send(role, messages, schema, n, seed)
            base_url, mode = result.url, result.mode
            host = endpoint_host(base_url)
            where = f"role {role.name}: model {role.model} at {host}"
            if result.completions is not None:
                self.keys.accept(result.key)
                return result.completions
            error = result.error
            assert error is not None
            status = http_status(error)
            cause = clean_cause(error_cause(error))
            if status in AUTH_STATUSES:
                stop = self.keys.refusal(result.key, status, cause, where, role)
                if stop is not None:
                    self.usage.fail(role.name)
                    raise stop from None
            if status == 404:
                self.usage.fail(role.name)
                path = urlsplit(base_url).path or "/"
                raise JudgeUnavailable(
                    redact.scrub(
                        f"{where}: HTTP 404: the model is not served there, or the base URL "
                        f"path {path} is wrong: {cause}"
                    )
                ) from None
            overflow = read_overflow(status, error_cause(error), getattr(error, "code", None))
            if overflow is not None:  # the prompt is too long: sent again, it fails again
                raise ContextOverflow(
                    redact.scrub(
                        f"{where}: prompt too long for the model (HTTP {status}): {cause}"
                    ),
                    window=overflow.window,
                    prompt_tokens=overflow.prompt_tokens,
                ) from None
            if schema is not None and mode in _DOWNGRADE and _mentions_format(error):
                self._format_mode[base_url] = _DOWNGRADE[mode]
                log.warning(
                    "%s rejected response_format %s (%s); using %s from now on",
                    host,
                    mode,
                    cause,
                    _DOWNGRADE[mode],
                )
                continue
            status_text = failure_kind(error)
            if not retryable(error) or attempt >= self.limits.max_retries:
                self.usage.fail(role.name)
                raise JudgeError(give_up_message(where, error, attempt, cause)) from None
            delay, server_asked = self._backoff(attempt, error, budget_s=role.timeout_s, host=host)
            attempt += 1
            self.retries[role.name] = self.retries.get(role.name, 0) + 1
            log.warning(
                "%s: %s: %s; retry %d/%d in %.2fs",
                where,
                status_text,
                cause,
                attempt,
                self.limits.max_retries,
                delay,
            )
            if server_asked:
                await self._sleep_retry_after(delay)
            else:
                await self._sleep(delay)
