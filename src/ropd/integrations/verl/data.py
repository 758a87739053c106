"""Prompt files as the rows verl's `RLHFDataset` reads (behind `ropd verl prepare-data`).

One row per prompt: `data_source` (ropd's, so `RopdRewardManager` scores it), `prompt` (chat
messages), `ability`, `reward_model` (`ground_truth` from the answer field: verl's default
scorers and ropd's reward-health gold checks read it) and `extra_info` (`index`, the record's
`id`, `split`: `val` makes the adapter use the validation group size, `teacher_responses`
when the record has them or a teacher store is given, and `rubric` when the record carries the
dataset's own rubric, as RaR-Science / RaR-Medicine rows do: checked with the parser `method:
rar` uses and written in ropd's form, as JSON text, so rows with and without one share a
Parquet schema).

`hold_out` draws a validation split from the same prompts, so a recipe validates on prompts it
never trains on.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ropd.data.gold import gold_text
from ropd.data.records import DataError, Record, to_prompt_messages, unique_ids
from ropd.data.rubrics import RUBRIC_FIELD, record_rubric
from ropd.errors import InputError
from ropd.integrations.verl.settings import DATA_SOURCE

TEACHER_FIELD = "teacher_responses"


@dataclass(frozen=True)
class RowOptions:
    """How records become rows; the defaults match ropd's own data settings."""

    split: str = "train"
    data_source: str = DATA_SOURCE
    ability: str = "general"
    prompt_field: str = "prompt"
    answer_field: str | None = "answer"
    id_field: str | None = "id"
    system_prompt: str | None = None
    rubric_field: str | None = RUBRIC_FIELD


def _teacher_field(record: Record) -> list[str] | None:
    value = record.get(TEACHER_FIELD)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise DataError(f"{record.location}: field {TEACHER_FIELD!r} must be a list of strings")
    return list(value)


def hold_out(
    records: Sequence[Record], size: int, *, seed: int = 0, id_field: str | None = "id"
) -> tuple[list[Record], list[Record]]:
    """(train, validation): `size` records drawn at random with `seed`, both in the file's order.

    Drawn, not the last `size`, because prompt files are often sorted by source or difficulty.
    Ids are checked across both parts first: the trace store tells groups apart by id.
    """
    for _ in unique_ids(records, id_field):
        pass
    if size < 1 or size >= len(records):
        raise InputError(
            f"--val-size {size}: must be at least 1 and leave prompts to train on "
            f"(the data has {len(records)})"
        )
    chosen = set(random.Random(seed).sample(range(len(records)), size))
    train = [r for i, r in enumerate(records) if i not in chosen]
    val = [r for i, r in enumerate(records) if i in chosen]
    return train, val


def verl_rows(
    records: Sequence[Record], options: RowOptions, references: Any = None
) -> list[dict[str, Any]]:
    """verl rows of `records`; `references` (a `StoreReferences`) fills missing teacher answers."""
    rows: list[dict[str, Any]] = []
    for index, (rid, record) in enumerate(unique_ids(records, options.id_field)):
        messages = to_prompt_messages(
            record, prompt_field=options.prompt_field, system_prompt=options.system_prompt
        )
        # As `ropd train` reads it (`TrainPrompt.gold`): numbers as text, other values ignored.
        answer = gold_text(record.get(options.answer_field)) if options.answer_field else None
        extra: dict[str, Any] = {"index": index, "id": rid, "split": options.split}
        teacher = _teacher_field(record)
        if teacher is None and references is not None:
            teacher = references.lookup(messages) or None
        if teacher is not None:
            extra[TEACHER_FIELD] = teacher
        if options.rubric_field and record.get(options.rubric_field) is not None:
            extra[RUBRIC_FIELD] = record_rubric(record, options.rubric_field).model_dump_json()
        rows.append(
            {
                "data_source": options.data_source,
                "prompt": messages,
                "ability": options.ability,
                "reward_model": {
                    "style": "ropd",
                    "ground_truth": answer or "",
                },
                "extra_info": extra,
            }
        )
    if not rows:
        raise InputError("no prompts to write")
    return rows


def write_parquet(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write rows as a Parquet file (the parent folder is created; written whole, then moved)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow comes with verl and ropd[data]
        raise InputError("writing Parquet needs pyarrow (pip install 'ropd[verl]')") from exc
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InputError(f"rows do not fit one Parquet schema: {exc}") from exc
    partial = path.with_name(path.name + ".partial")
    pq.write_table(table, partial)
    partial.replace(path)
    return path
