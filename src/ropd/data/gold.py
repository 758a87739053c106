"""Is an answer's final result the dataset's gold answer? The one check eval and training share.

Math answers are compared with `math-verify` (an optional package: `pip install 'ropd[eval]'`).
math-verify bounds its parsing and comparison time with `signal.alarm`, which only works in
the main thread; elsewhere it raises. So the timeout is used in the main thread and disabled in
worker threads (where a caller that needs a bound must provide its own).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from ropd.errors import InputError
from ropd.text import strip_think

TIMEOUT_S = 5
MISSING = "math scoring needs math-verify: pip install 'ropd[eval]'"


class GoldError(InputError):
    """The gold check cannot run: math-verify is missing, or the gold answer is unreadable."""


@dataclass(frozen=True)
class MathCheck:
    """Whether the completion's final answer equals the gold one, and what was read from it."""

    correct: bool
    extracted: str | None


def gold_text(value: Any) -> str | None:
    """A row's gold answer as text (numbers too); None for a missing or non-scalar value."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    return str(value)


def _quiet_timeout_notes(record: logging.LogRecord) -> bool:
    """math-verify logs a warning on every call made without its timeout (worker threads):
    one line per checked answer would flood a training log, so those lines are dropped."""
    return not record.getMessage().startswith("Timeout is disabled")


def _math_verify() -> Any:
    try:
        import math_verify
    except ImportError as exc:
        raise GoldError(MISSING) from exc
    for name in ("math_verify.parser", "math_verify.grader"):
        quiet = logging.getLogger(name)
        if _quiet_timeout_notes not in quiet.filters:
            quiet.addFilter(_quiet_timeout_notes)
    return math_verify


def math_verify_available() -> bool:
    """Whether `check_math` can run here (math-verify installed)."""
    try:
        _math_verify()
    except GoldError:
        return False
    return True


def _timeout() -> int | None:
    return TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def check_math(completion: str, answer: str) -> MathCheck:
    """Compare final answers (boxed answers take priority); reasoning blocks are ignored."""
    mv = _math_verify()
    timeout = _timeout()
    gold_text = answer if "$" in answer or "\\boxed" in answer else f"${answer}$"
    gold = mv.parse(gold_text, parsing_timeout=timeout)
    if not gold:
        raise GoldError(f"math-verify cannot read the reference answer {answer!r}")
    predicted = mv.parse(strip_think(completion), parsing_timeout=timeout)
    correct = bool(predicted) and bool(mv.verify(gold, predicted, timeout_seconds=timeout))
    return MathCheck(correct, str(predicted[-1]) if predicted else None)


__all__ = [
    "MISSING",
    "TIMEOUT_S",
    "GoldError",
    "MathCheck",
    "check_math",
    "gold_text",
    "math_verify_available",
]
