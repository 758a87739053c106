"""The dataset columns each TRL trainer expects, built from ropd's training prompts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ropd.integrations.trl.reward import ID_COLUMN


class TrainPrompt(Protocol):
    """A training prompt: its id and the chat messages (e.g. `ropd.train.data.TrainPrompt`)."""

    id: str
    messages: list[dict[str, Any]]


def rl_dataset(prompts: Sequence[TrainPrompt]) -> Any:
    """GRPO / on-policy distillation: conversational `prompt` plus the group id column."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": p.messages, ID_COLUMN: p.id} for p in prompts])


def sft_dataset(pairs: Sequence[tuple[TrainPrompt, str]]) -> Any:
    """SFT on teacher answers: conversational prompt-completion rows (loss on the answer only)."""
    from datasets import Dataset

    return Dataset.from_list(
        [
            {"prompt": p.messages, "completion": [{"role": "assistant", "content": answer}]}
            for p, answer in pairs
        ]
    )
