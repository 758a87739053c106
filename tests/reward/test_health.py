"""Reward-health metrics pinned to hand-computed values, and the alarm policy (warn, stop)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from ropd.errors import ConfigError
from ropd.reward.batch import BatchScorer, Rollout
from ropd.reward.config import ScorerConfig
from ropd.reward.group_scorer import GroupScorer
from ropd.reward.health import (
    HealthConfig,
    HealthMetrics,
    HealthMonitor,
    breaches,
    health_metrics,
    imitates_judge,
)
from ropd.reward.metrics import PREFIX, step_metrics
from ropd.reward.schemas import answer_key, verdicts_schema_shape
from ropd.reward.types import GroupResult
from ropd.rubric import Criterion, Rubric
from ropd.run_config import RunConfig
from ropd.testing import answers_in, make_client, rubric_reply

H = PREFIX + "health/"


def result(rewards, teacher=(), *, error=None, checks=None, criteria=()) -> GroupResult:
    rubric = Rubric(
        criteria=[
            Criterion(id=f"C{i + 1}", category="correctness", criterion=text, points=1)
            for i, text in enumerate(criteria)
        ]
    )
    return GroupResult(
        id="g",
        rewards=list(rewards),
        teacher_scores=list(teacher),
        rubrics=[rubric] if criteria else [],
        error=error,
        checks=checks or {},
    )


def test_gold_agreement_matches_hand_computed_auc_and_pair_accuracy() -> None:
    results = [result([0.9, 0.2, 0.5]), result([0.4, 0.4, 0.1]), result([1.0, 0.0], error="x")]
    correct = [[True, False, False], [True, False, None], [True, False]]
    m = health_metrics(results, correct=correct)
    # pooled: correct {0.9, 0.4} vs incorrect {0.2, 0.5, 0.4}: 0.9 wins 3, 0.4 wins 1 + a tie
    assert m.gold_auc == pytest.approx(4.5 / 6)
    # within groups: 0.9 beats 0.2 and 0.5 (2 of 2); 0.4 ties 0.4 (0.5 of 1)
    assert m.gold_pair_accuracy == pytest.approx(2.5 / 3)
    assert m.reward_correct_mean == pytest.approx(0.65)
    assert m.reward_incorrect_mean == pytest.approx(1.1 / 3)
    assert m.gold_checked == 5  # the unchecked answer and the failed group are not counted
    assert m.gold_correct_rate == pytest.approx(2 / 5)


def test_gold_numbers_are_absent_not_zero_without_both_classes() -> None:
    only_wrong = health_metrics([result([0.3, 0.6])], correct=[[False, False]])
    assert only_wrong.gold_auc is None and only_wrong.gold_pair_accuracy is None
    assert only_wrong.gold_checked == 2 and only_wrong.reward_correct_mean is None
    names = step_metrics([result([0.3, 0.6])]).as_dict()
    assert not [k for k in names if k.startswith(H + "gold")]


def test_anchor_validity_teacher_failing_and_no_spread_groups() -> None:
    results = [
        result([0.5, 0.5], teacher=[0.3, 0.4]),  # the rubric fails the teacher; no spread
        result([0.1, 0.7], teacher=[0.2, 0.9]),
        result([1.0], teacher=[]),  # one answer, no teacher score: in neither share
        result([0.0, 0.0], teacher=[0.0], error="judge down"),  # failed: left out
    ]
    m = health_metrics(results)
    assert m.teacher_fail_rate == 0.5 and m.no_spread_rate == 0.5
    assert health_metrics(results, teacher_fail_below=0.3).teacher_fail_rate == 0.0
    assert m.scored_groups == 3


def test_length_reward_correlation() -> None:
    rising = health_metrics([result([0.1, 0.2, 0.3, 0.4])], answers=[["a", "bb", "ccc", "dddd"]])
    assert rising.length_reward_corr == pytest.approx(1.0)
    flat = health_metrics([result([1.0, 0.0, 1.0])], answers=[["a", "bb", "ccc"]])
    assert flat.length_reward_corr == pytest.approx(0.0)
    # lengths 1, 3, 5 and rewards 0, 0, 1: r = 2 / sqrt(8 * 2/3)
    some = health_metrics([result([0.0, 0.0, 1.0])], answers=[["a", "bbb", "ccccc"]])
    assert some.length_reward_corr == pytest.approx(2 / (8 * 2 / 3) ** 0.5)
    assert (
        health_metrics([result([0.5, 0.5, 0.5])], answers=[["a", "bb", "c"]]).length_reward_corr
        is None
    )
    assert health_metrics([result([0.1, 0.9])], answers=[["a", "bb"]]).length_reward_corr is None
    assert health_metrics([result([0.1, 0.2, 0.3])]).length_reward_corr is None  # no texts


def test_judge_imitation_counts_verdict_json_and_copied_criteria() -> None:
    criterion = "The answer states the final total of forty-two apples clearly"
    answers = [
        'Sure. {"verdicts": {"C1": true}}',
        'all done "passed": true',
        "The answer is 4.",
        "the ANSWER states the final total of\nforty-two apples   clearly. 42",  # copied
        "answer mentions 4",  # the short criterion: too short to count
    ]
    res = result([0.1] * 5, criteria=[criterion, "answer mentions 4"])
    m = health_metrics([res], answers=[answers])
    assert m.judge_imitation_rate == pytest.approx(3 / 5)
    assert imitates_judge('{"answer_1": {"C1": true}}') and not imitates_judge("C1 true")


def test_sampled_checks_are_summed_over_groups() -> None:
    results = [
        result([0.5], checks={"stability_verdicts": 10, "stability_flips": 1,
                              "stability_answers": 2, "stability_reward_abs_change_sum": 0.2}),
        result([0.5], checks={"stability_verdicts": 30, "stability_flips": 5,
                              "stability_answers": 6, "stability_reward_abs_change_sum": 0.6,
                              "audit_verdicts": 20, "audit_disagreements": 4,
                              "audit_answers": 4, "audit_reward_abs_diff_sum": 1.0}),
        result([0.5]),  # not sampled
    ]  # fmt: skip
    logged = step_metrics(results).as_dict()
    assert logged[H + "verdict_flip_rate"] == pytest.approx(6 / 40)
    assert logged[H + "stability_reward_change"] == pytest.approx(0.8 / 8)
    assert logged[H + "audit_disagreement_rate"] == pytest.approx(4 / 20)
    assert logged[H + "audit_reward_diff"] == pytest.approx(1.0 / 4)
    assert logged[H + "checked_groups"] == 2
    assert H + "checked_groups" not in step_metrics(results[2:]).as_dict()


def test_breaches_name_metric_value_threshold_and_step() -> None:
    m = HealthMetrics(scored_groups=4, gold_auc=0.48, length_reward_corr=-0.7, no_spread_rate=0.8)
    assert breaches(m, HealthConfig(), step=12) == [
        "reward health: health/gold_auc 0.48 < 0.6 at step 12",
        "reward health: |health/length_reward_corr| 0.7 > 0.6 at step 12",
    ]  # no_spread_rate 0.8 is the threshold itself, not above it
    assert breaches(HealthMetrics(scored_groups=3, gold_auc=0.1), HealthConfig(), 1) == []
    assert breaches(m, HealthConfig(min_gold_auc=None, max_abs_length_reward_corr=None), 1) == []


# -- through the real engine: a scripted judge that pays for length ---------------------------

LENGTH_RUBRIC = rubric_reply([("a", 1), ("b", 1), ("c", 1), ("d", 1)])


def length_verifier(messages, json_schema) -> str:
    """Criterion Ck passes when the answer has at least 10*k characters: reward = length."""
    count, ids = verdicts_schema_shape(json_schema.schema)
    shown = answers_in(messages)
    return json.dumps(
        {
            answer_key(n): {cid: len(shown[n]) >= 10 * (k + 1) for k, cid in enumerate(ids)}
            for n in range(1, count + 1)
        }
    )


class Teachers:
    async def references(self, prompt):
        return ["x" * 45, "y" * 5]  # the best teacher answer passes every criterion


def length_scorer(health: HealthConfig | None) -> BatchScorer:
    async def opener(stack):
        client = make_client(LENGTH_RUBRIC, length_verifier)
        return GroupScorer(ScorerConfig(num_teacher_refs=2), client), Teachers()

    return BatchScorer(opener, health=health)


def length_batch(groups: int) -> list[Rollout]:
    texts = ["short", "a medium answer", "a rather longer answer here", "x" * 45]
    return [
        Rollout(f"g{g}", f"prompt {g}", text, gold=None) for g in range(groups) for text in texts
    ]


async def test_a_length_paying_judge_raises_a_warning_once_per_step(
    caplog: pytest.LogCaptureFixture,
) -> None:
    scorer = length_scorer(HealthConfig(alarm="warn"))
    with caplog.at_level(logging.WARNING, logger="ropd"):
        first = await scorer.score(length_batch(4), group_size=4, step=7)
        again = await scorer.score(length_batch(4), group_size=4, step=7)
    m = first.metrics
    assert m[H + "length_reward_corr"] > 0.9
    assert m[H + "teacher_fail_rate"] == 0.0 and m[H + "no_spread_rate"] == 0.0
    assert m[H + "judge_imitation_rate"] == 0.0
    assert m[H + "alarms"] == 1.0 and again.metrics[H + "alarms"] == 1.0
    assert first.alarms[0].startswith("reward health: |health/length_reward_corr| ")
    assert first.alarms[0].endswith(" > 0.6 at step 7")
    assert first.stop_message is None
    lines = [r.getMessage() for r in caplog.records if "reward health" in r.getMessage()]
    assert lines == first.alarms  # the second call of step 7 prints nothing


async def test_stop_alarm_stops_the_run_with_the_message() -> None:
    scorer = length_scorer(HealthConfig(alarm="stop"))
    outcome = await scorer.score(length_batch(4), group_size=4, step=3)
    assert outcome.stop_message is not None
    assert outcome.stop_message.startswith(outcome.alarms[0] + "; stopping")


async def test_too_few_groups_or_alarm_off_check_nothing() -> None:
    few = await length_scorer(HealthConfig()).score(length_batch(3), group_size=4, step=1)
    assert few.alarms == [] and H + "alarms" not in few.metrics
    assert H + "length_reward_corr" in few.metrics  # still logged
    off = await length_scorer(HealthConfig(alarm="off")).score(length_batch(4), group_size=4)
    assert off.alarms == [] and off.stop_message is None and H + "alarms" not in off.metrics


async def test_failing_teacher_and_flat_group_through_the_engine() -> None:
    class Weak:
        async def references(self, prompt):
            return ["tiny", "small"]  # under 10 characters: fails every criterion

    async def opener(stack):
        client = make_client(LENGTH_RUBRIC, length_verifier)
        return GroupScorer(ScorerConfig(num_teacher_refs=2), client), Weak()

    scorer = BatchScorer(opener, health=HealthConfig(min_groups=1))
    batch = [Rollout("flat", "p", "same answer text")] * 2 + [
        Rollout("apart", "q", "x" * 12),
        Rollout("apart", "q", "x" * 45),
    ]
    outcome = await scorer.score(batch, group_size=2, step=1)
    assert outcome.metrics[H + "teacher_fail_rate"] == 1.0
    assert outcome.metrics[H + "no_spread_rate"] == 0.5
    assert "reward health: health/teacher_fail_rate 1 > 0.5 at step 1" in outcome.alarms


async def test_gold_answers_reach_the_batch_metrics() -> None:
    pytest.importorskip("math_verify")

    async def opener(stack):
        client = make_client(rubric_reply([("4", 5), ("zz", 1), ("yy", 1), ("xx", 1)]))
        return GroupScorer(ScorerConfig(num_teacher_refs=2), client), Teachers()

    batch = [
        Rollout("a", "What is 2 + 2?", text, gold="4")
        for text in ("It is 4", "It is 5", "\\boxed{4}", "maybe 3")
    ]
    outcome = await BatchScorer(opener).score(batch, group_size=4)
    m = outcome.metrics
    assert m[H + "gold_checked"] == 4 and m[H + "gold_correct_rate"] == 0.5
    assert m[H + "gold_auc"] == 1.0 and m[H + "gold_pair_accuracy"] == 1.0
    assert m[H + "reward_correct_mean"] == 5 / 8 and m[H + "reward_incorrect_mean"] == 0.0


def test_health_section_of_the_run_config(tmp_path: Path) -> None:
    path = tmp_path / "ropd.yaml"
    path.write_text("ropd:\n  health:\n    alarm: stop\n    min_gold_auc: 0.7\n")
    config = RunConfig.load(path)
    assert config.health.alarm == "stop" and config.health.min_gold_auc == 0.7
    assert RunConfig().health == HealthConfig()
    path.write_text("ropd:\n  health:\n    min_gold_acu: 0.7\n")
    with pytest.raises(ConfigError, match="min_gold_acu"):
        RunConfig.load(path)
    with pytest.raises(ValidationError):
        HealthConfig(alarm="loud")


def test_monitor_without_a_step_warns_every_time() -> None:
    monitor = HealthMonitor(HealthConfig(min_groups=1))
    bad = HealthMetrics(scored_groups=1, no_spread_rate=1.0)
    assert monitor.review(bad, None) == ["reward health: health/no_spread_rate 1 > 0.8"]
    assert monitor.review(HealthMetrics(scored_groups=1), None) == []
