"""Groups files carry extra columns (ground truth, source ids, metadata): they are ignored.

Only `id`, `prompt`, `student_responses` and `teacher_responses` reach the judge; a key spelled
like a missing required field is pointed out in that field's "missing" error.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from ropd.io import GroupsFileError, read_groups
from ropd.reward.types import Group

ROW = {"id": "g1", "prompt": "q", "student_responses": ["a", "b"], "teacher_responses": ["t"]}


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def errors_of(path: Path, **kw: object) -> list[str]:
    with pytest.raises(GroupsFileError) as caught:
        read_groups(path, **kw)
    return [str(e) for e in caught.value.errors]


def test_extra_keys_are_accepted_and_ignored(tmp_path: Path):
    rows = [
        {**ROW, "answer": "391", "metadata": {"source": "gsm8k", "row": 7}},
        {**ROW, "id": "g2", "source_id": 12, "ground_truth": None},
    ]
    groups = read_groups(write(tmp_path / "g.jsonl", rows))
    assert [g.id for g in groups] == ["g1", "g2"]
    assert groups[0].model_dump(exclude_defaults=True) == {**ROW}
    no_teacher = {"id": 1, "prompt": "q", "student_responses": ["a"], "answer": 3}
    assert read_groups(write(tmp_path / "k0.jsonl", [no_teacher]), require_teacher=False)


def test_a_misspelled_required_field_is_still_missing_with_a_hint(tmp_path: Path):
    row = {k: v for k, v in ROW.items() if k != "student_responses"}
    path = write(tmp_path / "g.jsonl", [{**row, "student_response": ["a"], "answer": "x"}])
    assert errors_of(path) == [
        (
            f"{path}:1: field 'student_responses': required field is missing (did you mean "
            "'student_responses'? the line has 'student_response')"
        )
    ]
    row = {k: v for k, v in ROW.items() if k != "teacher_responses"}
    path = write(tmp_path / "t.jsonl", [{**row, "teacher_response": ["t"]}])
    assert errors_of(path) == [
        (
            f"{path}:1: field 'teacher_responses': required field is missing (did you mean "
            "'teacher_responses'? the line has 'teacher_response')"
        )
    ]
    path = write(tmp_path / "n.jsonl", [{**row, "metadata": {}}])  # nothing close: no hint
    assert errors_of(path) == [
        (
            f"{path}:1: field 'teacher_responses': required field is missing (or give a teacher "
            "store to look answers up)"
        )
    ]


def test_group_itself_stays_strict_for_library_callers():
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Group.model_validate({**ROW, "answer": "391"})
