"""Read and validate a groups JSONL file before any judge call is made.

The whole file is checked first and every bad line is reported (`groups.jsonl:7: field
'student_responses': ...`), so a user fixes all problems in one go and no judge tokens are spent
on a run that would stop halfway.

What a line must be is `ropd.reward.types.Group` (see its module doc: string or integer ids,
chat roles and content, valid Unicode everywhere); on top of that, the file rules:

- The file is UTF-8, one JSON object per line; blank lines are skipped. A UTF-8 byte order mark
  at the start of the file (or of a line, as when such files are concatenated) is ignored; a
  UTF-16 or UTF-32 file is refused as a whole with one message.
- A line that is not valid UTF-8, not JSON, JSON nested too deeply for the parser, an object
  with the same key twice, or not an object is an error of that line.
- `teacher_responses` must be present and non-empty when `require_teacher` (the default; with
  K = 0 references or a teacher store to look them up the caller passes False). Empty answer
  strings are allowed.
- Ids are unique across the file (resume is keyed on them); `1` and `"1"` are the same id.
- `student_correct` (optional): each student answer checked against the row's gold answer,
  one `true`, `false` or `null` (not checkable) per answer. No judge sees it; the trace store
  keeps it, so `ropd inspect --stats` and the report give the reward's AUC against it.
- `rubric` (optional): the row's own rubric for `method: rar` (RaR's items `{title,
  description, weight}`, or ropd's `{criteria: [...]}`; `ropd.data.rubrics`), validated like
  the rest (`groups.jsonl:3: field 'rubric': item 2: field 'weight': ...`); other methods
  ignore it.
- Other keys of a line (ground truth, source ids, metadata…) are ignored: they never reach the
  judge. A required field that is missing while the line has a key spelled close to it says so
  (`student_response` → "did you mean 'student_responses'?").
- A path that does not exist, is a directory, or cannot be read is one error naming it.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ropd.errors import InputError
from ropd.reward.input_checks import GroupFieldError
from ropd.reward.types import Group

NO_TEACHER_ANSWERS = (
    "no teacher answers; give at least one, or score without references "
    "(num_teacher_refs=0, `-k 0`)"
)
_BOM = "\ufeff"


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


class _DuplicateKeyError(InputError):
    def __init__(self, key: str):
        self.key = key
        super().__init__(key)


def _object_without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKeyError(key)
        out[key] = value
    return out


def parse_line(text: str) -> tuple[Any, str | None]:
    """(value, None), or (None, why the line is not usable JSON)."""
    try:
        return json.loads(text, object_pairs_hook=_object_without_duplicate_keys), None
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} (column {exc.colno})"
    except _DuplicateKeyError as exc:
        return None, f"invalid JSON: the key {exc.key!r} appears twice in one object"
    except RecursionError:
        return None, "invalid JSON: nested too deeply"
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        return None, f"invalid JSON: {exc}"


def _field_name(loc: tuple[int | str, ...]) -> str:
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name


GROUP_FIELDS = tuple(Group.model_fields)


def known_fields(data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A line's `Group` fields, and its other keys (extra columns, ignored for judging)."""
    known = {key: value for key, value in data.items() if key in GROUP_FIELDS}
    return known, [key for key in data if key not in GROUP_FIELDS]


def misspelled_hint(field: str, others: Sequence[str]) -> str:
    """A "did you mean" for a missing field spelled close to one of the line's other keys.

    `student_response` for `student_responses` gives " (did you mean 'student_responses'? the
    line has 'student_response')"; no close key gives "".
    """
    # only keys whose closest field is this one (`student_response` is no teacher_responses)
    mine = [key for key in others if difflib.get_close_matches(key, GROUP_FIELDS, n=1) == [field]]
    close = difflib.get_close_matches(field, mine, n=1)
    return f" (did you mean {field!r}? the line has {close[0]!r})" if close else ""


def validation_errors(
    path: str, line: int, exc: ValidationError, others: Sequence[str] = ()
) -> list[LineError]:
    """Turn pydantic errors into line errors, naming the exact place inside the prompt.

    `others`: the line's keys that are not fields, for a "did you mean" on a missing field.
    """
    out: list[LineError] = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, GroupFieldError):  # a place inside the field, e.g. prompt[1].role
            out.append(LineError(path, line, cause.message, cause.where))
            continue
        msg = err["msg"]
        if err.get("type") == "missing":
            msg = "required field is missing"
            if len(loc) == 1:
                msg += misspelled_hint(str(loc[0]), others)
        elif err.get("type") == "extra_forbidden":
            msg = f"unknown field (expected {', '.join(GROUP_FIELDS)})"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        out.append(LineError(path, line, msg, _field_name(loc) or None))
    return out


def read_groups(path: str | Path, *, require_teacher: bool = True) -> list[Group]:
    """Every group of a JSONL file, or GroupsFileError listing every bad line.

    `require_teacher=False` lets lines omit `teacher_responses` or leave it empty (they are
    looked up in a teacher store later, or K = 0). Blank lines are skipped; ids must be unique
    (resume is keyed on them).
    """
    return [group for _, group in read_numbered_groups(path, require_teacher=require_teacher)]


def read_numbered_groups(
    path: str | Path, *, require_teacher: bool = True
) -> list[tuple[int, Group]]:
    """Like `read_groups`, with the line number of each group (for later per-line errors)."""
    shown = str(path)
    p = Path(path)
    if p.is_dir():
        raise GroupsFileError([LineError(shown, None, "is a directory, not a groups file")])
    if not p.exists():
        raise GroupsFileError([LineError(shown, None, "file not found")])
    try:
        with p.open("rb") as handle:
            return _read_lines(handle, shown, require_teacher)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise GroupsFileError(
            [LineError(shown, None, f"cannot read the file ({reason})")]
        ) from None


def _read_lines(handle: Any, shown: str, require_teacher: bool) -> list[tuple[int, Group]]:
    errors: list[LineError] = []
    groups: list[tuple[int, Group]] = []
    first_line: dict[str, int] = {}
    for number, raw_line in enumerate(handle, start=1):
        if number == 1 and raw_line.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise GroupsFileError(
                [
                    LineError(
                        shown,
                        None,
                        "encoded as UTF-16 or UTF-32 (byte order mark at the start); "
                        "save it as UTF-8",
                    )
                ]
            )
        try:
            text = raw_line.decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.append(LineError(shown, number, f"not valid UTF-8 ({exc.reason})"))
            continue
        text = text.removeprefix(_BOM)
        if not text.strip():
            continue
        data, problem = parse_line(text)
        if problem is not None:
            errors.append(LineError(shown, number, problem))
            continue
        if not isinstance(data, dict):
            errors.append(
                LineError(shown, number, f"expected a JSON object, got {type(data).__name__}")
            )
            continue
        data, others = known_fields(data)
        line_errors: list[LineError] = []
        group: Group | None = None
        try:
            group = Group.model_validate(data)
        except ValidationError as exc:
            line_errors.extend(validation_errors(shown, number, exc, others))
        if require_teacher and "teacher_responses" not in data:
            hint = misspelled_hint("teacher_responses", others)
            or_store = " (or give a teacher store to look answers up)"
            message = f"required field is missing{hint or or_store}"
            line_errors.append(LineError(shown, number, message, "teacher_responses"))
        elif require_teacher and group is not None and not group.teacher_responses:
            line_errors.append(LineError(shown, number, NO_TEACHER_ANSWERS, "teacher_responses"))
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
