"""Keys of the teacher store: the prompt key and the teacher fingerprint.

An answer is stored under (prompt key, fingerprint). The prompt key hashes the canonical chat
messages; the fingerprint holds only what changes the answers (model, sampling, system prompt,
template version) and never transport details (endpoint URL, API key, timeout), so moving to
another gateway keeps the store valid.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ropd.llm.config import RoleConfig

TEMPLATE_VERSION = "ropd.teacher.v1"
"""How a record becomes a teacher request; bump it when that changes (it changes the answers)."""


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: the one text that is hashed for any structure."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def canonical_messages(messages: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages reduced to role and content (a plain string is one user message)."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def prompt_key(messages: str | list[dict[str, Any]]) -> str:
    """SHA-256 of the canonical messages (after the system prompt has been applied)."""
    text = canonical_json(canonical_messages(messages))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class TeacherFingerprint(BaseModel):
    """What makes two teacher answers comparable: same model, same sampling, same prompt shape."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    system_prompt: str | None = None
    template_version: str = TEMPLATE_VERSION
    extra: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_role(
        cls,
        role: RoleConfig,
        *,
        system_prompt: str | None = None,
        template_version: str = TEMPLATE_VERSION,
    ) -> TeacherFingerprint:
        """The fingerprint of a role; base_url, api_key_env and timeout_s are left out."""
        return cls(
            model=role.model,
            temperature=role.temperature,
            top_p=role.top_p,
            max_tokens=role.max_tokens,
            system_prompt=system_prompt or None,
            template_version=template_version,
            extra=dict(role.extra_body),
        )

    def fields(self) -> dict[str, Any]:
        """Flat field -> value mapping (extra fields as `extra.<name>`)."""
        flat = self.model_dump(exclude={"extra"})
        for name, value in self.extra.items():
            flat[f"extra.{name}"] = value
        return flat

    @property
    def hash(self) -> str:
        """A stable short hash (16 hex digits) of the canonical fields."""
        digest = hashlib.sha256(canonical_json(self.model_dump(mode="json")).encode("utf-8"))
        return digest.hexdigest()[:16]

    def diff(
        self, other: TeacherFingerprint, labels: tuple[str, str] = ("this", "other")
    ) -> list[str]:
        """Human-readable differences, e.g. `temperature: 1.0 (this) != 0.7 (other)`."""
        mine, theirs = self.fields(), other.fields()
        lines = []
        for name in sorted(set(mine) | set(theirs)):
            a, b = mine.get(name, "<unset>"), theirs.get(name, "<unset>")
            if a != b:
                lines.append(f"{name}: {a!r} ({labels[0]}) != {b!r} ({labels[1]})")
        return lines

    def describe(self) -> str:
        """One line for logs and tables."""
        parts = [f"{k}={v!r}" for k, v in self.fields().items() if v is not None]
        return f"{self.hash} " + " ".join(parts)
