"""Final-answer equivalence for math problems, with `math-verify`.

math-verify bounds its parsing and comparison time with `signal.alarm`, which only works in
the main thread; elsewhere it raises. So the timeout is used in the main thread and disabled in
worker threads (where a caller that needs a bound must provide its own).
"""

from __future__ import annotations

import threading
from typing import Any

from ropd.eval.types import EvalError, SampleScore
from ropd.text import strip_think

TIMEOUT_S = 5


def _math_verify() -> Any:
    try:
        import math_verify
    except ImportError as exc:
        raise EvalError("math scoring needs math-verify: pip install 'ropd[eval]'") from exc
    return math_verify


def _timeout() -> int | None:
    return TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def score_math(completion: str, answer: str) -> SampleScore:
    """1.0 when the completion's final answer equals `answer` (boxed answers take priority)."""
    mv = _math_verify()
    timeout = _timeout()
    gold_text = answer if "$" in answer or "\\boxed" in answer else f"${answer}$"
    gold = mv.parse(gold_text, parsing_timeout=timeout)
    if not gold:
        raise EvalError(f"math-verify cannot read the reference answer {answer!r}")
    predicted = mv.parse(strip_think(completion), parsing_timeout=timeout)
    correct = bool(predicted) and bool(mv.verify(gold, predicted, timeout_seconds=timeout))
    extracted = str(predicted[-1]) if predicted else None
    return SampleScore(1.0 if correct else 0.0, {"extracted": extracted})
