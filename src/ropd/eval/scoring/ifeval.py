"""IFEval's programmatic instruction checks, from lm-evaluation-harness.

lm-eval (EleutherAI) carries Google's reference implementation of the 25 IFEval checks and
keeps it working with current `nltk`/`langdetect`; it is what public leaderboards run. We call
its strict and loose checkers directly. Its module tries to download nltk's `punkt_tab` when
imported; we never download at import time (that can hang offline): checks that count sentences
need `python -m nltk.downloader punkt_tab` run once, and say so when it is missing.
"""

from __future__ import annotations

import contextlib
import functools
import io
from typing import Any

from ropd.eval.types import EvalError, SampleScore
from ropd.text import strip_think

INSTALL_HINT = "IFEval scoring needs lm-eval's checks: pip install 'ropd[ifeval]'"


@functools.cache
def _checkers() -> Any:
    try:
        import nltk
    except ImportError as exc:
        raise EvalError(INSTALL_HINT) from exc
    real_download = nltk.download
    nltk.download = lambda *args, **kwargs: False  # no network at import time
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            from lm_eval.tasks.ifeval import utils
    except ImportError as exc:
        raise EvalError(INSTALL_HINT) from exc
    finally:
        nltk.download = real_download
    return utils


def check_available() -> None:
    """Raise a clear EvalError now rather than after generation, when lm-eval is missing."""
    _checkers()


def score_ifeval(completion: str, target: dict[str, Any]) -> SampleScore:
    """Prompt-level strict accuracy as the score; loose and per-instruction results as details."""
    utils = _checkers()
    example = utils.InputExample(
        key=target["key"],
        instruction_id_list=list(target["instruction_id_list"]),
        prompt=target["prompt"],
        kwargs=[dict(k) for k in target["kwargs"]],
    )
    unknown = [
        i
        for i in example.instruction_id_list
        if i not in utils.instructions_registry.INSTRUCTION_DICT
    ]
    if unknown:
        raise EvalError(f"unknown IFEval instruction id(s): {', '.join(unknown)}")
    response = strip_think(completion)
    try:
        strict = utils.test_instruction_following_strict(example, response)
        loose = utils.test_instruction_following_loose(example, response)
    except TypeError as exc:  # kwargs that the instruction does not take
        raise EvalError(
            f"IFEval kwargs {target['kwargs']} do not fit the instructions: {exc}"
        ) from exc
    except LookupError as exc:
        if isinstance(exc, KeyError):  # a bug or bad kwargs, not a missing nltk resource
            raise EvalError(f"IFEval check failed on kwargs {target['kwargs']}: {exc!r}") from exc
        raise EvalError(
            "an IFEval check needs nltk's sentence tokenizer: run "
            "`python -m nltk.downloader punkt_tab` once on this machine"
        ) from exc
    return SampleScore(
        1.0 if strict.follow_all_instructions else 0.0,
        {
            "prompt_strict": strict.follow_all_instructions,
            "prompt_loose": loose.follow_all_instructions,
            "inst_strict": list(strict.follow_instruction_list),
            "inst_loose": list(loose.follow_instruction_list),
        },
    )
