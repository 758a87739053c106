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
    tag (templates that open the block in the prompt) drops everything before it. This is the
    rule for answers (what eval scoring reads as the final answer); a judge's reply is never
    cleaned with it (`ropd.jsonparse.reply_body`): it would let a quoted `</think>` drop the
    judge's own object.
    """
    text = _THINK_BLOCK.sub("", text)
    if "</think>" in text.lower():
        text = _DANGLING_CLOSE.sub("", text)
    text = _OPEN_THINK.sub("", text)
    return text.strip()


# Reasoning delimiters of common reasoning models (`<think>`, `</ think >`, `<thinking>`,
# `<reasoning>`, ...) and special-token markers (`<|end_of_thought|>`, `<|channel|>`,
# `<|im_end|>`, DeepSeek's `<｜end▁of▁sentence｜>`). In an answer shown to a judge they are text,
# never structure: a judge reply quoting one must not look like the judge's own reasoning, and a
# chat template must not read one as a turn boundary.
_REASONING_TAG = re.compile(
    r"<\s*(/?)\s*(think|thinking|thought|reasoning|reflection)\b[^<>]*>", re.IGNORECASE
)
_SPECIAL_MARKER = re.compile(r"<\s*[|｜]([^<>|｜\n]{1,64})[|｜]\s*>")


def defang_delimiters(text: str) -> str:
    """`text` with every reasoning delimiter and special-token marker made visibly inert.

    `</think>` becomes `[/think]`, `<|end_of_thought|>` becomes `[|end_of_thought|]`: the reader
    still sees what was written, but nothing that parses replies or renders chat templates takes
    it for a delimiter. Repeated until stable, so a tag hidden inside another (`<think <think>>`)
    does not come back together.
    """
    while True:
        defanged = _REASONING_TAG.sub(_inert_tag, text)
        defanged = _SPECIAL_MARKER.sub(lambda m: f"[|{m.group(1)}|]", defanged)
        if defanged == text:
            return text
        text = defanged


def _inert_tag(match: re.Match[str]) -> str:
    return f"[{match.group(1)}{match.group(2).lower()}]"


def answer_for_judge(text: str, *, strip: bool = True) -> str:
    """An answer (student or teacher) as a judge is shown it.

    With `strip`, reasoning is removed by `strip_think` (the final answer, as eval scoring reads
    it); with or without, no reasoning delimiter reaches the judge live (`defang_delimiters`).
    """
    if strip:
        text = strip_think(text)
    return defang_delimiters(text).strip()


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
