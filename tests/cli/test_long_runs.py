"""Long `ropd score` / `ropd teacher build` runs as a user runs them: real processes, real HTTP.

The runs that are interrupted (SIGINT, SIGKILL) or hold a lock another run meets are real
processes; the runs that simply go to their end run in process.

One writer per output (a second run refuses naming the holder; a SIGKILLed holder blocks
nothing), progress lines when stderr is not a terminal, Ctrl-C that says what is saved and
prints a resume command that works, a run where every group failed exits 1, and the teacher
command's flag vocabulary.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.inprocess import ropd_in_process
from typer.testing import CliRunner

from ropd.cli import app
from ropd.data import load_records, sample_path
from ropd.testing import StubJudgeServer, content_policy, rubric_reply

WORDS = [("391", 5), ("because", 2), ("check", 1), ("units", 2)]
POLICY = content_policy(rubric_reply(WORDS, category="correctness"))
PROGRESS_LINE = re.compile(
    r"^scoring (\d+)/(\d+) groups, failed (\d+), judge tokens in [\d,]+, out [\d,]+, "
    r"in flight \d+, retried \d+, (waiting Retry-After \d+, )?\d+(m\d\ds)?s? elapsed"
)


def write_groups(path: Path, count: int) -> Path:
    rows = [
        {
            "id": f"g{i}",
            "prompt": f"What is 17 * 23? (question {i})",
            "student_responses": ["391 because 17*23", "It is 401"],
            "teacher_responses": ["391 because 17*23=391, check: 391/23=17, no units"],
        }
        for i in range(count)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def ids_in(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(x)["id"] for x in path.read_text().splitlines() if x.strip()]


def score_cmd(groups: Path, out: Path, stub: StubJudgeServer, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "ropd", "score", str(groups), "-o", str(out),
        "--base-url", stub.base_url, "--model", "stub", "-k", "1", *extra,
    ]  # fmt: skip


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "COLUMNS": "300", **extra}


def wait_for(condition: Callable[[], bool], what: str, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + 60
    while not condition():
        if process is not None and process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"the run ended ({process.returncode}) before {what}:\n{err}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def run(cmd: list[str], **extra_env: str) -> subprocess.CompletedProcess[str]:
    """A `score_cmd`/`build_cmd` (or a printed resume command) run to its end in process: the
    runs that are interrupted, killed or hold a lock are real processes (`start`); the one run
    beside them, or after them, needs no process of its own."""
    args = cmd[cmd.index("ropd") + 1 :]  # after `python -m ropd`
    return ropd_in_process(args, env={"COLUMNS": "300", **extra_env})


def start(cmd: list[str], **extra_env: str) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(**extra_env)
    )


def test_a_second_run_on_the_same_output_or_traces_refuses_naming_the_holder(tmp_path):
    groups = write_groups(tmp_path / "groups.jsonl", 4)
    out = tmp_path / "scores.jsonl"
    with StubJudgeServer(latency_s=1.0, policy=POLICY) as stub:
        first = start(score_cmd(groups, out, stub, "--batch-size", "2"))
        lock = tmp_path / "scores.jsonl.lock"
        wait_for(lambda: stub.requests > 0, "the first run's first judge call", first)
        assert lock.exists()

        second = run(score_cmd(groups, out, stub, "--resume"))
        assert first.poll() is None, first.communicate()[1]  # still running
        assert second.returncode == 2, second.stderr
        assert f"{out} is being written by pid {first.pid} on " in second.stderr
        assert "ropd score" in second.stderr and "wait for it or use another --output" in (
            second.stderr
        )
        assert "Traceback" not in second.stderr

        other_out = tmp_path / "other.jsonl"  # another output, the same trace database
        traces = str(tmp_path / "scores.traces.db")
        same_traces = run(score_cmd(groups, other_out, stub, "--traces", traces))
        assert same_traces.returncode == 2, same_traces.stderr
        assert f"scores.traces.db is being written by pid {first.pid}" in same_traces.stderr
        assert "use another --traces" in same_traces.stderr
        assert not other_out.exists() and not (tmp_path / "other.jsonl.lock").exists()

        _, stderr = first.communicate(timeout=120)
        assert first.returncode == 0, stderr
        assert stub.requests == 4 * 2  # one rubric and one verdicts call per group: judged once
    assert sorted(ids_in(out)) == ["g0", "g1", "g2", "g3"]
    assert not lock.exists() and not (tmp_path / "scores.traces.db.lock").exists()


def test_a_lock_left_by_a_killed_run_does_not_block_the_resume(tmp_path):
    groups = write_groups(tmp_path / "groups.jsonl", 6)
    out = tmp_path / "scores.jsonl"
    with StubJudgeServer(latency_s=0.3, policy=POLICY) as stub:
        cmd = score_cmd(groups, out, stub, "--batch-size", "1")
        proc = start(cmd)
        wait_for(lambda: len(ids_in(out)) >= 2, "two finished groups", proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        lock = tmp_path / "scores.jsonl.lock"
        assert lock.exists() and json.loads(lock.read_text())["pid"] == proc.pid  # left behind

        stub.latency_s = 0.0
        resumed = run([*cmd, "--resume"])
    assert resumed.returncode == 0, resumed.stderr
    assert "being written" not in resumed.stderr
    assert sorted(ids_in(out)) == [f"g{i}" for i in range(6)]
    assert not lock.exists()


def test_without_a_terminal_progress_is_plain_lines_every_few_seconds(tmp_path):
    groups = write_groups(tmp_path / "groups.jsonl", 2)
    out = tmp_path / "scores.jsonl"
    with StubJudgeServer(latency_s=0.6, policy=POLICY) as stub:
        done = run(score_cmd(groups, out, stub, "--batch-size", "1"), ROPD_PROGRESS_EVERY="0.2")
        stub.latency_s = 0.0
        quiet = run(
            score_cmd(groups, out, stub, "--overwrite", "--no-progress"), ROPD_PROGRESS_EVERY="0"
        )
    assert quiet.returncode == 0, quiet.stderr
    assert not PROGRESS_LINE.search(quiet.stderr)
    assert done.returncode == 0, done.stderr
    lines = [m for m in map(PROGRESS_LINE.match, done.stderr.splitlines()) if m]
    assert lines, done.stderr
    assert lines[0].group(1, 2) == ("0", "2")  # a first line at the start
    assert lines[-1].group(1, 2) == ("2", "2")  # and a last one at the end
    # ~2.4 s of judging at one line per 0.2 s: lines come with time, not only per group
    assert sum(1 for m in lines if m.group(1) == "0") >= 3
    assert "left" in done.stderr  # an estimate once a group finished
    assert "\x1b[" not in done.stderr  # no terminal control codes in a log


def test_a_bad_progress_interval_is_refused_naming_the_variable(tmp_path):
    groups = write_groups(tmp_path / "groups.jsonl", 1)
    with StubJudgeServer(latency_s=0.0, policy=POLICY) as stub:
        bad = run(score_cmd(groups, tmp_path / "s.jsonl", stub), ROPD_PROGRESS_EVERY="soon")
    assert bad.returncode == 2
    assert "ROPD_PROGRESS_EVERY='soon'" in bad.stderr
    assert stub.requests == 0


def test_ctrl_c_says_what_is_saved_and_the_printed_command_finishes_the_file(tmp_path):
    groups = write_groups(tmp_path / "groups.jsonl", 6)
    out = tmp_path / "scores.jsonl"
    with StubJudgeServer(latency_s=0.2, policy=POLICY) as stub:
        proc = start(score_cmd(groups, out, stub, "--batch-size", "1", "--overwrite"))
        wait_for(lambda: len(ids_in(out)) >= 2, "two finished groups", proc)
        stub.latency_s = 120.0  # the next requests hang: Ctrl-C must not wait for them
        wait_for(lambda: stub.concurrent > 0 and stub.latency_s > 1, "a hanging request", proc)
        time.sleep(0.3)
        answered = stub.statuses[200]
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        # in-flight requests were cancelled, not awaited: the run ended while the stub was still
        # sleeping on them (120 s) and none of them was answered in the meantime
        assert stub.concurrent > 0 and stub.statuses[200] == answered
        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr
        saved = len(ids_in(out))
        assert f"interrupted: {saved} of 6 groups are saved in {out} " in stderr
        assert f"(traces: {tmp_path / 'scores.traces.db'})" in stderr
        assert not (tmp_path / "scores.jsonl.lock").exists()  # released
        resume_line = next(x for x in stderr.splitlines() if x.startswith("resume with: "))
        command = shlex.split(resume_line.removeprefix("resume with: "))
        assert "--resume" in command and "--overwrite" not in command

        stub.latency_s = 0.0
        resumed = run(command)
    assert resumed.returncode == 0, resumed.stderr
    assert f"skipped {saved} already done" in resumed.stdout
    assert sorted(ids_in(out)) == [f"g{i}" for i in range(6)]


def test_a_run_in_which_every_group_failed_exits_1_with_the_first_cause(tmp_path):
    groups = write_groups(tmp_path / "groups.jsonl", 2)
    out = tmp_path / "scores.jsonl"
    with StubJudgeServer(latency_s=0.0, policy=POLICY, status_script=[500] * 50) as stub:
        failed = run(score_cmd(groups, out, stub, "--max-retries", "0"))
    assert failed.returncode == 1, failed.stderr
    told = [x for x in failed.stderr.splitlines() if "every group failed" in x]
    assert len(told) == 1, failed.stderr
    assert "every group failed (2 scored); first cause: g" in told[0]
    assert "500" in told[0]
    assert "failed 2" in failed.stdout  # the summary is still printed
    assert len(ids_in(out)) == 2  # failures are recorded, not lost
    assert "Traceback" not in failed.stderr


def test_a_run_in_which_some_groups_failed_exits_0_and_says_how_many(tmp_path):
    groups = write_groups(tmp_path / "groups.jsonl", 3)
    out = tmp_path / "scores.jsonl"
    # the first request fails: one group fails, the other two are scored
    with StubJudgeServer(latency_s=0.0, policy=POLICY, status_script=[500]) as stub:
        some = run(score_cmd(groups, out, stub, "--max-retries", "0", "--batch-size", "1"))
    assert some.returncode == 0, some.stderr
    assert "1 of 3 groups failed" in some.stderr
    assert "--list --failed" in some.stderr


# -- ropd teacher build -------------------------------------------------------------------------


def build_cmd(stub: StubJudgeServer, db: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "ropd", "teacher", "build", str(sample_path()),
        "--store", str(db), "--base-url", stub.base_url, "--model", "stub", *extra,
    ]  # fmt: skip


def answers_in(db: Path) -> int:
    import sqlite3

    try:
        with sqlite3.connect(db, timeout=10) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_teacher_build_locks_its_store_and_ctrl_c_tells_how_to_continue(tmp_path):
    db = tmp_path / "teacher.db"
    prompts = len(load_records(sample_path()))
    with StubJudgeServer(latency_s=0.3) as stub:
        cmd = build_cmd(stub, db, "-k", "2", "--no-use-n", "--max-in-flight", "4")
        proc = start(cmd, ROPD_PROGRESS_EVERY="0.2")
        wait_for(lambda: answers_in(db) >= 8, "8 stored answers", proc)

        second = run(build_cmd(stub, db, "--num-teacher-refs", "2"))
        assert second.returncode == 2, second.stderr
        assert f"{db} is being written by pid {proc.pid}" in second.stderr
        assert "use another teacher store (--store" in second.stderr

        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr
        stored = answers_in(db)
        assert f"interrupted: {stored} teacher answers are saved in {db}" in stderr
        assert re.search(r"^teacher build \d+/80 usable answers", stderr, re.MULTILINE)
        continue_line = stderr.strip().splitlines()[-1]
        command = shlex.split(continue_line.split(": ", 1)[1])
        assert command[-6:] == cmd[-6:]  # the same command continues a build
        assert not (tmp_path / "teacher.db.lock").exists()

        stub.latency_s = 0.0
        done = run([*command, "--json"])
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["answers_needed"] == prompts * 2 - stored
    assert answers_in(db) == prompts * 2


def test_teacher_flags_speak_the_same_vocabulary_as_score(tmp_path):
    db, old_db = tmp_path / "t.db", tmp_path / "old.db"
    with StubJudgeServer(latency_s=0.0) as stub:  # default for an endpoint: n answers at once
        flags = ("--num-teacher-refs", "2", "--no-use-n", "--limit", "3", "--json")
        one_per_answer = run(build_cmd(stub, db, *flags))
        assert one_per_answer.returncode == 0, one_per_answer.stderr
        assert stub.requests == 3 * 2 and {b.get("n", 1) for b in stub.bodies} == {1}

        stub.reset_stats()
        # --no-n is the former name of --no-use-n, still accepted
        old_spelling = run(build_cmd(stub, old_db, "-k", "2", "--no-n", "--limit", "3", "--json"))
        assert old_spelling.returncode == 0, old_spelling.stderr
        assert stub.requests == 3 * 2 and {b.get("n", 1) for b in stub.bodies} == {1}

        clash = run(build_cmd(stub, db, "--use-n", "--no-n"))
        assert clash.returncode == 2 and "--use-n/--no-use-n" in clash.stderr

    runner = CliRunner()
    stats = runner.invoke(app, ["teacher", "stats", "--store", str(db), "--num-teacher-refs", "2",
                                "--json"])  # fmt: skip
    assert stats.exit_code == 0, stats.output
    assert json.loads(stats.stdout)["fingerprints"][0]["prompts_with_2_ok"] == 3

    wide = {"COLUMNS": "200"}
    build_help = runner.invoke(app, ["teacher", "build", "--help"], env=wide).stdout
    assert "--use-n" in build_help and "--no-use-n" in build_help
    assert "--n " not in build_help and "--no-n" not in build_help  # hidden alias
    for command in (["teacher", "build"], ["teacher", "stats"], ["score"]):
        shown = runner.invoke(app, [*command, "--help"], env=wide).stdout
        assert "-k" in shown and "--num-teacher-refs" in shown
        assert "K: teacher answers" in shown


# -- the progress helper itself -----------------------------------------------------------------


def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere():
    import io

    from rich.console import Console

    from ropd.cli.progress import RunProgress, format_duration

    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=200)
    with RunProgress("scoring", "groups", console=terminal, every_s=0) as bar:
        bar.start(total=4, done=1, failed=0)
        bar.update(done=2, failed=1, judge_tokens=1234)
    shown = screen.getvalue()
    assert "\x1b[" in shown and "2/4" in shown and "failed 1, judge tokens 1,234" in shown

    log = io.StringIO()
    with RunProgress("scoring", "groups", console=Console(file=log), every_s=0) as lines:
        lines.start(total=4, done=1, failed=0)
        lines.update(done=4, failed=1)
    assert log.getvalue().splitlines() == [
        "scoring 1/4 groups, failed 0, 0s elapsed",  # first line
        "scoring 4/4 groups, failed 1, 0s elapsed",  # last line; 0 = none in between
    ]
    assert [format_duration(s) for s in (0, 42, 130, 3900)] == ["0s", "42s", "2m10s", "1h05m"]
