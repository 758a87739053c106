"""The builder with in-memory clients: K answers, n, statuses, top-up, resume, failures."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ropd.data import Record, load_records, sample_path
from ropd.llm.config import RoleConfig
from ropd.llm.types import Completion, JudgeError
from ropd.teacher import BuildAborted, TeacherFingerprint, TeacherStore, build_references
from ropd.testing import ScriptedChatClient

ROLE = RoleConfig(name="teacher", base_url="http://127.0.0.1:1/v1", model="t", temperature=1.0)
FP = TeacherFingerprint.from_role(ROLE)


def records(n: int) -> list[Record]:
    return [Record({"id": f"p{i}", "prompt": f"What is {i} + 1?"}, f"d.jsonl:{i + 1}")
            for i in range(n)]  # fmt: skip


def counter_handler() -> Any:
    counter = itertools.count()
    return lambda messages, schema: f"answer {next(counter)} to {messages[-1]['content']}"


@dataclass
class ReplyClient:
    """Returns prepared (text, finish_reason) replies in order; records every call's n."""

    replies: list[tuple[str, str | None]]
    calls: list[int] = field(default_factory=list)
    fail: bool = False

    async def chat(self, role, messages, *, json_schema=None, n=1, seed=None):
        self.calls.append(n)
        if self.fail:
            raise JudgeError("HTTP 401: bad key")
        return [Completion(*self.replies.pop(0), completion_tokens=3) for _ in range(n)]


async def test_builds_k_answers_with_one_n_request_per_prompt(tmp_path: Path) -> None:
    client = ScriptedChatClient({"teacher": counter_handler()})
    with TeacherStore(tmp_path / "t.db") as store:
        report = await build_references(records(5), store, ROLE, client, 4)
        assert [c.n for c in client.calls] == [4] * 5
        assert report.requests == 5 and report.answers_stored == 20 and not report.incomplete
        for record in records(5):
            answers = store.lookup(record.data["prompt"], k=4, fingerprint=FP)
            assert len(set(answers)) == 4
        again = await build_references(records(5), store, ROLE, client, 4)
        assert again.complete_before == 5 and again.requests == 0 and len(client.calls) == 5
        assert store.stats()["answers"] == 20


async def test_single_requests_when_n_is_off_and_pending_prompts_are_bounded(tmp_path: Path):
    client = ScriptedChatClient({"teacher": counter_handler()}, latency_s=0.01)
    with TeacherStore(tmp_path / "t.db") as store:
        await build_references(records(12), store, ROLE, client, 2, use_n=False, max_pending=3)
    assert [c.n for c in client.calls] == [1] * 24
    assert client.max_in_flight <= 3 * 2  # 3 prompts in progress, 2 requests each


async def test_unusable_answers_are_recorded_and_topped_up(tmp_path: Path) -> None:
    client = ReplyClient(
        [
            ("", "stop"),
            ("It is", "length"),
            ("I'm sorry, but I can't help with that.", "stop"),
            ("<think>long</think>7", "stop"),
            ("7", "stop"),
            ("seven", "stop"),
        ]
    )
    prompt = [Record({"id": "q", "prompt": "What is 3 + 4?"}, "d.jsonl:1")]
    with TeacherStore(tmp_path / "t.db") as store:
        report = await build_references(prompt, store, ROLE, client, 3, use_n=False)
        assert report.by_status == {"empty": 1, "truncated": 1, "refused": 1, "ok": 2}
        # round one: 3 unusable; round two asks again for the empty and the refused one only (the
        # cut-off one is not asked again at the same max_tokens, in this run or a later one)
        assert client.calls == [1] * 5
        assert store.lookup("What is 3 + 4?", k=2) == ["7", "7"]
        assert store.stats()["answers"] == 5
        assert report.short_by_truncation == ["q"]  # and the note says how to get the third


async def test_accepting_truncated_counts_them_as_usable(tmp_path: Path) -> None:
    client = ReplyClient([("It is", "length"), ("4", "stop")])
    prompt = [Record({"prompt": "2 + 2?"}, "d.jsonl:1")]
    with TeacherStore(tmp_path / "t.db") as store:
        report = await build_references(
            prompt, store, ROLE, client, 2, use_n=False, usable={"ok", "truncated"}
        )
        assert not report.incomplete and client.calls == [1, 1]
        assert store.lookup("2 + 2?", k=2, usable={"ok", "truncated"}) == ["It is", "4"]


async def test_rounds_are_bounded_when_the_teacher_keeps_failing_quality(tmp_path: Path):
    client = ReplyClient([("", "stop")] * 10)
    with TeacherStore(tmp_path / "t.db") as store:
        report = await build_references(records(1), store, ROLE, client, 2, max_rounds=2)
        assert client.calls == [2, 2] and report.incomplete == ["p0"]
        assert store.stats()["by_status"]["empty"] == 4


async def test_topping_up_a_partial_prompt_asks_only_for_the_rest(tmp_path: Path) -> None:
    with TeacherStore(tmp_path / "t.db") as store:
        store.add_answers("What is 0 + 1?", FP, [Completion("1", "stop")])
        client = ScriptedChatClient({"teacher": counter_handler()})
        report = await build_references(records(2), store, ROLE, client, 3)
        assert sorted(c.n for c in client.calls) == [2, 3]
        assert report.answers_needed == 5
        assert store.lookup("What is 0 + 1?", k=3)[0] == "1"


async def test_other_fingerprint_does_not_count_and_system_prompt_changes_keys(tmp_path: Path):
    client = ScriptedChatClient({"teacher": counter_handler()})
    with TeacherStore(tmp_path / "t.db") as store:
        await build_references(records(2), store, ROLE, client, 1)
        hotter = ROLE.model_copy(update={"temperature": 1.3})
        report = await build_references(records(2), store, hotter, client, 1)
        assert report.complete_before == 0 and report.requests == 2
        report = await build_references(records(2), store, ROLE, client, 1, system_prompt="Hi.")
        assert report.requests == 2
        messages = [
            {"role": "system", "content": "Hi."},
            {"role": "user", "content": "What is 0 + 1?"},
        ]
        fp = TeacherFingerprint.from_role(ROLE, system_prompt="Hi.")
        assert len(store.lookup(messages, k=1, fingerprint=fp)) == 1


async def test_failed_requests_leave_prompts_incomplete_then_abort(tmp_path: Path) -> None:
    client = ReplyClient([], fail=True)
    with TeacherStore(tmp_path / "t.db") as store:
        report = await build_references(records(3), store, ROLE, client, 2, abort_after_failures=5)
        assert report.failed_requests == 3 and sorted(report.incomplete) == ["p0", "p1", "p2"]
        assert "HTTP 401" in report.errors[0]
        with pytest.raises(BuildAborted, match="5 teacher requests failed in a row"):
            await build_references(records(10), store, ROLE, client, 2, abort_after_failures=5)


async def test_bad_record_fails_before_any_request(tmp_path: Path) -> None:
    client = ScriptedChatClient({"teacher": counter_handler()})
    bad = [*records(2), Record({"id": "x", "prompt": 5}, "d.jsonl:3")]
    with (
        TeacherStore(tmp_path / "t.db") as store,
        pytest.raises(ValueError, match="d.jsonl:3: field 'prompt' must be a string"),
    ):
        await build_references(bad, store, ROLE, client, 1)
    assert client.calls == []


async def test_sample_dataset_builds_and_duplicate_prompts_merge(tmp_path: Path) -> None:
    rows = load_records(sample_path())
    client = ScriptedChatClient({"teacher": counter_handler()})
    with TeacherStore(tmp_path / "t.db") as store:
        report = await build_references(rows + rows[:3], store, ROLE, client, 2, progress=True)
        assert report.prompts == len(rows) and len(client.calls) == len(rows)
