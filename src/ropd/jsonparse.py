"""Reading a judge's reply: which JSON object in it is the judge's answer.

A judge's reply is untrusted twice over: the model may wrap JSON in prose, code fences or
reasoning, and it may quote text from the answers it judges, including a forged verdict object
written by a student to raise its own reward. The rule, which no answer text can game:

1. Reasoning (`<think>` blocks) is removed. When what is left is exactly one JSON object
   (optionally inside one code fence), that object is the reply, and nothing inside it is
   searched further.
2. When the endpoint enforced the schema (`structured=True`), that is the only accepted form.
3. Otherwise every top-level object in the text is validated. None valid: invalid. All valid
   ones meaning the same: that meaning. Valid ones that disagree: `AmbiguousReply` - the caller
   asks again and, if it stays ambiguous, the group fails with that cause. Position never
   decides, because a judge may quote the forged object before or after its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from ropd.errors import RopdError
from ropd.text import strip_think

# strict=False: raw newlines and tabs inside strings are accepted. Grammar-constrained decoders
# (llama.cpp) let a model write them, and the meaning is unambiguous.
_DECODER = json.JSONDecoder(strict=False)
T = TypeVar("T")
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


class JsonExtractionError(RopdError, ValueError):
    """No JSON object could be found in the reply."""


class AmbiguousReply(JsonExtractionError):
    """The reply holds several valid objects that disagree; none of them is taken."""


def whole_object(text: str) -> dict[str, Any] | None:
    """The reply's object when the reply (reasoning removed) is exactly one JSON object."""
    if not isinstance(text, str):
        return None
    body = strip_think(text).strip()
    fenced = _FENCE.fullmatch(body)
    if fenced:
        body = fenced.group(1).strip()
    try:
        value = _DECODER.decode(body)
    except (json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def choose_valid(text: str, validate: Callable[[dict[str, Any]], T], *, structured: bool) -> T:
    """The validated content of the judge's reply, by the rule in the module docstring.

    Raises `JsonExtractionError` (no object, or several in a schema-enforced reply),
    `AmbiguousReply`, or the validator's own error (pydantic `ValidationError`/`ValueError`).
    """
    if not isinstance(text, str) or not text.strip():
        raise JsonExtractionError("the reply is empty")
    whole = whole_object(text)
    if whole is not None:
        return validate(whole)
    if structured:
        raise JsonExtractionError(
            "the reply is not exactly one JSON object (" + _snippet(text) + ")"
        )
    candidates = json_object_candidates(text)
    if not candidates:
        raise JsonExtractionError(f"no JSON object found in the reply ({_snippet(text)})")
    valid: dict[str, T] = {}
    last_error: ValueError | None = None
    for candidate in candidates:
        try:
            value = validate(candidate)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            last_error = exc
            continue
        valid.setdefault(_canonical(value), value)
    if not valid:
        assert last_error is not None
        raise last_error
    if len(valid) > 1:
        raise AmbiguousReply(
            f"the reply holds {len(valid)} different valid JSON objects; which one is the "
            "judge's own is ambiguous"
        )
    return next(iter(valid.values()))


def json_object_candidates(text: str) -> list[dict[str, Any]]:
    """Every top-level JSON object in the reply (reasoning removed), in order of appearance.

    An object nested in another is not a candidate of its own; `choose_valid` decides among
    the candidates.
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


def _snippet(text: str) -> str:
    return "starts with " + repr(text.strip().replace("\n", " ")[:120])


def _canonical(value: Any) -> str:
    """One string per meaning, so that equal verdicts quoted twice are not a disagreement."""
    if isinstance(value, BaseModel):
        value = value.model_dump()
    try:
        return json.dumps(value, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        return repr(value)
