"""Bad groups files, paths and options: `ropd score` exits 2 with one clear message, no judge call.

Each case runs the real command in a subprocess (as a user does) against a `StubJudgeServer`,
and checks the exit code, the message (file:line and field where there is one), that no
traceback is printed, that the stub received no request and that no output was left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ropd.testing import StubJudgeServer

ROOT = os.geteuid() == 0
KEY_ENV = "ROPD_BAD_INPUTS_TEST_KEY"


def row(gid: object = "g1", **changes: object) -> dict:
    base: dict = {
        "id": gid,
        "prompt": "What is 17 * 23?",
        "student_responses": ["391", "401"],
        "teacher_responses": ["17 * 23 = 391"],
    }
    base.update(changes)
    return base


GOOD = row("ok")
SURROGATE = json.loads('"cut emoji \\ud83d"')  # a lone high surrogate, valid JSON


def user(content: object) -> list[dict]:
    return [{"role": "user", "content": content}]


@dataclass
class Case:
    """One bad input. `lines` become the groups file (dicts as JSON, str as is, bytes raw);
    `args` and `expect` may use {groups}, {out}, {tmp}; `setup` prepares extra files."""

    name: str
    expect: str
    lines: list[dict | str | bytes] = field(default_factory=lambda: [GOOD])
    args: list[str] = field(default_factory=list)
    output: str = "{tmp}/scores.jsonl"
    setup: Callable[[Path], None] | None = None
    skip_root: bool = False


def _subdir(name: str) -> Callable[[Path], None]:
    return lambda tmp: (tmp / name).mkdir()


def _read_only_file(tmp: Path) -> None:
    path = tmp / "locked.jsonl"
    path.write_text('{"id": "old"}\n')
    path.chmod(0o444)


def _read_only_dir(tmp: Path) -> None:
    (tmp / "ro").mkdir()
    (tmp / "ro").chmod(0o555)


def _a_file(tmp: Path) -> None:
    (tmp / "plain.txt").write_text("not a folder\n")


CASES = [
    # -- the groups file: every string must be valid Unicode (lone surrogates) ---------------
    Case(
        "surrogate-in-student-answer",
        "{groups}:2: field 'student_responses[2]': not valid Unicode: lone surrogate U+D83D",
        lines=[GOOD, row("s", student_responses=["a", "b", SURROGATE])],
    ),
    Case(
        "surrogate-in-teacher-answer",
        "{groups}:1: field 'teacher_responses[0]': not valid Unicode",
        lines=[row("t", teacher_responses=[SURROGATE])],
    ),
    Case(
        "surrogate-in-prompt-content-part",
        "{groups}:1: field 'prompt[0].content[1].text': not valid Unicode",
        lines=[
            row(
                "p",
                prompt=user([{"type": "text", "text": "ok"}, {"type": "text", "text": SURROGATE}]),
            )
        ],
    ),
    Case(
        "surrogate-in-id",
        "{groups}:1: field 'id': not valid Unicode",
        lines=[row(SURROGATE)],
    ),
    # -- ids ------------------------------------------------------------------------------------
    Case(
        "boolean-id",
        "{groups}:1: field 'id': must be a string or an integer, got boolean true",
        lines=[row(True)],
    ),
    Case(
        "float-id",
        "{groups}:1: field 'id': must be a string or an integer, got number 1.5",
        lines=[row(1.5)],
    ),
    Case("empty-id", "{groups}:1: field 'id': id is empty", lines=[row("")]),
    # -- chat prompts ---------------------------------------------------------------------------
    Case(
        "unknown-role",
        "{groups}:1: field 'prompt[1].role': must be one of system, user, assistant, developer, "
        "tool; got 'bot'",
        lines=[row("r", prompt=[*user("hi"), {"role": "bot", "content": "x"}])],
    ),
    Case(
        "null-content",
        "{groups}:1: field 'prompt[0].content': must be a string or a list of content parts",
        lines=[row("n", prompt=user(None))],
    ),
    Case(
        "content-part-without-text",
        "{groups}:1: field 'prompt[0].content[0].text': a text part needs a string 'text'",
        lines=[row("c", prompt=user([{"type": "text"}]))],
    ),
    Case(
        "empty-message-list",
        "{groups}:1: field 'prompt': prompt has no messages",
        lines=[row("e", prompt=[])],
    ),
    # -- answers --------------------------------------------------------------------------------
    Case(
        "no-student-answers",
        "{groups}:1: field 'student_responses': List should have at least 1 item",
        lines=[row("s", student_responses=[])],
    ),
    Case(
        "non-string-answer",
        "{groups}:1: field 'student_responses[1]': Input should be a valid string",
        lines=[row("s", student_responses=["a", {"text": "b"}])],
    ),
    Case(
        "empty-teacher-list-with-k",
        "{groups}:2: field 'teacher_responses': no teacher answers",
        lines=[GOOD, row("t", teacher_responses=[])],
    ),
    # -- JSON itself ----------------------------------------------------------------------------
    Case(
        "deeply-nested-json",
        "{groups}:1: invalid JSON: nested too deeply",
        lines=['{"id": "d", "prompt": ' + "[" * 100_000 + "]" * 100_000 + "}"],
    ),
    Case(
        "duplicate-key",
        "{groups}:1: invalid JSON: the key 'id' appears twice in one object",
        lines=['{"id": "a", "id": "b", "prompt": "q", "student_responses": ["x"]}'],
    ),
    Case(
        "integer-with-too-many-digits",
        "{groups}:1: invalid JSON: Exceeds the limit",
        lines=['{"id": ' + "9" * 5000 + "}"],
    ),
    Case(
        "utf16-file",
        "{groups}: encoded as UTF-16 or UTF-32",
        lines=[("\ufeff" + json.dumps(GOOD)).encode("utf-16-le")],
    ),
    # -- the input path -------------------------------------------------------------------------
    Case(
        "input-is-a-directory",
        "{tmp}/indir: is a directory, not a groups file",
        args=["{tmp}/indir"],
        setup=_subdir("indir"),
    ),
    Case("input-missing", "{tmp}/nope.jsonl: file not found", args=["{tmp}/nope.jsonl"]),
    # -- output and trace paths -----------------------------------------------------------------
    Case(
        "output-is-a-directory",
        "output file {tmp}/outdir is a directory",
        output="{tmp}/outdir",
        setup=_subdir("outdir"),
    ),
    Case(
        "output-is-a-directory-with-overwrite",
        "output file {tmp}/outdir is a directory",
        output="{tmp}/outdir",
        args=["--overwrite"],
        setup=_subdir("outdir"),
    ),
    Case(
        "output-under-proc",
        "output file /proc/ropd-scores.jsonl cannot be created",
        output="/proc/ropd-scores.jsonl",
    ),
    Case(
        "output-parent-cannot-be-created",
        "cannot create directory {tmp}/plain.txt/sub ({tmp}/plain.txt is not a directory)",
        output="{tmp}/plain.txt/sub/scores.jsonl",
        setup=_a_file,
    ),
    Case("output-is-a-device", "output file /dev/null is not a regular file", output="/dev/null"),
    Case(
        "output-is-the-input",
        "the output is the same file as the input",
        output="{groups}",
        args=["--overwrite"],
    ),
    Case(
        "output-not-writable",
        "output file {tmp}/locked.jsonl cannot be written (Permission denied)",
        output="{tmp}/locked.jsonl",
        args=["--overwrite"],
        setup=_read_only_file,
        skip_root=True,
    ),
    Case(
        "output-directory-not-writable",
        "output file {tmp}/ro/scores.jsonl cannot be created (Permission denied)",
        output="{tmp}/ro/scores.jsonl",
        setup=_read_only_dir,
        skip_root=True,
    ),
    Case(
        "traces-is-a-directory",
        "trace database {tmp}/tdir is a directory",
        args=["--traces", "{tmp}/tdir"],
        setup=_subdir("tdir"),
    ),
    Case(
        "traces-under-proc",
        "trace database /proc/ropd-traces.db cannot be created",
        args=["--traces", "/proc/ropd-traces.db"],
    ),
    Case(
        "traces-is-the-output",
        "the trace database is the same file as the output",
        args=["--traces", "{tmp}/scores.jsonl"],
    ),
    Case(
        "traces-not-writable",
        "trace database {tmp}/ro/t.db cannot be created (Permission denied)",
        args=["--traces", "{tmp}/ro/t.db"],
        setup=_read_only_dir,
        skip_root=True,
    ),
    # -- other options --------------------------------------------------------------------------
    Case(
        "teacher-store-is-a-directory",
        "{tmp}/store: the teacher store is a directory",
        args=["--teacher-store", "{tmp}/store"],
        setup=_subdir("store"),
    ),
    Case(
        "prompts-dir-missing",
        "{tmp}/prompts: the prompts folder does not exist",
        args=["--prompts-dir", "{tmp}/prompts"],
    ),
    Case(
        "negative-k",
        "-k/--num-teacher-refs: Input should be greater than or equal to 0",
        args=["-k", "-1"],
    ),
    Case(
        "criteria-bounds-crossed",
        "invalid options: min_criteria (4) > max_criteria (2)",
        args=["--max-criteria", "2"],
    ),
    Case(
        "temperature-out-of-range",
        "--temperature: Input should be less than or equal to 2",
        args=["--temperature", "5"],
    ),
]


def _encode(line: dict | str | bytes) -> bytes:
    if isinstance(line, bytes):
        return line
    text = line if isinstance(line, str) else json.dumps(line)
    return text.encode("utf-8") + b"\n"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_exits_2_with_a_clear_message(
    case: Case, stub: StubJudgeServer, tmp_path: Path
) -> None:
    if case.skip_root and ROOT:
        pytest.skip("root can write anywhere: a permission problem cannot be provoked")
    groups = tmp_path / "groups.jsonl"
    groups.write_bytes(b"".join(_encode(line) for line in case.lines))
    if case.setup is not None:
        case.setup(tmp_path)
    values = {"groups": str(groups), "tmp": str(tmp_path)}
    output = case.output.format(**values)
    values["out"] = output
    args = [a.format(**values) for a in case.args]
    positional = [args.pop(0)] if args and not args[0].startswith("-") else [str(groups)]
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    command = [
        sys.executable, "-m", "ropd", "score", *positional, "-o", output, *args,
        "--base-url", stub.base_url, "--model", "m", "--api-key-env", KEY_ENV,
        "--max-retries", "0",
    ]  # fmt: skip
    env = {**os.environ, KEY_ENV: "dummy-key", "COLUMNS": "300"}
    proc = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=120, env=env
    )
    for path in (tmp_path / "ro", tmp_path / "locked.jsonl"):
        if path.exists():
            path.chmod(0o755)  # let pytest clean up
    shown = proc.stdout + proc.stderr
    assert proc.returncode == 2, shown
    assert "Traceback" not in shown, shown
    assert case.expect.format(**values) in " ".join(shown.split()), shown
    assert stub.requests == 0  # stopped before any judge call
    # nothing was created or changed next to the input (the path probes leave no trace)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before
