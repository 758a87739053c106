"""The fixed pool `ropd analyze` measures rewards on: prompts, answers and their correctness.

A pool line is `id`, `prompt` (string or chat messages), `responses` (strings), the truth as
either `correct` (booleans aligned with `responses`) or `answer` (a gold answer; each response
is checked with math-verify through `ropd.eval.scoring.math`), and optionally
`teacher_responses` (or a teacher store looks them up, as `ropd score --teacher-store` does) and
`task` (where the line came from; informational), and `rubric` (the line's own rubric, which
method `rar` scores with; `ropd.data.rubrics`).

The file is checked whole before any judge call, and every bad line is reported with its line
and field (`pool.jsonl:3: field 'correct': ...`), by the same rules and messages as a groups
file (`ropd.io.groups`): the prompt, ids and answer texts are validated as a `Group`.

`pool_from_eval` turns an eval `samples.jsonl` (`ropd eval`) into a pool: one line per
(task, item), the graded completions as responses and their stored scores as correctness.
With a teacher store it attaches `teacher_responses` too. The pool's `prompt` stays the prompt
the student saw (the judge must grade against what was asked), but `ropd eval` appends its own
instruction to math prompts (`ropd.eval.items.MATH_INSTRUCTION`) while a teacher store built
from the same task file (`ropd teacher build FILE`) is keyed by the file's prompt. So answers are
looked up by the task prompt (`task_prompt`: the sample's prompt with that instruction taken off
again), then by the prompt as seen.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ropd.errors import InputError
from ropd.io.groups import (
    NO_TEACHER_ANSWERS,
    GroupsFileError,
    LineError,
    parse_line,
    validation_errors,
)
from ropd.io.results import ResultWriter, check_writable
from ropd.reward.types import Group

POOL_FIELDS = (
    "id",
    "prompt",
    "responses",
    "correct",
    "answer",
    "teacher_responses",
    "task",
    "rubric",
)
_BOM = "\ufeff"


class PoolFileError(GroupsFileError):
    """A pool file with bad lines; `errors` lists every one (shown like a groups file's)."""


@dataclass(frozen=True)
class PoolItem:
    """One pool line: the group to score (responses as student answers) and the truth."""

    group: Group
    correct: tuple[bool, ...]
    line: int
    task: str | None = None


def read_pool(path: str | Path, *, require_teacher: bool) -> list[PoolItem]:
    """Every item of a pool file, or `PoolFileError` listing every bad line.

    `require_teacher`: lines must carry `teacher_responses` (no teacher store given, and some
    method uses teacher answers).
    """
    shown, p = str(path), Path(path)
    if p.is_dir():
        raise PoolFileError([LineError(shown, None, "is a directory, not a pool file")])
    if not p.exists():
        raise PoolFileError([LineError(shown, None, "file not found")])
    try:
        raw = p.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise PoolFileError([LineError(shown, None, f"cannot read the file ({reason})")]) from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise PoolFileError([LineError(shown, None, "encoded as UTF-16 or UTF-32; save as UTF-8")])
    errors: list[LineError] = []
    items: list[PoolItem] = []
    first_line: dict[str, int] = {}
    for number, raw_line in enumerate(raw.split(b"\n"), start=1):
        try:
            text = raw_line.decode("utf-8").removeprefix(_BOM)
        except UnicodeDecodeError as exc:
            errors.append(LineError(shown, number, f"not valid UTF-8 ({exc.reason})"))
            continue
        if not text.strip():
            continue
        data, problem = parse_line(text)
        if problem is None and not isinstance(data, dict):
            problem = f"expected a JSON object, got {type(data).__name__}"
        if problem is not None:
            errors.append(LineError(shown, number, problem))
            continue
        item, line_errors = _check_line(data, shown, number, require_teacher)
        if item is not None and not line_errors:
            if item.group.id in first_line:
                line_errors.append(
                    LineError(
                        shown,
                        number,
                        f"duplicate id {item.group.id!r} (first on line "
                        f"{first_line[item.group.id]})",
                        "id",
                    )
                )
            else:
                first_line[item.group.id] = number
                items.append(item)
        errors.extend(line_errors)
    if not errors and not items:
        errors.append(LineError(shown, None, "no pool lines in the file"))
    if errors:
        raise PoolFileError(errors)
    return items


def _check_line(
    data: dict[str, Any], shown: str, number: int, require_teacher: bool
) -> tuple[PoolItem | None, list[LineError]]:
    """The item of one parsed line, and every problem found in it."""
    errors: list[LineError] = []

    def bad(field: str | None, message: str) -> None:
        errors.append(LineError(shown, number, message, field))

    for key in data:
        if key not in POOL_FIELDS:
            bad(key, f"unknown field (expected {', '.join(POOL_FIELDS)})")
    responses = data.get("responses")
    if "responses" not in data:
        bad("responses", "required field is missing")
    elif not isinstance(responses, list) or not responses:
        bad("responses", "must be a non-empty list of strings")
        responses = None
    task = data.get("task")
    if task is not None and not isinstance(task, str):
        bad("task", "must be a string")
    group: Group | None = None
    try:
        fields = {key: data[key] for key in ("id", "prompt") if key in data}
        group = Group.model_validate(
            {
                **fields,
                "student_responses": responses if isinstance(responses, list) else [""],
                "teacher_responses": data.get("teacher_responses") or [],
                "rubric": data.get("rubric"),
            }
        )
    except ValidationError as exc:
        for err in validation_errors(shown, number, exc):
            field = err.field
            if field is not None and field.startswith("student_responses"):
                if responses is None:
                    continue  # already reported
                field = "responses" + field.removeprefix("student_responses")
            errors.append(LineError(shown, number, err.message, field))
    teachers = data.get("teacher_responses")
    if require_teacher and isinstance(teachers, list | None) and not teachers:
        bad(
            "teacher_responses",
            NO_TEACHER_ANSWERS
            if "teacher_responses" in data
            else "required field is missing (or give --teacher-store to look answers up)",
        )
    correct = _truth(data, responses if group is not None else None, bad)
    if group is None or correct is None or errors:
        return None, errors
    return PoolItem(group=group, correct=correct, line=number, task=task), errors


def _truth(data: dict[str, Any], responses: list[str] | None, bad: Any) -> tuple[bool, ...] | None:
    """`correct` as given, or each response checked against `answer` with math-verify."""
    has_correct, has_answer = "correct" in data, "answer" in data
    if has_correct == has_answer:
        bad(
            "correct",
            "give exactly one of `correct` (booleans, one per response) or `answer` "
            "(the gold answer, checked with math-verify)",
        )
        return None
    if has_correct:
        flags = data["correct"]
        if not isinstance(flags, list) or not all(isinstance(f, bool) for f in flags):
            bad("correct", "must be a list of booleans (true/false), one per response")
            return None
        if responses is not None and len(flags) != len(responses):
            bad("correct", f"has {len(flags)} values for {len(responses)} responses")
            return None
        return tuple(flags)
    gold = data["answer"]
    if isinstance(gold, bool) or not isinstance(gold, str | int | float) or str(gold) == "":
        bad("answer", "must be a non-empty string (or a number)")
        return None
    if responses is None:
        return None
    from ropd.eval.scoring.math import score_math
    from ropd.eval.types import EvalError

    try:
        return tuple(score_math(str(text), str(gold)).score == 1.0 for text in responses)
    except EvalError as exc:
        if "pip install" in str(exc):
            raise  # math-verify missing: one error for the whole file
        bad("answer", str(exc))
        return None


# -- eval samples -> pool ---------------------------------------------------------------------


@dataclass(frozen=True)
class PoolConversion:
    """What `pool_from_eval` wrote, and what it left out (ungraded samples).

    With a teacher store: `with_teacher` groups got answers, `without_teacher` (ids) did not.
    """

    groups: int
    responses: int
    correct: int
    skipped_ungraded: int
    with_teacher: int = 0
    without_teacher: tuple[str, ...] = ()


def task_prompt(prompt: Any) -> Any:
    """The prompt as the task file wrote it: `ropd eval`'s math instruction taken off again.

    Only an exact `"\n\n" + MATH_INSTRUCTION` ending of a user message is removed (other task
    families send the file's prompt unchanged; multiple-choice prompts are built from fields
    and have no file prompt to find).
    """
    from ropd.eval.items import MATH_INSTRUCTION

    suffix = f"\n\n{MATH_INSTRUCTION}"
    if isinstance(prompt, str):
        return prompt.removesuffix(suffix)
    if not isinstance(prompt, list):
        return prompt
    return [
        {**m, "content": m["content"].removesuffix(suffix)}
        if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str)
        else m
        for m in prompt
    ]


def _attach_teacher_answers(
    lines: list[dict[str, Any]], store_path: Path, any_fingerprint: bool
) -> list[str]:
    """Add every usable stored answer to each line (task prompt first); the ids without any."""
    from ropd.teacher.store import MissingReferences, open_existing

    missing: list[str] = []
    with open_existing(store_path) as store:
        for line in lines:
            seen = line["prompt"]
            candidates = [task_prompt(seen)]
            if candidates[0] != seen:
                candidates.append(seen)
            texts: list[str] = []
            for messages in candidates:
                try:
                    texts = store.lookup(
                        messages, k=1_000_000, allow_fewer=True,
                        accept_any_fingerprint=any_fingerprint,
                    )  # fmt: skip
                except MissingReferences:
                    continue
                if texts:
                    break
            if texts:
                line["teacher_responses"] = texts
            else:
                missing.append(line["id"])
    return missing


def pool_from_eval(
    samples: str | Path,
    output: str | Path,
    *,
    threshold: float = 0.5,
    overwrite: bool = False,
    teacher_store: str | Path | None = None,
    any_teacher_fingerprint: bool = False,
) -> PoolConversion:
    """Write a pool from an eval `samples.jsonl`: one line per (task, item).

    `teacher_store`: attach each line's usable teacher answers, looked up by the task prompt
    (see the module doc); lines without any are written without and their ids returned, and a
    store with answers for no line at all is an `InputError` (the store was built from other
    prompts).

    Samples are grouped by task and item id (every generation key of the item joins the
    group); the last line of a sample key wins, as in `ropd.eval.store`. A sample is correct
    when its stored score is at least `threshold` (scores of math, multiple choice and IFEval
    are 0 or 1; rubric-graded ones are fractions). Samples without a score (not graded, or
    failed) are left out and counted. Every unusable line is reported with its line number.
    """
    samples, output = Path(samples), Path(output)
    if not samples.is_file():
        raise InputError(f"{samples}: samples file not found")
    check_writable(output, "pool file")
    if output.exists() and output.stat().st_size > 0 and not overwrite:
        raise InputError(f"{output} exists; pass --overwrite to replace it")
    latest: dict[tuple[Any, ...], tuple[int, dict[str, Any]]] = {}
    errors: list[LineError] = []
    shown = str(samples)
    with samples.open(encoding="utf-8", errors="replace") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            record, problem = parse_line(text.removeprefix(_BOM))
            if problem is None and not isinstance(record, dict):
                problem = f"expected a JSON object, got {type(record).__name__}"
            if problem is not None:
                errors.append(LineError(shown, number, problem))
                continue
            missing = [k for k in ("task", "item_id", "prompt", "completion") if k not in record]
            if missing:
                errors.append(
                    LineError(shown, number, "required field is missing (not a sample line)",
                              missing[0])
                )  # fmt: skip
                continue
            key = (record["task"], record["item_id"], record.get("sample_index"),
                   record.get("gen_key"))  # fmt: skip
            latest[key] = (number, record)
    if errors:
        raise PoolFileError(errors)
    grouped: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    skipped = 0
    for number, record in latest.values():
        score = record.get("score")
        if isinstance(score, bool) or not isinstance(score, int | float):
            skipped += 1
            continue
        grouped[(str(record["task"]), str(record["item_id"]))].append((number, record))
    lines = []
    for (task, item_id), rows in grouped.items():
        rows.sort(key=lambda row: (str(row[1].get("gen_key")), row[1].get("sample_index") or 0))
        lines.append(
            {
                "id": f"{task}:{item_id}",
                "task": task,
                "prompt": rows[0][1]["prompt"],
                "responses": [str(r["completion"]) for _, r in rows],
                "correct": [float(r["score"]) >= threshold for _, r in rows],
            }
        )
    if not lines:
        raise InputError(f"{samples}: no graded samples to make a pool from")
    missing: list[str] = []
    if teacher_store is not None:
        missing = _attach_teacher_answers(lines, Path(teacher_store), any_teacher_fingerprint)
        if len(missing) == len(lines):
            raise InputError(
                f"{teacher_store}: no teacher answers for any of the {len(lines)} prompts of "
                f"{samples} (looked up as the task file wrote them and as the student saw "
                "them); build the store from the task file the eval read: "
                f"ropd teacher build FILE --store {teacher_store}"
            )
    with ResultWriter(output, append=False) as writer:
        for line in lines:
            writer.write(line)
    return PoolConversion(
        groups=len(lines),
        responses=sum(len(line["responses"]) for line in lines),
        correct=sum(sum(line["correct"]) for line in lines),
        skipped_ungraded=skipped,
        with_teacher=len(lines) - len(missing) if teacher_store is not None else 0,
        without_teacher=tuple(missing),
    )
