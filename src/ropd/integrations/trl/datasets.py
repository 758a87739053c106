"""The dataset columns each TRL trainer expects, built from ropd's training prompts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ropd.integrations.trl.reward import GOLD_COLUMN, ID_COLUMN, RUBRIC_COLUMN


class TrainPrompt(Protocol):
    """A training prompt: its id and the chat messages (e.g. `ropd.train.data.TrainPrompt`);
    `gold` (the checkable answer) and `rubric` (the row's own rubric, method rar) attributes
    are used when present."""

    id: str
    messages: list[dict[str, Any]]


def rl_dataset(prompts: Sequence[TrainPrompt]) -> Any:
    """GRPO / on-policy distillation: conversational `prompt` plus the group id column, and the
    gold `answer` column when any prompt has one (the reward's health metrics check it), and
    the `rubric` column (each row's rubric as JSON text: one Arrow type whatever the rubric's
    shape) when any prompt has one (method rar scores with it)."""
    from datasets import Dataset

    rows: list[dict[str, Any]] = [{"prompt": p.messages, ID_COLUMN: p.id} for p in prompts]
    golds = [getattr(p, "gold", None) for p in prompts]
    if any(g is not None for g in golds):
        for row, gold in zip(rows, golds, strict=True):
            row[GOLD_COLUMN] = gold
    rubrics = [getattr(p, "rubric", None) for p in prompts]
    if any(r is not None for r in rubrics):
        for row, rubric in zip(rows, rubrics, strict=True):
            row[RUBRIC_COLUMN] = None if rubric is None else rubric.model_dump_json()
    return Dataset.from_list(rows)


def sft_dataset(pairs: Sequence[tuple[TrainPrompt, str]]) -> Any:
    """SFT on teacher answers: conversational prompt-completion rows (loss on the answer only)."""
    from datasets import Dataset

    return Dataset.from_list(
        [
            {"prompt": p.messages, "completion": [{"role": "assistant", "content": answer}]}
            for p, answer in pairs
        ]
    )
