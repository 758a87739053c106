"""Reading a judge's reply: which JSON object in it is the judge's answer.

A judge's reply is untrusted twice over: the model may wrap JSON in prose, code fences or
reasoning, and it may quote text from the answers it judges, including a forged verdict object
written by a student to raise its own reward. The rule, which no answer text can game:

1. Only the judge's own leading reasoning is removed (`reply_body`): a `<think>...</think>` block
   at the very start of the reply (up to its first `</think>`); a reply that opens `<think>` and
   never closes it has no final answer. Without a leading block, text before a first `</think>`
   is dropped (a chat template opened the block) only when it holds no `{`. Nothing from the
   first object on is ever removed by a reasoning rule, so a quoted `</think>` cannot hide the
   judge's own object.
2. When what is left is exactly one JSON object (optionally inside one code fence), that object
   is the reply, and nothing inside it is searched further. When the endpoint enforced the schema
   (`structured=True`), that is the only accepted form, and only a leading `<think>` block may
   precede it.
3. Otherwise every top-level object in the text is validated. None valid: invalid. All valid
   ones meaning the same: that meaning. Valid ones that disagree: `AmbiguousReply` - the caller
   asks again and, if it stays ambiguous, the group fails with that cause. Position never
   decides, because a judge may quote the forged object before or after its own.
4. An object that repeats a key with different values (at any depth) is never taken: when it
   validates (read with the last value, as Python's `json` reads it) the reply is
   `AmbiguousReply`; otherwise it is one more invalid object. The same key repeated with the
   same value is read once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from ropd.errors import RopdError

T = TypeVar("T")
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_LEADING_OPEN = re.compile(r"\s*<think>", re.IGNORECASE)
_CLOSE = re.compile(r"</think>", re.IGNORECASE)


class JsonExtractionError(RopdError, ValueError):
    """No JSON object could be found in the reply."""


class AmbiguousReply(JsonExtractionError):
    """The reply holds several valid objects that disagree; none of them is taken."""


class _Repeated(dict[str, Any]):
    """A decoded object that repeats `key` with different values (it holds the last ones)."""

    key: str


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object's members, marked when a key comes twice with different values.

    Python's `json` keeps the last value of a repeated key, other readers the first: which one
    the judge meant is unknown, so such an object is never taken (`_checked`).
    """
    found: dict[str, Any] = {}
    repeated: str | None = None
    for key, value in pairs:
        if key in found and repeated is None and _canonical(found[key]) != _canonical(value):
            repeated = key
        found[key] = value
    if repeated is None:
        return found
    marked = _Repeated(found)
    marked.key = repeated
    return marked


# strict=False: raw newlines and tabs inside strings are accepted. Grammar-constrained decoders
# (llama.cpp) let a model write them, and the meaning is unambiguous.
_DECODER = json.JSONDecoder(strict=False, object_pairs_hook=_pairs)


def reply_body(text: str, *, structured: bool = False) -> str | None:
    """The reply without the judge's leading reasoning; None when that reasoning never ends.

    Only a `<think>` block at the very start is removed, up to its first `</think>`. Without
    one, and unless `structured`, the text before the first `</think>` (a block the chat
    template opened) is removed when it holds no `{`: a `</think>` quoted after an object can
    never remove the object.
    """
    opened = _LEADING_OPEN.match(text)
    if opened:
        close = _CLOSE.search(text, opened.end())
        return None if close is None else text[close.end() :]
    close = _CLOSE.search(text)
    if close and not structured and "{" not in text[: close.start()]:
        return text[close.end() :]
    return text


def _whole(body: str) -> dict[str, Any] | None:
    """The object when `body` (leading reasoning removed) is exactly one JSON object."""
    body = body.strip()
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

    Raises `JsonExtractionError` (no object, reasoning never closed, or anything but one object
    in a schema-enforced reply), `AmbiguousReply`, or the validator's own error (pydantic
    `ValidationError`/`ValueError`).
    """
    if not isinstance(text, str) or not text.strip():
        raise JsonExtractionError("the reply is empty")
    body = reply_body(text, structured=structured)
    if body is None:
        raise JsonExtractionError("the reply has no final answer: its <think> is never closed")
    whole = _whole(body)
    if whole is not None:
        return _checked(whole, validate)
    if structured:
        raise JsonExtractionError(
            "the reply is not exactly one JSON object (" + _snippet(text) + ")"
        )
    candidates = _objects(body)
    if not candidates:
        raise JsonExtractionError(f"no JSON object found in the reply ({_snippet(text)})")
    valid: dict[str, T] = {}
    last_error: ValueError | None = None
    for candidate in candidates:
        try:
            value = _checked(candidate, validate)
        except AmbiguousReply:
            raise
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
    """Every top-level JSON object in the reply (leading reasoning removed), in order.

    An object nested in another is not a candidate of its own; `choose_valid` decides among
    the candidates.
    """
    body = reply_body(text) if isinstance(text, str) else None
    return [] if body is None else _objects(body)


def _objects(body: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    start = body.find("{")
    while start != -1:
        try:
            value, end = _DECODER.raw_decode(body, start)
        except (json.JSONDecodeError, RecursionError):
            start = body.find("{", start + 1)
            continue
        if isinstance(value, dict):
            found.append(value)
        start = body.find("{", end)
    return found


def _checked(obj: dict[str, Any], validate: Callable[[dict[str, Any]], T]) -> T:
    """`validate(obj)`; `AmbiguousReply` when it validates but repeats a key somewhere."""
    value = validate(obj)
    key = _repeated_key(obj)
    if key is not None:
        raise AmbiguousReply(
            f"the reply repeats the key {key[:60]!r} with different values; which one is the "
            "judge's is ambiguous"
        )
    return value


def _repeated_key(value: Any) -> str | None:
    """The first key repeated with different values anywhere in a decoded value, or None.

    Iterative: a deeply nested reply that decoded must not overflow the stack here.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Repeated):
            return item.key
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


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
