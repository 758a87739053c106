"""`RopdReward` in a GRPOTrainer a user builds themselves: real TRL steps on a tiny model."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

import ropd
from ropd.integrations.trl import RopdReward
from ropd.testing import ScriptedChatClient, schema_reply, scripted_judge

PROMPTS = ["What is 2 + 2?", "What is 3 + 5?"]
TEACHER = {p: [f"teacher says {p} one", f"teacher says {p} two"] for p in PROMPTS}


def test_reward_in_a_users_own_grpo_trainer(tiny_student: Path, tmp_path: Path) -> None:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    judge = scripted_judge()
    reward = RopdReward(
        ropd.ScorerConfig(num_teacher_refs=2), client=judge, traces=tmp_path / "traces.sqlite"
    )
    rows = [
        {"prompt": [{"role": "user", "content": p}], "teacher_responses": TEACHER[p]}
        for p in PROMPTS
    ]
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=4,
        num_generations=2, max_completion_length=8, report_to="none", save_strategy="no",
        activation_checkpointing=False, logging_steps=1, use_cpu=True, bf16=False,
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=str(tiny_student),
        reward_funcs=[reward],
        args=args,
        train_dataset=Dataset.from_list(rows),
    )
    trainer.train()
    asyncio.run_coroutine_threadsafe(reward.aclose(), trainer.async_loop).result(timeout=60)

    # 2 prompts x G = 2: two groups, each scored whole once, with the column's teacher answers
    assert len(judge.calls_for("rubricator")) == 2
    shown = "\n".join(c.messages[-1]["content"] for c in judge.calls_for("verifier"))
    assert all(t in shown for answers in TEACHER.values() for t in answers)
    with sqlite3.connect(tmp_path / "traces.sqlite") as db:
        rows_seen = db.execute(
            "SELECT step, num_student, num_teacher, error FROM groups"
        ).fetchall()
    assert sorted(rows_seen) == [(1, 2, 2, None), (1, 2, 2, None)]
    logged = {k for entry in trainer.state.log_history for k in entry}
    assert any("ropd/reward_mean" in k for k in logged), logged


async def test_failed_groups_are_none_and_never_zero() -> None:
    def down(messages, schema):
        raise ropd.JudgeError("judge endpoint unreachable")

    client = ScriptedChatClient({"rubricator": down, "verifier": down})
    reward = RopdReward(ropd.ScorerConfig(num_teacher_refs=1), client=client, num_generations=2)
    rewards = await reward(
        prompts=["q", "q"], completions=["a", "b"], teacher_responses=[["t"], ["t"]]
    )
    assert rewards == [None, None]
    await reward.aclose()


async def test_without_teacher_answers_the_group_fails_with_a_cause() -> None:
    reward = RopdReward(ropd.ScorerConfig(num_teacher_refs=2), client=scripted_judge())
    logged: dict[str, float] = {}
    rewards = await reward(
        prompts=["q", "q"], completions=["a", "b"], log_metric=logged.__setitem__
    )
    assert rewards == [None, None]
    assert logged["ropd/failed_group_rate"] == 1.0
    await reward.aclose()


@pytest.mark.parametrize("column", [None, "ropd_id"])
async def test_groups_form_by_prompt_with_or_without_an_id_column(column: str | None) -> None:
    judge = scripted_judge()
    reward = RopdReward(ropd.ScorerConfig(num_teacher_refs=0), client=judge)
    extra = {column: ["a", "a", "b", "b"]} if column else {}
    rewards = await reward(
        prompts=["p1", "p1", "p2", "p2"], completions=["1", "2", "3", "4"], **extra
    )
    assert len(rewards) == 4 and all(r is not None for r in rewards)
    assert len(judge.calls_for("rubricator")) == 2
    await reward.aclose()


def test_store_lookups_use_the_runs_k_when_the_config_says_all() -> None:
    all_given = ropd.ScorerConfig(num_teacher_refs=None)
    assert RopdReward(all_given).num_teacher_refs == 4
    assert RopdReward(all_given, teacher_answers=2).num_teacher_refs == 2  # `ropd train` sets it
    assert RopdReward(ropd.ScorerConfig(num_teacher_refs=3)).num_teacher_refs == 3
    assert RopdReward(ropd.TJudgeConfig(num_references=1)).num_teacher_refs == 1


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        ({"id": ["a", "a", "b", "b"]}, ["a", "b"]),  # a dataset's own `id` column
        ({"ropd_id": ["x", "x", "y", "y"], "id": ["a", "a", "b", "b"]}, ["x", "y"]),  # ropd_id wins
    ],
)
async def test_a_plain_id_column_names_the_groups(
    columns: dict[str, list[str]], expected: list[str], tmp_path: Path
) -> None:
    reward = RopdReward(
        ropd.ScorerConfig(num_teacher_refs=0), client=scripted_judge(), traces=tmp_path / "t.db"
    )
    await reward(prompts=["p1", "p1", "p2", "p2"], completions=["1", "2", "3", "4"], **columns)
    await reward.aclose()
    with sqlite3.connect(tmp_path / "t.db") as db:
        ids = [row[0] for row in db.execute("SELECT group_id FROM groups ORDER BY group_id")]
    assert ids == expected


async def test_masked_groups_are_explained_once_per_step(caplog: pytest.LogCaptureFixture) -> None:
    import logging
    from types import SimpleNamespace

    def rubric(messages, schema):  # the judge's reply for the second prompt never validates
        text = " ".join(str(m["content"]) for m in messages)
        return "no json here" if "p2" in text else schema_reply(messages, schema)

    client = ScriptedChatClient({"rubricator": rubric, "verifier": schema_reply})
    reward = RopdReward(ropd.ScorerConfig(num_teacher_refs=0), client=client, num_generations=2)
    state = SimpleNamespace(global_step=0)
    with caplog.at_level(logging.WARNING, logger="ropd"):
        for _ in range(2):  # two calls for the same step: one line
            rewards = await reward(
                prompts=["p1", "p1", "p2", "p2"], completions=["1", "2", "3", "4"],
                trainer_state=state,
            )  # fmt: skip
    await reward.aclose()
    assert rewards[:2] != [None, None] and rewards[2:] == [None, None]
    lines = [r.getMessage() for r in caplog.records if "masked" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "masked 1 of 2 groups this step" in lines[0]
    assert "rubric" in lines[0].lower()  # the group's own error says what failed
    assert "All reward functions returned None" not in lines[0]
    assert "TRL's warning" in lines[0] and "refers to these groups" in lines[0]
