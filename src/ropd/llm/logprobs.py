"""Log-probabilities of a given text under a model, from an OpenAI-compatible completions endpoint.

White-box scoring needs how likely a model finds a *given* continuation, which the chat endpoint
cannot say. The legacy completions endpoint can: `echo=True, logprobs=1, max_tokens=1` returns
the prompt's own tokens with their log-probabilities (vLLM, llama-cpp-python's server). The
prompt sent is `prefix + continuation`; only the tokens covering the continuation are kept.

Servers differ in what comes back: vLLM lists the prompt tokens and the one generated token,
llama-cpp-python only the prompt tokens (without the BOS token, special tokens as empty
strings). `continuation_logprobs` therefore aligns from the end: the generated tokens are those
beyond `usage.prompt_tokens`, and the continuation is the tail of the joined token texts. A
token that straddles the boundary counts as part of the continuation.

Errors follow `ropd.llm.client`: a model not served is `JudgeUnavailable`, and so is an endpoint
without prompt log-probabilities (one message says what is needed); a key refused (401/403) is
too when the endpoint never accepted it or refused it `auth_refusals_to_stop` times in a row
(the client's `KeyAcceptance`), else it is retried; transport failures are retried, then
`JudgeError`.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Sequence
from typing import Any

import openai
from openai import AsyncOpenAI
from typing_extensions import Self

from ropd import redact
from ropd.errors import JudgeError, JudgeUnavailable
from ropd.llm.client import (
    AUTH_STATUSES,
    KeyAcceptance,
    KeyId,
    clean_cause,
    endpoint_host,
    error_cause,
    failure_kind,
    give_up_message,
    http_status,
    key_identity,
    retryable,
)
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.llm.transport import guarded_client
from ropd.llm.types import Completion, UsageBook

log = redact.logger("ropd.llm")

NEEDS = (
    "prompt log-probabilities need an OpenAI-compatible completions endpoint (/v1/completions) "
    "that accepts echo=True with logprobs (vLLM, llama-cpp-python's server)"
)
_LOGPROB_WORDS = ("logprob", "echo", "completions")


class NoPromptLogprobs(JudgeUnavailable):
    """The endpoint does not return the prompt's log-probabilities: nothing can be scored."""


class LogprobAlignmentError(JudgeError):
    """The returned tokens do not spell out the continuation (e.g. byte-level token texts)."""


def continuation_logprobs(
    continuation: str,
    tokens: Sequence[str],
    token_logprobs: Sequence[float | None],
    prompt_tokens: int | None,
    generated: str = "",
) -> list[float]:
    """The log-probabilities of the tokens covering `continuation` (the tail of the prompt).

    `tokens` / `token_logprobs` are an echo reply's lists, `prompt_tokens` its usage and
    `generated` the text produced after the echo. Generated tokens are dropped: those listed
    beyond `prompt_tokens` (vLLM), or the tail spelling `generated` (llama-cpp-python lists it
    when its count allows); trailing tokens without text (an end-of-text token) never belong
    to the continuation. A `None` log-probability (the first token of an echo) is skipped.
    """
    tokens, values = list(tokens), list(token_logprobs)
    if len(tokens) != len(values):
        raise LogprobAlignmentError("tokens and token_logprobs differ in length")
    extra = len(tokens) - prompt_tokens if prompt_tokens else 0
    if extra > 0:
        tokens, values = tokens[:-extra], values[:-extra]
    joined = "".join(tokens)
    if generated and joined.endswith(continuation + generated):
        cut = 0
        while tokens and cut < len(generated):
            cut += len(tokens.pop())
            values.pop()
        joined = "".join(tokens)
    while tokens and not tokens[-1]:
        tokens.pop()
        values.pop()
    if not continuation:
        return []
    if not joined.endswith(continuation):
        raise LogprobAlignmentError(
            "the returned tokens do not end with the response text (the server renders "
            "tokens differently, e.g. as bytes); this response is left unscored"
        )
    boundary = len(joined) - len(continuation)
    kept: list[float] = []
    end = len(joined)
    for text, value in zip(reversed(tokens), reversed(values), strict=True):
        if end <= boundary:
            break
        end -= len(text)
        if value is not None and math.isfinite(value):
            kept.append(float(value))
    kept.reverse()
    return kept


class LogprobClient:
    """Scores continuations with one role's completions endpoint; usage per role name.

    Shares nothing with the chat client but the error rules: it is only used by white-box
    baselines, one request per continuation, at most `limits.max_in_flight` at once.
    """

    def __init__(self, role: RoleConfig, limits: LimitsConfig | None = None) -> None:
        if not role.base_url:
            raise JudgeError(f"role {role.name}: no base_url (start the local server first)")
        self.role = role
        self.limits = limits or LimitsConfig()
        self.usage = UsageBook()
        self._slots = asyncio.Semaphore(self.limits.max_in_flight)
        self._rng = random.Random()
        self.keys = KeyAcceptance(self.limits.auth_refusals_to_stop)
        reader = role.model_copy()

        async def api_key() -> str:  # read from the environment at every request
            return reader.api_key()

        self._sdk = AsyncOpenAI(
            base_url=role.base_url.rstrip("/"),
            api_key=api_key,
            max_retries=0,
            http_client=guarded_client(),  # redirects within the endpoint's origin only
        )

    async def aclose(self) -> None:
        await self._sdk.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def continuation_logprobs(
        self, prefix: str, continuation: str, book: UsageBook | None = None
    ) -> list[float]:
        """Log-probability of every token of `continuation` given `prefix` (see module doc).

        The request's usage goes to `self.usage` and, when given, to `book` too (per group).
        """
        reply = await self._request(prefix + continuation, book)
        choices = getattr(reply, "choices", None) or []
        logprobs = getattr(choices[0], "logprobs", None) if choices else None
        tokens = getattr(logprobs, "tokens", None) if logprobs is not None else None
        values = getattr(logprobs, "token_logprobs", None) if logprobs is not None else None
        if not tokens or not values or all(v is None for v in values):
            raise NoPromptLogprobs(
                f"role {self.role.name}: model {self.role.model} at "
                f"{endpoint_host(self.role.base_url)} returned no prompt log-probabilities; "
                f"{NEEDS}"
            )
        usage = getattr(reply, "usage", None)
        prompt_tokens = getattr(usage, "prompt_tokens", None) if usage is not None else None
        sent, echoed = prefix + continuation, getattr(choices[0], "text", None) or ""
        generated = echoed[len(sent) :] if echoed.startswith(sent) else ""
        return continuation_logprobs(continuation, tokens, values, prompt_tokens, generated)

    async def _request(self, prompt: str, book: UsageBook | None) -> Any:
        role = self.role
        where = f"role {role.name}: model {role.model} at {endpoint_host(role.base_url)}"
        attempt = 0
        while True:
            started = time.monotonic()
            key: KeyId = (role.base_url or "", role.key_variable, "")
            try:
                key = key_identity(role.base_url or "", role)  # an unset key: a failed attempt
                async with self._slots:
                    reply = await self._sdk.completions.create(
                        model=role.model,
                        prompt=prompt,
                        echo=True,
                        logprobs=1,
                        max_tokens=1,
                        temperature=0.0,
                        timeout=role.timeout_s,
                        **({"extra_body": role.extra_body} if role.extra_body else {}),
                    )
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - mapped below, never raised raw
                self._raise_or_wait_note(error, where, attempt, key)
                attempt += 1
                await asyncio.sleep(self._backoff(attempt))
                continue
            self.keys.accept(key)
            usage = getattr(reply, "usage", None)
            done = Completion(
                text="",
                prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                latency_s=time.monotonic() - started,
            )
            for target in (self.usage, book):
                if target is not None:
                    target.add(role.name, done, role.price)
            return reply

    def _raise_or_wait_note(self, error: Exception, where: str, attempt: int, key: KeyId) -> None:
        """Raise the ropd error for `error`, unless it is worth another attempt."""
        status = http_status(error)
        cause = clean_cause(error_cause(error))
        if status in AUTH_STATUSES:
            stop = self.keys.refusal(key, status, cause, where, self.role)
            if stop is not None:
                self.usage.fail(self.role.name)
                raise stop from None
        if status in (404, 405, 501) or (
            status in (400, 422) and any(w in cause.lower() for w in _LOGPROB_WORDS)
        ):
            self.usage.fail(self.role.name)
            raise NoPromptLogprobs(
                redact.scrub(f"{where}: HTTP {status}: {cause}; {NEEDS}, serving this model")
            ) from None
        if not retryable(error) or attempt >= self.limits.max_retries:
            self.usage.fail(self.role.name)
            raise JudgeError(give_up_message(where, error, attempt, cause)) from None
        if isinstance(error, openai.APIError | OSError):
            log.warning("%s: %s: %s; retry %d", where, failure_kind(error), cause, attempt + 1)

    def _backoff(self, attempt: int) -> float:
        delay = min(self.limits.backoff_max_s, self.limits.backoff_base_s * 2 ** (attempt - 1))
        return delay * self._rng.uniform(0.5, 1.0)
