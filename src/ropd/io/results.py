"""Write score lines as groups finish, and pick up a half-written output file on resume.

Each line is flushed and synced when its group finishes, so a killed run loses only groups that
were still being judged. A kill can leave a half-written last line: resume cuts it off (that
group is scored again) instead of appending after it and corrupting the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from ropd.errors import InputError

if TYPE_CHECKING:
    from typing_extensions import Self


class OutputFileError(InputError):
    """An existing output file that cannot be resumed safely."""


def prepare_resume(path: str | Path) -> tuple[set[str], int]:
    """Ids already in the output, after cutting off a truncated last line.

    Returns (ids, number of bytes cut). A missing file means nothing done yet. A damaged line
    that is not the last one is an error: the file was edited or written by two runs at once.
    """
    p = Path(path)
    if not p.exists():
        return set(), 0
    data = p.read_bytes()
    ids: set[str] = set()
    offset = 0
    keep = 0
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        is_last = number == len(lines)
        end = offset + len(raw) + (0 if is_last else 1)
        if raw.strip():
            row: Any = None
            try:
                row = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                row = None
            if not isinstance(row, dict) or "id" not in row:
                if is_last or all(not rest.strip() for rest in lines[number:]):
                    break  # a half-written final line: drop it, the group is scored again
                raise OutputFileError(
                    f"{p}:{number}: not a score line (damaged output); fix or remove that line "
                    "before resuming"
                )
            ids.add(str(row["id"]))
        keep = end
        offset = end
    cut = len(data) - keep
    if cut:
        with p.open("r+b") as handle:
            handle.truncate(keep)
    if keep and not data[:keep].endswith(b"\n"):
        with p.open("ab") as handle:  # a complete last line that lost only its newline
            handle.write(b"\n")
    return ids, cut


class ResultWriter:
    """Appends one JSON line per finished group, flushed and synced at once."""

    def __init__(self, path: str | Path, *, append: bool):
        self.path = Path(path)
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle: IO[str] = self.path.open("a" if append else "w", encoding="utf-8")
        self.written = 0

    def write(self, row: dict[str, Any]) -> None:
        self._handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.written += 1

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
