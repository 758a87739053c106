"""Test helpers for code built on ropd: a scripted judge whose verdicts follow answer content.

Criteria are "answer mentions W" checks, so a test knows the right verdict for every answer and
can check that shuffling, chunking and dedupe map verdicts back to the right source. Used by
ropd's own tests; handy for testing a training setup without any model behind the judge.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from ropd.llm.scripted import ScriptedChatClient
from ropd.reward.schemas import answer_key

ANSWER_BLOCK = re.compile(r"<<<(ROPD-[0-9A-F]+) ANSWER (\d+)>>>\n(.*?)\n<<<\1 END>>>", re.DOTALL)
RUBRIC_LINE = re.compile(r"^- (C\d+): answer mentions (\w+)$", re.MULTILINE)


def rubric_reply(words_points: list[tuple[str, int]], category: str = "correctness") -> str:
    criteria = [
        {"id": f"X{n}", "category": category, "criterion": f"answer mentions {w}", "points": p}
        for n, (w, p) in enumerate(words_points)
    ]
    return json.dumps({"criteria": criteria})


def answers_in(messages: list[dict[str, Any]]) -> dict[int, str]:
    """Answer number -> text, as the verifier was shown them."""
    return {int(n): text for _, n, text in ANSWER_BLOCK.findall(messages[-1]["content"])}


def content_verifier(messages: list[dict[str, Any]], schema: object) -> str:
    """Verdicts by content: criterion 'answer mentions W' is true iff W is in the answer."""
    text = messages[-1]["content"] if len(messages) == 2 else messages[1]["content"]
    criteria = RUBRIC_LINE.findall(text)
    shown = {int(n): t for _, n, t in ANSWER_BLOCK.findall(text)}
    verdicts = {
        answer_key(n): {cid: word in body for cid, word in criteria}
        for n, body in sorted(shown.items())
    }
    return json.dumps(verdicts)


def make_client(
    rubric: str | Callable[..., str],
    verifier: Callable[..., str] = content_verifier,
    latency_s: float = 0.0,
) -> ScriptedChatClient:
    rubricator = rubric if callable(rubric) else (lambda m, s: rubric)
    return ScriptedChatClient({"rubricator": rubricator, "verifier": verifier}, latency_s=latency_s)
