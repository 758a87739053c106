"""Reward health through the TRL adapter: the dataset's `answer` column reaches the metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import ropd
from ropd.integrations.trl import RopdReward
from ropd.integrations.trl.datasets import rl_dataset
from ropd.reward.health import HealthConfig
from ropd.testing import make_client, rubric_reply, scripted_judge
from ropd.train.config import DataConfig
from ropd.train.data import load_prompts

RUBRIC = rubric_reply([("4", 5), ("zz", 1), ("yy", 1), ("xx", 1)])
TEACHER = ["It is 4, since 2 + 2 = 4.", "4"]


async def test_answer_column_gives_gold_agreement_in_log_metric() -> None:
    pytest.importorskip("math_verify")
    reward = RopdReward(
        ropd.ScorerConfig(num_teacher_refs=2), client=make_client(RUBRIC), num_generations=2
    )
    logged: dict[str, float] = {}
    await reward(
        prompts=["What is 2 + 2?"] * 2 + ["What is 1 + 3?"] * 2,
        completions=["It is 4", "It is 5", "maybe 3", "\\boxed{4}"],
        teacher_responses=[TEACHER] * 4,
        answer=[4, 4, 4, 4],  # integer gold, as in the bundled sample
        log_metric=logged.__setitem__,
    )
    await reward.aclose()
    assert logged["ropd/health/gold_auc"] == 1.0
    assert logged["ropd/health/gold_pair_accuracy"] == 1.0
    assert logged["ropd/health/gold_checked"] == 4
    assert logged["ropd/health/teacher_fail_rate"] == 0.0


async def test_a_stop_alarm_sets_the_rewards_stop_message() -> None:
    reward = RopdReward(
        ropd.ScorerConfig(num_teacher_refs=2),
        client=make_client(RUBRIC),
        num_generations=2,
        health=HealthConfig(alarm="stop", min_groups=1),
    )
    await reward(
        prompts=["p"] * 2,
        completions=["same", "same"],  # no spread: the rubric separates nobody
        teacher_responses=[TEACHER] * 2,
    )
    await reward.aclose()
    assert reward.stop_message is not None
    assert reward.stop_message.startswith("reward health: health/no_spread_rate 1 > 0.8")


def test_sample_data_carries_its_gold_answer_into_the_dataset() -> None:
    prompts = load_prompts(DataConfig(limit=2))
    assert [p.gold for p in prompts] == ["65", "4"]  # integers in the file, text here
    assert load_prompts(DataConfig(limit=1, answer_field=None))[0].gold is None
    dataset = rl_dataset(prompts)
    assert dataset["answer"] == ["65", "4"]
    assert (
        "answer"
        not in rl_dataset(load_prompts(DataConfig(limit=1, answer_field=None))).column_names
    )


def test_health_metrics_reach_trls_log_in_a_real_step(tiny_student: Path, tmp_path: Path) -> None:
    from trl import GRPOConfig, GRPOTrainer

    reward = RopdReward(ropd.ScorerConfig(num_teacher_refs=2), client=scripted_judge())
    dataset = rl_dataset(load_prompts(DataConfig(limit=2)))
    dataset = dataset.add_column("teacher_responses", [TEACHER] * len(dataset))
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=4,
        num_generations=2, max_completion_length=8, report_to="none", save_strategy="no",
        activation_checkpointing=False, logging_steps=1, use_cpu=True, bf16=False,
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=str(tiny_student), reward_funcs=[reward], args=args, train_dataset=dataset
    )
    trainer.train()
    asyncio.run_coroutine_threadsafe(reward.aclose(), trainer.async_loop).result(timeout=60)
    logged = {k for entry in trainer.state.log_history for k in entry}
    for name in ("gold_checked", "gold_correct_rate", "teacher_fail_rate", "judge_imitation_rate"):
        assert any(k.endswith("ropd/health/" + name) for k in logged), (name, logged)
