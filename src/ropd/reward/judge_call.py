"""One structured judge request, re-asked with the validation error when the reply is unusable.

Shared by every judge call (ROPD's Rubricator and Verifier, the T-Judge baseline, the eval
grader): a reply cut off at max_tokens is never read (what survives a cut may be only a quoted
object); which object of a reply counts is decided by `ropd.jsonparse.choose_valid` (a rule no
answer text can game); its content is validated strictly; and a judge that keeps failing raises
`InvalidJudgeReply` for the caller's failure policy to handle. Error texts are scrubbed of
secrets: a judge that echoes the API key cannot carry it into a trace or a score line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import ValidationError

from ropd.errors import JudgeError
from ropd.jsonparse import AmbiguousReply, JsonExtractionError, choose_valid
from ropd.llm.config import RoleConfig
from ropd.llm.types import ChatClient, JsonSchema, UsageBook
from ropd.redact import scrub

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
        book.add(role.name, completion, role.price)
        try:
            if completion.finish_reason == "length":
                # A cut reply is never read: what survives the cut may be only a quoted object.
                raise JsonExtractionError("the reply was cut off at max_tokens")
            return choose_valid(completion.text, validate, structured=completion.structured)
        except AmbiguousReply as exc:
            last_error = f"ambiguous reply: {exc}"
            again = (
                f"Your reply cannot be read: {scrub(str(exc))}. Do not repeat JSON quoted from "
                "the answers, and write each key once. Reply with exactly one JSON object, "
                f"your own, {form_hint}, and nothing else."
            )
        except (JsonExtractionError, ValueError) as exc:  # pydantic errors are ValueErrors
            last_error = short_error(exc)
            again = (
                f"That reply is invalid: {last_error}. Reply again with the complete JSON "
                f"object only, {form_hint}."
            )
        attempt = [
            *messages,
            {"role": "assistant", "content": completion.text[:4000]},
            {"role": "user", "content": again},
        ]
    raise InvalidJudgeReply(
        scrub(f"{role.name} gave no valid reply in {retries + 1} attempts: {last_error}")
    )


def short_error(exc: Exception) -> str:
    """A one-line description of a parse or validation error, for the judge and the trace."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return scrub(f"{where}: {first.get('msg')}{more}")
    return scrub(str(exc)[:300])
