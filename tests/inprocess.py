"""`ropd ARGS` run in this process (typer's `CliRunner`), shaped like `subprocess.run`'s result.

For CLI tests where a real process adds nothing (no signals, no lock held by another process, no
terminal detection): it saves the 1.5-3 s of imports a `python -m ropd` child pays. What a user
would see is kept: stdout and stderr apart, the exit code, and an unexpected exception becomes a
traceback on stderr with exit code 1, as the real entry point prints it (so "no traceback"
assertions still bite).
"""

from __future__ import annotations

import contextlib
import subprocess
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

from typer.testing import CliRunner


def ropd_in_process(
    args: Sequence[object],
    *,
    env: Mapping[str, str | None] | None = None,
    cwd: Path | str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python -m ropd ARGS` in process; `env` is laid over `os.environ` for the call."""
    from ropd.cli import app

    argv = [str(a) for a in args]
    with contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext():
        result = CliRunner().invoke(app, argv, env=dict(env or {}))
    stderr = result.stderr
    code = result.exit_code
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        assert result.exc_info is not None
        stderr += "".join(traceback.format_exception(*result.exc_info))
        code = 1
    return subprocess.CompletedProcess(["ropd", *argv], code, result.stdout, stderr)
