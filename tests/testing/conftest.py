"""Fixtures of the fake-judge tests: verifier requests written the way the scorer writes them."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from ropd.reward import render
from ropd.reward.induction import validate_rubric

VerifierMessages = Callable[[list[str], str], list[dict[str, str]]]


def _verifier_messages(answers: list[str], rubric: str) -> list[dict[str, str]]:
    criteria = validate_rubric(json.loads(rubric), 1, 12)
    boundary = render.new_boundary(answers)
    numbers = list(range(1, len(answers) + 1))
    text = (
        f"Rubric:\n{render.render_rubric(boundary, criteria)}\n\n"
        f"{render.render_blocks(boundary, 'ANSWER', answers, numbers)}"
    )
    return [
        {"role": "system", "content": "You are the Verifier."},
        {"role": "user", "content": text},
    ]


@pytest.fixture
def verifier_messages() -> VerifierMessages:
    """`(answers, rubric reply) -> messages`: criterion blocks (C1..Cn), then numbered answer blocks."""
    return _verifier_messages
