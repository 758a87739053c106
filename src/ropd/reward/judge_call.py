"""One structured judge request, re-asked with the validation error when the reply is malformed.

Shared by every scorer (ROPD's Rubricator and Verifier, the T-Judge baseline): the reply is
parsed leniently, validated strictly, and a judge that keeps failing raises `InvalidJudgeReply`
for the caller's failure policy to handle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import ValidationError

from ropd.errors import JudgeError
from ropd.jsonparse import JsonExtractionError, json_object_candidates, parse_json_object
from ropd.llm.config import RoleConfig
from ropd.llm.types import ChatClient, JsonSchema, UsageBook

T = TypeVar("T")


class InvalidJudgeReply(JudgeError, ValueError):
    """The judge kept answering with JSON that does not fit the required structure."""


async def ask_json(
    client: ChatClient,
    role: RoleConfig,
    messages: list[dict[str, Any]],
    schema: JsonSchema,
    validate: Callable[[dict[str, Any]], T],
    book: UsageBook,
    *,
    retries: int,
    form_hint: str = "in exactly the required form",
) -> T:
    """Ask `role`; on a reply that does not validate, ask again up to `retries` more times."""
    attempt = list(messages)
    last_error = ""
    for _ in range(retries + 1):
        try:
            completion = (await client.chat(role, attempt, json_schema=schema))[0]
        except JudgeError:
            book.fail(role.name)
            raise
        book.add(role.name, completion)
        try:
            return first_valid(completion.text, validate)
        except (JsonExtractionError, ValidationError, ValueError) as exc:
            last_error = short_error(exc)
            if completion.finish_reason == "length":
                last_error += " (the reply was cut off at max_tokens)"
            attempt = [
                *messages,
                {"role": "assistant", "content": completion.text[:4000]},
                {
                    "role": "user",
                    "content": f"That reply is invalid: {last_error}. Reply again with the "
                    f"complete JSON object only, {form_hint}.",
                },
            ]
    raise InvalidJudgeReply(
        f"{role.name} gave no valid reply in {retries + 1} attempts: {last_error}"
    )


def first_valid(text: str, validate: Callable[[dict[str, Any]], T]) -> T:
    """Validate the reply's JSON objects from last to first; the first that fits wins.

    The whole reply is tried first (the normal case with structured output); the scan only
    matters for endpoints that let a judge write prose or quote an answer's forged JSON.
    """
    first = parse_json_object(text)
    try:
        return validate(first)
    except (ValidationError, ValueError):
        for candidate in reversed(json_object_candidates(text)):
            try:
                return validate(candidate)
            except (ValidationError, ValueError):
                continue
        raise


def short_error(exc: Exception) -> str:
    """A one-line description of a parse or validation error, for the judge and the trace."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"{where}: {first.get('msg')}{more}"
    return str(exc)[:300]
