"""An in-memory chat client that answers from a script: for unit tests and dry runs.

Each call is matched to a handler by role name; a handler is a reply policy (it gets the
messages and the requested JSON schema and returns the reply text) or raises to simulate a
failing endpoint. No network, so engine tests are fast and exact about what was asked.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ropd.errors import JudgeError
from ropd.llm.config import RoleConfig
from ropd.llm.types import Completion, JsonSchema
from ropd.testing.replies import ReplyPolicy, content_verifier, sample, schema_reply

JUDGE_ROLES = ("rubricator", "verifier", "tjudge", "ovd", "teacher")


@dataclass
class ScriptedCall:
    """One recorded `chat` call."""

    role: str
    messages: list[dict[str, Any]]
    json_schema: JsonSchema | None
    n: int


@dataclass
class ScriptedChatClient:
    """Answers each role with its handler; records every call for assertions."""

    handlers: dict[str, ReplyPolicy]
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
            texts = []
            for choice in range(n):
                with sample(choice, seed):  # the same sample key as the HTTP stub uses
                    texts.append(handler(messages, json_schema))
        finally:
            self.in_flight -= 1
        return [
            Completion(text=t, finish_reason="stop", prompt_tokens=10, completion_tokens=5)
            for t in texts
        ]

    def calls_for(self, role: str) -> list[ScriptedCall]:
        return [c for c in self.calls if c.role == role]


def scripted_judge(latency_s: float = 0.0, roles: tuple[str, ...] = ()) -> ScriptedChatClient:
    """A client answering every judge role (and the teacher) with `schema_reply`."""
    return ScriptedChatClient(
        {name: schema_reply for name in roles or JUDGE_ROLES}, latency_s=latency_s
    )


def make_client(
    rubric: str | ReplyPolicy,
    verifier: ReplyPolicy = content_verifier,
    latency_s: float = 0.0,
) -> ScriptedChatClient:
    """A Rubricator answering `rubric` and a Verifier (by default judging by content)."""
    rubricator: ReplyPolicy = rubric if callable(rubric) else _constant(rubric)
    return ScriptedChatClient({"rubricator": rubricator, "verifier": verifier}, latency_s=latency_s)


def _constant(text: str) -> ReplyPolicy:
    def reply(messages: list[dict[str, Any]], json_schema: JsonSchema | None) -> str:
        return text

    return reply
