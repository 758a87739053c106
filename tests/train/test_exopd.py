"""ExOPD: the extrapolated per-token advantage by hand, two real TRL steps on the tiny model,
and the refusal of a teacher whose tokenizer is not the student's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from ropd.errors import ConfigError
from ropd.integrations.trl.exopd import (
    exopd_advantage,
    extrapolated_reward,
    policy_gradient_loss,
)
from ropd.train.config import load_config
from ropd.train.preflight import readiness_problems
from ropd.train.runner import run

# log-probs of three sampled tokens under teacher, reference and student
TEACHER = torch.tensor([[-1.0, -0.5, -2.0]])
REFERENCE = torch.tensor([[-1.5, -0.5, -1.0]])
STUDENT = torch.tensor([[-2.0, -1.0, -1.5]])


def test_reward_and_advantage_against_hand_computed_values() -> None:
    # λ = 1.5: reward = 1.5 * (T - R) = 1.5 * [0.5, 0, -1] = [0.75, 0, -1.5]
    reward = extrapolated_reward(TEACHER, REFERENCE, 1.5)
    assert torch.allclose(reward, torch.tensor([[0.75, 0.0, -1.5]]))
    # advantage = reward - (S - R) = [0.75, 0, -1.5] - [-0.5, -0.5, -0.5] = [1.25, 0.5, -1.0]
    advantage = exopd_advantage(TEACHER, REFERENCE, STUDENT, 1.5)
    assert torch.allclose(advantage, torch.tensor([[1.25, 0.5, -1.0]]))


def test_lambda_one_is_plain_on_policy_distillation() -> None:
    # λ = 1: the reference cancels, leaving log p_teacher - log p_student (= [1, 0.5, -0.5])
    plain = TEACHER - STUDENT
    assert torch.allclose(exopd_advantage(TEACHER, REFERENCE, STUDENT, 1.0), plain)
    assert torch.allclose(exopd_advantage(TEACHER, STUDENT, STUDENT, 1.0), plain)


def test_lambda_two_doubles_the_signal() -> None:
    # with the reference at the current student, the advantage is λ (log p_T - log p_S)
    one = exopd_advantage(TEACHER, STUDENT, STUDENT, 1.0)
    two = exopd_advantage(TEACHER, STUDENT, STUDENT, 2.0)
    assert torch.allclose(two, 2 * one)
    assert torch.allclose(two, torch.tensor([[2.0, 1.0, -1.0]]))
    assert torch.allclose(
        extrapolated_reward(TEACHER, REFERENCE, 2.0), torch.tensor([[1.0, 0.0, -2.0]])
    )


def test_teacher_as_reference_gives_no_extrapolation() -> None:
    for lam in (1.0, 1.25, 3.0):
        assert torch.equal(extrapolated_reward(TEACHER, TEACHER, lam), torch.zeros(1, 3))
        # what is left is the KL term alone: plain OPD's signal, whatever λ
        assert torch.allclose(exopd_advantage(TEACHER, TEACHER, STUDENT, lam), TEACHER - STUDENT)


def test_policy_gradient_loss_weights_masked_tokens_out() -> None:
    student = STUDENT.clone().requires_grad_(True)
    advantage = torch.tensor([[1.0, 2.0, 4.0]])
    mask = torch.tensor([[1, 1, 0]])
    loss = policy_gradient_loss(student, advantage, mask)
    # -(1 * -2 + 2 * -1) / 2 tokens = 2
    assert loss.item() == pytest.approx(2.0)
    loss.backward()
    assert torch.allclose(student.grad, torch.tensor([[-0.5, -1.0, 0.0]]))
    assert policy_gradient_loss(STUDENT, advantage, mask, 4).item() == pytest.approx(1.0)


# -- config -------------------------------------------------------------------------------------


def test_exopd_config_defaults_and_checks() -> None:
    config = load_config(None, {"ropd.method": "exopd", "ropd.exopd.teacher_model": "t"})
    assert config.ropd.exopd.lambda_ == 1.25 and config.ropd.exopd.reference == "student_init"
    assert type(config.trl_args()).__name__ == "DistillationConfig"
    assert config.trl["remove_unused_columns"] is False
    with pytest.raises(ConfigError, match="exopd needs a white-box teacher"):
        load_config(None, {"ropd.method": "exopd"})
    with pytest.raises(ConfigError, match="lambda_"):
        load_config(None, {"ropd.method": "exopd", "ropd.exopd.teacher_model": "t",
                           "ropd.exopd.lambda_": 0})  # fmt: skip


# -- real training on the tiny model ------------------------------------------------------------


def _overrides(tiny_overrides: dict[str, Any], teacher: Path, **extra: Any) -> dict[str, Any]:
    return {
        **tiny_overrides,
        "ropd.method": "exopd",
        "ropd.exopd.teacher_model": str(teacher),
        "learning_rate": 1e-3,
        **extra,
    }


def test_exopd_trains_two_steps(
    tiny_overrides: dict[str, Any], tiny_student: Path, tiny_teacher: Path
) -> None:
    from tests.train.test_methods import changed

    config = load_config(None, _overrides(tiny_overrides, tiny_teacher))
    report = run(config)
    assert report.global_step == 2
    assert [p.name for p in report.checkpoints] == ["checkpoint-1", "checkpoint-2"]
    assert changed(tiny_student, report.final_model)
    assert report.traces is None
    assert "train_loss" in report.metrics
    first, second = step_logs(report.checkpoints[-1])
    # step 1: the student still is its initial weights (the reference), so the KL term is
    # zero and the advantage is the extrapolated reward alone; by step 2 they differ
    assert first["exopd/reward"] != 0.0
    assert first["exopd/advantage"] == pytest.approx(first["exopd/reward"], abs=1e-6)
    assert second["exopd/advantage"] != pytest.approx(second["exopd/reward"], abs=1e-6)
    assert first["exopd/reverse_kl"] > 0.0


def step_logs(checkpoint: Path) -> list[dict[str, float]]:
    """TRL's per-step log entries, as saved with the checkpoint."""
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    return [entry for entry in state["log_history"] if "exopd/reward" in entry]


def test_exopd_with_the_teacher_as_reference_logs_zero_reward(
    tiny_overrides: dict[str, Any], tiny_teacher: Path
) -> None:
    overrides = _overrides(tiny_overrides, tiny_teacher, max_steps=1)
    overrides["ropd.exopd.reference"] = "teacher"
    report = run(load_config(None, overrides))
    assert report.global_step == 1
    (only,) = step_logs(report.checkpoints[-1])
    assert only["exopd/reward"] == 0.0  # log p_teacher - log p_teacher
    assert only["exopd/advantage"] == pytest.approx(-only["exopd/reverse_kl"], abs=1e-6)


# -- tokenizer check ----------------------------------------------------------------------------


@pytest.fixture
def other_tokenizer(tmp_path: Path) -> Path:
    """A folder holding a (word-level) tokenizer unlike SmolLM2's."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "[PAD]": 1, "hello": 2, "world": 3}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    folder = tmp_path / "other-teacher"
    PreTrainedTokenizerFast(
        tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]"
    ).save_pretrained(folder)
    return folder


def test_dry_run_refuses_a_teacher_with_another_tokenizer(
    tiny_student: Path, tiny_teacher: Path, other_tokenizer: Path
) -> None:
    base = {"report_to": "none", "ropd.student": str(tiny_student), "ropd.method": "exopd"}
    same = load_config(None, {**base, "ropd.exopd.teacher_model": str(tiny_teacher)})
    assert readiness_problems(same, probe=False) == []
    other = load_config(None, {**base, "ropd.exopd.teacher_model": str(other_tokenizer)})
    (problem,) = readiness_problems(other, probe=False)
    assert "ropd.exopd.teacher_model" in problem and "tokenizer differs" in problem
    named_ref = load_config(
        None,
        {**base, "ropd.exopd.teacher_model": str(tiny_teacher),
         "ropd.exopd.reference": str(other_tokenizer)},
    )  # fmt: skip
    (problem,) = readiness_problems(named_ref, probe=False)
    assert "ropd.exopd.reference" in problem and "reference's tokenizer" in problem


def test_the_run_refuses_a_teacher_with_another_tokenizer(
    tiny_overrides: dict[str, Any], other_tokenizer: Path
) -> None:
    from ropd.train.runner import build_trainer

    config = load_config(None, _overrides(tiny_overrides, other_tokenizer))
    with pytest.raises(ConfigError, match="teacher's tokenizer differs"):
        build_trainer(config, [], None, "run-1")


def test_exopd_with_lora_uses_the_adapterless_student_as_reference(
    tiny_overrides: dict[str, Any], tiny_teacher: Path
) -> None:
    lora = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    overrides = _overrides(tiny_overrides, tiny_teacher, **{"ropd.lora": lora})
    report = run(load_config(None, overrides))
    assert report.global_step == 2
    assert (report.final_model / "adapter_config.json").is_file()
    first, second = step_logs(report.checkpoints[-1])
    # LoRA's B starts at zero: at step 1 the student equals its adapter-less reference
    assert first["exopd/advantage"] == pytest.approx(first["exopd/reward"], abs=1e-6)
    assert second["exopd/advantage"] != pytest.approx(second["exopd/reward"], abs=1e-6)


def test_a_run_config_reads_a_training_file_with_an_exopd_section(tmp_path: Path) -> None:
    from ropd.run_config import RunConfig

    path = tmp_path / "train.yaml"
    path.write_text("ropd:\n  method: exopd\n  exopd:\n    teacher_model: t\n    lambda_: 2\n")
    assert RunConfig.load(path).method == "exopd"


def test_cli_dry_run_says_what_exopd_needs_and_refuses_another_tokenizer(
    tmp_path: Path, tiny_student: Path, tiny_teacher: Path, other_tokenizer: Path
) -> None:
    from tests.train.test_preflight import dry_run

    def config(teacher: Path) -> Path:
        path = tmp_path / f"{teacher.name}.yaml"
        path.write_text(
            f"report_to: none\nropd:\n  method: exopd\n  student: {tiny_student}\n"
            f"  exopd:\n    teacher_model: {teacher}\n    lambda_: 1.5\n"
        )
        return path

    done = dry_run(config(tiny_teacher), "--no-probe")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "must share the student's tokenizer" in done.stdout
    assert "lambda_=1.5" in done.stdout and "reference student_init" in done.stdout
    assert "no judge: a local white-box teacher scores every token" in done.stdout
    refused = dry_run(config(other_tokenizer), "--no-probe")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "field 'ropd.exopd.teacher_model': the teacher's tokenizer differs" in refused.stderr
