"""Dataset loading (local files or the Hugging Face Hub) and the bundled sample dataset."""

from __future__ import annotations

from pathlib import Path

from ropd.data.records import DataError, Record, load_records, record_id, to_prompt_messages

SAMPLE_FILE = "sample_math.jsonl"


def sample_path() -> Path:
    """The bundled sample: short arithmetic word problems (`id`, `prompt`, integer `answer`)."""
    return Path(__file__).with_name(SAMPLE_FILE)


__all__ = [
    "DataError",
    "Record",
    "load_records",
    "record_id",
    "sample_path",
    "to_prompt_messages",
]
