"""`RopdRewardManager` through verl's own code: Hydra config, `load_reward_manager`, `run_single`.

Rollouts are built in the shape verl's agent loop hands a reward worker (`bench.verl.rollout_data`)
and decoded by the manager with a real (offline, byte-level) tokenizer; the judge is an in-memory
scripted client passed through `load_reward_manager`'s keyword arguments.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("verl")

import numpy as np
from ropd_dev.bench.verl import compose_verl_config, rollout_data
from tests.verl.conftest import (
    RUBRIC,
    TEACHER,
    group_answers,
    prompt_of,
    run_all,
    shuffled,
    traced_groups,
)
from verl.trainer.ppo.reward import load_reward_manager, resolve_reward_manager_cls

from ropd.errors import ConfigError
from ropd.integrations.verl.collector import EXTRA_KEYS
from ropd.integrations.verl.reward_manager import RopdRewardManager
from ropd.testing import ScriptedChatClient, make_client

G = 4


def config(tmp_path: Path, tokenizer_dir: Path, *overrides: str) -> Any:
    ropd_yaml = tmp_path / "ropd.yaml"
    ropd_yaml.write_text(
        "ropd:\n"
        "  scorer:\n"
        "    num_teacher_refs: 1\n"
        f"  traces: {tmp_path / 'traces.db'}\n"
        "  student: Qwen/Qwen3-4B   # read by `ropd train` only: accepted here\n"
        "  gad: {lora: true}\n"
        "  exopd: {lambda_: 1.5}\n",
        encoding="utf-8",
    )
    return compose_verl_config(
        tokenizer_dir,
        ropd_yaml,
        group_size=G,
        groups_per_step=2,
        workers=1,
        run_dir=tmp_path / "run",
        overrides=["actor_rollout_ref.rollout.val_kwargs.n=2", *overrides],
    )


def ropd_row(tokenizer: Any, g: int, text: str, split: str = "train") -> Any:
    extra = {"index": g, "id": f"q{g}", "split": split, "teacher_responses": np.array(TEACHER)}
    return rollout_data(tokenizer, uid=f"uid-{g}", prompt=prompt_of(g), completion=text,
                        extra_info=extra)  # fmt: skip


def test_verls_hydra_config_resolves_the_manager_through_pkg(
    tmp_path: Path, tokenizer_dir: Path
) -> None:
    cfg = config(tmp_path, tokenizer_dir)
    assert resolve_reward_manager_cls(cfg) is RopdRewardManager
    assert cfg.reward.reward_kwargs.ropd_config == str(tmp_path / "ropd.yaml")


async def test_shuffled_rollouts_of_several_groups_each_group_scored_once(
    tmp_path: Path, tokenizer_dir: Path, tokenizer: Any
) -> None:
    client = make_client(RUBRIC)
    manager = load_reward_manager(config(tmp_path, tokenizer_dir), tokenizer, client=client)
    assert isinstance(manager, RopdRewardManager)
    expected = {(g, t): r for g in range(3) for t, r in group_answers(g, G)}
    keys = shuffled(list(expected), seed=3)
    rows = [ropd_row(tokenizer, g, t) for g, t in keys]
    # rows of another data source go to verl's default scorer (GSM8K's "#### answer")
    other = rollout_data(tokenizer, uid="uid-x", prompt=prompt_of(9), completion="#### 42",
                         extra_info={"index": 9}, data_source="openai/gsm8k", ground_truth="42")  # fmt: skip
    outputs = await run_all(manager, [*rows[:5], other, *rows[5:]])
    default = outputs.pop(5)

    for key, out in zip(keys, outputs, strict=True):
        assert out["reward_score"] == pytest.approx(expected[key]), key
        assert out["reward_extra_info"]["ropd_group_size"] == G
        assert out["reward_extra_info"]["ropd_failed"] == 0.0
    assert default["reward_score"] == 1.0
    # verl stacks extra info by the first sample's keys: every rollout has the same ones
    assert {tuple(o["reward_extra_info"]) for o in [*outputs, default]} == {EXTRA_KEYS}
    rubric_calls = [c.messages[-1]["content"] for c in client.calls_for("rubricator")]
    assert sorted(next(g for g in range(3) if f"Question {g}:" in p) for p in rubric_calls) == [
        0, 1, 2,
    ]  # fmt: skip
    traced = traced_groups(tmp_path / "traces.db")
    assert sorted((gid, n) for gid, _, n, _ in traced) == [("q0", G), ("q1", G), ("q2", G)]
    assert sorted(step for _, step, _, _ in traced) == [1, 1, 2]


async def test_a_failed_group_gets_one_float_and_a_flag(
    tmp_path: Path, tokenizer_dir: Path, tokenizer: Any
) -> None:
    client = ScriptedChatClient({"rubricator": lambda m, s: "{}", "verifier": lambda m, s: "{}"})
    manager = load_reward_manager(config(tmp_path, tokenizer_dir), tokenizer, client=client)
    outputs = await run_all(manager, [ropd_row(tokenizer, 0, t) for t, _ in group_answers(0, G)])
    assert {o["reward_score"] for o in outputs} == {0.0}  # failure policy nan: still a float
    assert all(o["reward_extra_info"]["ropd_failed"] == 1.0 for o in outputs)


async def test_an_aborted_rollout_does_not_hang_its_group(
    tmp_path: Path, tokenizer_dir: Path, tokenizer: Any
) -> None:
    cfg = config(tmp_path, tokenizer_dir, "+reward.reward_kwargs.ropd_group_timeout_s=0.3")
    manager = load_reward_manager(cfg, tokenizer, client=make_client(RUBRIC))
    answers = group_answers(1, G)[:3]  # the fourth rollout never comes
    outputs = await asyncio.wait_for(
        run_all(manager, [ropd_row(tokenizer, 1, t) for t, _ in answers]), timeout=30
    )
    assert [o["reward_score"] for o in outputs] == pytest.approx([r for _, r in answers])
    assert all(o["reward_extra_info"]["ropd_partial"] == 1.0 for o in outputs)


async def test_validation_rows_use_the_validation_group_size(
    tmp_path: Path, tokenizer_dir: Path, tokenizer: Any
) -> None:
    manager = load_reward_manager(config(tmp_path, tokenizer_dir), tokenizer,
                                  client=make_client(RUBRIC))  # fmt: skip
    answers = group_answers(2, 2)  # val_kwargs.n = 2, not rollout.n = 4: no wait for a timeout
    outputs = await asyncio.wait_for(
        run_all(manager, [ropd_row(tokenizer, 2, t, split="val") for t, _ in answers]), timeout=30
    )
    assert [o["reward_score"] for o in outputs] == pytest.approx([r for _, r in answers])
    assert [o["reward_extra_info"]["ropd_step"] for o in outputs] == [-1, -1]


def test_the_ropd_config_is_required_and_checked(
    tmp_path: Path, tokenizer_dir: Path, tokenizer: Any
) -> None:
    cfg = config(tmp_path, tokenizer_dir)
    cfg.reward.reward_kwargs.ropd_config = None
    with pytest.raises(ConfigError, match="ropd_config"):
        load_reward_manager(cfg, tokenizer)
    bad = tmp_path / "bad.yaml"
    bad.write_text("ropd:\n  scorer:\n    min_criteria: 0\n  verl_only_typo: 1\n")
    cfg.reward.reward_kwargs.ropd_config = str(bad)
    with pytest.raises(ConfigError, match=r"ropd\.scorer\.min_criteria(.|\n)*verl_only_typo"):
        load_reward_manager(cfg, tokenizer)


def test_the_rows_ground_truth_is_the_rollouts_gold_answer(
    tmp_path: Path, tokenizer_dir: Path, tokenizer: Any
) -> None:
    manager = load_reward_manager(config(tmp_path, tokenizer_dir), tokenizer,
                                  client=make_client(RUBRIC))  # fmt: skip
    extra = {"index": 0, "id": "q0", "split": "train"}
    row = rollout_data(tokenizer, uid="uid-0", prompt=prompt_of(0), completion="42",
                       extra_info=extra, ground_truth="42")  # fmt: skip
    assert manager.rollout(row).rollout.gold == "42"
    # `ropd verl prepare-data` writes "" for a record without an answer: no gold answer
    blank = rollout_data(tokenizer, uid="uid-1", prompt=prompt_of(1), completion="42",
                         extra_info=extra)  # fmt: skip
    assert manager.rollout(blank).rollout.gold is None
    # a number, as a Parquet column of numbers holds it
    row.non_tensor_batch["reward_model"][0] = {"style": "ropd", "ground_truth": np.int64(7)}
    assert manager.rollout(row).rollout.gold == "7"


def test_the_health_section_reaches_the_managers_collector(
    tmp_path: Path, tokenizer_dir: Path, tokenizer: Any
) -> None:
    cfg = config(tmp_path, tokenizer_dir)
    ropd_yaml = Path(cfg.reward.reward_kwargs.ropd_config)
    ropd_yaml.write_text(
        ropd_yaml.read_text(encoding="utf-8") + "  health:\n    alarm: stop\n    min_groups: 2\n",
        encoding="utf-8",
    )
    manager = load_reward_manager(cfg, tokenizer, client=make_client(RUBRIC))
    assert manager.collector is not None
    assert (manager.collector.health.config.alarm, manager.collector.health.config.min_groups) == (
        "stop", 2,
    )  # fmt: skip


def test_validating_on_the_training_file_is_warned_about(
    tmp_path: Path, tokenizer_dir: Path, tokenizer: Any
) -> None:
    same = ["data.train_files=t.parquet", "data.val_files=t.parquet"]
    manager = load_reward_manager(config(tmp_path, tokenizer_dir, *same), tokenizer)
    assert any("data.val_files is data.train_files" in w for w in manager.settings.warnings())
    other = ["data.train_files=t.parquet", "data.val_files=v.parquet"]
    manager = load_reward_manager(config(tmp_path, tokenizer_dir, *other), tokenizer)
    assert manager.settings.warnings() == []


def method_config(
    tmp_path: Path, tokenizer_dir: Path, method: str, more: str = "", group_size: int = G
) -> Any:
    """verl's config with a ropd.yaml naming `method`, the traces and `more` (YAML lines)."""
    ropd_yaml = tmp_path / f"{method}.yaml"
    text = f"ropd:\n  method: {method}\n  traces: {tmp_path / 't.db'}\n{more}"
    ropd_yaml.write_text(text, "utf-8")
    return compose_verl_config(
        tokenizer_dir, ropd_yaml, group_size=group_size, groups_per_step=2, workers=1,
        run_dir=tmp_path / "run",
    )  # fmt: skip


async def test_method_rar_verifies_each_rows_own_rubric(
    tmp_path: Path, tokenizer_dir: Path, tokenizer: Any
) -> None:
    """`method: rar` on verl: the row's `extra_info.rubric` (what prepare-data writes) is the
    group's rubric; no Rubricator call; a row without one fails its own group."""
    cfg = method_config(tmp_path, tokenizer_dir, "rar")
    client = make_client("not used: the rubric comes with the row")
    manager = load_reward_manager(cfg, tokenizer, client=client)

    def rar_row(g: int, text: str, rubric: str | None) -> Any:
        extra = {"index": g, "id": f"q{g}", "split": "train"}
        if rubric is not None:
            extra["rubric"] = rubric
        return rollout_data(tokenizer, uid=f"uid-{g}", prompt=prompt_of(g), completion=text,
                            extra_info=extra)  # fmt: skip

    answers = group_answers(0, G)
    rows = [rar_row(0, t, RUBRIC) for t, _ in answers]
    rows += [rar_row(1, t, None) for t, _ in group_answers(1, G)]
    outputs = await run_all(manager, rows)
    assert [o["reward_score"] for o in outputs[:G]] == pytest.approx([r for _, r in answers])
    assert all(o["reward_extra_info"]["ropd_failed"] == 0.0 for o in outputs[:G])
    assert all(o["reward_extra_info"]["ropd_failed"] == 1.0 for o in outputs[G:])
    assert client.calls_for("rubricator") == []
    assert len(client.calls_for("verifier")) == 1


async def test_method_ovd_scores_each_rollout_zero_to_nine(
    tmp_path: Path, tokenizer_dir: Path, tokenizer: Any
) -> None:
    import json
    import re

    cfg = method_config(tmp_path, tokenizer_dir, "ovd")

    def by_words(messages, schema) -> str:  # 9 for an answer with "because", else 3
        shown = re.search(r"ANSWER>>>\n(.*?)\n<<<", messages[0]["content"], re.DOTALL).group(1)
        return json.dumps({"score": 9 if "because" in shown else 3})

    client = ScriptedChatClient({"ovd": by_words})
    manager = load_reward_manager(cfg, tokenizer, client=client)
    answers = [t for t, _ in group_answers(0, G)]
    outputs = await run_all(manager, [ropd_row(tokenizer, 0, t) for t in answers])
    expected = [1.0 if "because" in t else 3 / 9 for t in answers]
    assert [o["reward_score"] for o in outputs] == pytest.approx(expected)
    assert len(client.calls) == G  # one call per answer (per_call: one)


async def test_method_ovd_adds_the_outcome_reward_from_the_rows_ground_truth(
    tmp_path: Path, tokenizer_dir: Path, tokenizer: Any
) -> None:
    """The gold answer travels with each rollout (verl's `reward_model.ground_truth`), so
    OVD's outcome reward works on verl too: w * correct + (1 - w) * score / 9."""
    pytest.importorskip("math_verify")
    import json

    more = "  ovd:\n    outcome_weight: 0.5\n"
    cfg = method_config(tmp_path, tokenizer_dir, "ovd", more, group_size=2)
    client = ScriptedChatClient({"ovd": lambda m, s: json.dumps({"score": 3})})
    manager = load_reward_manager(cfg, tokenizer, client=client)
    extra = {"index": 0, "id": "q0", "split": "train"}
    rows = [
        rollout_data(
            tokenizer,
            uid="uid-0",
            prompt=prompt_of(0),
            completion=text,
            extra_info=extra,
            ground_truth="42",
        )
        for text in ["The answer is $42$.", "The answer is $41$."]
    ]
    outputs = await run_all(manager, rows)
    assert [o["reward_score"] for o in outputs] == pytest.approx([0.5 + 0.5 * 3 / 9, 0.5 * 3 / 9])
