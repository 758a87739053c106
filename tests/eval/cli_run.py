"""The `ropd` command line as a user runs it, for the eval tests that check CLI behaviour.

It runs in process (`tests.inprocess`): these tests need no real process (no signals, no
environment read at import), and a `python -m ropd` child would add only its imports.
"""

from __future__ import annotations

import subprocess

from tests.inprocess import ropd_in_process


def ropd(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `ropd ARGS` with a wide, colourless terminal; never raises on exit codes.

    `timeout` is kept for the callers' sake; an in-process run has no timeout of its own.
    """
    return ropd_in_process(args, env={"COLUMNS": "200", "NO_COLOR": "1"})


def one_line(text: str) -> str:
    """`text` with its line breaks and runs of spaces collapsed (rich wraps long messages)."""
    return " ".join(text.split())
