"""Output paths are checked before any work, without changing anything; the scoring plan's rules."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ropd.errors import InputError
from ropd.io import GroupsFileError, OutputFileError, ResultWriter, check_writable, prepare_resume
from ropd.reward.config import ScorerConfig
from ropd.score_file import plan_score_file

ROOT = os.geteuid() == 0
GROUP = {"id": "g", "prompt": "q", "student_responses": ["a"], "teacher_responses": ["t"]}


def files_under(path: Path) -> set[Path]:
    return set(path.rglob("*"))


# -- check_writable ---------------------------------------------------------------------------


def test_a_new_path_is_probed_and_nothing_is_left_behind(tmp_path: Path):
    target = tmp_path / "a" / "b" / "scores.jsonl"
    check_writable(target)
    assert files_under(tmp_path) == set()  # the file and both directories were removed again


def test_an_existing_file_keeps_its_content(tmp_path: Path):
    out = tmp_path / "scores.jsonl"
    out.write_text('{"id": "x"}\n')
    check_writable(out)
    check_writable(out, "trace database", sidecars=True)
    assert out.read_text() == '{"id": "x"}\n'
    assert files_under(tmp_path) == {out}


@pytest.mark.parametrize(
    ("make", "path", "message"),
    [
        (
            lambda t: (t / "d").mkdir(),
            "{t}/d",
            "output file {t}/d is a directory; give a file path",
        ),
        (None, "/dev/null", "output file /dev/null is not a regular file"),
        (
            None,
            "/proc/ropd-x.jsonl",
            ("output file /proc/ropd-x.jsonl cannot be created (/proc does not take new files)"),
        ),
        (
            None,
            "/proc/ropd-x/y.jsonl",
            ("output file /proc/ropd-x/y.jsonl: cannot create directory /proc/ropd-x"),
        ),
        (
            lambda t: (t / "f").write_text("x"),
            "{t}/f/sub/s.jsonl",
            (
                "output file {t}/f/sub/s.jsonl: cannot create directory {t}/f/sub ({t}/f is not a "
                "directory)"
            ),
        ),
        (
            lambda t: (t / "link.jsonl").symlink_to(t / "missing" / "x"),
            "{t}/link.jsonl",
            "output file {t}/link.jsonl is a symbolic link to a missing file",
        ),
    ],
)
def test_unwritable_paths_give_one_message_naming_them(tmp_path: Path, make, path, message):
    if make is not None:
        make(tmp_path)
    before = files_under(tmp_path)
    with pytest.raises(OutputFileError) as caught:
        check_writable(path.format(t=tmp_path))
    assert str(caught.value).startswith(message.format(t=tmp_path))
    assert isinstance(caught.value, InputError)
    assert files_under(tmp_path) == before


@pytest.mark.skipif(ROOT, reason="root can write anywhere")
def test_permissions_are_checked(tmp_path: Path):
    locked = tmp_path / "locked.jsonl"
    locked.write_text("x\n")
    locked.chmod(0o444)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputFileError, match="cannot be written"):
            check_writable(locked)
        with pytest.raises(OutputFileError, match="cannot be created"):
            check_writable(ro / "s.jsonl")
        with pytest.raises(OutputFileError, match="cannot create directory"):
            check_writable(ro / "sub" / "s.jsonl")
    finally:
        ro.chmod(0o755)
        locked.chmod(0o644)


def test_writer_and_resume_report_os_errors_as_output_errors(tmp_path: Path):
    with pytest.raises(OutputFileError, match="cannot write the output"):
        ResultWriter(tmp_path, append=False)
    with pytest.raises(OutputFileError, match="cannot read the output to resume it"):
        prepare_resume(tmp_path)


# -- plan_score_file ----------------------------------------------------------------------------


def groups_file(tmp_path: Path, *rows: dict) -> Path:
    path = tmp_path / "groups.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def config(k: int | None = 4, **kw: object) -> ScorerConfig:
    return ScorerConfig(num_teacher_refs=k, **kw)


def test_empty_teacher_lists_are_an_input_error_unless_k_is_0(tmp_path: Path):
    path = groups_file(tmp_path, GROUP, {**GROUP, "id": "h", "teacher_responses": []})
    out = tmp_path / "scores.jsonl"
    for k in (4, None):
        with pytest.raises(GroupsFileError) as caught:
            plan_score_file(path, out, config(k))
        assert [str(e) for e in caught.value.errors] == [
            (
                f"{path}:2: field 'teacher_responses': no teacher answers; give at least one, or "
                "score without references (num_teacher_refs=0, `-k 0`)"
            )
        ]
    plan = plan_score_file(path, out, config(0))
    assert [g.id for g in plan.todo] == ["g", "h"]
    missing = {k: v for k, v in GROUP.items() if k != "teacher_responses"}
    assert plan_score_file(groups_file(tmp_path, missing), out, config(0)).todo[0].id == "g"
    assert files_under(tmp_path) == {path}  # planning wrote nothing


def test_a_store_lookup_without_answers_is_reported_by_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from ropd.teacher.store import TeacherStore

    with TeacherStore(tmp_path / "teacher.db"):
        pass
    monkeypatch.setattr(TeacherStore, "lookup", lambda self, *a, **kw: [])
    path = groups_file(tmp_path, GROUP, {**GROUP, "id": "h", "teacher_responses": []})
    with pytest.raises(GroupsFileError) as caught:
        plan_score_file(
            path, tmp_path / "s.jsonl", config(2), teacher_store=tmp_path / "teacher.db"
        )
    assert [str(e) for e in caught.value.errors] == [
        (
            f"{path}:2: field 'teacher_responses': no teacher answers; give at least one, or "
            "score without references (num_teacher_refs=0, `-k 0`)"
        )
    ]


def test_paths_that_are_the_same_file_are_refused(tmp_path: Path):
    path = groups_file(tmp_path, GROUP)
    original = path.read_text()
    cases = [
        ({"output": path, "overwrite": True}, "the output is the same file as the input"),
        ({"output": tmp_path / "." / "groups.jsonl", "resume": True}, "the output is the same"),
        (
            {"output": tmp_path / "s.jsonl", "traces": tmp_path / "s.jsonl"},
            "the trace database is the same file as the output",
        ),
        ({"output": tmp_path / "s.jsonl", "traces": path}, "the trace database is the same"),
        (
            {"output": tmp_path / "s.jsonl", "teacher_store": tmp_path / "s.traces.db"},
            "the teacher store is the same file as the trace database",
        ),
    ]
    for kwargs, message in cases:
        output = kwargs.pop("output")
        with pytest.raises(InputError, match=message):
            plan_score_file(path, output, config(), **kwargs)
    assert path.read_text() == original
    assert files_under(tmp_path) == {path}


def test_output_problems_come_before_reading_and_keep_existing_output(tmp_path: Path):
    path = groups_file(tmp_path, GROUP)
    (tmp_path / "out").mkdir()
    with pytest.raises(OutputFileError, match="is a directory"):
        plan_score_file(path, tmp_path / "out", config(), overwrite=True)
    existing = tmp_path / "s.jsonl"
    existing.write_text('{"id": "old"}\n')
    with pytest.raises(InputError, match="pass --resume"):
        plan_score_file(path, existing, config())
    with pytest.raises(OutputFileError, match="trace database"):
        plan_score_file(path, existing, config(), overwrite=True, traces=tmp_path / "out")
    assert existing.read_text() == '{"id": "old"}\n'


def test_a_missing_prompts_folder_is_an_input_error(tmp_path: Path):
    path = groups_file(tmp_path, GROUP)
    with pytest.raises(InputError, match="the prompts folder does not exist"):
        plan_score_file(path, tmp_path / "s.jsonl", config(prompts_dir=tmp_path / "nope"))
    with pytest.raises(InputError, match="the prompts folder is not a folder"):
        plan_score_file(path, tmp_path / "s.jsonl", config(prompts_dir=path))
