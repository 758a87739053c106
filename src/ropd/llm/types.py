"""The contract between the engine and any chat backend.

The engine only needs `ChatClient.chat`; the production implementation is
`ropd.llm.client.OpenAIChatClient`, tests use an in-memory scripted client.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ropd.errors import JudgeError
from ropd.llm.config import Price, RoleConfig

__all__ = ["ChatClient", "Completion", "JsonSchema", "JudgeError", "UsageBook", "UsageTotals"]


@dataclass(frozen=True)
class Completion:
    """One choice of a chat completion, with the usage of the request it came from."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    # True when the endpoint enforced the requested JSON schema (json_schema or a grammar):
    # the reply must then be exactly one object, and nothing else in it is looked at.
    structured: bool = False


@dataclass
class UsageTotals:
    """Calls, tokens (input = prompt, output = completion, kept apart) and latency of one role.

    `cost` is None unless the role has a price: a run without prices reports no cost rather
    than a cost of 0.
    """

    calls: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost: float | None = None

    def add(self, completion: Completion, price: Price | None = None) -> None:
        self.calls += 1
        self.prompt_tokens += completion.prompt_tokens
        self.completion_tokens += completion.completion_tokens
        self.latency_s += completion.latency_s
        if price is not None:
            spent = price.cost(completion.prompt_tokens, completion.completion_tokens)
            self.cost = (self.cost or 0.0) + spent

    def merge(self, other: UsageTotals) -> None:
        self.calls += other.calls
        self.failed_calls += other.failed_calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.latency_s += other.latency_s
        if other.cost is not None:
            self.cost = (self.cost or 0.0) + other.cost

    def as_dict(self) -> dict[str, float]:
        out = {
            "calls": self.calls,
            "failed_calls": self.failed_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_s": round(self.latency_s, 4),
        }
        if self.cost is not None:
            out["cost"] = round(self.cost, 9)
        return out


@dataclass
class JsonSchema:
    """A JSON schema to request structured output with (OpenAI `response_format`)."""

    name: str
    schema: dict[str, Any]
    strict: bool = False


class ChatClient(Protocol):
    """Anything that can answer chat requests for a role."""

    async def chat(
        self,
        role: RoleConfig,
        messages: list[dict[str, Any]],
        *,
        json_schema: JsonSchema | None = None,
        n: int = 1,
        seed: int | None = None,
    ) -> list[Completion]:
        """Return `n` completions; raise JudgeError when the request fails for good."""
        ...


@dataclass
class UsageBook:
    """Usage per role name (e.g. for one group, or a whole run)."""

    roles: dict[str, UsageTotals] = field(default_factory=dict)

    def add(self, role: str, completion: Completion, price: Price | None = None) -> None:
        self.roles.setdefault(role, UsageTotals()).add(completion, price)

    def fail(self, role: str) -> None:
        self.roles.setdefault(role, UsageTotals()).failed_calls += 1

    def merge(self, other: UsageBook) -> None:
        for role, totals in other.roles.items():
            self.roles.setdefault(role, UsageTotals()).merge(totals)

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {role: totals.as_dict() for role, totals in sorted(self.roles.items())}

    @property
    def input_tokens(self) -> int:
        return sum(t.prompt_tokens for t in self.roles.values())

    @property
    def output_tokens(self) -> int:
        return sum(t.completion_tokens for t in self.roles.values())

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def cost(self) -> float | None:
        """Cost of every priced role; None when no role has a price (no cost, not a cost of 0)."""
        costs = [t.cost for t in self.roles.values() if t.cost is not None]
        return sum(costs) if costs else None
