"""Fingerprints, prompt keys, the SQLite store, lookups, export/import and the reference index."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from pathlib import Path

import pytest

from ropd.data import DataError
from ropd.llm.config import RoleConfig
from ropd.llm.types import Completion
from ropd.teacher import (
    FingerprintMismatch,
    MissingReferences,
    TeacherFingerprint,
    TeacherStore,
    prompt_key,
)
from ropd.teacher.legacy import raw_prompt_hash
from ropd.teacher.store import Truncation

ROLE = RoleConfig(name="teacher", base_url="http://a.example/v1", model="m1", temperature=1.0)
FP = TeacherFingerprint.from_role(ROLE)
QUESTION = [{"role": "user", "content": "What is 2 + 2?"}]


def ok(text: str) -> Completion:
    return Completion(text=text, finish_reason="stop", prompt_tokens=3, completion_tokens=2)


@pytest.fixture
def store(tmp_path: Path) -> TeacherStore:
    with TeacherStore(tmp_path / "teacher.db") as s:
        yield s


# -- keys ---------------------------------------------------------------------------------------


def test_fingerprint_ignores_transport_and_tracks_sampling() -> None:
    moved = ROLE.model_copy(
        update={"base_url": "https://gateway/v1", "api_key_env": "K", "timeout_s": 5.0}
    )
    assert TeacherFingerprint.from_role(moved).hash == FP.hash
    assert len(FP.hash) == 16 and FP.hash == TeacherFingerprint.from_role(ROLE).hash
    for update in ({"model": "m2"}, {"temperature": 0.7}, {"top_p": 0.9}, {"max_tokens": 5},
                   {"extra_body": {"reasoning_effort": "high"}}):  # fmt: skip
        assert TeacherFingerprint.from_role(ROLE.model_copy(update=update)).hash != FP.hash
    other = TeacherFingerprint.from_role(
        ROLE.model_copy(update={"temperature": 0.7, "extra_body": {"top_k": 20}}),
        system_prompt="Be brief.",
    )
    diff = FP.diff(other)
    assert [line.split(":")[0] for line in diff] == ["extra.top_k", "system_prompt", "temperature"]
    assert "temperature: 1.0 (this) != 0.7 (other)" in diff


def test_prompt_key_is_canonical() -> None:
    assert prompt_key("What is 2 + 2?") == prompt_key(QUESTION)
    reordered = [{"content": "What is 2 + 2?", "role": "user", "name": "ignored"}]
    assert prompt_key(reordered) == prompt_key(QUESTION)
    with_system = [{"role": "system", "content": "Be brief."}, *QUESTION]
    assert prompt_key(with_system) != prompt_key(QUESTION)
    expected = hashlib.sha256(b'[{"content":"What is 2 + 2?","role":"user"}]').hexdigest()
    assert prompt_key(QUESTION) == expected


# -- store and lookup ---------------------------------------------------------------------------


def test_lookup_strips_think_and_skips_unusable(store: TeacherStore) -> None:
    indexes = store.add_answers(
        QUESTION,
        FP,
        [
            ok("<think>2 and 2</think>It is 4."),
            Completion("", "stop"),
            Completion("It is", "length"),
            ok("I'm sorry, but I can't help with that."),
            ok("Four."),
        ],
    )
    assert indexes == [0, 1, 2, 3, 4]
    assert store.lookup(QUESTION, k=2, fingerprint=FP) == ["It is 4.", "Four."]
    assert store.lookup("What is 2 + 2?", k=1, strip_think=False) == [
        "<think>2 and 2</think>It is 4."
    ]
    assert store.count_usable(QUESTION, fingerprint=FP) == 2
    assert store.count_usable(QUESTION, fingerprint=FP, usable={"ok", "truncated"}) == 3
    everything = store.lookup(QUESTION, k=5, fingerprint=FP, include_unusable=True)
    assert everything[1:4] == ["", "It is", "I'm sorry, but I can't help with that."]
    with pytest.raises(MissingReferences, match="has 2 usable teacher answers, 4 requested"):
        store.lookup(QUESTION, k=4, fingerprint=FP)
    assert len(store.lookup(QUESTION, k=4, fingerprint=FP, allow_fewer=True)) == 2
    with pytest.raises(MissingReferences, match="no usable teacher answers"):
        store.lookup("unknown prompt", k=1)
    stats = store.stats(k=2)
    assert stats["by_status"] == {"ok": 2, "empty": 1, "truncated": 1, "refused": 1}
    assert stats["fingerprints"][0]["prompts_with_2_ok"] == 1
    assert stats["completion_tokens"] == 6


def test_fingerprint_mismatch_lists_fields_and_can_be_accepted(store: TeacherStore) -> None:
    store.add_answers(QUESTION, FP, [ok("4"), ok("four")])
    wanted = TeacherFingerprint.from_role(ROLE.model_copy(update={"temperature": 0.6}))
    with pytest.raises(FingerprintMismatch) as err:
        store.lookup(QUESTION, k=2, fingerprint=wanted)
    assert "temperature: 0.6 (requested) != 1.0 (stored)" in str(err.value)
    assert err.value.differences == {FP.hash: ["temperature: 0.6 (requested) != 1.0 (stored)"]}
    assert store.lookup(QUESTION, k=2, fingerprint=wanted, accept_any_fingerprint=True) == [
        "4",
        "four",
    ]
    # two fingerprints for one prompt and none requested: ambiguous unless any is accepted
    store.add_answers(QUESTION, wanted, [ok("IV")])
    with pytest.raises(FingerprintMismatch, match="under 2 teacher fingerprints"):
        store.lookup(QUESTION, k=1)
    assert store.lookup(QUESTION, k=1, fingerprint=wanted) == ["IV"]
    assert store.lookup(QUESTION, k=3, fingerprint=wanted, accept_any_fingerprint=True)[0] == "IV"


def test_unique_key_forbids_duplicate_sample_index(store: TeacherStore, tmp_path: Path) -> None:
    store.add_answers(QUESTION, FP, [ok("4")])
    db = sqlite3.connect(tmp_path / "teacher.db")
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
        db.execute(
            "INSERT INTO answers (prompt_key, fingerprint, sample_index, text, status, created_at)"
            " VALUES (?, ?, 0, 'again', 'ok', 0)",
            (prompt_key(QUESTION), FP.hash),
        )
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_export_import_round_trip_is_idempotent(store: TeacherStore, tmp_path: Path) -> None:
    system = [{"role": "system", "content": "Be brief."}, *QUESTION]
    store.add_answers(QUESTION, FP, [ok("4"), Completion("", "stop")], record_id="q1")
    store.add_answers(system, FP, [ok("<think>x</think>4")])
    out = tmp_path / "refs.jsonl"
    assert store.export_jsonl(out) == 3
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["status"] for r in rows} == {"ok", "empty"}
    assert all(r["fingerprint"]["model"] == "m1" for r in rows)
    with TeacherStore(tmp_path / "copy.db") as copy:
        first = copy.import_jsonl(out)
        second = copy.import_jsonl(out)
        assert (first.added, first.skipped) == (3, 0)
        assert (second.added, second.skipped) == (0, 3)
        assert copy.lookup(system, k=1, fingerprint=FP) == ["4"]
        assert copy.stats() == {**store.stats(), "path": str(tmp_path / "copy.db")}


def test_import_merges_a_different_answer_at_the_next_index(store: TeacherStore, tmp_path: Path):
    store.add_answers(QUESTION, FP, [ok("4")])
    other_path = tmp_path / "other.db"
    with TeacherStore(other_path) as other:
        other.add_answers(QUESTION, FP, [ok("four")])
        other.export_jsonl(tmp_path / "other.jsonl")
    report = store.import_jsonl(tmp_path / "other.jsonl")
    assert (report.added, report.renumbered) == (1, 1)
    assert store.lookup(QUESTION, k=2, fingerprint=FP) == ["4", "four"]


def test_bad_import_line_names_line_and_field_and_changes_nothing(
    store: TeacherStore, tmp_path: Path
) -> None:
    store.add_answers(QUESTION, FP, [ok("4")])
    store.export_jsonl(tmp_path / "good.jsonl")
    good = json.loads((tmp_path / "good.jsonl").read_text())
    bad = tmp_path / "bad.jsonl"
    rows = [
        {**good, "sample_index": 5},
        {**good, "sample_index": 6, "text": 7},
    ]
    bad.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with TeacherStore(tmp_path / "fresh.db") as fresh:
        with pytest.raises(DataError, match=re.escape(f"{bad}:2: field 'text' must be a string")):
            fresh.import_jsonl(bad)
        assert fresh.stats()["answers"] == 0  # all or nothing
        bad.write_text(json.dumps({**good, "prompt_key": "0" * 64}) + "\n")
        with pytest.raises(DataError, match="field 'prompt_key' does not match field 'messages'"):
            fresh.import_jsonl(bad)
        bad.write_text(json.dumps({"schema_version": "v9"}) + "\n")
        with pytest.raises(DataError, match=re.escape(f"{bad}:1: field 'schema_version'")):
            fresh.import_jsonl(bad)


# -- the public reference implementation's index ------------------------------------------------

LEGACY_FP = {
    "provider": "openai",
    "model": "teacher-x",
    "base_url": "https://secret-gateway.example/v1",
    "reasoning_effort": None,
    "max_output_tokens": 4096,
    "temperature": 1.0,
    "top_p": 0.95,
    "timeout_seconds": 600.0,
    "prompt_template_version": "v3",
}


def legacy_rows() -> list[dict]:
    chat = [{"role": "user", "content": "What is 3 + 5?"}]
    return [
        {  # v1, prompt text unknown, raw prompt was a message list
            "schema_version": "ropd.teacher_index.v1",
            "uid": "u1",
            "raw_prompt_hash": raw_prompt_hash(QUESTION),
            "teacher_answer": "<think>hm</think>4",
            "teacher_fingerprint": LEGACY_FP,
        },
        {  # v2, prompt text unknown, raw prompt was a plain string
            "schema_version": "ropd.teacher_index.v2",
            "uid": "u2",
            "raw_prompt_hash": raw_prompt_hash("Name a prime."),
            "teacher_answers": ["2", "3", "5", "7"],
            "teacher_fingerprint": LEGACY_FP,
        },
        {  # v2 that carries its raw prompt: stored under our own prompt key
            "schema_version": "ropd.teacher_index.v2",
            "uid": "u3",
            "raw_prompt_hash": raw_prompt_hash(chat),
            "raw_prompt": chat,
            "teacher_answers": ["8", "eight"],
            "teacher_fingerprint": LEGACY_FP,
        },
    ]


def test_import_reference_index_v1_and_v2(store: TeacherStore, tmp_path: Path) -> None:
    path = tmp_path / "index.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in legacy_rows()) + "\n")
    report = store.import_jsonl(path)
    assert (report.added, report.legacy_rows, report.rows_by_raw_hash) == (7, 3, 2)
    assert store.lookup(QUESTION, k=1) == ["4"]
    assert store.lookup("Name a prime.", k=4) == ["2", "3", "5", "7"]
    assert store.lookup([{"role": "user", "content": "Name a prime."}], k=1) == ["2"]
    assert store.lookup("What is 3 + 5?", k=2) == ["8", "eight"]
    stats = store.stats()
    assert stats["prompts"] == 3 and stats["prompts_known_by_raw_hash_only"] == 2
    (entry,) = stats["fingerprints"]
    assert entry["fields"]["max_tokens"] == 4096 and entry["fields"]["template_version"] == "v3"
    assert "base_url" not in entry["origin"] and "timeout_seconds" not in entry["origin"]
    assert "secret-gateway" not in json.dumps(stats)
    # the mapped fingerprint: a role with the same model and sampling matches it
    role = RoleConfig(model="teacher-x", temperature=1.0, top_p=0.95, max_tokens=4096)
    mapped = TeacherFingerprint.from_role(role, template_version="v3")
    assert store.lookup("Name a prime.", k=1, fingerprint=mapped) == ["2"]
    with pytest.raises(FingerprintMismatch, match="top_p"):
        store.lookup("Name a prime.", k=1, fingerprint=FP)
    assert store.import_jsonl(path).added == 0  # idempotent


def test_reference_index_errors_name_line_and_field(store: TeacherStore, tmp_path: Path) -> None:
    path = tmp_path / "index.jsonl"
    cases = [
        ({"teacher_answers": []}, "field 'teacher_answers' must be a non-empty list"),
        ({"teacher_answers": ["a", 3]}, "field 'teacher_answers[1]' must be a string"),
        ({"raw_prompt_hash": "abc"}, "field 'raw_prompt_hash' must be 64 lowercase hex digits"),
        ({"raw_prompt": "Another prompt"}, "field 'raw_prompt' does not hash to"),
        ({"teacher_fingerprint": {"provider": "x"}}, "field 'teacher_fingerprint.model'"),
    ]
    for change, message in cases:
        row = {**legacy_rows()[1], **change}
        path.write_text(json.dumps(legacy_rows()[0]) + "\n" + json.dumps(row) + "\n")
        with pytest.raises(DataError, match=re.escape(f"{path}:2: {message}")):
            store.import_jsonl(path)
    row = dict(legacy_rows()[0])
    del row["uid"]
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:1: missing field 'uid'")):
        store.import_jsonl(path)
    assert store.stats()["answers"] == 0


# -- truncated answers --------------------------------------------------------------------------


def cut(text: str = "It is") -> Completion:
    return Completion(text=text, finish_reason="length", completion_tokens=64)


def test_truncations_count_this_limit_and_higher_ones_of_the_same_teacher(
    store: TeacherStore,
) -> None:
    at = {m: TeacherFingerprint.from_role(ROLE.model_copy(update={"max_tokens": m}))
          for m in (32, 64, 128)}  # fmt: skip
    hotter = TeacherFingerprint.from_role(ROLE.model_copy(update={"temperature": 0.5}))
    other = [{"role": "user", "content": "What is 3 + 3?"}]
    store.add_answers(QUESTION, at[64], [ok("4"), cut(), cut()])
    store.add_answers(QUESTION, at[128], [cut()])
    store.add_answers(QUESTION, at[32], [cut()])  # a lower limit says nothing about 64
    store.add_answers(QUESTION, hotter, [cut()])  # another teacher
    store.add_answers(other, at[32], [cut()])
    key, other_key = prompt_key(QUESTION), prompt_key(other)

    assert store.truncations([key, other_key], at[64]) == {key: Truncation(3, 128)}
    assert store.truncations([key, other_key], at[128]) == {key: Truncation(1, 128)}
    assert store.truncations([key, other_key], at[32]) == {
        key: Truncation(4, 128),
        other_key: Truncation(1, 32),
    }
    assert store.truncations([other_key], at[64]) == {}  # only the keys asked for
    by_limit = {e["fields"]["max_tokens"]: e["truncated"] for e in store.stats()["fingerprints"]
                if e["fields"]["temperature"] == 1.0}  # fmt: skip
    assert by_limit == {64: 2, 128: 1, 32: 2}


def test_truncations_without_a_known_limit_count_only_their_own_fingerprint(
    store: TeacherStore,
) -> None:
    unknown = TeacherFingerprint(model="m1", temperature=1.0)  # e.g. an imported index
    known = TeacherFingerprint(model="m1", temperature=1.0, max_tokens=999)
    store.add_answers(QUESTION, unknown, [cut()])
    store.add_answers(QUESTION, known, [cut(), cut()])
    key = prompt_key(QUESTION)
    assert store.truncations([key], unknown) == {key: Truncation(1, None)}
    assert store.truncations([key], known.model_copy(update={"max_tokens": 10})) == {
        key: Truncation(2, 999)
    }
