"""A judge that answers any ropd schema request from the schema itself: for tests and benchmarks.

Rubric requests get `min_criteria` criteria; verdict requests get one pseudo-random but
deterministic boolean per (answer, criterion) derived from the request text, so rewards differ
inside a group as they would with a real judge; scalar requests get a score from 0 to 10.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ropd.llm.scripted import ScriptedChatClient
from ropd.llm.types import JsonSchema
from ropd.reward.schemas import (
    RUBRIC_SCHEMA_NAME,
    SCALAR_SCHEMA_NAME,
    VERDICTS_SCHEMA_NAME,
    answer_key,
    verdicts_schema_shape,
)

CATEGORIES = ("correctness", "reasoning", "completeness", "format")


def _bits(*parts: object) -> int:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def schema_reply(messages: list[dict[str, Any]], schema: JsonSchema | None) -> str:
    """A valid JSON reply for the requested ropd schema."""
    text = json.dumps(messages, sort_keys=True)
    if schema is None:  # a teacher request: a short plain answer
        return f"The answer is {_bits(text) % 100}."
    body = schema.schema
    if schema.name == RUBRIC_SCHEMA_NAME:
        n = body["properties"]["criteria"].get("minItems", 4)
        criteria = [
            {
                "id": f"C{i + 1}",
                "category": CATEGORIES[i % len(CATEGORIES)],
                "criterion": f"The answer satisfies check number {i + 1}.",
                "points": 5 - (i % 4),
            }
            for i in range(n)
        ]
        return json.dumps({"criteria": criteria})
    if schema.name == VERDICTS_SCHEMA_NAME:
        count, ids = verdicts_schema_shape(body)
        entries = {
            answer_key(a): {c: bool(_bits(text, a, c) & 1) for c in ids}
            for a in range(1, count + 1)
        }
        return json.dumps(entries)
    if schema.name == SCALAR_SCHEMA_NAME:
        return json.dumps({"reasoning": "scripted", "score": _bits(text) % 11})
    raise ValueError(f"no scripted reply for schema {schema.name!r}")


def scripted_judge(latency_s: float = 0.0, roles: tuple[str, ...] = ()) -> ScriptedChatClient:
    """A `ScriptedChatClient` answering every judge role from the schema."""
    names = roles or ("rubricator", "verifier", "tjudge", "teacher")
    return ScriptedChatClient({name: schema_reply for name in names}, latency_s=latency_s)
