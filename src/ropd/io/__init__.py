"""Reading group files and writing score files, with line-precise errors and safe resume;
one writer per output file (`ropd.io.lock`)."""

from ropd.io.groups import GroupsFileError, LineError, read_groups, read_numbered_groups
from ropd.io.lock import FileLockedError, OutputLock, current_command, hold_locks
from ropd.io.results import (
    OutputFileError,
    ResultWriter,
    check_writable,
    prepare_resume,
    remove_failed_lines,
)

__all__ = [
    "FileLockedError",
    "GroupsFileError",
    "LineError",
    "OutputFileError",
    "OutputLock",
    "ResultWriter",
    "check_writable",
    "current_command",
    "hold_locks",
    "prepare_resume",
    "read_groups",
    "read_numbered_groups",
    "remove_failed_lines",
]
