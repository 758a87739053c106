"""Read and validate a groups JSONL file before any judge call is made.

The whole file is checked first and every bad line is reported (`groups.jsonl:7: field
'student_responses': ...`), so a user fixes all problems in one go and no judge tokens are spent
on a run that would stop halfway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ropd.errors import InputError
from ropd.reward.types import Group


@dataclass(frozen=True)
class LineError:
    """One problem in an input file, located by line (1-based) and field."""

    path: str
    line: int | None
    message: str
    field: str | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        what = f"field '{self.field}': {self.message}" if self.field else self.message
        return f"{where}: {what}"


class GroupsFileError(InputError):
    """A groups file with one or more bad lines; `errors` lists them all."""

    def __init__(self, errors: list[LineError]):
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


def _field_name(loc: tuple[int | str, ...]) -> str:
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


def _validation_errors(path: str, line: int, raw: dict[str, Any], exc: ValidationError) -> list:
    """Turn pydantic errors into line errors; union branches of `prompt` become one message."""
    out: list[LineError] = []
    prompt_done = False
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        if loc and loc[0] == "prompt" and len(loc) > 1 and isinstance(loc[1], str):
            # `prompt` is str | list[messages]: report the branch matching what was given.
            value = raw.get("prompt")
            if isinstance(value, list) and loc[1].startswith("list"):
                out.append(LineError(path, line, err["msg"], _field_name(("prompt", *loc[2:]))))
            elif not isinstance(value, list | str) and not prompt_done:
                out.append(
                    LineError(
                        path,
                        line,
                        "must be a string or a list of chat messages "
                        f"({{'role', 'content'}}), got {type(value).__name__}",
                        "prompt",
                    )
                )
                prompt_done = True
            continue
        msg = err["msg"]
        if err.get("type") == "missing":
            msg = "required field is missing"
        elif err.get("type") == "extra_forbidden":
            msg = "unknown field (expected id, prompt, student_responses, teacher_responses)"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        out.append(LineError(path, line, msg, _field_name(loc) or None))
    return out


def read_groups(path: str | Path, *, require_teacher: bool = True) -> list[Group]:
    """Every group of a JSONL file, or GroupsFileError listing every bad line.

    `require_teacher=False` lets lines omit `teacher_responses` (they are looked up in a teacher
    store later). Blank lines are skipped; ids must be unique (resume is keyed on them).
    """
    return [group for _, group in read_numbered_groups(path, require_teacher=require_teacher)]


def read_numbered_groups(
    path: str | Path, *, require_teacher: bool = True
) -> list[tuple[int, Group]]:
    """Like `read_groups`, with the line number of each group (for later per-line errors)."""
    shown = str(path)
    p = Path(path)
    if not p.is_file():
        raise GroupsFileError([LineError(shown, None, "file not found")])
    errors: list[LineError] = []
    groups: list[tuple[int, Group]] = []
    first_line: dict[str, int] = {}
    with p.open("rb") as handle:
        for number, raw_line in enumerate(handle, start=1):
            try:
                text = raw_line.decode("utf-8")
            except UnicodeDecodeError as exc:
                errors.append(LineError(shown, number, f"not valid UTF-8 ({exc.reason})"))
                continue
            if not text.strip():
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                errors.append(
                    LineError(shown, number, f"invalid JSON: {exc.msg} (column {exc.colno})")
                )
                continue
            if not isinstance(data, dict):
                errors.append(
                    LineError(shown, number, f"expected a JSON object, got {type(data).__name__}")
                )
                continue
            line_errors: list[LineError] = []
            group: Group | None = None
            try:
                group = Group.model_validate(data)
            except ValidationError as exc:
                line_errors.extend(_validation_errors(shown, number, data, exc))
            if require_teacher and "teacher_responses" not in data:
                line_errors.append(
                    LineError(
                        shown,
                        number,
                        "required field is missing (or give a teacher store to look answers up)",
                        "teacher_responses",
                    )
                )
            if group is not None and not line_errors:
                if group.id in first_line:
                    line_errors.append(
                        LineError(
                            shown,
                            number,
                            f"duplicate id {group.id!r} (first on line {first_line[group.id]})",
                            "id",
                        )
                    )
                else:
                    first_line[group.id] = number
                    groups.append((number, group))
            errors.extend(line_errors)
    if not errors and not groups:
        errors.append(LineError(shown, None, "no groups in the file"))
    if errors:
        raise GroupsFileError(errors)
    return groups
