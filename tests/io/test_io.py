"""Reading groups files (errors by file, line and field) and resuming score files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ropd.io import GroupsFileError, OutputFileError, ResultWriter, prepare_resume, read_groups

GOOD = {"id": 1, "prompt": "hi", "student_responses": ["a", "b"], "teacher_responses": ["t"]}


def write(path: Path, lines: list[str | dict]) -> Path:
    path.write_bytes(
        b"".join(
            (line if isinstance(line, str) else json.dumps(line)).encode("utf-8") + b"\n"
            for line in lines
        )
    )
    return path


def errors_of(path: Path, **kw: object) -> list[str]:
    with pytest.raises(GroupsFileError) as caught:
        read_groups(path, **kw)
    return [str(e) for e in caught.value.errors]


def test_reads_good_lines_and_skips_blank_ones(tmp_path: Path):
    chat = {**GOOD, "id": "c", "prompt": [{"role": "user", "content": "hi"}]}
    path = write(tmp_path / "g.jsonl", [GOOD, "", "   ", chat])
    groups = read_groups(path)
    assert [g.id for g in groups] == ["1", "c"]  # integer ids become strings
    assert groups[1].prompt == [{"role": "user", "content": "hi"}]


def test_every_bad_line_is_reported_with_its_field(tmp_path: Path):
    path = write(
        tmp_path / "g.jsonl",
        [
            "{not json",
            "[1, 2]",
            {**GOOD, "id": "x", "student_responses": []},
            {**GOOD, "id": "y", "student_responses": ["ok", 3]},
            {**GOOD, "id": "z", "prompt": [{"role": "user"}]},
            {**GOOD, "id": "w", "prompt": [{"role": "user", "content": "q"}, "oops"]},
            {**GOOD, "id": "v", "prompt": "   "},
            {"id": "u", "prompt": "hi", "student_response": ["a"], "answer": "b"},
            {k: v for k, v in GOOD.items() if k != "id"},
            GOOD,
        ],
    )
    p = str(path)
    assert errors_of(path) == [
        f"{p}:1: invalid JSON: Expecting property name enclosed in double quotes (column 2)",
        f"{p}:2: expected a JSON object, got list",
        (
            f"{p}:3: field 'student_responses': List should have at least 1 item after "
            "validation, not 0"
        ),
        f"{p}:4: field 'student_responses[1]': Input should be a valid string",
        f"{p}:5: field 'prompt': message 0 needs 'role' and 'content'",
        f"{p}:6: field 'prompt[1]': Input should be a valid dictionary",
        f"{p}:7: field 'prompt': prompt is empty",
        (  # extra keys are ignored; one spelled like a missing field is pointed out
            f"{p}:8: field 'student_responses': required field is missing (did you mean "
            "'student_responses'? the line has 'student_response')"
        ),
        (
            f"{p}:8: field 'teacher_responses': required field is missing (or give a teacher "
            "store to look answers up)"
        ),
        f"{p}:9: field 'id': required field is missing",
    ]


def test_teacher_answers_are_required_unless_a_store_supplies_them(tmp_path: Path):
    row = {k: v for k, v in GOOD.items() if k != "teacher_responses"}
    path = write(tmp_path / "g.jsonl", [row])
    assert errors_of(path) == [
        (
            f"{path}:1: field 'teacher_responses': required field is missing (or give a teacher "
            "store to look answers up)"
        )
    ]
    assert read_groups(path, require_teacher=False)[0].teacher_responses == []


def test_file_level_problems(tmp_path: Path):
    assert errors_of(tmp_path / "missing.jsonl") == [
        f"{tmp_path / 'missing.jsonl'}: file not found"
    ]
    empty = write(tmp_path / "empty.jsonl", [""])
    assert errors_of(empty) == [f"{empty}: no groups in the file"]
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(json.dumps(GOOD).encode() + b"\n\xff\xfe{}\n")
    assert errors_of(binary) == [f"{binary}:2: not valid UTF-8 (invalid start byte)"]


def test_resume_of_missing_and_clean_outputs(tmp_path: Path):
    assert prepare_resume(tmp_path / "none.jsonl") == (set(), 0)
    out = tmp_path / "s.jsonl"
    with ResultWriter(out, append=False) as w:
        w.write({"id": "a", "rewards": [1.0]})
        w.write({"id": "b", "rewards": [None]})
    before = out.read_bytes()
    assert prepare_resume(out) == ({"a", "b"}, 0)
    assert out.read_bytes() == before


def test_resume_cuts_a_half_written_last_line(tmp_path: Path):
    out = tmp_path / "s.jsonl"
    out.write_text('{"id": "a"}\n{"id": "b", "rewa')
    assert prepare_resume(out) == ({"a"}, len('{"id": "b", "rewa'))
    assert out.read_text() == '{"id": "a"}\n'
    with ResultWriter(out, append=True) as w:
        w.write({"id": "b"})
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["a", "b"]


def test_resume_keeps_a_complete_last_line_without_newline(tmp_path: Path):
    out = tmp_path / "s.jsonl"
    out.write_text('{"id": "a"}\n{"id": "b"}')
    assert prepare_resume(out) == ({"a", "b"}, 0)
    assert out.read_text() == '{"id": "a"}\n{"id": "b"}\n'


def test_resume_refuses_damage_in_the_middle(tmp_path: Path):
    out = tmp_path / "s.jsonl"
    original = '{"id": "a"}\n{"id": "b", \n{"id": "c"}\n'
    out.write_text(original)
    with pytest.raises(OutputFileError, match=r"s.jsonl:2: not a score line"):
        prepare_resume(out)
    assert out.read_text() == original


def test_failed_lines_are_taken_out_for_a_resume_to_judge_again(tmp_path: Path):
    from ropd.io import remove_failed_lines

    out = tmp_path / "s.jsonl"
    assert remove_failed_lines(out) == set()  # nothing written yet
    lines = [
        {"id": "a", "error": None},
        {"id": "b", "error": "JudgeError: HTTP 500"},
        {"id": "c", "error": "ambiguous reply"},
        {"id": "c", "error": None},  # judged later: nothing to do again
        {"id": 7, "error": "timeout"},
    ]
    out.write_text("".join(json.dumps(row) + "\n" for row in lines))
    assert remove_failed_lines(out) == {"b", "7"}
    assert [json.loads(x) for x in out.read_text().splitlines()] == [lines[0], lines[3]]
    assert remove_failed_lines(out) == set()  # a second resume finds nothing failed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.jsonl"]  # no temporary file left
