"""Training prompts as chat messages (engine-agnostic; TRL's dataset columns are built in
`ropd.integrations.trl.datasets`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ropd.data import load_records, sample_path, to_prompt_messages
from ropd.data.records import unique_ids
from ropd.errors import InputError
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
    for pid, record in unique_ids(records, data.id_field):
        messages = to_prompt_messages(
            record, prompt_field=data.prompt_field, system_prompt=data.system_prompt
        )
        prompts.append(TrainPrompt(pid, messages))
    if not prompts:
        raise InputError(f"{source}: no training prompts")
    return prompts
