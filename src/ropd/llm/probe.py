"""Probe every configured endpoint once, before any paid work: reachable, key accepted, model served.

Why: without a probe, a run against a dead or misconfigured endpoint spends every group's
retries, writes null rewards and may still exit 0; a training job loads its models and builds
teacher answers for minutes before the first judge call fails. One `GET …/models` per distinct
endpoint (base URL + key variable) catches the usual mistakes in about a second, and the message
says which role, model, host and key variable to fix.

Not probed: roles without `base_url` (the embedded server ropd starts itself and waits for).
An endpoint without a `/models` route (404, 405, …) or with an empty listing is not an error:
only the model check is skipped. A 5xx on `/models` is logged and skipped too; the chat requests
have their own retries.

The listing's `max_model_len` (vLLM puts the served context window on each model) is recorded
(`ropd.llm.tokens.listed_window`): scorers size judge prompts with it when a role declares no
`context_window`. A listing that answered (2xx) marks the key as accepted by that endpoint in
the `KeyAcceptance` given (the chat client's): a later 401/403 for it is retried, not fatal.
A redirect to another origin is refused (as for chat requests) and reported.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import openai
from openai import AsyncOpenAI

from ropd import redact
from ropd.errors import ConfigError, JudgeUnavailable
from ropd.llm.client import (
    KeyAcceptance,
    clean_cause,
    endpoint_host,
    key_fix,
    key_identity,
    status_cause,
)
from ropd.llm.config import RoleConfig
from ropd.llm.tokens import record_listed_windows
from ropd.llm.transport import guarded_client, refused_redirect

log = redact.logger("ropd.llm")

PROBE_TIMEOUT_S = 10.0
PROBE_RETRIES = 1  # the SDK's own: one retry of a connection error, 408, 429 or 5xx
MAX_MODELS_SHOWN = 8
MAX_CAUSE_CHARS = 160
SKIP_HINT = "(skip this check with --no-probe)"


class ProbeFailed(JudgeUnavailable):
    """An endpoint failed its probe; `problems` holds one line per failing endpoint or model."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        head = "" if len(problems) == 1 else f"{len(problems)} endpoint problems:\n"
        super().__init__(head + "\n".join(self.problems))

    def __reduce__(self) -> tuple[type[ProbeFailed], tuple[list[str]]]:
        return type(self), (self.problems,)  # rebuilt whole when sent between processes


@dataclass(frozen=True)
class Endpoint:
    """One distinct endpoint (base URL and key variable) and the roles that use it."""

    base_url: str
    roles: tuple[RoleConfig, ...]

    @property
    def host(self) -> str:
        return endpoint_host(self.base_url)

    @property
    def key_text(self) -> str:
        variable = self.roles[0].key_variable
        return f"key from {variable}" if variable else "no API key sent"

    def who(self, roles: Sequence[RoleConfig] | None = None) -> str:
        """`role judge (model m at host, key from VAR)`, for every role given (default all)."""
        names = list(dict.fromkeys(role.name for role in roles or self.roles))
        models = ", ".join(dict.fromkeys(role.model for role in roles or self.roles))
        noun = "role" if len(names) == 1 else "roles"
        return f"{noun} {', '.join(names)} (model {models} at {self.host}, {self.key_text})"


@dataclass(frozen=True)
class Problem:
    """One probe finding; `unset_key` ones are config errors, the others unusable endpoints."""

    text: str
    unset_key: bool = False


def endpoints_of(roles: Sequence[RoleConfig]) -> list[Endpoint]:
    """The distinct endpoints of `roles` (same grouping as the chat client's SDK clients)."""
    grouped: dict[tuple[str, str | None], list[RoleConfig]] = {}
    for role in roles:
        # no endpoints: the embedded server, started and waited for by ropd itself
        for url in role.endpoints:  # every replica is probed: a dead one is found up front
            key = (url.rstrip("/"), role.api_key_env)
            grouped.setdefault(key, []).append(role)
    return [Endpoint(base_url, tuple(members)) for (base_url, _), members in grouped.items()]


def _short(text: str) -> str:
    return clean_cause(str(text), MAX_CAUSE_CHARS)


def _status_cause(error: openai.APIStatusError) -> str:
    return _short(status_cause(error))


def _listing(data: bytes) -> list[dict[str, Any]]:
    """The model entries of a `/models` body; [] when it is not the usual `{"data": [{"id": …}]}`."""
    try:
        body = json.loads(data)
    except ValueError:
        return []
    items = body.get("data") if isinstance(body, dict) else None
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, dict) and item.get("id")]


def _listed_models(data: bytes) -> list[str]:
    """Model ids of a `/models` body."""
    return [str(item["id"]) for item in _listing(data)]


def _listed_windows(data: bytes) -> dict[str, int]:
    """Model id -> context window, from the `max_model_len` vLLM puts on each listed model."""
    windows = {}
    for item in _listing(data):
        window = item.get("max_model_len")
        if isinstance(window, int) and not isinstance(window, bool) and window > 0:
            windows[str(item["id"])] = window
    return windows


def _served(model: str, listed: Sequence[str]) -> bool:
    """Exact name, or Ollama's implicit `:latest` tag."""
    return model in listed or f"{model}:latest" in listed


def _show(listed: Sequence[str]) -> str:
    shown = ", ".join(listed[:MAX_MODELS_SHOWN])
    more = len(listed) - MAX_MODELS_SHOWN
    return f"{shown} … and {more} more" if more > 0 else shown


async def _probe(
    endpoint: Endpoint, timeout_s: float, keys: KeyAcceptance | None = None
) -> list[Problem]:
    """Problems of one endpoint (empty when it is usable); an accepted key goes to `keys`."""
    first = endpoint.roles[0]
    try:
        key = first.api_key()
    except ConfigError as error:
        return [Problem(str(error), unset_key=True)]
    host = endpoint.host
    record_listed_windows(endpoint.base_url, {})  # what an earlier probe saw may be stale
    sdk = AsyncOpenAI(
        base_url=endpoint.base_url,
        api_key=key,
        max_retries=PROBE_RETRIES,
        timeout=timeout_s,
        http_client=guarded_client(),
    )
    try:
        raw = await sdk.models.with_raw_response.list()
        data = raw.http_response.content
    except openai.APITimeoutError:
        return [
            Problem(
                f"{endpoint.who()}: {host} did not answer within {timeout_s:g} s; is the "
                f"server up and --base-url right? {SKIP_HINT}"
            )
        ]
    except openai.APIConnectionError as error:
        redirect = refused_redirect(error)
        if redirect is not None:
            return [
                Problem(
                    f"{endpoint.who()}: {_short(str(redirect))}; point --base-url / base_url "
                    "at the endpoint itself"
                )
            ]
        cause = _short(str(error.__cause__ or error))
        return [
            Problem(
                f"{endpoint.who()}: nothing answers at {host} ({cause}); start the server or "
                "fix --base-url / base_url"
            )
        ]
    except openai.APIStatusError as error:
        status = error.status_code
        if status in (401, 403):
            return [
                Problem(
                    f"{endpoint.who()}: the API key was rejected (HTTP {status}: "
                    f"{_status_cause(error)}); {key_fix(first)}"
                )
            ]
        if status >= 500:
            log.warning(
                "%s: GET /models answered HTTP %d (%s); the model name was not checked",
                host,
                status,
                _status_cause(error),
            )
        return []  # no /models route (404, 405, ...): nothing more to check
    except Exception as error:  # noqa: BLE001 - an odd reply must not hide the run's own errors
        log.warning("%s: GET /models failed (%s); not checked", host, _short(repr(error)))
        return []
    finally:
        await sdk.close()
    if keys is not None:
        keys.accept(key_identity(endpoint.base_url, first, key))
    listed = _listed_models(data)
    record_listed_windows(endpoint.base_url, _listed_windows(data))
    if not listed:
        return []  # an empty or unusual listing: some gateways list nothing yet serve models
    problems = []
    for model in dict.fromkeys(role.model for role in endpoint.roles):
        if not _served(model, listed):
            users = [role for role in endpoint.roles if role.model == model]
            problems.append(
                Problem(
                    f"{endpoint.who(users)}: model {model} is not served at {host} "
                    f"(it serves: {_show(listed)}); fix --model / model {SKIP_HINT}"
                )
            )
    return problems


async def find_problems(
    roles: Sequence[RoleConfig],
    *,
    timeout_s: float = PROBE_TIMEOUT_S,
    keys: KeyAcceptance | None = None,
) -> list[Problem]:
    """Probe every distinct endpoint of `roles` concurrently; every problem found, in order.

    Keys an endpoint accepted are recorded in `keys` (the chat client's, when given)."""
    found = await asyncio.gather(*(_probe(e, timeout_s, keys) for e in endpoints_of(roles)))
    return [Problem(redact.scrub(p.text), p.unset_key) for problems in found for p in problems]


async def endpoint_problems(
    roles: Sequence[RoleConfig], *, timeout_s: float = PROBE_TIMEOUT_S
) -> list[str]:
    """One line per problem of the endpoints of `roles` (for reports that collect problems)."""
    return [problem.text for problem in await find_problems(roles, timeout_s=timeout_s)]


async def probe_endpoints(
    roles: Sequence[RoleConfig],
    *,
    timeout_s: float = PROBE_TIMEOUT_S,
    keys: KeyAcceptance | None = None,
) -> None:
    """Raise `ProbeFailed` (a `JudgeUnavailable`) naming every endpoint that cannot serve.

    Key variables that are unset (and nothing else wrong) are a `ConfigError`, as they are for
    a chat request. Roles without `base_url` are not probed. Keys an endpoint accepted are
    recorded in `keys` (the chat client's `KeyAcceptance`, when given).
    """
    problems = await find_problems(roles, timeout_s=timeout_s, keys=keys)
    if not problems:
        return
    if all(problem.unset_key for problem in problems):
        raise ConfigError("\n".join(problem.text for problem in problems))
    raise ProbeFailed([problem.text for problem in problems])
