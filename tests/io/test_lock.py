"""`ropd.io.lock`: one writer per output file, stale locks taken over, holders named.

Holders are real processes (a child Python that takes the lock and waits), so the flock
semantics under test are the kernel's, including release when a holder is SIGKILLed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ropd.errors import InputError
from ropd.io.lock import FileLockedError, Holder, OutputLock, current_command, lock_path_of

HOLD = textwrap.dedent(
    """
    import sys
    from ropd.io.lock import OutputLock
    lock = OutputLock(sys.argv[1], command="ropd score groups.jsonl -o scores.jsonl")
    lock.acquire()
    print("held", flush=True)
    sys.stdin.read()  # hold until the test closes stdin (or kills us)
    lock.release()
    print("released", flush=True)
    """
)


@pytest.fixture
def holder_of() -> Iterator:
    """Start a child process holding the lock on a path; it is cleaned up after the test."""
    children: list[subprocess.Popen] = []

    def start(path: Path) -> subprocess.Popen:
        child = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        children.append(child)
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        return child

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)


def test_a_held_lock_records_its_holder_and_is_removed_on_release(tmp_path: Path) -> None:
    target = tmp_path / "scores.jsonl"
    before = time.time()
    with OutputLock(target, command="ropd score g.jsonl -o scores.jsonl") as lock:
        assert lock.held and lock.lock_path == tmp_path / "scores.jsonl.lock"
        recorded = json.loads(lock.lock_path.read_text())
        assert recorded["pid"] == os.getpid()
        assert recorded["host"] == socket.gethostname()
        assert recorded["command"] == "ropd score g.jsonl -o scores.jsonl"
        # the time it was taken: between the calls around it, however long they took
        assert before - 1 <= recorded["started"] <= time.time() + 1
    assert not lock.held
    assert not lock_path_of(target).exists()
    assert not target.exists()  # the lock never touches the file it guards


def test_a_second_writer_is_refused_naming_the_holder(tmp_path: Path, holder_of) -> None:
    target = tmp_path / "scores.jsonl"
    child = holder_of(target)
    with pytest.raises(FileLockedError) as refused:
        OutputLock(target, advice="wait for it or use another --output").acquire()
    message = str(refused.value)
    assert message.startswith(f"{target} is being written by pid {child.pid} on ")
    assert socket.gethostname() in message
    assert "(ropd score groups.jsonl -o scores.jsonl)" in message
    assert message.endswith("; wait for it or use another --output")
    assert time.strftime("since %H:") in message
    assert isinstance(refused.value, InputError) and refused.value.exit_code == 2
    assert refused.value.holder is not None and refused.value.holder.pid == child.pid

    assert child.stdin is not None
    child.stdin.close()  # the holder finishes and releases
    assert child.stdout is not None and child.stdout.readline().strip() == "released"
    child.wait(timeout=10)
    with OutputLock(target) as lock:
        assert lock.holder() is not None and lock.holder().pid == os.getpid()


def test_two_locks_in_one_process_exclude_each_other(tmp_path: Path) -> None:
    target = tmp_path / "traces.db"
    with OutputLock(target), pytest.raises(FileLockedError, match=f"pid {os.getpid()} "):
        OutputLock(target).acquire()
    with OutputLock(target):  # released: free again
        pass


def test_a_lock_left_by_a_killed_holder_is_taken_over_silently(tmp_path: Path, holder_of) -> None:
    target = tmp_path / "scores.jsonl"
    child = holder_of(target)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    stale = lock_path_of(target)
    assert stale.exists()  # the file stays behind; the kernel released the flock
    assert json.loads(stale.read_text())["pid"] == child.pid

    with OutputLock(target) as lock:
        assert json.loads(stale.read_text())["pid"] == os.getpid()
        assert lock.holder() is not None and lock.holder().pid == os.getpid()
    assert not stale.exists()


def test_a_garbled_lock_file_without_holder_blocks_nothing(tmp_path: Path) -> None:
    target = tmp_path / "scores.jsonl"
    lock_path_of(target).write_text('{"pid": 12')  # e.g. power lost while it was written
    with OutputLock(target) as lock:
        assert lock.holder() is not None and lock.holder().pid == os.getpid()


def test_missing_directories_are_made_and_removed_again_if_left_empty(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "scores.jsonl"
    with OutputLock(target):
        assert (tmp_path / "a" / "b").is_dir()
    assert not (tmp_path / "a").exists()  # a refused or failed run leaves nothing behind

    with OutputLock(target):
        target.write_text("{}\n")  # the run wrote its output there: the folders stay
    assert target.is_file() and not lock_path_of(target).exists()


def test_a_lock_file_that_cannot_be_created_is_an_input_error(tmp_path: Path) -> None:
    blocker = tmp_path / "plain.txt"
    blocker.write_text("not a folder\n")
    with pytest.raises(InputError, match=r"plain\.txt"):
        OutputLock(blocker / "scores.jsonl").acquire()


def test_a_holder_from_another_day_is_shown_with_its_date() -> None:
    when = time.time() - 3 * 86400
    shown = Holder(pid=7, host="node1", command="ropd score x", started=when).describe()
    assert shown == f"pid 7 on node1 since {time.strftime('%Y-%m-%d %H:%M', time.localtime(when))}" \
        " (ropd score x)"  # fmt: skip
    long = Holder(pid=7, host="n", command="ropd " + "x" * 500, started=time.time()).describe()
    assert len(long) < 250 and long.endswith("…)")


def test_the_command_line_is_shown_as_it_can_be_run_again(monkeypatch: pytest.MonkeyPatch) -> None:
    main = str(Path("/venv/lib/python3.11/site-packages/ropd/__main__.py"))
    monkeypatch.setattr(sys, "orig_argv", ["/venv/bin/python", "-m", "ropd", "score"])
    shown = current_command(
        add=["--resume"],
        remove=["--overwrite"],
        argv=[main, "score", "my groups.jsonl", "-o", "s.jsonl", "--overwrite"],
    )
    assert shown == "/venv/bin/python -m ropd score 'my groups.jsonl' -o s.jsonl --resume"
    assert current_command(add=["--resume"], argv=[main, "score", "--resume"]).endswith(
        "score --resume"
    )  # added once only
    assert current_command(argv=["/somewhere/else/ropd", "stats"]) == "/somewhere/else/ropd stats"


def test_a_lock_file_removed_by_its_holder_meanwhile_is_not_trusted(tmp_path: Path) -> None:
    """B opens the lock file, A releases (removing it), B's flock then succeeds on a file no
    longer in the folder: B must lock the path's current file instead, or C could too."""
    target = tmp_path / "scores.jsonl"

    class OpensJustBeforeRelease(OutputLock):
        opened = 0

        def _open(self) -> int:
            self.opened += 1
            if self.opened > 1:
                return super()._open()
            first = OutputLock(target).acquire()
            fd = super()._open()  # the file the first holder is about to remove
            first.release()
            return fd

    with OpensJustBeforeRelease(target) as late:
        assert late.opened == 2
        with pytest.raises(FileLockedError):  # a third run sees it held
            OutputLock(target).acquire()
