"""Progress of a teacher build: the builder's `on_progress` reports and the CLI's progress lines."""

from __future__ import annotations

import itertools
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.inprocess import ropd_in_process

from ropd.data import Record, load_records, sample_path
from ropd.errors import JudgeError
from ropd.llm.config import RoleConfig
from ropd.llm.types import Completion
from ropd.teacher import BuildReport, TeacherFingerprint, TeacherStore, build_references
from ropd.teacher.builder import build_store, prompt_items
from ropd.testing import ScriptedChatClient, StubJudgeServer
from ropd.testing.stub_server import STUB_MODEL

ROLE = RoleConfig(name="teacher", base_url="http://127.0.0.1:1/v1", model="t", temperature=1.0)
FP = TeacherFingerprint.from_role(ROLE)


def records(n: int) -> list[Record]:
    return [Record({"id": f"p{i}", "prompt": f"What is {i} + 1?"}, f"d.jsonl:{i + 1}")
            for i in range(n)]  # fmt: skip


@dataclass(frozen=True)
class Seen:
    needed: int
    done: int
    requests: int
    failed: int
    stored: int


def teacher_policy() -> Any:
    """p1's first answer is empty (topped up next round), p2's requests fail, the rest answer."""
    counter = itertools.count()
    empty_once = iter([""])

    def reply(messages: list[dict[str, Any]], json_schema: Any) -> str:
        prompt = messages[-1]["content"]
        if prompt == "What is 2 + 1?":
            raise JudgeError("HTTP 500: scripted failure")
        if prompt == "What is 1 + 1?":
            first = next(empty_once, None)
            if first is not None:
                return first
        return f"answer {next(counter)}"

    return reply


def test_on_progress_reports_the_total_first_then_every_request(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    items = prompt_items(records(4))
    with TeacherStore(db) as store:  # p0 has one of its two answers already
        store.add_answers("What is 0 + 1?", FP, [Completion("1", "stop")])
    seen: list[Seen] = []

    def on_progress(report: BuildReport) -> None:
        seen.append(Seen(report.answers_needed, report.answers_done, report.requests,
                         report.failed_requests, report.answers_stored))  # fmt: skip

    client = ScriptedChatClient({"teacher": teacher_policy()})
    report = build_store(
        items, db, ROLE, 2, client=client, use_n=False, max_pending=2, on_progress=on_progress
    )

    assert seen[0] == Seen(needed=7, done=0, requests=0, failed=0, stored=0)
    # p0: 1 request; p1: 2, then 1 for the empty answer; p2: 2 failed; p3: 2
    assert report.requests == len(client.calls) == 8 and report.failed_requests == 2
    assert len(seen) == 1 + report.requests  # once planned, then once per finished request
    finished = [s.stored + s.failed for s in seen]  # one answer per request (no n)
    assert finished == list(range(len(seen)))  # each call: one more request finished
    assert [s.done for s in seen] == sorted(s.done for s in seen)
    assert {s.needed for s in seen} == {7}
    with TeacherStore(db) as store:
        usable = sum(store.usable_counts([i.key for i in items], FP).values())
        by_status = {s: n for s, n in store.stats()["by_status"].items() if n}
    assert by_status == {"ok": 6, "empty": 1}
    assert seen[-1].done == report.answers_done == usable - 1 == 5  # less the answer before
    assert seen[-1].stored == report.answers_stored == 6
    assert report.as_dict()["answers_done"] == 5


def test_a_build_with_nothing_to_ask_reports_once(tmp_path: Path) -> None:
    db, items = tmp_path / "t.db", prompt_items(records(2))
    client = ScriptedChatClient({"teacher": lambda messages, schema: "4"})
    report = build_store(items, db, ROLE, 1, client=client)
    seen: list[tuple[int, int]] = []
    again = build_store(
        items, db, ROLE, 1, client=client,
        on_progress=lambda r: seen.append((r.answers_needed, r.answers_done)),
    )  # fmt: skip
    assert report.answers_done == 2 and again.requests == 0
    assert seen == [(0, 0)]


async def test_progress_true_shows_plain_lines_without_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ROPD_PROGRESS_EVERY", "0")
    client = ScriptedChatClient({"teacher": lambda messages, schema: "4"})
    with TeacherStore(tmp_path / "t.db") as store:
        report = await build_references(records(3), store, ROLE, client, 2, progress=True)
    assert report.answers_done == 6
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("teacher build 0/6 usable answers, requests 0, failed 0, ")
    assert lines[-1].startswith("teacher build 6/6 usable answers, requests 3, failed 0, ")


# -- ropd teacher build, without a terminal (in process) --------------------------------------------

LINE = re.compile(
    r"^teacher build (\d+)/(\d+) usable answers, requests (\d+), failed (\d+), ", re.MULTILINE
)


def build(stub: StubJudgeServer, db: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`ropd teacher build` in process: `CliRunner`'s stderr is no terminal either."""
    args = [
        "teacher", "build", sample_path(), "--store", db,
        "--base-url", stub.base_url, "--model", STUB_MODEL, "--no-use-n", "--limit", "5", *extra,
    ]  # fmt: skip
    return ropd_in_process(args, env={"COLUMNS": "300", "ROPD_PROGRESS_EVERY": "0"})


def test_cli_without_a_terminal_prints_a_first_and_a_last_line(tmp_path: Path) -> None:
    db = tmp_path / "teacher.db"
    prompts = len(load_records(sample_path(), limit=5))
    with StubJudgeServer(latency_s=0.0) as stub:
        first = build(stub, db, "-k", "2")
        assert first.returncode == 0, first.stderr
        lines = LINE.findall(first.stderr)
        assert lines == [("0", "10", "0", "0"), ("10", "10", "10", "0")], first.stderr
        assert prompts == 5

        more = build(stub, db, "-k", "3")  # one more answer per prompt: the total is what's missing
        assert more.returncode == 0, more.stderr
        assert LINE.findall(more.stderr) == [("0", "5", "0", "0"), ("5", "5", "5", "0")]

        quiet = build(stub, db, "-k", "3", "--no-progress")
        assert quiet.returncode == 0 and not LINE.findall(quiet.stderr), quiet.stderr
