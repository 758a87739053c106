"""Reward health under verl: the collector judges it per step, over all the step's groups.

No verl here (the gold-answer test needs math-verify, which `.venv-verl` has): the collector is
driven with the scripted judge of `conftest.py`, whose rewards follow the words an answer
contains, while the gold checks follow the boxed number, so both are chosen by hand.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tests.verl.conftest import RUBRIC, TEACHER, group_answers, prompt_of

from ropd.integrations.verl.collector import GroupCollector, VerlRollout
from ropd.integrations.verl.engine import group_collector
from ropd.integrations.verl.settings import VerlSection, VerlSettings, read_section
from ropd.reward.batch import Rollout
from ropd.reward.gate import QualityGateTripped
from ropd.testing import make_client

G = 4
ALARMS = "ropd/health/alarms"
# Only the teacher-anchor threshold is on: RUBRIC passes the teacher answer at 0.7 (it mentions
# "42" and "because"), which fails an anchor asked to reach 0.8 in every group.
TEACHER_ALARM_ONLY = {
    "teacher_fail_below": 0.8,
    "max_teacher_fail_rate": 0.5,
    "min_gold_auc": None,
    "max_no_spread_rate": None,
    "max_verdict_flip_rate": None,
    "max_abs_length_reward_corr": None,
    "max_judge_imitation_rate": None,
    "max_audit_disagreement_rate": None,
}


def settings(tmp_path: Path, health: dict[str, Any] | None = None) -> VerlSettings:
    section = VerlSection.model_validate(
        {"scorer": {"num_teacher_refs": 1}, "health": health or {}}
    )
    return VerlSettings(
        section=section,
        config_path="ropd.yaml",
        group_size=G,
        val_group_size=2,
        groups_per_step=2,
        workers=1,
        traces=tmp_path / "traces.db",
        group_timeout_s=30.0,
    )


def item(g: int, text: str, gold: str | None = None) -> VerlRollout:
    return VerlRollout(f"uid-{g}", Rollout(f"q{g}", prompt_of(g), text, tuple(TEACHER), gold), G)


async def score_group(collector: GroupCollector, g: int) -> None:
    await asyncio.gather(*(collector.submit(item(g, t)) for t, _ in group_answers(g, G)))


def test_the_health_section_of_the_verl_config_file_reaches_the_collector(tmp_path: Path) -> None:
    path = tmp_path / "ropd.yaml"
    path.write_text(
        "ropd:\n  health:\n    alarm: stop\n    min_groups: 2\n    min_gold_auc: null\n",
        encoding="utf-8",
    )
    section = read_section(path)
    cfg = settings(tmp_path)
    collector = group_collector(replace(cfg, section=section), client=make_client(RUBRIC))
    config = collector.health.config
    assert (config.alarm, config.min_groups, config.min_gold_auc) == ("stop", 2, None)
    assert collector.scorer.health is None  # one group is never reviewed on its own


async def test_a_steps_gold_numbers_are_computed_over_all_its_groups(tmp_path: Path) -> None:
    pytest.importorskip("math_verify")
    # (answer, reward by RUBRIC, correct: boxed 7 is the gold answer of both groups)
    steps = {
        0: [
            ("42 because check units \\boxed{7}", 1.0, True),
            ("42 because \\boxed{8}", 0.7, False),
            ("42 \\boxed{7}", 0.5, True),
            ("no idea \\boxed{9}", 0.0, False),
        ],
        1: [
            ("because units \\boxed{7}", 0.4, True),
            ("42 because \\boxed{7}", 0.7, True),
            ("42 because check units \\boxed{5}", 1.0, False),
            ("no idea \\boxed{7}", 0.0, True),
        ],
    }
    collector = group_collector(settings(tmp_path), client=make_client(RUBRIC))
    scores = await asyncio.gather(
        *(
            collector.submit(item(g, text, gold="7"))
            for g, rows in steps.items()
            for text, *_ in rows
        )
    )
    await collector.flush()  # the step is counted once its last group is in
    await collector.aclose()
    assert [s.reward for s in scores] == pytest.approx(
        [r for rows in steps.values() for _, r, _ in rows]
    )

    metrics = collector.step_metrics[1]
    # Pooled: correct rewards {1.0, 0.5, 0.4, 0.7, 0.0}, incorrect {0.7, 0.0, 1.0}; of the 15
    # pairs the correct answer is higher in 5 and tied in 3: (5 + 3/2) / 15.
    assert metrics["ropd/health/gold_auc"] == pytest.approx(6.5 / 15)
    # Within groups: group 0 wins 3 of its 4 pairs, group 1 none of its 3.
    assert metrics["ropd/health/gold_pair_accuracy"] == pytest.approx(3 / 7)
    assert metrics["ropd/health/reward_correct_mean"] == pytest.approx(2.6 / 5)
    assert metrics["ropd/health/reward_incorrect_mean"] == pytest.approx(1.7 / 3)
    assert metrics["ropd/health/gold_checked"] == 8.0
    assert metrics["ropd/health/gold_correct_rate"] == pytest.approx(5 / 8)
    assert metrics["ropd/groups"] == 2.0
    assert ALARMS not in metrics  # 2 scored groups: below the default min_groups of 4


async def test_without_gold_answers_the_gold_numbers_are_left_out(tmp_path: Path) -> None:
    collector = group_collector(settings(tmp_path), client=make_client(RUBRIC))
    for g in range(2):
        await score_group(collector, g)
    await collector.aclose()
    metrics = collector.step_metrics[1]
    assert not any("gold" in name for name in metrics)
    assert metrics["ropd/health/teacher_fail_rate"] == 0.0  # 0.7 passes the default 0.5 anchor
    assert "ropd/health/judge_imitation_rate" in metrics  # answer texts reached the step


async def test_a_stop_alarm_trips_the_collector_once_its_step_is_complete(tmp_path: Path) -> None:
    # min_groups 1: a review of each group on its own would stop the run after the first group
    health = {**TEACHER_ALARM_ONLY, "alarm": "stop", "min_groups": 1}
    collector = group_collector(settings(tmp_path, health), client=make_client(RUBRIC))
    await score_group(collector, 0)
    assert collector.stop_message is None and not collector.step_metrics
    await score_group(collector, 1)  # the step's last group: the step is reviewed
    assert collector.step_metrics[1]["ropd/health/teacher_fail_rate"] == 1.0
    assert collector.step_metrics[1][ALARMS] == 1.0
    with pytest.raises(
        QualityGateTripped, match=r"reward health: health/teacher_fail_rate 1 > 0.5"
    ):
        await collector.submit(item(9, "42"))
    await collector.aclose()


async def test_a_warn_alarm_is_logged_once_per_step_and_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ropd")
    health = {**TEACHER_ALARM_ONLY, "alarm": "warn", "min_groups": 2}
    collector = group_collector(settings(tmp_path, health), client=make_client(RUBRIC))
    for g in range(4):  # two steps of two groups
        await score_group(collector, g)
    await collector.aclose()
    warned = [r.getMessage() for r in caplog.records if "reward health" in r.getMessage()]
    assert warned == [
        "reward health: health/teacher_fail_rate 1 > 0.5 at step 1",
        "reward health: health/teacher_fail_rate 1 > 0.5 at step 2",
    ]
    assert collector.step_metrics[1][ALARMS] == collector.step_metrics[2][ALARMS] == 1.0
    assert collector.stop_message is None


async def test_alarm_off_logs_the_numbers_and_counts_no_alarms(tmp_path: Path) -> None:
    health = {**TEACHER_ALARM_ONLY, "alarm": "off", "min_groups": 1}
    collector = group_collector(settings(tmp_path, health), client=make_client(RUBRIC))
    for g in range(2):
        await score_group(collector, g)
    await collector.aclose()
    assert collector.step_metrics[1]["ropd/health/teacher_fail_rate"] == 1.0
    assert ALARMS not in collector.step_metrics[1]
    assert collector.stop_message is None
