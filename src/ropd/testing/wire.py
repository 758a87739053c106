"""What an OpenAI-compatible chat request asked for, rebuilt as the in-memory call would be.

Over HTTP a reply policy must see what `ChatClient.chat` was given: the caller's messages and a
`JsonSchema`. The json_schema form of `response_format` carries name and schema; llama.cpp's
`{"type": "json_object", "schema": ...}` form and the plain-prompt fallback (the schema appended
to the last user message by `ropd.llm.client`) carry no name, so the ropd schema is recognised
by its shape, and the appended hint is taken off the messages again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ropd.llm.types import JsonSchema
from ropd.reward.schemas import (
    OVD_SCHEMA_NAME,
    RUBRIC_SCHEMA_NAME,
    SCALAR_SCHEMA_NAME,
    VERDICTS_SCHEMA_NAME,
    answer_key,
)

# The line `ropd.llm.client` puts before a schema it cannot send as `response_format`.
SCHEMA_HINT = "Reply with one JSON object only, matching this JSON schema:\n"


@dataclass
class WireRequest:
    """A request's messages and schema as the caller passed them, and its `response_format` form.

    `form` is json_schema, json_object_schema (llama-cpp-python's form), json_object or None.
    """

    messages: list[dict[str, Any]]
    json_schema: JsonSchema | None
    form: str | None

    @property
    def label(self) -> str:
        """The reply kind counted in the stub's stats: schema name, form, or "text"."""
        if self.form == "json_schema":
            return (self.json_schema.name if self.json_schema else "") or "json_schema"
        return self.form or "text"


def format_form(response_format: dict[str, Any]) -> str | None:
    """json_schema, json_object_schema, json_object, or None (no structured output asked)."""
    kind = response_format.get("type")
    if kind == "json_object" and isinstance(response_format.get("schema"), dict):
        return "json_object_schema"
    return kind if kind in ("json_schema", "json_object") else None


def schema_name(schema: dict[str, Any]) -> str:
    """The ropd schema name a nameless schema has the shape of ("" if none)."""
    properties = schema.get("properties") or {}
    if "criteria" in properties:
        return RUBRIC_SCHEMA_NAME
    if "score" in properties:  # T-Judge asks for its reasoning too; OVD for the score alone
        return SCALAR_SCHEMA_NAME if "reasoning" in properties else OVD_SCHEMA_NAME
    keys = list(schema.get("required") or [])
    if keys and keys == [answer_key(n) for n in range(1, len(keys) + 1)]:
        # per answer: an object of verdicts (Verifier), or an integer score (OVD per group)
        integer = (properties.get(keys[0]) or {}).get("type") == "integer"
        return OVD_SCHEMA_NAME if integer else VERDICTS_SCHEMA_NAME
    return ""


def split_schema_hint(
    messages: list[dict[str, Any]],
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """(schema, messages without it) when the last user message carries a schema hint."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        content = message.get("content")
        if message.get("role") != "user" or not isinstance(content, str):
            continue
        head, found, tail = content.rpartition(SCHEMA_HINT)
        if not found:
            return None
        try:
            schema = json.loads(tail)
        except json.JSONDecodeError:
            return None
        if not isinstance(schema, dict):
            return None
        rest = list(messages)
        if head:  # appended to the caller's message
            rest[index] = {**message, "content": head.removesuffix("\n\n")}
        else:  # a message of its own
            del rest[index]
        return schema, rest
    return None


def read_request(request: dict[str, Any]) -> WireRequest:
    """The messages, `JsonSchema` and format form of a chat-completions request body."""
    messages = list(request.get("messages") or [])
    response_format = request.get("response_format") or {}
    form = format_form(response_format)
    if form == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") or {}
        name = str(spec.get("name") or "") or schema_name(schema)
        return WireRequest(messages, JsonSchema(name=name, schema=schema), form)
    if form == "json_object_schema":
        schema = response_format["schema"]
        return WireRequest(messages, JsonSchema(name=schema_name(schema), schema=schema), form)
    hinted = split_schema_hint(messages)
    if hinted is not None:
        schema, messages = hinted
        return WireRequest(messages, JsonSchema(name=schema_name(schema), schema=schema), form)
    if form == "json_object":  # JSON asked for, shape unknown
        return WireRequest(messages, JsonSchema(name="", schema={}), form)
    return WireRequest(messages, None, form)
