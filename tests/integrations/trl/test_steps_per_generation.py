"""One generation feeding several optimizer steps (`steps_per_generation`): real TRL steps.

What must hold: one reward call per generation scores all its groups; the trace store and the
training log put that call's groups and metrics at the first optimizer step they feed.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

import ropd
from ropd.integrations.trl import RopdReward
from ropd.testing import scripted_judge

PROMPTS = [f"What is {n} + {n}?" for n in range(4)]


@pytest.mark.slow
def test_one_reward_call_per_generation_traced_at_its_first_step(
    tiny_student: Path, tmp_path: Path
) -> None:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    judge = scripted_judge()
    reward = RopdReward(
        ropd.ScorerConfig(num_teacher_refs=1), client=judge, traces=tmp_path / "traces.db"
    )
    rows = [
        {"prompt": [{"role": "user", "content": p}], "ropd_id": f"q{i}",
         "teacher_responses": [f"{2 * i}"]}
        for i, p in enumerate(PROMPTS)
    ]  # fmt: skip
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), max_steps=4, per_device_train_batch_size=4,
        num_generations=2, steps_per_generation=2, max_completion_length=8, report_to="none",
        save_strategy="no", activation_checkpointing=False, logging_steps=1, use_cpu=True,
        bf16=False,
    )  # fmt: skip
    assert args.generation_batch_size == 8  # 4 prompts x G = 2, for 2 optimizer steps
    trainer = GRPOTrainer(
        model=str(tiny_student), reward_funcs=[reward], args=args,
        train_dataset=Dataset.from_list(rows),
    )  # fmt: skip
    trainer.train()
    asyncio.run_coroutine_threadsafe(reward.aclose(), trainer.async_loop).result(timeout=60)

    # 4 optimizer steps, 2 generations of 4 groups: 8 groups, each scored once
    assert trainer.state.global_step == 4
    assert len(judge.calls_for("rubricator")) == 8
    with sqlite3.connect(tmp_path / "traces.db") as db:
        per_step = db.execute("SELECT step, COUNT(*) FROM groups GROUP BY step").fetchall()
    assert per_step == [(1, 4), (3, 4)]
    logged = {e["step"]: e for e in trainer.state.log_history if "loss" in e}
    assert sorted(logged) == [1, 2, 3, 4]
    with_reward = [s for s, e in logged.items() if "ropd/groups" in e]
    assert with_reward == [1, 3]  # the same steps as TRL's own reward metrics
    assert all(logged[s]["ropd/groups"] == 4 for s in with_reward)
    assert [s for s, e in logged.items() if "reward" in e] == [1, 3]
