"""One writer per output: an advisory lock a run holds on each file it writes.

Two runs writing one output both pay for every judge call and interleave their lines; a run that
holds `OutputLock(path)` makes a second one refuse at once with an `InputError` that names the
file and who holds it.

The lock is `fcntl.flock` (exclusive, non-blocking) on a sidecar file `<file>.lock` next to the
file it guards, which records the holder (pid, host, command line, start time) so the refusal
can say who it is. The operating system releases a flock when its process ends however it ends,
so a lock file left behind by a killed run (SIGKILL, power loss) holds nothing and the next run
takes it over silently. A run that ends normally removes its lock file.

Removing a lock file races with a process that opened it just before: the lock it then gets is
on a file no longer in the directory. `acquire` therefore checks, once locked, that the path
still names the file it locked, and otherwise starts again.

Advisory only: it keeps ropd runs apart, not other programs. On network filesystems flock is as
good as the filesystem's lock support (Linux NFS maps it to NFS locks).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shlex
import shutil
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ropd.errors import InputError
from ropd.redact import scrub

if TYPE_CHECKING:
    from typing_extensions import Self

LOCK_SUFFIX = ".lock"
_MAX_COMMAND_SHOWN = 160
_ATTEMPTS = 20  # rounds of "locked a file that was just removed"; one is the normal case


class FileLockedError(InputError):
    """Another live process holds the lock on a file this run wants to write."""

    def __init__(self, message: str, path: Path, holder: Holder | None) -> None:
        super().__init__(message)
        self.path = path
        self.holder = holder


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a lock, as its lock file records it."""

    pid: int
    host: str
    command: str
    started: float  # seconds since the epoch

    def describe(self) -> str:
        """`pid 1234 on host since 12:03 (ropd score …)` (the date too when not today)."""
        started = time.localtime(self.started)
        today = time.localtime()
        when = time.strftime("%H:%M" if started[:3] == today[:3] else "%Y-%m-%d %H:%M", started)
        command = self.command
        if len(command) > _MAX_COMMAND_SHOWN:
            command = command[: _MAX_COMMAND_SHOWN - 1] + "…"
        return f"pid {self.pid} on {self.host} since {when} ({command})"

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        """The holder a lock file records; None when it is empty or half-written."""
        try:
            data: Any = json.loads(text)
            return cls(
                pid=int(data["pid"]),
                host=str(data["host"]),
                command=str(data["command"]),
                started=float(data["started"]),
            )
        except (ValueError, TypeError, KeyError):
            return None


def lock_path_of(path: str | Path) -> Path:
    """`scores.jsonl` -> `scores.jsonl.lock`, next to it."""
    p = Path(path)
    return p.with_name(p.name + LOCK_SUFFIX)


def current_command(
    add: Sequence[str] = (), remove: Sequence[str] = (), argv: Sequence[str] | None = None
) -> str:
    """This process's command line, shell-quoted, in a form a person can paste to run it again.

    `python -m ropd ...` keeps the interpreter as it was typed; the `ropd` script is shown as
    `ropd` when that name finds it on PATH. Arguments in `remove` are dropped, those in `add`
    appended when not already there (e.g. a resume hint: `add=["--resume"]`,
    `remove=["--overwrite"]`). Known secrets are scrubbed (ropd takes none on the command line,
    but a user may have typed one anyway).
    """
    args = list(sys.argv if argv is None else argv)
    if not args:
        return ""
    head, rest = args[0], args[1:]
    if Path(head).parts[-2:] == ("ropd", "__main__.py"):  # python -m ropd
        interpreter = getattr(sys, "orig_argv", None) or [sys.executable]
        prefix = [interpreter[0], "-m", "ropd"]
    elif Path(head).name == "ropd":
        found = shutil.which("ropd")
        same = found is not None and os.path.realpath(found) == os.path.realpath(head)
        prefix = ["ropd" if same else head]
    else:
        prefix = [head]
    rest = [a for a in rest if a not in remove]
    rest += [a for a in add if a not in rest]
    return scrub(shlex.join([*prefix, *rest]))


class OutputLock:
    """An exclusive, non-blocking lock on `path` for one run (see the module doc).

    `advice` ends the refusal ("wait for it or use another --output"); `command` is what the
    lock file records as the holder's command line (default: this process's, `current_command`).
    Use as a context manager, or `acquire` / `release`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        advice: str = "wait for it or write elsewhere",
        command: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.lock_path = lock_path_of(self.path)
        self.advice = advice
        self.command = command
        self._fd: int | None = None
        self._made_dirs: list[Path] = []

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> Holder | None:
        """Who the lock file names (the current holder while the lock is held by someone)."""
        try:
            return Holder.parse(self.lock_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            return None

    def acquire(self) -> Self:
        """Take the lock or raise `FileLockedError` (exit 2) naming the holder; never waits.

        Missing parent directories are made (and removed again on release if still empty). A
        lock file whose holder is gone is taken over silently.
        """
        if self._fd is not None:
            return self
        self._make_parents()
        try:
            for _ in range(_ATTEMPTS):
                fd = self._open()
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    os.close(fd)
                    if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise self._locked() from None
                    raise InputError(
                        f"{self.lock_path}: cannot lock {self.path} ({exc.strerror or exc})"
                    ) from None
                if self._still_linked(fd):
                    self._fd = fd
                    self._record(fd)
                    return self
                os.close(fd)  # locked a file its holder had just removed: open the new one
            raise InputError(f"{self.lock_path}: the lock file keeps changing; try again")
        except BaseException:
            self._remove_made_dirs()
            raise

    def release(self) -> None:
        """Remove the lock file, then let go (the order keeps the module doc's race harmless)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._still_linked(fd):
                self.lock_path.unlink()
        except OSError:
            pass  # left behind: it holds nothing once closed
        finally:
            os.close(fd)
            self._remove_made_dirs()

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    # -- internals ------------------------------------------------------------------------------

    def _make_parents(self) -> None:
        missing = []
        parent = self.lock_path.parent
        while not parent.exists() and parent != parent.parent:
            missing.append(parent)
            parent = parent.parent
        for directory in reversed(missing):
            try:
                directory.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                self._remove_made_dirs()
                raise InputError(
                    f"{self.lock_path}: cannot create directory {directory} ({exc.strerror or exc})"
                ) from None
            self._made_dirs.append(directory)

    def _remove_made_dirs(self) -> None:
        for directory in reversed(self._made_dirs):
            try:
                directory.rmdir()  # only if still empty: the run's output keeps it
            except OSError:
                break
        self._made_dirs.clear()

    def _open(self) -> int:
        try:
            return os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise InputError(
                f"{self.lock_path}: cannot create the lock file for {self.path} "
                f"({exc.strerror or exc})"
            ) from None

    def _still_linked(self, fd: int) -> bool:
        try:
            here, there = os.fstat(fd), os.stat(self.lock_path)
        except OSError:
            return False
        return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)

    def _record(self, fd: int) -> None:
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command if self.command is not None else current_command(),
            "started": time.time(),
        }
        data = (json.dumps(info, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except OSError:
            pass  # the lock holds without its note; a refusal then says "another process"

    def _locked(self) -> FileLockedError:
        holder = None
        for _ in range(5):  # the holder may be writing its note this very moment
            holder = self.holder()
            if holder is not None and _plausible(holder):
                break
            holder = None
            time.sleep(0.02)
        who = holder.describe() if holder is not None else "another process (holder unknown)"
        return FileLockedError(
            f"{self.path} is being written by {who}; {self.advice}", self.path, holder
        )


def _plausible(holder: Holder) -> bool:
    """False for a note left by a process that is gone (its successor has not written yet)."""
    if holder.host != socket.gethostname():
        return True  # another machine's pid cannot be checked from here
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # alive, owned by someone else
    return True


@contextmanager
def hold_locks(*locks: OutputLock) -> Iterator[list[OutputLock]]:
    """Hold every lock for the block, taken in order; a refusal releases those already taken."""
    with ExitStack() as stack:
        for lock in locks:
            stack.enter_context(lock)
        yield list(locks)


__all__ = [
    "LOCK_SUFFIX",
    "FileLockedError",
    "Holder",
    "OutputLock",
    "current_command",
    "hold_locks",
    "lock_path_of",
]
