"""Per-role endpoint settings and the shared limits of one client.

A role is a use of an LLM (teacher, rubricator, verifier, tjudge, grader). Each role can point at
its own endpoint and model with its own sampling; by default they all share one judge. Field
descriptions double as the command line's help text.
"""

from __future__ import annotations

import os
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ropd import redact
from ropd.errors import ConfigError

# `base_url: local` (or `--base-url local`) asks for the embedded model explicitly.
LOCAL = "local"
# `base_url: verl`: the reward-model servers a verl run launches, reached through the router verl
# hands its reward manager (`integrations/verl/judge_servers.py` replaces it before any call).
VERL = "verl"
# The only host `OPENAI_API_KEY` is sent to without being named: a key set for OpenAI must not
# leak to whatever other endpoint a role points at.
OPENAI_HOST = "api.openai.com"
DEFAULT_KEY_VARIABLE = "OPENAI_API_KEY"


class Price(BaseModel):
    """What an endpoint charges per million tokens, input and output apart (any currency).

    Only used to report cost (training log, `ropd inspect --stats`, the report); nothing is
    limited by it.
    """

    model_config = ConfigDict(extra="forbid")

    input_per_mtok: float = Field(ge=0.0, description="Price of one million input tokens.")
    output_per_mtok: float = Field(ge=0.0, description="Price of one million output tokens.")

    def cost(self, input_tokens: float, output_tokens: float) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


class RoleConfig(BaseModel):
    """Where and how to call the model that plays one role.

    `base_url=None` (or "local") means the embedded local server (started on demand);
    `base_url: verl` means verl's reward-model servers, inside a verl run only (the model, when
    not named, is the one they serve). The API key itself is never stored here: only the name
    of the environment variable that holds it.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="judge", description="Role name (usage and traces are per role).")
    base_url: str | None = Field(
        default=None,
        description="OpenAI-compatible endpoint (…/v1); none or 'local' = the embedded local "
        "model; 'verl' = the reward-model servers of the verl run (verl adapter only).",
    )
    base_urls: list[str] = Field(
        default_factory=list,
        description="More endpoints serving the same model (e.g. vLLM replicas): each request "
        "goes to the least-loaded healthy one. `base_url` may also be given as a list or as "
        "comma-separated URLs.",
    )
    model: str = Field(default="local", description="Model name served at base_url.")
    api_key_env: str | None = Field(
        default=None,
        description="Environment variable holding the API key. Unset: OPENAI_API_KEY for "
        "api.openai.com only; any other endpoint gets no key (name OPENAI_API_KEY here to send "
        "it elsewhere).",
    )
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="Sampling temperature.")
    top_p: float | None = Field(default=None, gt=0.0, le=1.0, description="Nucleus sampling.")
    max_tokens: int = Field(default=2048, ge=1, description="Reply budget per call, in tokens.")
    timeout_s: float = Field(default=120.0, gt=0, description="Seconds allowed per request.")
    extra_body: dict[str, Any] = Field(
        default_factory=dict, description="Extra request fields sent as they are (vLLM options…)."
    )
    price: Price | None = Field(
        default=None,
        description="Price per million input / output tokens, for cost figures (none: no cost "
        "is reported).",
    )
    context_window: int | None = Field(
        default=None,
        ge=1,
        description="The model's context window in tokens (prompt + reply); longer judge prompts "
        "are split or clipped to fit. Unset: vLLM's max_model_len from /models, else learned "
        "from the endpoint's context-length error.",
    )
    tokenizer: str | None = Field(
        default=None,
        description="Hugging Face tokenizer (name or folder) that counts prompt tokens for "
        "context_window (needs transformers). Unset: an estimate of 3 characters a token.",
    )

    @model_validator(mode="before")
    @classmethod
    def _split_endpoint_list(cls, data: Any) -> Any:
        """`base_url: [a, b]` or `"a,b"`: the first is `base_url`, the others join `base_urls`."""
        if not isinstance(data, dict):
            return data
        value = data.get("base_url")
        if isinstance(value, str) and "," in value:
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            if not value:
                raise ValueError("base_url: an empty list of endpoints")
            data = {**data, "base_url": value[0]}
            data["base_urls"] = [*value[1:], *(data.get("base_urls") or [])]
        return data

    @model_validator(mode="before")
    @classmethod
    def _local_serves_no_named_model(cls, data: Any) -> Any:
        """`base_url: local` with `model: gpt-4o` would judge with the embedded model while the
        traces say gpt-4o: refused (`model: local` or no model is the embedded model)."""
        if not isinstance(data, dict):
            return data
        base_url, model = data.get("base_url"), data.get("model")
        local = isinstance(base_url, str) and base_url.strip().lower() == LOCAL
        if local and isinstance(model, str) and model.strip().lower() != LOCAL:
            raise ValueError(
                f"base_url: local uses the embedded local model, not {model!r}: leave model "
                f"out (or set model: local), or set base_url to the endpoint that serves {model}"
            )
        return data

    @model_validator(mode="after")
    def _endpoints_are_distinct_and_remote(self) -> RoleConfig:
        if self.base_urls and self.base_url is None:
            raise ValueError("base_urls needs base_url (the embedded model is one endpoint)")
        if self.base_urls and self.on_verl:
            raise ValueError(
                "base_url: verl is one router in front of all of verl's reward-model servers: "
                "list no base_urls beside it"
            )
        urls = [u.rstrip("/") for u in self.endpoints]
        if len(set(urls)) != len(urls):
            raise ValueError(f"the same endpoint is listed twice: {', '.join(urls)}")
        return self

    @property
    def on_verl(self) -> bool:
        """Judged by the verl run's reward-model servers (resolved by the verl adapter)."""
        return self.base_url is not None and self.base_url.strip().lower() == VERL

    @property
    def endpoints(self) -> list[str]:
        """Every endpoint serving this role (empty: the embedded local model)."""
        return [self.base_url, *self.base_urls] if self.base_url else []

    @field_validator("base_url", mode="before")
    @classmethod
    def _local_is_embedded(cls, value: Any) -> Any:
        """`local` is the embedded model, like no base URL at all (but said on purpose)."""
        if isinstance(value, str) and value.strip().lower() == LOCAL:
            return None
        return value

    @property
    def key_variable(self) -> str | None:
        """The variable the key is read from; None when no key is sent ("EMPTY").

        `OPENAI_API_KEY` is only used unnamed for OpenAI's own API: sent to any endpoint, it
        would hand an OpenAI key to a local stub, a colleague's vLLM or a third-party gateway.
        """
        if self.api_key_env is not None:
            return self.api_key_env
        if self.base_url and urlsplit(self.base_url).hostname == OPENAI_HOST:
            return DEFAULT_KEY_VARIABLE
        return None

    def api_key(self) -> str:
        """Read the key from the environment at call time (never logged, never stored)."""
        variable = self.key_variable
        if variable is None:
            return "EMPTY"  # OpenAI-compatible servers without auth accept any key
        value = os.environ.get(variable, "")
        if not value:
            where = f" (the key for {OPENAI_HOST})" if self.api_key_env is None else ""
            raise ConfigError(
                f"role {self.name!r}: environment variable {variable} is not set{where}"
            )
        redact.remember(value)  # from now on scrubbed from every error, trace and log line
        return value

    def check_api_key(self) -> None:
        """Fail now (ConfigError) when an endpoint role's key variable is unset; keeps no value."""
        if self.base_url is not None:
            self.api_key()

    def with_name(self, name: str) -> RoleConfig:
        return self.model_copy(update={"name": name})


class LimitsConfig(BaseModel):
    """Limits shared by every role of one client, across all groups being scored."""

    model_config = ConfigDict(extra="forbid")

    max_in_flight: int = Field(
        default=512,
        ge=1,
        description="Requests in flight at once, over all roles and groups (each group in "
        "flight needs 1 Rubricator, then one request per Verifier chunk; an endpoint's own "
        "queue takes the rest).",
    )
    requests_per_minute: float | None = Field(
        default=None,
        gt=0,
        description="Requests-per-minute limit of the endpoint (paced): the provider's RPM "
        "quota, or a little under it.",
    )
    tokens_per_minute: float | None = Field(
        default=None,
        gt=0,
        description="Tokens-per-minute limit of the endpoint (input + output, booked before "
        "each request): the provider's TPM quota.",
    )
    max_retries: int = Field(
        default=4, ge=0, description="Retries of a failed request (429, 5xx, timeouts)."
    )
    backoff_base_s: float = Field(default=0.5, ge=0, description="First retry delay, doubled.")
    backoff_max_s: float = Field(default=30.0, ge=0, description="Longest retry delay.")
    auth_refusals_to_stop: int = Field(
        default=10,
        ge=1,
        description="HTTP 401/403 replies in a row, for a key the endpoint has accepted before, "
        "that stop the run as a rejected key; fewer are retried like a 503 (a firewall or a "
        "flaky gateway). A key never accepted stops the run at its first refusal; 1: every "
        "refusal does.",
    )
    expected_completion_fraction: float = Field(
        default=0.25,
        ge=0.0,
        le=1.0,
        description="Share of max_tokens booked against tokens_per_minute before the real "
        "usage is known (corrected when the reply arrives).",
    )
    http_transport: Literal["aiohttp", "openai"] = Field(
        default="aiohttp",
        description="How judge requests are sent: aiohttp (posted directly on kept-alive "
        "connections, the SDK's error types; about a third of the client CPU per request of the "
        "SDK's own stack at hundreds in flight) or openai (the SDK's own httpx client).",
    )
    max_connections: int | None = Field(
        default=None,
        ge=1,
        description="Open connections kept per endpoint (pool size, all kept alive between "
        "requests). Unset: max_in_flight, so every request in flight has its own connection.",
    )
