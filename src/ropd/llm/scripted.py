"""An in-memory chat client that answers from a script: for unit tests and dry runs.

Each call is matched to a handler by role name; a handler gets the messages (and the requested
JSON schema) and returns the text of the reply, or raises to simulate a failing endpoint.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ropd.llm.config import RoleConfig
from ropd.llm.types import Completion, JsonSchema, JudgeError

Handler = Callable[[list[dict[str, Any]], JsonSchema | None], str]


@dataclass
class ScriptedCall:
    role: str
    messages: list[dict[str, Any]]
    json_schema: JsonSchema | None
    n: int


@dataclass
class ScriptedChatClient:
    """Answers each role with its handler; records every call for assertions."""

    handlers: dict[str, Handler]
    latency_s: float = 0.0
    calls: list[ScriptedCall] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    async def chat(
        self,
        role: RoleConfig,
        messages: list[dict[str, Any]],
        *,
        json_schema: JsonSchema | None = None,
        n: int = 1,
        seed: int | None = None,
    ) -> list[Completion]:
        self.calls.append(ScriptedCall(role.name, messages, json_schema, n))
        handler = self.handlers.get(role.name)
        if handler is None:
            raise JudgeError(f"no scripted handler for role {role.name!r}")
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            texts = [handler(messages, json_schema) for _ in range(n)]
        finally:
            self.in_flight -= 1
        return [
            Completion(text=t, finish_reason="stop", prompt_tokens=10, completion_tokens=5)
            for t in texts
        ]

    def calls_for(self, role: str) -> list[ScriptedCall]:
        return [c for c in self.calls if c.role == role]
