"""Classify a teacher answer as ok, empty, truncated or refused.

Only `ok` answers are used as references unless the user accepts more: an empty or cut-off
reference, or a refusal, would teach the rubric the wrong target.
"""

from __future__ import annotations

import re
from typing import Literal

from ropd.text import strip_think

Status = Literal["ok", "empty", "truncated", "refused"]
STATUSES: tuple[Status, ...] = ("ok", "empty", "truncated", "refused")
USABLE_DEFAULT: frozenset[str] = frozenset({"ok"})

REFUSAL_MAX_CHARS = 400
_REFUSAL = re.compile(
    r"^\W*(?:i'?m sorry|i am sorry|sorry|unfortunately|as an ai)?[,.\s]*"
    r"(?:but\s+)?i\s*(?:can(?:no|')t|am unable to|'m unable to|won'?t|will not|must decline)"
    r"\s+(?:help|assist|comply|provide|answer|do that|fulfil|fulfill|share)",
    re.IGNORECASE,
)


def classify(text: str, finish_reason: str | None) -> Status:
    """Truncated beats everything (the answer is incomplete); then empty; then refused."""
    if finish_reason == "length":
        return "truncated"
    answer = strip_think(text)
    if not answer:
        return "empty"
    if finish_reason == "content_filter":
        return "refused"
    if len(answer) <= REFUSAL_MAX_CHARS and _REFUSAL.search(answer):
        return "refused"
    return "ok"
