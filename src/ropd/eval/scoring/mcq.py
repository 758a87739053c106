"""Multiple-choice scoring: find the letter a verbose answer commits to.

Explicit statements ("Answer: C", "the correct option is (C)", `\\boxed{C}`) win and the last
one counts (models often revise). A lone letter, or an option quoted as "D) text", on the last
line is the fallback. Capital
letters elsewhere are ignored ("A" is also an English word), and so is a lower-case letter
after "answer is" ("the answer is a ..." is prose).
"""

from __future__ import annotations

import re

from ropd.eval.types import SampleScore
from ropd.text import strip_think

_BOXED = re.compile(r"\\boxed\{\s*(?:\\text(?:bf)?\{)?\s*\(?([A-Z])\)?\s*\}?\s*\}")
_EXPLICIT = re.compile(
    r"(?i:final\s+answer|answer|correct\s+(?:option|choice)|best\s+(?:option|choice))"
    r"[\s*_]*(?i:is|:|=|would\s+be|should\s+be|must\s+be)?[\s*_:]*"
    r"(?i:option\s+|choice\s+)?[\(\[]?([A-Z])[\)\]]?(?![A-Za-z0-9])"
)
_LAST_LINE = re.compile(r"^[\s*_>#-]*[\(\[]?([A-Z])[\)\].:]?[\s*_]*$")
_LAST_LINE_OPTION = re.compile(r"^[\s*_>#-]*\(?([A-Z])\)\s+\S")  # "D) Mercury" as the answer


def extract_letter(completion: str, letters: str) -> str | None:
    """The chosen option letter (one of `letters`), or None when the answer commits to none."""
    text = strip_think(completion)
    for pattern in (_BOXED, _EXPLICIT):
        found = [m for m in pattern.findall(text) if m in letters]
        if found:
            return found[-1]
    lines = [line for line in text.splitlines() if line.strip()]
    if lines:
        match = _LAST_LINE.match(lines[-1]) or _LAST_LINE_OPTION.match(lines[-1])
        if match and match.group(1) in letters:
            return match.group(1)
    return None


def score_mcq(completion: str, correct: str, letters: str) -> SampleScore:
    """1.0 when the extracted letter is the correct one."""
    letter = extract_letter(completion, letters)
    return SampleScore(1.0 if letter == correct else 0.0, {"extracted": letter})
