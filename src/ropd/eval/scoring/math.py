"""Final-answer equivalence for math problems: `ropd.data.gold.check_math` (math-verify), the
same check training's reward-health metrics use, as an eval `SampleScore`."""

from __future__ import annotations

from ropd.data.gold import GoldError, check_math
from ropd.eval.types import EvalError, SampleScore


def score_math(completion: str, answer: str) -> SampleScore:
    """1.0 when the completion's final answer equals `answer` (boxed answers take priority)."""
    try:
        check = check_math(completion, answer)
    except GoldError as exc:
        raise EvalError(str(exc)) from exc
    return SampleScore(1.0 if check.correct else 0.0, {"extracted": check.extracted})


__all__ = ["score_math"]
