"""Write score lines as groups finish, and pick up a half-written output file on resume.

Each line is flushed and synced when its group finishes, so a killed run loses only groups that
were still being judged. A kill can leave a half-written last line: resume cuts it off (that
group is scored again) instead of appending after it and corrupting the file.

`check_writable` tells before any work whether an output path can be written: not a directory,
a regular file (no devices or pipes: lines are synced), its missing parent directories can be
made and the file created, or an existing file opened for appending. It changes nothing: an
existing file keeps its content and whatever it created for the probe is removed again.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from ropd.errors import InputError
from ropd.redact import scrub

if TYPE_CHECKING:
    from typing_extensions import Self


class OutputFileError(InputError):
    """An output path that cannot be written, or an existing output that cannot be resumed."""


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def check_writable(path: str | Path, what: str = "output file", *, sidecars: bool = False) -> None:
    """Raise OutputFileError (naming `what` and the path) unless `path` can be written.

    Nothing is changed (see the module doc). `sidecars`: the directory must also take new files
    next to it (SQLite's `-wal` and `-shm` journals).
    """
    p = Path(path)
    if p.is_dir():
        raise OutputFileError(f"{what} {p} is a directory; give a file path")
    if p.exists():
        if not p.is_file():
            raise OutputFileError(f"{what} {p} is not a regular file")
        try:
            with p.open("ab"):
                pass
        except OSError as exc:
            raise OutputFileError(f"{what} {p} cannot be written ({_reason(exc)})") from None
        if sidecars:
            try:
                fd, probe = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
                os.close(fd)
                os.unlink(probe)
            except OSError as exc:
                raise OutputFileError(
                    f"{what} {p}: its directory does not take new files ({_reason(exc)})"
                ) from None
        return
    if p.is_symlink():
        raise OutputFileError(f"{what} {p} is a symbolic link to a missing file")
    missing: list[Path] = []
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    if not parent.is_dir():
        raise OutputFileError(
            f"{what} {p}: cannot create directory {missing[-1] if missing else p.parent} "
            f"({parent} is not a directory)"
        )
    created: list[Path] = []
    try:
        for directory in reversed(missing):
            try:
                directory.mkdir()
            except OSError as exc:
                raise OutputFileError(
                    f"{what} {p}: cannot create directory {directory} ({_reason(exc)})"
                ) from None
            created.append(directory)
        try:
            os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except OSError as exc:
            reason = _reason(exc)
            if exc.errno == errno.ENOENT:  # e.g. /proc: the directory exists but takes no files
                reason = f"{p.parent} does not take new files"
            raise OutputFileError(f"{what} {p} cannot be created ({reason})") from None
        p.unlink()
    finally:
        for directory in reversed(created):
            try:
                directory.rmdir()
            except OSError:
                pass


def prepare_resume(path: str | Path) -> tuple[set[str], int]:
    """Ids already in the output, after cutting off a truncated last line.

    Returns (ids, number of bytes cut). A missing file means nothing done yet. A damaged line
    that is not the last one is an error: the file was edited or written by two runs at once.
    """
    p = Path(path)
    if not p.exists():
        return set(), 0
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise OutputFileError(
            f"{p}: cannot read the output to resume it ({_reason(exc)})"
        ) from None
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
    try:
        if cut:
            with p.open("r+b") as handle:
                handle.truncate(keep)
        if keep and not data[:keep].endswith(b"\n"):
            with p.open("ab") as handle:  # a complete last line that lost only its newline
                handle.write(b"\n")
    except OSError as exc:
        raise OutputFileError(
            f"{p}: cannot repair the output to resume it ({_reason(exc)})"
        ) from None
    return ids, cut


def remove_failed_lines(path: str | Path) -> set[str]:
    """Take the lines of failed groups (a non-null `error`) out of an output; their ids.

    A resumed run judges those groups again instead of keeping a failure that may have been a
    passing outage. The file is rewritten whole (a temporary file renamed over it), so a kill
    here leaves either the old file or the new one; the trace store keeps the failed attempts.
    Call it after `prepare_resume` (which repairs a half-written last line).
    """
    p = Path(path)
    if not p.exists():
        return set()
    try:
        lines = p.read_bytes().splitlines(keepends=True)
    except OSError as exc:
        raise OutputFileError(
            f"{p}: cannot read the output to resume it ({_reason(exc)})"
        ) from None
    kept: list[bytes] = []
    failed: set[str] = set()
    judged: set[str] = set()  # ids with a line that did not fail
    for raw in lines:
        try:
            row = json.loads(raw) if raw.strip() else None
        except ValueError:  # prepare_resume has refused damaged lines already
            row = None
        if isinstance(row, dict) and row.get("error") is not None and "id" in row:
            failed.add(str(row["id"]))
            continue
        if isinstance(row, dict) and "id" in row:
            judged.add(str(row["id"]))
        kept.append(raw)
    if failed:
        _replace(p, b"".join(kept))
    return failed - judged


def _replace(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (same folder, synced, renamed over it)."""
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputFileError(f"{path}: cannot rewrite the output ({_reason(exc)})") from None


class ResultWriter:
    """Appends one JSON line per finished group, flushed and synced at once."""

    def __init__(self, path: str | Path, *, append: bool):
        self.path = Path(path)
        try:
            if self.path.parent and not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle: IO[str] = self.path.open("a" if append else "w", encoding="utf-8")
        except OSError as exc:
            raise OutputFileError(
                f"{self.path}: cannot write the output ({_reason(exc)})"
            ) from None
        self.written = 0

    def write(self, row: dict[str, Any]) -> None:
        # the last guard: no configured key reaches the file, whoever wrote it into the row
        self._handle.write(scrub(json.dumps(row, ensure_ascii=False)) + "\n")
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
