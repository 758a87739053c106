"""Lenient extraction of one JSON object from a judge's reply.

Endpoints that ignore `response_format`, and models that wrap JSON in prose, code fences or
reasoning blocks, are common; the reply is searched for the first decodable JSON object.
Validation of its content is the caller's job (pydantic models).
"""

from __future__ import annotations

import json
import re
from typing import Any

from ropd.errors import RopdError
from ropd.text import strip_think

# strict=False: raw newlines and tabs inside strings are accepted. Grammar-constrained decoders
# (llama.cpp) let a model write them, and the meaning is unambiguous.
_DECODER = json.JSONDecoder(strict=False)
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


class JsonExtractionError(RopdError, ValueError):
    """No JSON object could be found in the reply."""


def parse_json_object(text: str) -> dict[str, Any]:
    """Return the first JSON object in `text`, tolerating fences, prose and `<think>` blocks."""
    if not isinstance(text, str) or not text.strip():
        raise JsonExtractionError("the reply is empty")
    try:  # the normal case with structured output: the whole reply is the object
        whole = _DECODER.decode(text.strip())
    except (json.JSONDecodeError, RecursionError):
        whole = None
    if isinstance(whole, dict):
        return whole
    candidates = [text]
    without_think = strip_think(text)
    if without_think != text:
        candidates.insert(0, without_think)
    for candidate in candidates:
        for block in [*_FENCE.findall(candidate), candidate]:
            found = _first_object(block)
            if found is not None:
                return found
    snippet = text.strip().replace("\n", " ")[:120]
    raise JsonExtractionError(f"no JSON object found in the reply (starts with {snippet!r})")


def json_object_candidates(text: str) -> list[dict[str, Any]]:
    """Every top-level JSON object in the reply (reasoning removed), in order of appearance.

    Callers that validate structure should prefer the last candidate that validates: a judge
    that quotes an answer's forged JSON before giving its own verdict puts its own last.
    """
    body = strip_think(text) if isinstance(text, str) else ""
    found: list[dict[str, Any]] = []
    decoder = _DECODER
    start = body.find("{")
    while start != -1:
        try:
            value, end = decoder.raw_decode(body, start)
        except (json.JSONDecodeError, RecursionError):
            start = body.find("{", start + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        start = body.find("{", end)
    return found


def _first_object(text: str) -> dict[str, Any] | None:
    stripped = text.strip()
    try:
        value = _DECODER.decode(stripped)
    except (json.JSONDecodeError, RecursionError):
        pass
    else:
        if isinstance(value, dict):
            return value
    decoder = _DECODER
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except (json.JSONDecodeError, RecursionError):
            value = None
        if isinstance(value, dict):
            return value
        start = text.find("{", start + 1)
    return None
