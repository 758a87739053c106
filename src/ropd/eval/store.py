"""`samples.jsonl`: every sample with its score, appended as soon as it exists.

A sample is keyed by task, item, sample index and the generation key (settings + model), so a
re-run re-uses what is finished and only generates or grades what is missing. Lines are only
appended while running (a crash loses at most the line being written); the last line of a key
wins, and `compact` rewrites the file with one line per key at the end of a run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ropd import redact

log = redact.logger(__name__)

SampleKey = tuple[str, str, int, str]


def sample_key(record: dict[str, Any]) -> SampleKey:
    return (record["task"], record["item_id"], int(record["sample_index"]), record["gen_key"])


class SampleStore:
    """An append-only JSONL file of sample records, indexed in memory by `SampleKey`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[SampleKey, dict[str, Any]] = {}
        if path.exists():
            self._load()
        self._handle = None

    def _load(self) -> None:
        with self.path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    key = sample_key(record)
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    log.warning(
                        "%s:%d: unreadable sample line skipped (it will be redone)",
                        self.path,
                        line_no,
                    )
                    continue
                self.records[key] = record

    def get(self, key: SampleKey) -> dict[str, Any] | None:
        return self.records.get(key)

    def put(self, record: dict[str, Any]) -> None:
        """Remember `record` and append it to the file at once."""
        self.records[sample_key(record)] = record
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def compact(self) -> None:
        """Rewrite the file with the latest line of every key (atomically)."""
        self.close()
        tmp = self.path.with_suffix(".jsonl.tmp")
        with tmp.open("w", encoding="utf-8") as handle:
            for record in self.records.values():
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(tmp, self.path)
