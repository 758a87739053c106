"""What a long job shows while it runs.

`RunProgress` is the one progress display of the long jobs (`ropd score`, the teacher build,
also when training builds missing answers; meant for `ropd eval` too). On a terminal it is a rich progress bar on stderr. When
stderr is not a terminal (nohup, SLURM, CI logs) a bar would print nothing until the end, so it
writes plain lines instead: one at the start, one every `ROPD_PROGRESS_EVERY` seconds (default
30; 0 = only the first and the last), one at the end, e.g.

    scoring 120/1000 groups, failed 3, judge tokens in 1,234,567, out 89,012, in flight 24,
    retried 5, 2m10s elapsed, ~15m left

`judge_activity` reads a chat client's live request counters (in flight, retried, waiting out a
Retry-After) for such a line: a slow judge shows it is working before its first group finishes.

A command reports Ctrl-C with `ropd.errors.Interrupted` (exit 130): what is saved and the command
that resumes (`ropd.cli.progress.resume_command`).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ropd.errors import InputError

if TYPE_CHECKING:
    from typing_extensions import Self

EVERY_ENV = "ROPD_PROGRESS_EVERY"
DEFAULT_EVERY_S = 30.0


def every_from_env() -> float:
    """Seconds between plain progress lines: `ROPD_PROGRESS_EVERY`, else 30."""
    raw = os.environ.get(EVERY_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_EVERY_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise InputError(
            f"{EVERY_ENV}={raw!r}: expected seconds between progress lines (a number >= 0; "
            "0 = only the first and last line)"
        )
    return value


def format_duration(seconds: float) -> str:
    """`42s`, `2m10s`, `1h05m`: short enough for a log line."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def judge_activity(client: object) -> dict[str, float | str | None]:
    """A chat client's live request counters, as `RunProgress.update` takes them.

    `in flight` and `retried` (summed over roles) always; `waiting Retry-After` only while some
    request waits out a server's Retry-After (None hides it). Read without locking from the
    display's thread: plain ints, a torn read only shows a number a moment old. A client without
    such counters (a scripted one in tests) shows zeros.
    """
    retries = getattr(client, "retries", None)
    retried = sum(retries.values()) if isinstance(retries, dict) else 0
    waiting = getattr(client, "waiting_retry_after", 0)
    return {
        "in_flight": _count(getattr(client, "in_flight", 0)),
        "retried": _count(retried),
        "waiting_Retry-After": _count(waiting) or None,
    }


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _number(value: float | str) -> str:
    if isinstance(value, (bool, str)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.4g}"


class RunProgress:
    """Progress of one long command on stderr: a rich bar on a terminal, plain lines otherwise.

    `label` and `unit` make the line (`scoring 120/1000 groups`); counters passed to `update`
    follow in the order first given, underscores shown as spaces (`judge_tokens=...` ->
    `judge tokens 1,234`); a counter set to None is not shown (until set again). `poll`, when
    given, is asked for fresh values before every plain line and, on a terminal, every 2 s (for
    work that reports nowhere else, e.g. rows in a store, or a judge's requests in flight); it
    returns `(done, counters)`, `done` None to leave the count as it is.

        with RunProgress("scoring", "groups") as progress:
            progress.start(total=1000, done=skipped)   # first line
            progress.update(advance=1, failed=3, judge_tokens=1234)
        # last line on leaving the block, also on Ctrl-C or an error

    `enabled=False` shows nothing. `terminal` forces the bar (True) or the lines (False);
    default: whether stderr is a terminal. `every_s` overrides `ROPD_PROGRESS_EVERY`.
    """

    def __init__(
        self,
        label: str,
        unit: str,
        *,
        enabled: bool = True,
        terminal: bool | None = None,
        every_s: float | None = None,
        console: Console | None = None,
        poll: Callable[[], tuple[int | None, dict[str, float | str | None]]] | None = None,
    ) -> None:
        self.label = label
        self.unit = unit
        self.enabled = enabled
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.terminal = self.console.is_terminal if terminal is None else terminal
        if every_s is None:  # a bad ROPD_PROGRESS_EVERY matters only when lines are shown
            every_s = every_from_env() if enabled else DEFAULT_EVERY_S
        self.every_s = every_s
        self.poll = poll
        self.total: int | None = None
        self.done = 0
        self.counters: dict[str, float | str] = {}
        self._done_at_start = 0
        self._started: float | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._closed = False
        self._last_line: str | None = None

    # -- the caller's side ----------------------------------------------------------------------

    def start(
        self, total: int | None = None, done: int = 0, **counters: float | str | None
    ) -> None:
        """Begin the clock and print the first line (with `counters`, as `update` takes them).

        `done` items were finished before this run: they count, but not towards the ETA.
        """
        with self._lock:
            if self._started is not None:
                return
            self.total, self.done, self._done_at_start = total, done, done
            self.update(**counters)
            self._started = time.monotonic()
            if not self.enabled:
                return
            self._refresh()
            if self.terminal:
                self._bar = Progress(
                    TextColumn(f"[bold]{self.label}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn(self.unit),
                    TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(),
                    TimeRemainingColumn(),
                    console=self.console,
                    transient=False,
                )
                self._task = self._bar.add_task(
                    self.label, total=total, completed=done, info=self._info()
                )
                self._bar.start()
            else:
                self._emit()
            if self.every_s > 0 and (not self.terminal or self.poll is not None):
                self._thread = threading.Thread(target=self._tick, daemon=True)
                self._thread.start()

    def update(
        self, *, done: int | None = None, advance: int = 0, **counters: float | str | None
    ) -> None:
        """Set or advance the finished count and set counters (shown in call order; None
        hides one)."""
        with self._lock:
            if done is not None:
                self.done = done
            self.done += advance
            for name, value in counters.items():
                key = name.replace("_", " ")
                if value is None:
                    self.counters.pop(key, None)
                else:
                    self.counters[key] = value
            if self._bar is not None and self._task is not None:
                self._bar.update(self._task, completed=self.done, info=self._info())

    def close(self) -> None:
        """The last line (or the bar's final state); safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            if self._started is None or not self.enabled:
                return
            self._refresh()
            if self._bar is not None:
                if self._task is not None:
                    self._bar.update(self._task, completed=self.done, info=self._info())
                self._bar.stop()
            else:
                self._emit(unless_same=True)

    def line(self) -> str:
        """The plain progress line for the current state."""
        with self._lock:
            count = f"{self.done:,}/{self.total:,}" if self.total is not None else f"{self.done:,}"
            parts = [f"{self.label} {count} {self.unit}"]
            parts += [f"{name} {_number(value)}" for name, value in self.counters.items()]
            elapsed = self.elapsed
            parts.append(f"{format_duration(elapsed)} elapsed")
            left = self.eta_s()
            if left is not None and self.done < (self.total or 0):
                parts.append(f"~{format_duration(left)} left")
            return ", ".join(parts)

    @property
    def elapsed(self) -> float:
        return 0.0 if self._started is None else time.monotonic() - self._started

    def eta_s(self) -> float | None:
        """Seconds left at this run's own pace; None before anything finished or without total."""
        done_here = self.done - self._done_at_start
        if self.total is None or done_here <= 0 or self.elapsed <= 0:
            return None
        return max(0, self.total - self.done) * self.elapsed / done_here

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------------------

    def _info(self) -> str:
        return ", ".join(f"{name} {_number(value)}" for name, value in self.counters.items())

    def _refresh(self) -> None:
        if self.poll is None:
            return
        try:
            done, counters = self.poll()
        except Exception:  # noqa: BLE001 - a display must never end the run it shows
            return
        self.update(done=done, **{k.replace(" ", "_"): v for k, v in counters.items()})

    def _emit(self, *, unless_same: bool = False) -> None:
        line = self.line()
        if unless_same and line == self._last_line:
            return  # e.g. a run stopped in its first second: one line says it all
        self._last_line = line
        self.console.print(line, markup=False, highlight=False)
        try:
            self.console.file.flush()
        except (OSError, ValueError):
            pass

    def _tick(self) -> None:
        interval = self.every_s if not self.terminal else min(self.every_s, 2.0)
        while not self._stop.wait(interval):
            with self._lock:
                if self._closed:
                    return
                self._refresh()
                if not self.terminal:
                    self._emit()


__all__ = [
    "DEFAULT_EVERY_S",
    "EVERY_ENV",
    "RunProgress",
    "every_from_env",
    "format_duration",
    "judge_activity",
]
