"""Progress and resume hints for the command line.

The display itself is `ropd.progress.RunProgress` (also used by the library's long jobs, such as
the teacher build); this module adds what only a command knows: the command line that resumes
an interrupted run.
"""

from __future__ import annotations

from collections.abc import Sequence

from ropd.io.lock import current_command
from ropd.progress import (
    DEFAULT_EVERY_S,
    EVERY_ENV,
    RunProgress,
    every_from_env,
    format_duration,
)


def resume_command(add: Sequence[str] = (), remove: Sequence[str] = ()) -> str:
    """The command this process runs, shell-quoted, with `add` appended and `remove` dropped.

    `ropd score` resumes with `add=["--resume"], remove=["--overwrite", "--no-resume"]`; a
    teacher build resumes as it was run.
    """
    return current_command(add=add, remove=remove)


__all__ = [
    "DEFAULT_EVERY_S",
    "EVERY_ENV",
    "RunProgress",
    "every_from_env",
    "format_duration",
    "resume_command",
]
