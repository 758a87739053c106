"""Training prompts as chat messages (engine-agnostic; TRL's dataset columns are built in
`ropd.integrations.trl.datasets`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ropd.data import load_records, rar_sample_path, sample_path, to_prompt_messages
from ropd.data.gold import gold_text
from ropd.data.records import unique_ids
from ropd.data.rubrics import record_rubric
from ropd.errors import InputError
from ropd.train.config import DataConfig


@dataclass(frozen=True)
class TrainPrompt:
    """One training prompt: its id, the chat messages the student and teacher both see, and
    its gold answer when the data has one (`data.answer_field`; reward-health metrics only),
    and its own rubric under `method: rar` (`data.rubric_field`, a `ropd.rubric.Rubric`)."""

    id: str
    messages: list[dict[str, Any]]
    gold: str | None = None
    rubric: Any = None


# data.source names of the bundled sets: math with gold answers, and RaR-layout rows with rubrics
BUNDLED = {"sample": sample_path, "sample-rar": rar_sample_path}


def load_prompts(data: DataConfig, *, rubrics: bool = False) -> list[TrainPrompt]:
    """Read the configured data (errors name file, line and field) into chat prompts.

    With `rubrics` (method rar) every row must carry a valid rubric in `data.rubric_field`:
    a row without one, or with a bad item, stops here naming its line and field, before any
    model is loaded."""
    source = str(BUNDLED.get(data.source, lambda: data.source)())
    records = load_records(source, split=data.split, name=data.subset, limit=data.limit)
    prompts = []
    for pid, record in unique_ids(records, data.id_field):
        messages = to_prompt_messages(
            record, prompt_field=data.prompt_field, system_prompt=data.system_prompt
        )
        gold = record.get(data.answer_field) if data.answer_field else None
        rubric = record_rubric(record, data.rubric_field) if rubrics else None
        prompts.append(TrainPrompt(pid, messages, gold_text(gold), rubric))
    if not prompts:
        raise InputError(f"{source}: no training prompts")
    return prompts
