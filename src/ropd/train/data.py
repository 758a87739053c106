"""Training prompts as chat messages, and the datasets each method's TRL trainer expects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ropd.data import load_records, record_id, sample_path, to_prompt_messages
from ropd.train.config import DataConfig


@dataclass(frozen=True)
class TrainPrompt:
    """One training prompt: its id and the chat messages the student and teacher both see."""

    id: str
    messages: list[dict[str, Any]]


def load_prompts(data: DataConfig) -> list[TrainPrompt]:
    """Read the configured data (errors name file, line and field) into chat prompts."""
    source = str(sample_path()) if data.source == "sample" else data.source
    records = load_records(source, split=data.split, name=data.subset, limit=data.limit)
    prompts = []
    seen: set[str] = set()
    for record in records:
        pid = record_id(record, data.id_field)
        if pid in seen:
            raise ValueError(f"{record.location}: duplicate id {pid!r} in field {data.id_field!r}")
        seen.add(pid)
        messages = to_prompt_messages(
            record, prompt_field=data.prompt_field, system_prompt=data.system_prompt
        )
        prompts.append(TrainPrompt(pid, messages))
    if not prompts:
        raise ValueError(f"{source}: no training prompts")
    return prompts


def rl_dataset(prompts: list[TrainPrompt]) -> Any:
    """GRPO / on-policy distillation: conversational `prompt` plus the group id column."""
    from datasets import Dataset

    from ropd.integrations.trl import ID_COLUMN

    return Dataset.from_list([{"prompt": p.messages, ID_COLUMN: p.id} for p in prompts])


def sft_dataset(pairs: list[tuple[TrainPrompt, str]]) -> Any:
    """SFT on teacher answers: conversational prompt-completion rows (loss on the answer only)."""
    from datasets import Dataset

    return Dataset.from_list(
        [
            {"prompt": p.messages, "completion": [{"role": "assistant", "content": answer}]}
            for p, answer in pairs
        ]
    )
