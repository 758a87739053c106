"""Gold checks through the TRL reward reach the trace store, so `ropd inspect --stats` and the
report give the gold numbers the training log got."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tests.inprocess import ropd_in_process

import ropd
from ropd.integrations.trl import RopdReward
from ropd.report import build_report
from ropd.reward.traces import TraceStore
from ropd.testing import ScriptedChatClient, make_client, rubric_reply
from ropd.testing.replies import JsonSchema

RUBRIC = rubric_reply([("4", 5), ("zz", 1), ("yy", 1), ("xx", 1)])  # 8 points
TEACHER = ["It is 4, since 2 + 2 = 4.", "4"]
PROMPTS = ["What is 2 + 2?"] * 2 + ["What is 1 + 3?"] * 2
# rewards 5/8, 1/8 | 5/8, 1; gold checks True, False | False (boxed 5), True
COMPLETIONS = ["It is 4", "It is 5 xx", "It is 4? no, \\boxed{5}", "zz yy xx \\boxed{4}"]
CORRECT = [[True, False], [False, True]]


def traced_reward(client: ScriptedChatClient, db: Path) -> RopdReward:
    return RopdReward(
        ropd.ScorerConfig(num_teacher_refs=2),
        client=client,
        num_generations=2,
        traces=db,
        run_id="train",
    )


async def score_steps(reward: RopdReward, steps: int) -> list[dict[str, float]]:
    logged: list[dict[str, float]] = []
    for global_step in range(steps):
        metrics: dict[str, float] = {}
        await reward(
            prompts=PROMPTS,
            completions=COMPLETIONS,
            teacher_responses=[TEACHER] * 4,
            answer=[4, 4, 4, 4],
            log_metric=metrics.__setitem__,
            trainer_state=SimpleNamespace(global_step=global_step),
        )
        logged.append(metrics)
    await reward.aclose()
    return logged


async def test_gold_checks_reach_the_store_inspect_and_the_report(tmp_path: Path) -> None:
    pytest.importorskip("math_verify")
    db = tmp_path / "traces.db"
    logged = await score_steps(traced_reward(make_client(RUBRIC), db), steps=2)
    gold_auc = logged[0]["ropd/health/gold_auc"]
    # correct {5/8, 1}, incorrect {1/8, 5/8}: three of four pairs won, one tied -> 3.5 / 4
    assert gold_auc == pytest.approx(0.875)

    with TraceStore(db) as store:
        step1, step2 = store.steps(run_id="train")
    assert (step1.step, step2.step) == (1, 2)
    assert step1.correct == step2.correct == CORRECT
    assert step1.health().gold_auc == gold_auc  # the very number the training log got

    stats = ropd_in_process(["inspect", "--traces", db, "--stats"], env={"COLUMNS": "240"})
    assert stats.returncode == 0, stats.stderr
    lines = [x for x in stats.stdout.splitlines() if x.startswith("reward health")]
    assert len(lines) == 2
    for line in lines:
        assert f"gold_auc {gold_auc:.3g}," in line
        pair = logged[0]["ropd/health/gold_pair_accuracy"]
        assert f"gold_pair_accuracy {pair:.3g}," in line

    page = tmp_path / "report.html"
    data = build_report(db, page, run_id="train")
    assert [s["health"]["gold_auc"] for s in data.steps] == [gold_auc, gold_auc]
    html = page.read_text(encoding="utf-8")
    assert 'id="chart-gold"' in html and "Reward against gold" in html
    assert 'id="chart-health"' in html  # the rates keep their own chart
    assert 'data-total="gold_auc">0.875<' in html  # the last step's card


async def test_the_gold_check_runs_beside_the_judge_calls(tmp_path: Path) -> None:
    """Judging starts before the gold check ends: a check that waits for the first judge call
    would time out if it ran before scoring."""
    judged = threading.Event()

    def rubricator(messages: list[dict[str, Any]], schema: JsonSchema | None) -> str:
        judged.set()
        return RUBRIC

    saw_judge: list[bool] = []

    class WaitingChecker:
        def check(self, completion: str, gold: str | None) -> bool | None:
            if not saw_judge:  # a bound, so a regression fails instead of hanging
                saw_judge.append(judged.wait(timeout=30))
            return completion.endswith("4")

    db = tmp_path / "traces.db"
    reward = traced_reward(make_client(rubricator), db)
    reward.batch_scorer._gold = WaitingChecker()  # type: ignore[assignment]
    await score_steps(reward, steps=1)
    assert saw_judge == [True]
    with TraceStore(db) as store:
        (step,) = store.steps()
    assert step.correct == [[True, False], [False, False]]
