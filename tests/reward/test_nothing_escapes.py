"""Nothing one answer or the trace store does raises out of a training reward or a batch.

A lone surrogate in one completion, a trace store locked by another process, a teacher store that
fails a lookup: each fails only the groups it touches, with a cause, and the next call works. The
judge is a real HTTP endpoint (`StubJudgeServer`) and the store a real SQLite file locked by a
real second process.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import ropd
from ropd.integrations.verl.collector import GroupCollector, VerlRollout
from ropd.reward.batch import BatchScorer, Rollout
from ropd.reward.traces import TraceStore
from ropd.testing import StubJudgeServer, content_policy, rubric_reply

RUBRIC = rubric_reply([("391", 5), ("because", 2), ("check", 1), ("units", 2)])
LONE_SURROGATE = json.loads('"half an emoji \\ud83d"')
PROMPTS = ["What is 17 * 23?", "What is 23 * 17?"]
TEACHER = ("391 because check units",)


@pytest.fixture(scope="module")
def stub() -> Iterator[StubJudgeServer]:
    with StubJudgeServer(latency_s=0.0, policy=content_policy(RUBRIC)) as server:
        yield server


def config(stub: StubJudgeServer, **more: object) -> ropd.ScorerConfig:
    judge = ropd.RoleConfig(base_url=stub.base_url, model="stub")
    return ropd.ScorerConfig(judge=judge, num_teacher_refs=1, **more)


def batch(first_answer: str = "391 because") -> tuple[list[str], list[str], list[list[str]]]:
    """TRL's call: two prompts, G = 2 each, the teacher column."""
    prompts = [PROMPTS[0], PROMPTS[0], PROMPTS[1], PROMPTS[1]]
    completions = [first_answer, "401", "391 because", "401"]
    return prompts, completions, [list(TEACHER)] * 4


@contextmanager
def locked_by_another_process(path: Path) -> Iterator[None]:
    """A second process holding a write transaction (a `sqlite3` shell left in `BEGIN`)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sqlite3, sys
            db = sqlite3.connect({str(path)!r}, isolation_level=None)
            db.execute("BEGIN IMMEDIATE")
            db.execute("CREATE TABLE IF NOT EXISTS held (x)")
            print("locked", flush=True)
            sys.stdin.read()
            db.execute("ROLLBACK")
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)


async def test_one_invalid_completion_fails_only_its_group(stub, tmp_path: Path) -> None:
    from ropd.integrations.trl import RopdReward

    reward = RopdReward(config(stub), traces=tmp_path / "t.sqlite", num_generations=2)
    prompts, completions, teacher = batch(first_answer=LONE_SURROGATE)
    try:
        rewards = await reward(prompts, completions, teacher_responses=teacher)
    finally:
        await reward.aclose()
    assert rewards[:2] == [None, None]  # the group with the bad answer: masked
    assert rewards[2:] == [pytest.approx(0.7), 0.0]  # the other group: judged as usual
    with sqlite3.connect(tmp_path / "t.sqlite") as db:
        errors = dict(db.execute("SELECT group_id, error FROM groups").fetchall())
    causes = sorted(e or "" for e in errors.values())
    assert len(causes) == 2 and causes[0] == "" and "lone surrogate" in causes[1], errors


async def test_a_locked_trace_store_fails_the_step_s_groups_then_recovers(
    stub, tmp_path: Path
) -> None:
    from ropd.integrations.trl import RopdReward

    path = tmp_path / "t.sqlite"
    store = TraceStore(path, timeout_s=0.3)
    reward = RopdReward(config(stub), traces=store, num_generations=2)
    prompts, completions, teacher = batch()
    try:
        with locked_by_another_process(path):
            locked = await reward(prompts, completions, teacher_responses=teacher)
        after = await reward(prompts, completions, teacher_responses=teacher)
    finally:
        await reward.aclose()
        store.close()
    assert locked == [None] * 4  # no reward that nobody can inspect afterwards
    assert after == [pytest.approx(0.7), 0.0, pytest.approx(0.7), 0.0]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*), count(error) FROM groups").fetchone() == (2, 0)


async def test_locked_store_cause_names_the_store_and_policy_applies(stub, tmp_path) -> None:
    path = tmp_path / "t.sqlite"
    groups = [
        {"id": "g", "prompt": PROMPTS[0], "student_responses": ["391 because", "401"],
         "teacher_responses": list(TEACHER)},
    ]  # fmt: skip
    cfg = config(stub, failure_policy="constant", constant_reward=0.25)
    async with ropd.GroupScorer.open(cfg, traces=TraceStore(path, timeout_s=0.2)) as scorer:
        with locked_by_another_process(path):
            (result,) = await scorer.score_groups(groups)
    assert result.rewards == [0.25, 0.25]
    assert result.error is not None and str(path) in result.error and "locked" in result.error
    assert result.rubrics  # what was judged is still returned (and printed by `ropd score`)


async def test_score_groups_fails_a_mapping_with_a_bad_answer_alone(stub) -> None:
    groups = [
        {"id": "bad", "prompt": PROMPTS[0], "student_responses": [LONE_SURROGATE, "401"],
         "teacher_responses": list(TEACHER)},
        {"id": "good", "prompt": PROMPTS[0], "student_responses": ["391 because", "401"],
         "teacher_responses": list(TEACHER)},
    ]  # fmt: skip
    async with ropd.GroupScorer.open(config(stub)) as scorer:
        bad, good = await scorer.score_groups(groups)
    assert bad.failed and "lone surrogate" in (bad.error or "") and bad.rewards == [None, None]
    assert not good.failed and good.rewards == [pytest.approx(0.7), 0.0]
    with pytest.raises(ropd.InputError):  # no id at all: nothing to report it under
        async with ropd.GroupScorer.open(config(stub)) as scorer:
            await scorer.score_groups([{"prompt": "q", "student_responses": ["a"]}])


class BrokenReferences:
    """A teacher store whose lookup fails (a corrupt file, a full disk) for one prompt."""

    async def references(self, prompt):
        if prompt == PROMPTS[1]:
            raise sqlite3.DatabaseError("database disk image is malformed")
        return list(TEACHER)


async def test_a_failing_teacher_lookup_fails_only_that_group(stub) -> None:
    async def opener(stack):
        scorer = await stack.enter_async_context(ropd.GroupScorer.open(config(stub)))
        return scorer, BrokenReferences()

    scorer = BatchScorer(opener)
    rollouts = [Rollout("a", PROMPTS[0], "391 because"), Rollout("a", PROMPTS[0], "401"),
                Rollout("b", PROMPTS[1], "391 because"), Rollout("b", PROMPTS[1], "401")]  # fmt: skip
    try:
        outcome = await scorer.score(rollouts, group_size=2)
    finally:
        await scorer.aclose()
    assert outcome.rewards == [pytest.approx(0.7), 0.0, None, None]
    assert "malformed" in (outcome.results[1].error or "")


async def test_verl_collector_answers_every_rollout_of_a_group_with_a_bad_answer(stub) -> None:
    async def opener(stack):
        scorer = await stack.enter_async_context(ropd.GroupScorer.open(config(stub)))
        return scorer, None

    collector = GroupCollector(BatchScorer(opener), groups_per_step=1, timeout_s=60)
    answers = [LONE_SURROGATE, "401"]
    items = [
        VerlRollout("u1", Rollout("row", PROMPTS[0], text, TEACHER), group_size=2)
        for text in answers
    ]
    try:
        scores = await asyncio.gather(*(collector.submit(item) for item in items))
    finally:
        await collector.aclose()
    assert [s.failed for s in scores] == [True, True]
    assert [s.reward for s in scores] == [0.0, 0.0]
