"""Turning untrusted text into judge messages that it cannot break out of.

Everything that is not ours is delimited: the task (it may come from user data), the answers,
and the criteria another judge wrote.

Each call gets a fresh random boundary token. It is drawn after the answers exist, so an answer
cannot contain it except by chance, which is checked: an answer that contains the token is
rendered with the token masked. Reasoning delimiters (`</think>`, `<|end_of_thought|>`, ...)
in any block are made inert (`ropd.text.defang_delimiters`), whatever cleaned the text before.
Verdicts are later taken only by answer number from the validated JSON structure, never by
searching the reply for labels.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from ropd.rubric import Rubric
from ropd.text import defang_delimiters

_MASK = "[masked]"


def new_boundary(texts: Sequence[str]) -> str:
    """A random marker token that occurs in none of `texts`."""
    while True:
        token = "ROPD-" + secrets.token_hex(8).upper()
        if not any(token in t for t in texts):
            return token


def render_block(boundary: str, label: str, text: str) -> str:
    """`text` between boundary markers; the boundary and any reasoning delimiter in it inert."""
    body = defang_delimiters(text).replace(boundary, _MASK)
    return f"<<<{boundary} {label}>>>\n{body}\n<<<{boundary} END>>>"


def render_blocks(boundary: str, label: str, texts: Sequence[str], numbers: Sequence[int]) -> str:
    return "\n\n".join(render_block(boundary, f"{label} {n}", t) for n, t in zip(numbers, texts))


def render_prompt(prompt: str | list[dict[str, Any]]) -> str:
    """The task as the judges see it: the text, or the conversation as a transcript."""
    if isinstance(prompt, str):
        return prompt.strip()
    lines = []
    for message in prompt:
        content = message.get("content", "")
        if isinstance(content, list):  # OpenAI content parts: keep the text parts
            content = "\n".join(part.get("text", "") for part in content if isinstance(part, dict))
        lines.append(f"[{message.get('role', 'user')}]\n{content}")
    return "\n\n".join(lines).strip()


def render_task(boundary: str, prompt_text: str) -> str:
    """The task in its own block: a prompt from user data cannot impersonate the structure."""
    return render_block(boundary, "TASK", prompt_text)


def render_rubric(boundary: str, rubric: Rubric) -> str:
    """Criteria for the verifier, one block each with its id, without weights (ours to apply).

    Judge-written text is delimited like answers: a criterion cannot add lines that look like
    further criteria or like the answers section.
    """
    return "\n".join(
        render_block(boundary, f"CRITERION {c.id}", c.criterion) for c in rubric.criteria
    )
