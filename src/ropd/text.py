"""Small text helpers shared by the judge, the teacher store and evaluation."""

from __future__ import annotations

import re

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


def clip_middle(text: str, limit: int) -> str:
    """Keep the head and the tail of an over-long answer (a final answer is usually at the end).

    Every scorer clips answers with this one rule, so ROPD and its baselines judge the same text.
    """
    if len(text) <= limit:
        return text
    half = limit // 2
    omitted = len(text) - 2 * half
    return f"{text[:half]}\n[... {omitted} characters omitted ...]\n{text[-half:]}"
