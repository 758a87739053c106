"""The `ropd` command line run as a user runs it, for the eval tests that check CLI behaviour."""

from __future__ import annotations

import os
import subprocess
import sys


def ropd(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `python -m ropd ARGS` with a wide, colourless terminal; never raises on exit codes."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "ropd", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def one_line(text: str) -> str:
    """`text` with its line breaks and runs of spaces collapsed (rich wraps long messages)."""
    return " ".join(text.split())
