"""Answers cut off at max_tokens: recorded with their limit, not re-asked at it, reported.

In memory for the rules, then over real HTTP (a stub endpoint that honours `max_tokens`) through
`build_store`, the way `ropd teacher build` runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ropd.data import Record
from ropd.errors import JudgeError
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.llm.types import Completion
from ropd.teacher import TeacherFingerprint, TeacherStore, build_references, prompt_items
from ropd.teacher.builder import answers_needed, build_store
from ropd.testing.stub_server import STUB_MODEL, StubJudgeServer, approx_tokens

ROLE = RoleConfig(name="teacher", base_url="http://127.0.0.1:1/v1", model="t", temperature=1.0)
LONG = " ".join(["long"] * 40)  # ~50 tokens by the stub's count (chars / 4), 40 words here


def at(max_tokens: int) -> RoleConfig:
    return ROLE.model_copy(update={"max_tokens": max_tokens})


def rows(*ids: str) -> list[Record]:
    return [Record({"id": i, "prompt": f"question {i}"}, f"d.jsonl:{n + 1}")
            for n, i in enumerate(ids)]  # fmt: skip


@dataclass
class LimitClient:
    """Answers `long` prompts with 40 words, cut off when max_tokens is below that; others "42".

    Prompts whose id is in `failing` get a failed request. Records (prompt, max_tokens, n).
    """

    failing: set[str] = field(default_factory=set)
    calls: list[tuple[str, int, int]] = field(default_factory=list)

    async def chat(self, role, messages, *, json_schema=None, n=1, seed=None):
        prompt = messages[-1]["content"]
        self.calls.append((prompt, role.max_tokens, n))
        if prompt.split()[-1] in self.failing:
            raise JudgeError("HTTP 503: overloaded")
        if "long" not in prompt:
            return [Completion("42", "stop", completion_tokens=1) for _ in range(n)]
        if role.max_tokens < 40:
            return [Completion("long " * role.max_tokens, "length",
                               completion_tokens=role.max_tokens) for _ in range(n)]  # fmt: skip
        return [Completion(LONG, "stop", completion_tokens=40) for _ in range(n)]


async def test_cut_off_prompts_are_asked_again_only_at_a_higher_limit(tmp_path: Path) -> None:
    client = LimitClient()
    data = rows("short", "long")
    with TeacherStore(tmp_path / "t.db") as store:
        first = await build_references(data, store, at(16), client, 2, use_n=False, max_rounds=2)
        # cut off once: not asked again at the same limit in a later round of this run either
        assert client.calls == [("question short", 16, 1)] * 2 + [("question long", 16, 1)] * 2
        assert first.incomplete == first.short_by_truncation == first.without_usable == ["long"]
        assert first.truncated_at == 16 and first.to_retry == []
        assert first.shortfall_error() is None  # the store is usable: exit 0
        note = first.truncation_note()
        assert note is not None
        assert "1 of 2 prompts has fewer than 2 usable answers" in note
        assert "cut off at max_tokens=16 (1 with none), e.g. long" in note
        assert "Raise --max-tokens above 16 to retry them" in note
        assert first.as_dict()["short_by_truncation"] == 1 and first.as_dict()["note"] == note

        items, fp16 = prompt_items(data), TeacherFingerprint.from_role(at(16))
        assert answers_needed(store, items, fp16, 2) == 0  # the CLI's progress total
        assert answers_needed(store, items, fp16, 2, usable={"ok", "truncated"}) == 0
        # K = 3: short gets one more, long one more (two cut answers settle two of its three)
        assert answers_needed(store, items, fp16, 3) == 2
        assert answers_needed(store, items, TeacherFingerprint.from_role(at(64)), 2) == 4

        client.calls.clear()
        again = await build_references(data, store, at(16), client, 2, use_n=False)
        assert client.calls == [] and again.requests == 0
        assert (again.complete_before, again.skipped_truncated) == (1, 1)
        assert again.short_by_truncation == ["long"] and again.shortfall_error() is None

        assert answers_needed(store, items, fp16, 2, retry_truncated=True) == 2
        retried = await build_references(data, store, at(16), client, 2, retry_truncated=True)
        assert client.calls == [("question long", 16, 2)] * 3  # asked for, paid for, cut again
        assert retried.short_by_truncation == ["long"]

        client.calls.clear()
        lower = await build_references(data, store, at(8), client, 2, use_n=False)
        assert {prompt for prompt, _, _ in client.calls} == {"question short"}  # cut at 16 > 8
        assert lower.short_by_truncation == ["long"] and lower.truncated_at == 16
        assert "above 16" in (lower.truncation_note() or "")

        client.calls.clear()
        higher = await build_references(data, store, at(64), client, 2, use_n=False)
        assert (
            sorted(client.calls) == [("question long", 64, 1)] * 2 + [("question short", 64, 1)] * 2
        )  # another fingerprint: every prompt is answered under it
        assert higher.incomplete == [] and higher.truncation_note() is None
        assert higher.shortfall_error() is None
        fingerprint = TeacherFingerprint.from_role(at(64))
        assert store.lookup("question long", k=2, fingerprint=fingerprint) == [LONG, LONG]


async def test_a_partly_asked_prompt_gets_only_the_answers_never_asked_for(tmp_path: Path):
    client = LimitClient()
    fingerprint = TeacherFingerprint.from_role(at(16))
    with TeacherStore(tmp_path / "t.db") as store:
        store.add_answers(  # a build killed after one ok and one cut-off answer
            "question long", fingerprint, [Completion(LONG[:30], "stop"), Completion("x", "length")]
        )
        report = await build_references(rows("long"), store, at(16), client, 4, max_rounds=1)
        assert client.calls == [("question long", 16, 2)]
        assert report.answers_needed == 2 and report.short_by_truncation == ["long"]


async def test_a_build_where_no_prompt_has_a_usable_answer_fails(tmp_path: Path) -> None:
    client = LimitClient()
    with TeacherStore(tmp_path / "t.db") as store:
        for _ in range(2):  # the second run asks nothing and still fails
            report = await build_references(rows("long", "longer"), store, at(16), client, 1)
            error = report.shortfall_error()
            assert isinstance(error, JudgeError)
            assert str(error) == (
                "no prompt has a usable teacher answer: all 2 were cut off at max_tokens=16; "
                "raise --max-tokens above 16"
            )
        assert len(client.calls) == 2  # first run: one request per prompt, cut; second: none


async def test_failed_requests_still_fail_the_build_beside_cut_off_answers(tmp_path: Path):
    client = LimitClient(failing={"short"})
    with TeacherStore(tmp_path / "t.db") as store:
        report = await build_references(rows("long", "short"), store, at(16), client, 1)
        assert report.incomplete == ["long", "short"] and report.to_retry == ["short"]
        error = report.shortfall_error()
        assert error is not None and str(error) == (
            "1 prompts still have fewer than 1 usable answers (e.g. short); "
            "run the same command again to top them up"
        )
        client.failing.clear()
        client.calls.clear()
        report = await build_references(rows("long", "short"), store, at(16), client, 1)
        assert client.calls == [("question short", 16, 1)]
        assert report.shortfall_error() is None and report.short_by_truncation == ["long"]


async def test_accepting_truncated_answers_counts_them_and_reports_no_shortfall(tmp_path: Path):
    client = LimitClient()
    usable = {"ok", "truncated"}
    with TeacherStore(tmp_path / "t.db") as store:
        report = await build_references(rows("long"), store, at(16), client, 2, usable=usable)
        assert report.incomplete == [] and report.truncation_note() is None
        assert client.calls == [("question long", 16, 2)]


# -- over real HTTP, through build_store ---------------------------------------------------------


class LimitedStub(StubJudgeServer):
    """A stub endpoint that cuts replies at the request's `max_tokens`, as a real server does."""

    def _completion(self, request: dict[str, Any], texts: list[str]) -> dict[str, Any]:
        body = super()._completion(request, texts)
        limit = int(request["max_tokens"])
        for choice in body["choices"]:
            text = choice["message"]["content"]
            if approx_tokens(text) > limit:
                choice["message"]["content"] = text[: limit * 4]
                choice["finish_reason"] = "length"
        return body


def long_or_short(messages: list[dict[str, Any]], json_schema: Any) -> str:
    return LONG if "long" in messages[-1]["content"] else "42"


def test_build_store_records_the_limit_and_does_not_pay_twice(tmp_path: Path) -> None:
    db = tmp_path / "teacher.db"
    items = prompt_items(rows("short", "long"))
    with LimitedStub(latency_s=0.0, policy=long_or_short, models=[STUB_MODEL]) as stub:
        role = RoleConfig(name="teacher", base_url=stub.base_url, model=STUB_MODEL, max_tokens=16)
        limits = LimitsConfig(max_retries=0)
        report = build_store(items, db, role, 2, limits=limits, max_rounds=2)
        assert stub.models_requests == 1  # probed once
        assert stub.requests == 2  # one n=2 request each; long's cut answers are not re-asked
        assert {body["max_tokens"] for body in stub.bodies} == {16}
        assert report.short_by_truncation == ["long"] and report.shortfall_error() is None

        report = build_store(items, db, role, 2, limits=limits, probe=False)
        assert stub.models_requests == 1 and stub.requests == 2  # not probed, nothing asked
        assert report.skipped_truncated == 1 and report.truncated_at == 16

        wider = role.model_copy(update={"max_tokens": 64})
        report = build_store(items, db, wider, 2, limits=limits)
        assert stub.requests == 4 and report.incomplete == []

    with TeacherStore(db) as store:
        cut = [a for a in store.answers() if a.status == "truncated"]
        assert len(cut) == 2 and all(a.finish_reason == "length" for a in cut)
        assert {store.fingerprint(a.fingerprint).max_tokens for a in cut} == {16}
        fingerprint = TeacherFingerprint.from_role(wider)
        assert store.lookup("question long", k=2, fingerprint=fingerprint) == [LONG, LONG]


def test_a_training_build_names_the_setting_a_train_user_changes(
    tmp_path: Path, caplog: Any
) -> None:
    """`ropd train` has no --max-tokens flag: its build's note names the config setting."""
    import logging

    from ropd.teacher.builder import build_missing
    from ropd.teacher.config import TeacherConfig

    teacher = TeacherConfig(store=tmp_path / "t.db", build_missing=True, role=at(16))
    prompts = [(i, [{"role": "user", "content": f"question {i}"}]) for i in ("short", "long")]
    with caplog.at_level(logging.WARNING):
        report = build_missing(teacher, prompts, LimitsConfig(), 2, client=LimitClient())
    assert report.short_by_truncation == ["long"]
    assert "Raise ropd.teacher.role.max_tokens above 16" in caplog.text
    assert "--max-tokens" not in caplog.text
    assert "Raise --max-tokens above 16" in (report.truncation_note() or "")  # the CLI's default
