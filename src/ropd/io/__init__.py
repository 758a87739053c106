"""Reading group files and writing score files, with line-precise errors and safe resume."""

from ropd.io.groups import GroupsFileError, LineError, read_groups, read_numbered_groups
from ropd.io.results import OutputFileError, ResultWriter, check_writable, prepare_resume

__all__ = [
    "GroupsFileError",
    "LineError",
    "OutputFileError",
    "ResultWriter",
    "check_writable",
    "prepare_resume",
    "read_groups",
    "read_numbered_groups",
]
