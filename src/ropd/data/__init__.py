"""Dataset loading (local files or the Hugging Face Hub) and the bundled sample dataset."""

from __future__ import annotations

from pathlib import Path

from ropd.data.records import DataError, Record, load_records, record_id, to_prompt_messages

SAMPLE_FILE = "sample_math.jsonl"
RAR_SAMPLE_FILE = "sample_rar.jsonl"


def sample_path() -> Path:
    """The bundled sample: short arithmetic word problems (`id`, `prompt`, integer `answer`)."""
    return Path(__file__).with_name(SAMPLE_FILE)


def rar_sample_path() -> Path:
    """A few science rows in RaR's layout (`question`, `reference_answer`, a weighted `rubric`
    with pitfalls), for trying `method: rar` (`data.prompt_field: question`)."""
    return Path(__file__).with_name(RAR_SAMPLE_FILE)


__all__ = [
    "DataError",
    "Record",
    "load_records",
    "rar_sample_path",
    "record_id",
    "sample_path",
    "to_prompt_messages",
]
