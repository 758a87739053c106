"""The bad inputs `ropd score` must refuse: exit 2, one clear message, no judge call, no trace.

`CASES` is one table of bad groups-file lines (lone surrogates, odd ids, malformed chat prompts,
empty answer lists, hostile JSON, UTF-16), bad input, output and trace paths, and bad options.
`run_case` runs the real command on one case in a subprocess, as a user does, against a judge
endpoint that should never be called (a `StubJudgeServer`), and reports what happened as a
`CaseOutcome`: exit code, what was printed, requests that reached the stub, files created or
changed, and whether the refusal was clear (exit 2, the expected message with file:line and field
where there is one, no traceback, no request, nothing left behind).

The same table drives the CLI tests (`tests/cli/test_bad_inputs.py`, one test per case) and the
"bad inputs with a clear message / total" figure of `ropd bench faults`. No pytest here: the
benchmark imports this module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ropd.testing.stub_server import STUB_MODEL, StubJudgeServer

__all__ = ["CASES", "KEY_ENV", "Case", "CaseOutcome", "run_case"]

KEY_ENV = "ROPD_BAD_INPUTS_TEST_KEY"
TIMEOUT_S = 120.0
ROOT_SKIP_REASON = "root can write anywhere: a permission problem cannot be provoked"
# runs `ropd ARGS` with an environment and returns what it printed (`run_case(runner=...)`)
Runner = Callable[[list[str], dict[str, str]], "subprocess.CompletedProcess[str]"]


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


@dataclass
class CaseOutcome:
    """What `ropd score` did with one bad input.

    `exit_code` is None when the command timed out; `requests` counts the requests the stub
    received during the case (None when no stub was given to count them); `left_behind` lists
    the paths under the case's folder that were created, changed or removed (relative to it).
    A `skipped` case was not run (see `skip_reason`) and is neither clear nor unclear.
    """

    name: str
    expected: str = ""
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    requests: int | None = None
    left_behind: list[str] = field(default_factory=list)
    skipped: bool = False
    skip_reason: str = ""

    @property
    def shown(self) -> str:
        """Everything the command printed."""
        return self.stdout + self.stderr

    def problems(self) -> list[str]:
        """What makes this refusal unclear; empty when it is clear (or skipped)."""
        if self.skipped:
            return []
        found = []
        if self.exit_code is None:
            found.append(f"timed out after {TIMEOUT_S:g} s")
        elif self.exit_code != 2:
            found.append(f"exit code {self.exit_code}, not 2")
        if "Traceback" in self.shown:
            found.append("a traceback was printed")
        if self.expected not in " ".join(self.shown.split()):
            found.append(f"expected message not printed: {self.expected!r}")
        if self.requests:
            found.append(f"{self.requests} request(s) reached the judge")
        if self.left_behind:
            found.append(f"left behind: {', '.join(self.left_behind)}")
        return found

    @property
    def clear(self) -> bool:
        """Exit 2, the expected message, no traceback, no request, nothing left behind."""
        return not self.skipped and not self.problems()


def _encode(line: dict | str | bytes) -> bytes:
    if isinstance(line, bytes):
        return line
    text = line if isinstance(line, str) else json.dumps(line)
    return text.encode("utf-8") + b"\n"


def _snapshot(tmp: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in tmp.rglob("*")}


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def run_case(
    case: Case,
    tmp: Path,
    base_url: str,
    env: dict[str, str],
    *,
    stub: StubJudgeServer | None = None,
    runner: Runner | None = None,
) -> CaseOutcome:
    """Run `ropd score` on `case` in `tmp` (a fresh folder, created if missing).

    `base_url` is the judge endpoint the command is pointed at; `env` the environment of the
    subprocess (a dummy key under `KEY_ENV` and a wide `COLUMNS` are added). Pass the `stub`
    behind `base_url` to count the requests it received during the case. A `skip_root` case is
    not run as root: its outcome is `skipped`. `runner(args, env)` runs `ropd ARGS` in place of a
    `python -m ropd` subprocess (the CLI tests run it in process: `env` is then what to lay over
    `os.environ`); it returns a `CompletedProcess` with text output.
    """
    if case.skip_root and _is_root():
        return CaseOutcome(case.name, skipped=True, skip_reason=ROOT_SKIP_REASON)
    tmp.mkdir(parents=True, exist_ok=True)
    groups = tmp / "groups.jsonl"
    groups.write_bytes(b"".join(_encode(line) for line in case.lines))
    if case.setup is not None:
        case.setup(tmp)
    values = {"groups": str(groups), "tmp": str(tmp)}
    output = case.output.format(**values)
    values["out"] = output
    args = [a.format(**values) for a in case.args]
    positional = [args.pop(0)] if args and not args[0].startswith("-") else [str(groups)]
    outcome = CaseOutcome(case.name, expected=case.expect.format(**values))
    before = _snapshot(tmp)
    requests_before = stub.requests if stub is not None else 0
    ropd_args = [
        "score", *positional, "-o", output, *args,
        "--base-url", base_url, "--model", STUB_MODEL, "--api-key-env", KEY_ENV,
        "--max-retries", "0",
    ]  # fmt: skip
    run_env = {**env, KEY_ENV: "dummy-key", "COLUMNS": "300"}
    try:
        if runner is not None:
            proc = runner(ropd_args, run_env)
        else:
            proc = subprocess.run(
                [sys.executable, "-m", "ropd", *ropd_args],
                check=False, capture_output=True, text=True, timeout=TIMEOUT_S, env=run_env,
            )  # fmt: skip
        outcome.exit_code = proc.returncode
        outcome.stdout, outcome.stderr = proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as timeout:
        outcome.stdout = _text(timeout.stdout)
        outcome.stderr = _text(timeout.stderr)
    finally:
        for path in (tmp / "ro", tmp / "locked.jsonl"):
            if path.exists():
                path.chmod(0o755)  # let the caller clean up
    if stub is not None:
        outcome.requests = stub.requests - requests_before
    after = _snapshot(tmp)
    changed = {p for p in after if before.get(p) != after[p]} | (before.keys() - after.keys())
    outcome.left_behind = sorted(str(p.relative_to(tmp)) for p in changed)
    return outcome


def _text(data: str | bytes | None) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return data or ""
