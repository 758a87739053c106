"""Step metrics: one computation for the training log and `ropd inspect --stats`."""

from __future__ import annotations

import math
import random
import statistics
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ropd.cli import app
from ropd.llm.types import JudgeError
from ropd.reward.config import ScorerConfig
from ropd.reward.group_scorer import GroupScorer
from ropd.reward.metrics import PREFIX, batch_metrics, step_metrics
from ropd.reward.traces import TraceStore
from ropd.reward.types import AnswerVerdicts, Group, GroupResult
from ropd.rubric import Criterion, Rubric
from ropd.testing import content_verifier, make_client, rubric_reply

RUBRIC = rubric_reply([("391", 5), ("because", 2), ("check", 1), ("units", 2)], "correctness")
STUDENTS = {
    "g0": ["391 because 17*23", "401", "391 because 17*23"],
    "g1": ["391, check units", "because", "nothing useful"],
    "g2": ["391", "392", "393"],  # its verifier call fails
    "g3": ["391 because check units", "units", "391"],
}


def group(gid: str) -> Group:
    return Group(
        id=gid,
        prompt=f"What is 17 * 23? ({gid})",
        student_responses=STUDENTS[gid],
        teacher_responses=["391 because 17*23=391, check: no units", "391"],
    )


def flaky_verifier(messages, schema) -> str:
    if "(g2)" in messages[-1]["content"]:
        raise JudgeError("verifier at 127.0.0.1: HTTP 503")
    return content_verifier(messages, schema)


async def scored_step(store: TraceStore, step: int) -> list[GroupResult]:
    """Score a batch the way training does, traced at `step`; a failed group gets 0.25 each."""
    config = ScorerConfig(failure_policy="constant", constant_reward=0.25)
    scorer = GroupScorer(config, make_client(RUBRIC, flaky_verifier), store, run_id="train")
    return await scorer.score_groups([group(g) for g in STUDENTS], step=step)


def run(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "240"})


async def test_training_log_and_inspect_stats_are_identical(tmp_path: Path) -> None:
    db = tmp_path / "traces.db"
    with TraceStore(db, run_id="train") as store:
        results = await scored_step(store, step=4)
        await scored_step(store, step=5)
        logged = batch_metrics(results)  # what BatchScorer puts in the training log
        (summary,) = store.summary(run_id="train", step=4)
        (traced,) = store.steps(run_id="train", step=4)

    assert summary.metrics.as_dict() == logged  # the very same numbers, not approximately
    assert step_metrics(traced.results) == step_metrics(results)
    assert logged[PREFIX + "groups"] == 4 and logged[PREFIX + "failed_group_rate"] == 0.25
    spreads = ("reward_std", "reward_std_within_group_mean")
    assert {PREFIX + k for k in ("beat_teacher_rate", "teacher_score_mean", *spreads)} <= set(
        logged
    )

    stats = run("inspect", "--traces", db, "--stats", "--step", 4)
    assert stats.exit_code == 0, stats.output
    row = next(line for line in stats.stdout.splitlines() if "│ train " in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    m = summary.metrics
    assert cells == [
        "train",
        "4",
        "4",
        "25.0%",
        f"{m.reward_mean:.3f} ± {m.reward_std:.3f}",
        f"{m.reward_std_within_group_mean:.3f}",
        f"{m.teacher_score_mean:.3f}",
        f"{m.beat_teacher_rate:.1%}",
        f"{m.rubric_size:.1f}",
        "correctness " + f"{m.pass_rate['correctness']:.0%}",
        (
            f"{sum(u.input_tokens for u in m.judge.values()):,.0f} / "
            f"{sum(u.output_tokens for u in m.judge.values()):,.0f}"
        ),
        "n/a",  # no price configured: no cost, rather than a cost of 0
    ]
    assert not any("cost" in name for name in logged)


async def test_priced_roles_give_cost_per_role_step_and_run(tmp_path: Path) -> None:
    """Input and output tokens are priced apart; the cost reaches the log, traces and --stats."""
    from ropd.llm.config import Price, RoleConfig

    rubricator = RoleConfig(price=Price(input_per_mtok=2.0, output_per_mtok=8.0))
    verifier = RoleConfig(price=Price(input_per_mtok=0.5, output_per_mtok=1.5))
    config = ScorerConfig(rubricator=rubricator, verifier=verifier)
    db = tmp_path / "traces.db"
    with TraceStore(db, run_id="paid") as store:
        scorer = GroupScorer(config, make_client(RUBRIC), store, run_id="paid")
        results = [
            await scorer.score_groups([group(g)], step=s) for s, g in enumerate(["g0", "g1"])
        ]
    logged = [batch_metrics(r) for r in results]

    # the scripted client reports 10 input and 5 output tokens per call
    for step in logged:
        calls = {role: step[PREFIX + f"judge/{role}/calls"] for role in ("rubricator", "verifier")}
        assert step[PREFIX + "judge/rubricator/input_tokens"] == 10 * calls["rubricator"]
        assert step[PREFIX + "judge/verifier/output_tokens"] == 5 * calls["verifier"]
        expected = {
            "rubricator": calls["rubricator"] * (10 * 2.0 + 5 * 8.0) / 1e6,
            "verifier": calls["verifier"] * (10 * 0.5 + 5 * 1.5) / 1e6,
        }
        for role, cost in expected.items():
            assert step[PREFIX + f"judge/{role}/cost"] == pytest.approx(cost)
        assert step[PREFIX + "judge/cost"] == pytest.approx(sum(expected.values()))

    stats = run("inspect", "--traces", db, "--stats")
    assert stats.exit_code == 0, stats.output
    run_cost = sum(step[PREFIX + "judge/cost"] for step in logged)
    assert f"judge cost {run_cost:.4f}" in stats.stdout  # the run's total line
    for step in logged:
        assert f"{step[PREFIX + 'judge/cost']:.4f}" in stats.stdout  # per step


async def test_failed_groups_do_not_count_in_reward_means(tmp_path: Path) -> None:
    with TraceStore(tmp_path / "traces.db", run_id="train") as store:
        results = await scored_step(store, step=0)
        (summary,) = store.summary()
    failed = [r for r in results if r.failed]
    assert [r.id for r in failed] == ["g2"] and failed[0].rewards == [0.25] * 3
    judged = [x for r in results if not r.failed for x in r.rewards]
    assert summary.reward_mean == pytest.approx(sum(judged) / len(judged))
    assert batch_metrics(results)[PREFIX + "reward_mean"] == summary.reward_mean
    only_failed = step_metrics(failed)
    assert only_failed.reward_mean is None and only_failed.failed_group_rate == 1.0
    assert only_failed.judge["verifier"].failed_calls >= 1  # spent calls still count


def hand_results() -> list[GroupResult]:
    math_rubric = Rubric(
        criteria=[
            Criterion(id="C1", category="correctness", criterion="gives 391", points=4),
            Criterion(id="C2", category="format", criterion="one line", points=1),
        ]
    )
    other = Rubric(
        criteria=[Criterion(id="C1", category="reasoning", criterion="explains", points=2)]
    )
    per_pair = GroupResult(
        id="pair",
        rewards=[0.8, 1.0, float("nan")],
        teacher_scores=[1.0],
        rubrics=[math_rubric, other],
        verdicts=[
            AnswerVerdicts(
                source="student", index=0, verdicts={"C1": True, "C2": False}, score=0.8
            ),
            AnswerVerdicts(
                source="student", index=1, verdicts={"C1": True}, score=1.0, rubric_index=1, label=1
            ),
            AnswerVerdicts(source="teacher", index=0, verdicts={"C1": True, "C2": True}, score=1),
        ],
        usage={
            "rubricator": {
                "calls": 2,
                "prompt_tokens": 7,
                "completion_tokens": 3,
                "latency_s": 0.1,
            },
            "verifier": {
                "calls": 3,
                "prompt_tokens": 11,
                "completion_tokens": 5,
                "latency_s": 0.7,
                "failed_calls": 1,
            },
        },
    )
    shared = GroupResult(
        id="shared",
        rewards=[0.2, 0.2],
        teacher_scores=[0.6, None],
        rubrics=[math_rubric],
        verdicts=[
            AnswerVerdicts(
                source="student", index=0, verdicts={"C1": False, "C2": True}, score=0.2
            ),
            AnswerVerdicts(
                source="student",
                index=1,
                verdicts={"C1": False, "C2": True},
                score=0.2,
                duplicate_of=0,
            ),
            AnswerVerdicts(
                source="teacher", index=0, verdicts={"C1": True, "C2": False}, score=0.6
            ),
        ],
        usage={"verifier": {"calls": 1, "prompt_tokens": 13, "latency_s": 0.30000000000000004}},
    )
    failed = GroupResult(
        id="down",
        rewards=[0.5, 0.5],
        usage={"verifier": {"calls": 1, "failed_calls": 1, "latency_s": 0.2}},
        error="JudgeError: HTTP 503",
        failure_policy="constant",
    )
    return [per_pair, shared, failed]


def test_hand_built_groups_read_back_give_the_same_metrics(tmp_path: Path) -> None:
    results = hand_results()
    with TraceStore(tmp_path / "traces.db", run_id="r") as store:
        for res in results:
            n_student, n_teacher = len(res.rewards), len(res.teacher_scores)
            traced = Group(
                id=res.id,
                prompt="q",
                student_responses=[f"s{i}" for i in range(n_student)],
                teacher_responses=[f"t{j}" for j in range(n_teacher)],
            )
            store.record(traced, res, step=1)
        (summary,) = store.summary(step=1)

    logged = batch_metrics(results)
    assert summary.metrics.as_dict() == logged
    assert logged[PREFIX + "reward_mean"] == pytest.approx((0.8 + 1.0 + 0.2 + 0.2) / 4)  # no NaN
    assert logged[PREFIX + "beat_teacher_rate"] == 0.0  # 1.0 vs 1.0, 0.2 vs 0.6
    assert logged[PREFIX + "pass_rate/reasoning"] == 1.0
    assert logged[PREFIX + "pass_rate/correctness"] == pytest.approx(1 / 3)  # failed: none
    assert logged[PREFIX + "pass_rate/format"] == pytest.approx(2 / 3)
    assert logged[PREFIX + "judge/verifier/failed_calls"] == 2.0
    assert (summary.prompt_tokens, summary.completion_tokens) == (31, 8)


def test_metrics_do_not_depend_on_group_order() -> None:
    results = hand_results() * 3
    expected = batch_metrics(results)
    for seed in range(5):
        shuffled = list(results)
        random.Random(seed).shuffle(shuffled)
        assert batch_metrics(shuffled) == expected


def test_empty_batch_and_failed_share() -> None:
    assert batch_metrics([]) == {}
    assert math.isclose(step_metrics(hand_results()).failed_group_rate, 1 / 3)


def spread_results(groups: list[list[float | None]], failed: list[float] | None = None):
    """Groups with these student rewards (None = masked answer), plus one failed group."""
    results = [GroupResult(id=f"g{i}", rewards=r) for i, r in enumerate(groups)]
    if failed is not None:
        results.append(
            GroupResult(
                id="down", rewards=failed, error="JudgeError: 503", failure_policy="constant"
            )
        )
    return results


def test_reward_spreads_against_a_hand_computation() -> None:
    # pooled [1, 0, 1, 1]: mean 3/4, squared deviations 1/16 + 9/16 + 1/16 + 1/16 = 3/4;
    # sample variance (n-1 = 3) 1/4 -> std 1/2 (population variance 3/16 -> 0.433, the old value)
    # per group: stdev(1, 0) = sqrt(1/2), stdev(1, 1) = 0 -> mean sqrt(2)/4
    m = step_metrics(spread_results([[1.0, 0.0], [1.0, 1.0]], failed=[0.25, 0.25]))
    assert m.reward_std == pytest.approx(0.5, abs=1e-15)
    assert m.reward_std_within_group_mean == pytest.approx(math.sqrt(2) / 4, abs=1e-15)
    logged = m.as_dict()
    assert logged[PREFIX + "reward_std"] == m.reward_std
    assert logged[PREFIX + "reward_std_within_group_mean"] == m.reward_std_within_group_mean


def test_two_rewards_give_trls_number_not_the_population_std() -> None:
    m = step_metrics(spread_results([[0.17, 0.83]]))  # 0.33 (population std) vs 0.47 (TRL)
    assert round(m.reward_std, 2) == 0.47 and round(statistics.pstdev([0.17, 0.83]), 2) == 0.33
    assert m.reward_std == pytest.approx(m.reward_std_within_group_mean)  # one group: same


def test_spreads_need_two_rewards_and_are_left_out_otherwise() -> None:
    m = step_metrics(spread_results([[0.5, None], [float("nan"), 0.7]]))
    assert m.reward_std == pytest.approx(math.sqrt(0.02))  # 0.5 and 0.7 pooled
    assert m.reward_std_within_group_mean is None  # no group has two rewards
    lone = step_metrics(spread_results([[0.5]])).as_dict()
    assert PREFIX + "reward_std" not in lone and PREFIX + "reward_std_within_group_mean" not in lone


@pytest.mark.parametrize(
    "groups",
    [
        [[1.0, 0.0], [1.0, 1.0]],
        [[0.2, 0.9, 0.4, 0.4], [0.0, 0.1, 0.0, 0.3], [0.8, 0.8, 0.8, 0.8]],
        [[0.3, None, 0.6], [0.9, 0.1, None]],  # masked answers: NaN in TRL's tensor
    ],
)
def test_reward_std_is_trls_reward_std(groups) -> None:
    torch = pytest.importorskip("torch")
    trl_utils = pytest.importorskip("trl.trainer.utils")
    g = len(groups[0])
    flat = [math.nan if r is None else r for group in groups for r in group]
    rewards = torch.tensor(flat, dtype=torch.float64)
    trl_reward_std = trl_utils.nanstd(rewards).item()  # GRPOTrainer: metrics["reward_std"]
    trl_group_stds = trl_utils.nanstd(rewards.view(-1, g), dim=1)  # scale_rewards="group"
    m = step_metrics(spread_results(groups))
    # TRL's Bessel factor count / (count - 1) is computed in float32: agreement to ~1e-7
    assert m.reward_std == pytest.approx(trl_reward_std, rel=1e-6)
    assert m.reward_std_within_group_mean == pytest.approx(
        torch.nanmean(trl_group_stds).item(), rel=1e-6
    )
    assert m.reward_std != pytest.approx(statistics.pstdev(_numbers(groups)), rel=1e-3)


def _numbers(groups: list[list[float | None]]) -> list[float]:
    return [r for group in groups for r in group if r is not None]


def test_metric_names_never_come_from_judge_written_categories():
    from ropd.reward.metrics import METRIC_CATEGORIES, metric_category

    assert metric_category("revised_referee-style}") == "other"
    assert metric_category(" Instruction Following ") == "instruction_following"
    assert metric_category("Style") == "format" and metric_category("general") == "other"
    invented = [f"judge word {i}" for i in range(50)]
    rubric = Rubric(criteria=[Criterion(id=f"C{i}", category=w, criterion="some check", points=1)
                              for i, w in enumerate(invented, 1)])  # fmt: skip
    verdicts = AnswerVerdicts(
        source="student", index=0, verdicts={c.id: True for c in rubric.criteria}, score=1.0
    )
    result = GroupResult(id="g", rewards=[1.0], rubrics=[rubric], verdicts=[verdicts])
    names = {k for k in batch_metrics([result]) if "pass_rate/" in k}
    assert names == {PREFIX + "pass_rate/other"}
    assert set(METRIC_CATEGORIES) >= {"correctness", "format"}
