"""Load prompt datasets from local files or the Hugging Face Hub, one `Record` per row.

Every record remembers where it came from (`data.jsonl:12`), so a bad value anywhere later on
(missing prompt, wrong type) is reported with the file, the line and the field.

Locations: JSONL and CSV give the line number in the file (`data.jsonl:12`, `data.csv:3`; a CSV's
first line is its header); JSON lists, Parquet files and Hub datasets give the 0-based row index
(`data.json[4]`, `data.parquet[4]`, `openai/gsm8k:train[4]`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ropd.errors import InputError

LOCAL_SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet", ".pq", ".csv")
CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


class DataError(InputError):
    """Bad input data; the message names the file, the line (or row) and the field."""


@dataclass(frozen=True)
class Record:
    """One row of a dataset and where it came from."""

    data: dict[str, Any]
    location: str

    def get(self, field: str, default: Any = None) -> Any:
        return self.data.get(field, default)

    def require(self, field: str, kind: type | tuple[type, ...] | None = None) -> Any:
        """The value of `field`, or a DataError naming the location, the field and the problem."""
        if field not in self.data:
            present = ", ".join(sorted(self.data)) or "none"
            raise DataError(f"{self.location}: missing field {field!r} (fields present: {present})")
        value = self.data[field]
        kinds = _as_tuple(kind) if kind is not None else None
        if kinds is not None and (
            not isinstance(value, kinds) or isinstance(value, bool) and bool not in kinds
        ):
            expected = " or ".join(t.__name__ for t in kinds)
            raise DataError(
                f"{self.location}: field {field!r} must be {expected}, got {type(value).__name__}"
            )
        return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def load_records(
    source: str | Path,
    *,
    split: str | None = None,
    name: str | None = None,
    limit: int | None = None,
) -> list[Record]:
    """Read a local JSONL / JSON / Parquet / CSV file, or a Hugging Face dataset id.

    A path that exists (or ends in a known data suffix) is read locally; anything else is taken
    as a Hub dataset id, loaded with `datasets.load_dataset(source, name, split=split)`.
    """
    if limit is not None and limit < 0:
        raise DataError(f"limit must be >= 0, got {limit}")
    path = Path(source).expanduser()
    if path.exists() or path.suffix.lower() in LOCAL_SUFFIXES:
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        rows = _read_local(path)
    else:
        rows = _read_hub(str(source), split=split, name=name)
    records: list[Record] = []
    for record in rows:
        if limit is not None and len(records) >= limit:
            break
        records.append(record)
    return records


def _read_local(path: Path) -> Iterator[Record]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _read_jsonl(path)
    if suffix == ".json":
        return _read_json(path)
    if suffix in (".parquet", ".pq"):
        return _read_parquet(path)
    if suffix == ".csv":
        return _read_csv(path)
    raise DataError(
        f"{path}: unknown data format {suffix or '(no suffix)'!r}; "
        "use .jsonl, .json, .parquet or .csv"
    )


def _read_jsonl(path: Path) -> Iterator[Record]:
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            location = f"{path}:{line_no}"
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{location}: not valid JSON ({exc.msg} at column {exc.colno})")
            if not isinstance(value, dict):
                raise DataError(f"{location}: expected a JSON object, got {type(value).__name__}")
            yield Record(value, location)


def _read_json(path: Path) -> Iterator[Record]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})")
    if not isinstance(value, list):
        raise DataError(f"{path}: expected a JSON list of objects, got {type(value).__name__}")
    for index, item in enumerate(value):
        location = f"{path}[{index}]"
        if not isinstance(item, dict):
            raise DataError(f"{location}: expected a JSON object, got {type(item).__name__}")
        yield Record(item, location)


def _read_parquet(path: Path) -> Iterator[Record]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow comes with the `data` extra
        raise DataError(
            f"{path}: reading Parquet needs pyarrow (pip install 'ropd[data]')"
        ) from exc
    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
    for index, row in enumerate(table.to_pylist()):
        yield Record(row, f"{path}[{index}]")


def _read_csv(path: Path) -> Iterator[Record]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None:
            return
        for row in reader:
            location = f"{path}:{reader.line_num}"
            if None in row:
                raise DataError(
                    f"{location}: more values than the {len(reader.fieldnames)} columns"
                )
            yield Record(dict(row), location)


def _read_hub(dataset_id: str, *, split: str | None, name: str | None) -> Iterator[Record]:
    split = split or "train"
    label = f"{dataset_id}:{split}"
    try:
        import datasets
    except ImportError as exc:
        raise DataError(
            f"{dataset_id!r} is not a local file, and loading Hugging Face datasets needs the "
            "`datasets` package (pip install 'ropd[data]')"
        ) from exc
    try:
        dataset = datasets.load_dataset(dataset_id, name, split=split)
    except Exception as exc:
        raise DataError(
            f"could not download the Hugging Face dataset {dataset_id!r} "
            f"(config {name!r}, split {split!r}): {type(exc).__name__}: {exc}. "
            "The Hugging Face Hub may be unreachable from this machine; pass a local file "
            "instead (JSONL, JSON, Parquet or CSV), e.g. export the dataset elsewhere with "
            "`datasets.load_dataset(...).to_json('data.jsonl')` and pass data.jsonl."
        ) from exc
    for index, row in enumerate(dataset):
        yield Record(dict(row), f"{label}[{index}]")


def to_prompt_messages(
    record: Record,
    *,
    prompt_field: str = "prompt",
    system_prompt: str | None = None,
    system_field: str | None = None,
) -> list[dict[str, Any]]:
    """The chat messages of a record: its prompt (a string or a message list) plus a system prompt.

    The system text is the record's `system_field` when it is set and non-empty, else
    `system_prompt`; it becomes a leading system message. A prompt that already starts with a
    system message cannot get a second one (that is an error, not a silent override).
    """
    value = record.require(prompt_field)
    if isinstance(value, str):
        if not value.strip():
            raise DataError(f"{record.location}: field {prompt_field!r} is empty")
        messages: list[dict[str, Any]] = [{"role": "user", "content": value}]
    elif isinstance(value, (list, tuple)):
        messages = check_messages(value, record.location, prompt_field)
    else:
        raise DataError(
            f"{record.location}: field {prompt_field!r} must be a string or a list of chat "
            f"messages, got {type(value).__name__}"
        )

    system_text = system_prompt
    if system_field is not None:
        from_record = record.get(system_field)
        if from_record is not None and not isinstance(from_record, str):
            raise DataError(
                f"{record.location}: field {system_field!r} must be a string, "
                f"got {type(from_record).__name__}"
            )
        if from_record:
            system_text = from_record
    if system_text:
        if messages[0]["role"] in ("system", "developer"):
            raise DataError(
                f"{record.location}: field {prompt_field!r} already starts with a "
                f"{messages[0]['role']} message; drop the system prompt option or that message"
            )
        messages.insert(0, {"role": "system", "content": system_text})
    return messages


def check_messages(value: Any, location: str, field: str) -> list[dict[str, Any]]:
    """Validate a chat message list; keep only role and content of each message."""
    if not value:
        raise DataError(f"{location}: field {field!r} has no messages")
    messages = []
    for i, message in enumerate(value):
        where = f"{location}: field {field!r}, message {i}"
        if not isinstance(message, dict):
            raise DataError(f"{where}: expected an object, got {type(message).__name__}")
        role, content = message.get("role"), message.get("content")
        if role not in CHAT_ROLES:
            raise DataError(f"{where}: 'role' must be one of {sorted(CHAT_ROLES)}, got {role!r}")
        if not isinstance(content, (str, list)):
            raise DataError(
                f"{where}: 'content' must be a string or a list of parts, "
                f"got {type(content).__name__}"
            )
        messages.append({"role": role, "content": content})
    if messages[-1]["role"] == "assistant":
        raise DataError(f"{location}: field {field!r} ends with an assistant message")
    return messages


def record_id(record: Record, id_field: str | None = "id") -> str:
    """A record's id as a string: its `id_field` when present, else its location."""
    if id_field is not None and record.get(id_field) is not None:
        value = record.data[id_field]
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return str(value)
        raise DataError(
            f"{record.location}: field {id_field!r} must be a string or an integer, "
            f"got {type(value).__name__}"
        )
    return record.location


def unique_ids(
    records: Iterable[Record], id_field: str | None = "id"
) -> Iterator[tuple[str, Record]]:
    """Each record with its id (`record_id`); a repeated id stops at the record that repeats it."""
    seen: set[str] = set()
    for record in records:
        rid = record_id(record, id_field)
        if rid in seen:
            raise DataError(f"{record.location}: duplicate id {rid!r} in field {id_field!r}")
        seen.add(rid)
        yield rid, record
