"""Small text helpers shared by the judge, the teacher store and evaluation."""

from __future__ import annotations

import re
from collections.abc import Callable

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_OPEN_THINK = re.compile(r"<think>.*\Z", re.DOTALL | re.IGNORECASE)
_DANGLING_CLOSE = re.compile(r"\A.*?</think>", re.DOTALL | re.IGNORECASE)


def strip_think(text: str) -> str:
    """Remove `<think>...</think>` reasoning, so only the final answer is judged.

    An unclosed `<think>` (a truncated reasoning) drops everything after it; a lone closing
    tag (templates that open the block in the prompt) drops everything before it.
    """
    text = _THINK_BLOCK.sub("", text)
    if "</think>" in text.lower():
        text = _DANGLING_CLOSE.sub("", text)
    text = _OPEN_THINK.sub("", text)
    return text.strip()


CONTEXT_CUT = "cut to fit the judge's context window"


def clip_middle(text: str, limit: int, *, why: str = "omitted") -> str:
    """Keep the head and the tail of an over-long answer (a final answer is usually at the end).

    Every scorer clips answers with this one rule, so ROPD and its baselines judge the same text.
    The cut is said in the text (`[... N characters <why> ...]`): a judge must not take a
    clipped answer for one that stops half-way.
    """
    if len(text) <= limit:
        return text
    half = max(limit, 0) // 2
    omitted = len(text) - 2 * half
    tail = text[-half:] if half else ""
    return f"{text[:half]}\n[... {omitted} characters {why} ...]\n{tail}"


def clip_to_fit(text: str, max_tokens: int, count: Callable[[str], int]) -> str:
    """`clip_middle` to at most `max_tokens` as `count` measures them, cutting no more than needed.

    The first cut is proportional (characters per token of this text); a tokenizer that counts
    the kept head and tail denser than the whole is followed by a few tighter cuts.
    """
    tokens = count(text)
    if tokens <= max_tokens:
        return text
    limit = len(text) * max(max_tokens, 0) // tokens
    while True:
        clipped = clip_middle(text, limit, why=CONTEXT_CUT)
        if limit <= 0 or count(clipped) <= max_tokens:
            return clipped
        limit = min(limit - 1, limit * 9 // 10)
