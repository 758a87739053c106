"""`ropd --version` / `ropd version` and `ropd stub-judge`, run as a person runs them.

The stub judge is started as a real process, its printed `ropd score` line is pasted as it is
(through a shell-like split: its `VAR=value` words become the environment of an in-process
`ropd`), and it is stopped with the signal Ctrl-C sends. The other commands run in process.
"""

from __future__ import annotations

import json
import os
import platform
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest
from tests.inprocess import ropd_in_process

import ropd

ROOT = Path(__file__).resolve().parents[2]
ROPD = [sys.executable, "-m", "ropd"]


def cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`ropd ARGS` in process (no signal or terminal involved: a child adds only its imports)."""
    return ropd_in_process(args, cwd=cwd, env=env)


def installed(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


@pytest.mark.parametrize("args", [["--version"], ["version"]])
def test_version_names_ropd_python_and_key_packages(args):
    shown = cli(*args)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == f"ropd {ropd.__version__}"
    assert lines[1].startswith(f"python {platform.python_version()} ")
    for name in ("torch", "trl", "transformers", "openai"):
        assert f"{name} {installed(name)}" in lines
    assert len(lines) <= 8  # one short line each


def test_version_is_listed_in_help():
    shown = cli("--help", env={"COLUMNS": "120"})
    assert shown.returncode == 0
    assert "--version" in shown.stdout and "stub-judge" in shown.stdout


class StubProcess:
    """`ropd stub-judge` in a subprocess, its stdout read line by line without blocking."""

    def __init__(self, *args: str, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [*ROPD, "stub-judge", *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def read_until(self, pattern: str, timeout: float = 60.0) -> tuple[re.Match[str], list[str]]:
        """The first printed line matching `pattern`, and every line read so far."""
        seen: list[str] = []
        while True:
            line = self.lines.get(timeout=timeout)
            if line is None:
                raise AssertionError(f"stub exited: {seen} {self.proc.stderr.read()}")  # type: ignore[union-attr]
            seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found, seen

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str, str]:
        """Send `sig`, wait, and return (exit code, rest of stdout, stderr)."""
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=30)
        rest: list[str] = []
        while (line := self.lines.get(timeout=10)) is not None:
            rest.append(line)
        assert self.proc.stderr is not None
        return code, "\n".join(rest), self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def paste(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a printed `VAR=value ropd ...` line as a shell would, with this checkout's ropd."""
    words = shlex.split(line)
    env: dict[str, str | None] = {"OPENAI_API_KEY": None}
    while "=" in words[0] and not words[0].startswith("-"):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    assert words[0] == "ropd", line
    return ropd_in_process(words[1:], cwd=cwd, env=env)


def test_stub_judge_serves_its_printed_command_and_stops_on_ctrl_c(tmp_path):
    (tmp_path / "examples").mkdir()
    shutil.copy(ROOT / "examples" / "groups.jsonl", tmp_path / "examples" / "groups.jsonl")
    stub = StubProcess("--port", "0", "--latency", "0.01", cwd=tmp_path)
    try:
        url, _ = stub.read_until(r"serving at (http://127\.0\.0\.1:\d+/v1)")
        base_url = url.group(1)
        command, _ = stub.read_until(r"^\s+(\S+=\S+ ropd score .*)$")

        with urllib.request.urlopen(f"{base_url}/models", timeout=10) as reply:  # one request
            assert [m["id"] for m in json.load(reply)["data"]] == ["stub"]

        line = command.group(1)
        assert f"--base-url {base_url} --model stub --api-key-env " in line
        scored = paste(line, tmp_path)
        assert scored.returncode == 0, scored.stderr
        rows = [json.loads(x) for x in (tmp_path / "stub-scores.jsonl").read_text().splitlines()]
        assert len(rows) == 2 and all(r["error"] is None for r in rows)
        assert all(0.0 <= x <= 1.0 for r in rows for x in r["rewards"])
        listed = cli("inspect", "--list", cwd=tmp_path)  # the second line it suggests
        assert listed.returncode == 0 and rows[0]["id"] in listed.stdout

        code, rest, stderr = stub.stop(signal.SIGINT)
    finally:
        stub.kill()
    assert code in (0, 130), stderr
    assert "Traceback" not in stderr
    served = re.search(r"stopped after (\d+) requests", rest)
    assert served and int(served.group(1)) >= 4, rest  # 2 groups x (rubricator + verifier)


def test_stub_judge_stops_cleanly_on_sigterm_too(tmp_path):
    stub = StubProcess("--port", "0", cwd=tmp_path)
    try:
        stub.read_until(r"serving at http://127\.0\.0\.1:\d+/v1")
        code, rest, stderr = stub.stop(signal.SIGTERM)
    finally:
        stub.kill()
    assert code == 0 and "Traceback" not in stderr and "stopped after 0 requests" in rest


def test_stub_judge_on_a_taken_port_exits_2_saying_what_to_do(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        shown = cli("stub-judge", "--port", str(port), cwd=tmp_path)
    assert shown.returncode == 2 and "Traceback" not in shown.stderr
    assert f"cannot serve on 127.0.0.1:{port}" in shown.stderr
    assert "--port" in shown.stderr
