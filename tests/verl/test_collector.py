"""The group collector: rollouts arrive one by one in any order, each group is judged once.

No verl here: the collector is plain asyncio around ropd's engine, driven with an in-memory
scripted judge whose verdicts follow answer content, so every expected reward is known.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.verl.conftest import RUBRIC, TEACHER, group_answers, prompt_of, shuffled, traced_groups

from ropd.integrations.verl.collector import EXTRA_KEYS, RolloutScore, VerlRollout
from ropd.integrations.verl.engine import group_collector
from ropd.integrations.verl.settings import VerlSection, VerlSettings
from ropd.reward.batch import Rollout
from ropd.reward.gate import QualityGateTripped
from ropd.testing import ScriptedChatClient, make_client

G = 4


def settings(tmp_path: Path, **changes: object) -> VerlSettings:
    section = VerlSection.model_validate(
        {"scorer": {"num_teacher_refs": 1}, "gate": {"min_groups": 2, "window": 4}}
    )
    values: dict[str, object] = {
        "section": section,
        "config_path": "ropd.yaml",
        "group_size": G,
        "val_group_size": 2,
        "groups_per_step": 2,
        "workers": 1,
        "traces": tmp_path / "traces.db",
        "group_timeout_s": 30.0,
    }
    values.update(changes)
    return VerlSettings(**values)  # type: ignore[arg-type]


def item(g: int, text: str, *, size: int = G, validation: bool = False) -> VerlRollout:
    rollout = Rollout(f"q{g}", prompt_of(g), text, tuple(TEACHER))
    return VerlRollout(f"uid-{g}", rollout, size, validation)


def rubricator_prompts(client: ScriptedChatClient) -> list[str]:
    return [call.messages[-1]["content"] for call in client.calls_for("rubricator")]


async def test_shuffled_rollouts_score_each_group_once_with_its_own_rewards(tmp_path: Path) -> None:
    client = make_client(RUBRIC)
    collector = group_collector(settings(tmp_path), client=client)
    expected = {(g, text): reward for g in range(3) for text, reward in group_answers(g, G)}
    order = shuffled(list(expected), seed=1)

    async def one(key: tuple[int, str], delay: float) -> RolloutScore:
        await asyncio.sleep(delay)  # arrivals interleave across groups
        return await collector.submit(item(*key))

    scores = await asyncio.gather(*(one(key, 0.002 * i) for i, key in enumerate(order)))
    await collector.aclose()

    for key, score in zip(order, scores, strict=True):
        assert score.reward == pytest.approx(expected[key]), key
        assert not score.failed and not score.partial and score.group_size == G
        assert list(score.extra_info()) == list(EXTRA_KEYS)
    prompts = rubricator_prompts(client)
    assert len(prompts) == 3  # one rubric per group
    for g in range(3):
        assert sum(f"Question {g}:" in p for p in prompts) == 1
    # groups are numbered into steps of `groups_per_step` = 2 as they start scoring
    assert sorted(score.step for score in scores) == [1] * 8 + [2] * 4
    traced = traced_groups(tmp_path / "traces.db")
    assert sorted((gid, n) for gid, _, n, _ in traced) == [("q0", G), ("q1", G), ("q2", G)]
    assert sorted(step for _, step, _, _ in traced) == [1, 1, 2]
    assert set(collector.step_metrics) == {1}  # step 2 has one of its two groups
    assert collector.step_metrics[1]["ropd/groups"] == 2.0


async def test_a_group_that_cannot_be_scored_gives_one_flagged_float(tmp_path: Path) -> None:
    client = make_client("not a rubric at all")
    cfg = settings(tmp_path)
    section = cfg.section.model_copy(
        update={"scorer": cfg.section.scorer.model_copy(update={"failure_policy": "constant",
                                                                "constant_reward": 0.25})}
    )  # fmt: skip
    collector = group_collector(settings(tmp_path, section=section), client=client)
    scores = await asyncio.gather(*(collector.submit(item(0, t)) for t, _ in group_answers(0, G)))
    await collector.aclose()
    assert {s.reward for s in scores} == {0.25}  # equal rewards: zero GRPO advantage
    assert all(s.failed and s.group_size == G for s in scores)
    assert [gid for gid, *_ in traced_groups(tmp_path / "traces.db")] == ["q0"]
    assert traced_groups(tmp_path / "traces.db")[0][3]  # the error is traced


async def test_an_incomplete_group_is_scored_after_the_timeout_and_late_siblings_are_flagged(
    tmp_path: Path,
) -> None:
    collector = group_collector(settings(tmp_path, group_timeout_s=0.2), client=make_client(RUBRIC))
    answers = group_answers(0, G)
    started = asyncio.get_running_loop().time()
    scores = await asyncio.gather(*(collector.submit(item(0, t)) for t, _ in answers[:3]))
    waited = asyncio.get_running_loop().time() - started
    assert waited >= 0.2  # it waited out the group timeout (partial, size 3: it did not hang)
    assert [s.reward for s in scores] == pytest.approx([r for _, r in answers[:3]])
    assert all(s.partial and not s.failed and s.group_size == 3 for s in scores)

    late = await collector.submit(item(0, answers[3][0]))  # the aborted sibling turns up after all
    await collector.aclose()
    assert late.failed and late.group_size == 0
    assert late.reward == pytest.approx(sum(r for _, r in answers[:3]) / 3)  # zero advantage
    assert [n for _, _, n, _ in traced_groups(tmp_path / "traces.db")] == [3]


async def test_validation_groups_use_their_own_size_and_no_step(tmp_path: Path) -> None:
    collector = group_collector(settings(tmp_path), client=make_client(RUBRIC))
    answers = group_answers(5, 2)
    scores = await asyncio.gather(
        *(collector.submit(item(5, t, size=2, validation=True)) for t, _ in answers)
    )
    await collector.aclose()
    assert [s.reward for s in scores] == pytest.approx([r for _, r in answers])
    assert all(s.step == -1 and s.group_size == 2 for s in scores)
    assert traced_groups(tmp_path / "traces.db") == [("q5", None, 2, None)]


async def test_the_quality_gate_stops_the_run_with_its_message(tmp_path: Path) -> None:
    collector = group_collector(settings(tmp_path), client=make_client("broken"))
    for g in range(2):  # gate: min_groups 2, threshold 0.4
        await asyncio.gather(*(collector.submit(item(g, t)) for t, _ in group_answers(g, G)))
    with pytest.raises(QualityGateTripped, match="quality gate"):
        await collector.submit(item(9, "42"))
    await collector.aclose()


async def test_a_rollout_of_a_group_being_scored_gets_its_result_without_a_wait(
    tmp_path: Path,
) -> None:
    """verl's padding and REMAX rows repeat a row of a full group: they get the group's mean
    (zero advantage) once the group is scored, and never open a group that waits out the timeout."""
    release = asyncio.Event()
    judge = make_client(RUBRIC)

    async def held_chat(*args, **kwargs):
        await release.wait()
        return await judge_chat(*args, **kwargs)

    judge_chat, judge.chat = judge.chat, held_chat  # type: ignore[method-assign]
    collector = group_collector(settings(tmp_path, group_timeout_s=600.0), client=judge)
    answers = group_answers(0, G)
    whole = [asyncio.ensure_future(collector.submit(item(0, t))) for t, _ in answers]
    await asyncio.sleep(0.05)  # the group is complete and its judge call is waiting
    extra = asyncio.ensure_future(collector.submit(item(0, answers[0][0])))
    await asyncio.sleep(0.05)
    assert not extra.done() and collector.waiting == 0  # no new group was opened for it
    release.set()
    scores = await asyncio.wait_for(asyncio.gather(*whole, extra), timeout=30)
    await collector.aclose()
    assert [s.reward for s in scores[:G]] == pytest.approx([r for _, r in answers])
    assert scores[G].failed and scores[G].reward == pytest.approx(sum(r for _, r in answers) / G)
    assert [n for _, _, n, _ in traced_groups(tmp_path / "traces.db")] == [G]


async def test_an_aborted_rollout_waits_what_complete_groups_took_not_the_ceiling(
    tmp_path: Path,
) -> None:
    """Before any group completes, a group waits the ceiling; once groups have completed, a
    group missing a sibling waits spread_factor x their longest spread (here the floor)."""
    collector = group_collector(
        settings(tmp_path, group_timeout_s=600.0), client=make_client(RUBRIC)
    )
    collector.min_timeout_s = 0.2
    assert collector.wait_s == 600.0
    for g in range(8):  # complete groups whose siblings arrive together
        await asyncio.gather(*(collector.submit(item(g, t)) for t, _ in group_answers(g, G)))
    assert collector.wait_s == pytest.approx(0.2)
    answers = group_answers(9, G)[:3]  # the fourth rollout was aborted
    scores = await asyncio.wait_for(
        asyncio.gather(*(collector.submit(item(9, t)) for t, _ in answers)), timeout=30
    )
    await collector.aclose()
    assert all(s.partial and s.group_size == 3 for s in scores)
    assert [r.reward for r in scores] == pytest.approx([r for _, r in answers])
