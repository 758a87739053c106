"""The SQLite trace store: round trips, runs and steps, summaries, secrets, several writers."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from ropd.llm.types import JudgeError
from ropd.reward.config import ScorerConfig
from ropd.reward.group_scorer import GroupScorer
from ropd.reward.traces import SCHEMA_VERSION, TraceStore, TraceStoreError
from ropd.reward.types import AnswerVerdicts, Group, GroupResult
from ropd.rubric import Criterion, Rubric
from ropd.testing import content_verifier, make_client, rubric_reply

RUBRIC = rubric_reply([("391", 5), ("because", 2), ("check", 1), ("units", 2)])


def group(gid: str = "g1", **kw: object) -> Group:
    base: dict = {
        "id": gid,
        "prompt": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": f"What is 17 * 23? ({gid})"},
        ],
        "student_responses": ["391 because 17*23", "<think>hmm</think>401", "391 because 17*23"],
        "teacher_responses": ["391 because 17*23=391, check units", "391"],
    }
    base.update(kw)
    return Group(**base)


def hand_result(
    gid: str, rewards: list[float | None], category: str = "correctness"
) -> GroupResult:
    rubric = Rubric(
        criteria=[
            Criterion(id="C1", category=category, criterion="gives 391", points=4),
            Criterion(id="C2", category="format", criterion="one line", points=1),
        ]
    )
    verdicts = [
        AnswerVerdicts(
            source="student",
            index=i,
            verdicts={"C1": r >= 0.8, "C2": r in (0.2, 1.0)},
            score=r,
        )
        for i, r in enumerate(rewards)
        if r is not None
    ]
    return GroupResult(
        id=gid,
        rewards=rewards,
        rubrics=[rubric],
        verdicts=verdicts,
        usage={"verifier": {"calls": 1, "prompt_tokens": 100, "completion_tokens": 20}},
        settings={"blind": True},
    )


async def test_scorer_results_round_trip_exactly(tmp_path: Path):
    store = TraceStore(tmp_path / "t.db", run_id="r1")
    scorer = GroupScorer(ScorerConfig(), make_client(RUBRIC), traces=store)
    g = group()
    result = await scorer.score_group(g, step=3)
    traced = store.get("g1")
    assert traced is not None
    assert traced.result == result  # rubric texts, categories, points, verdicts, labels, usage
    assert (traced.run_id, traced.step) == ("r1", 3)
    assert traced.prompt == g.prompt
    assert traced.student_responses == g.student_responses  # raw text, reasoning kept
    assert traced.teacher_responses == g.teacher_responses
    assert [c.criterion for c in traced.result.rubric.criteria] == [
        "answer mentions 391",
        "answer mentions because",
        "answer mentions check",
        "answer mentions units",
    ]
    assert traced.result.verdicts[2].duplicate_of == 0
    assert traced.result.settings["rubric_mode"] == "shared"
    store.close()


async def test_per_pair_rubrics_round_trip(tmp_path: Path):
    with TraceStore(tmp_path / "t.db") as store:
        scorer = GroupScorer(
            ScorerConfig(rubric_mode="per_pair"), make_client(RUBRIC), traces=store
        )
        result = await scorer.score_group(group())
        traced = store.get("g1")
        assert len(traced.result.rubrics) == 2  # two distinct student answers
        assert traced.result == result


async def test_failed_group_is_stored_with_error_and_policy(tmp_path: Path):
    def broken(messages, schema):
        raise JudgeError("verifier at 127.0.0.1: HTTP 503")

    with TraceStore(tmp_path / "t.db") as store:
        scorer = GroupScorer(
            ScorerConfig(failure_policy="constant", constant_reward=0.5),
            make_client(RUBRIC, broken),
            traces=store,
        )
        await scorer.score_group(group())
        traced = store.get("g1")
        assert traced.result.error is not None and "HTTP 503" in traced.result.error
        assert traced.result.failure_policy == "constant"
        assert traced.result.rewards == [0.5, 0.5, 0.5]
        assert traced.result.usage["verifier"]["failed_calls"] == 1
        assert [g.group_id for g in store.list(failed=True)] == ["g1"]
        assert store.list(failed=False) == []


def test_runs_and_steps_are_kept_apart(tmp_path: Path):
    with TraceStore(tmp_path / "t.db", run_id="a") as store:
        store.record(group("g1"), hand_result("g1", [1.0, 0.0, 0.8]), step=0)
        store.record(group("g1"), hand_result("g1", [0.2, 0.2, 0.2]), step=1)
        store.record(group("g2"), hand_result("g2", [None, None, None]), step=1, run_id="b")
        # re-recording the same (run, step, group) replaces it
        store.record(group("g1"), hand_result("g1", [1.0, 1.0, 0.8]), step=0)

        assert store.get("g1", run_id="a", step=0).result.rewards == [1.0, 1.0, 0.8]
        assert store.get("g1", step=1).result.rewards == [0.2, 0.2, 0.2]
        assert store.get("g1").step == 0  # the newest record
        assert store.get("g1", run_id="b") is None
        assert store.get("g2").run_id == "b"
        assert len(store.list()) == 3
        assert [(g.group_id, g.step) for g in store.list(run_id="a", step=1)] == [("g1", 1)]
        assert len(store.list(limit=1)) == 1
        assert sorted(r["run_id"] for r in store.runs()) == ["a", "b"]

    with sqlite3.connect(tmp_path / "t.db") as conn:  # no orphans left by the replacement
        assert conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 3 * (3 + 2)


def test_summary_per_step(tmp_path: Path):
    with TraceStore(tmp_path / "t.db", run_id="run") as store:
        store.record(group("g1"), hand_result("g1", [1.0, 0.0, 0.8]), step=0)
        store.record(group("g2"), hand_result("g2", [0.2, 0.2, 1.0], "reasoning"), step=0)
        failed = hand_result("g3", [None, None, None]).model_copy(
            update={"error": "InvalidJudgeReply: bad JSON", "rubrics": [], "verdicts": []}
        )
        store.record(group("g3"), failed, step=0)
        store.record(group("g1"), hand_result("g1", [1.0, 1.0, 1.0]), step=1)
        s0, s1 = store.summary(run_id="run")

    assert (s0.step, s0.groups, s0.failed) == (0, 3, 1)
    assert s0.failure_rate == pytest.approx(1 / 3)
    assert s0.reward_mean == pytest.approx((1.0 + 0.0 + 0.8 + 0.2 + 0.2 + 1.0) / 6)
    assert s0.rubric_size_mean == pytest.approx(2.0)  # failed groups do not count
    # student verdicts only: C1 (correctness) passes for 1.0 and 0.8; reasoning C1 for 1.0
    assert s0.category_pass_rate == pytest.approx(
        {"correctness": 2 / 3, "reasoning": 1 / 3, "format": 4 / 6}
    )
    assert s0.prompt_tokens == 300 and s0.completion_tokens == 60
    assert s1.reward_mean == pytest.approx(1.0) and s1.failure_rate == 0.0
    logged = s1.as_log_dict()
    assert logged["rubric/reward_mean"] == pytest.approx(1.0)
    assert logged["rubric/pass_rate/correctness"] == pytest.approx(1.0)


def test_secrets_are_never_stored(tmp_path: Path):
    secret = "sk-proj-abcdefghijklmnop0123456789"
    result = hand_result("g1", [1.0, 0.0, 1.0]).model_copy(
        update={
            "error": f"JudgeError: 401 for key {secret}",
            "settings": {
                "api_key": "plain-value-not-shaped-like-a-key",
                "verifier": {"api_key_env": "MY_KEY", "headers": {"Authorization": "x"}},
                "note": f"Bearer {secret}",
            },
        }
    )
    db = tmp_path / "t.db"
    with TraceStore(db, run_info={"roles": [{"api_key": secret}]}) as store:
        store.record(group(), result)
        traced = store.get("g1")
        assert traced.result.settings["verifier"]["api_key_env"] == "MY_KEY"
        assert traced.result.settings["api_key"] == "[redacted]"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(FULL)")
    raw = db.read_bytes()
    assert secret.encode() not in raw
    assert b"plain-value-not-shaped-like-a-key" not in raw


def test_rejects_other_databases_and_other_schema_versions(tmp_path: Path):
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(TraceStoreError, match="not a ropd trace store"):
        TraceStore(other)

    newer = tmp_path / "newer.db"
    TraceStore(newer).close()
    with sqlite3.connect(newer) as conn:
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 1,)
        )
    with pytest.raises(TraceStoreError, match="schema version"):
        TraceStore(newer)

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(TraceStoreError):
        TraceStore(garbage)


def _write_many(path: str, run: str, count: int) -> None:
    with TraceStore(path, run_id=run) as store:
        for i in range(count):
            store.record(group(f"{run}-{i}"), hand_result(f"{run}-{i}", [1.0, 0.0, 0.8]), step=i)


def test_several_processes_write_one_store(tmp_path: Path):
    path = str(tmp_path / "shared.db")
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_write_many, args=(path, f"w{n}", 40)) for n in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    with TraceStore(path) as store:
        assert len(store.list(limit=None)) == 120
        assert {s.run_id for s in store.summary()} == {"w0", "w1", "w2"}


async def test_scorer_records_every_group_of_a_batch(tmp_path: Path):
    def verifier(messages, schema):
        if "(g2)" in messages[-1]["content"]:
            raise JudgeError("boom")
        return content_verifier(messages, schema)

    with TraceStore(tmp_path / "t.db", run_id="train") as store:
        scorer = GroupScorer(ScorerConfig(), make_client(RUBRIC, verifier), traces=store)
        await scorer.score_groups([group(f"g{i}") for i in range(4)], step=7)
        (summary,) = store.summary()
        assert (summary.run_id, summary.step, summary.groups, summary.failed) == ("train", 7, 4, 1)
