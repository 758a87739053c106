"""GAD: the Bradley-Terry step by hand, the discriminator's update and save/reload on the tiny
model, the reward's warm-up, and real TRL training (two steps, resume, warm-up SFT)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from ropd.integrations.trl.gad import (
    DISCRIMINATOR_DIR,
    Discriminator,
    GadReward,
    batch_bradley_terry_loss,
    bradley_terry_loss,
    group_by_prompt,
    pair_accuracy,
)
from ropd.train.config import load_config
from ropd.train.runner import run


def _nll(margin: float) -> float:
    return math.log1p(math.exp(-margin))  # -log sigmoid(margin)


def test_bradley_terry_loss_against_hand_computed_values() -> None:
    # one teacher (2.0) against students 1.0 and 3.0: margins 1 and -1
    loss = bradley_terry_loss(torch.tensor([2.0]), torch.tensor([1.0, 3.0]))
    assert loss.item() == pytest.approx((_nll(1.0) + _nll(-1.0)) / 2)
    assert loss.item() == pytest.approx((0.3132617 + 1.3132617) / 2, abs=1e-6)
    # equal scores: log 2 whatever the count
    assert bradley_terry_loss(torch.zeros(2), torch.zeros(3)).item() == pytest.approx(math.log(2))
    # K=2 teachers x G=2 students: the mean of the four pairs
    loss = bradley_terry_loss(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0]))
    expected = (_nll(1.0) + _nll(-1.0) + _nll(0.0) + _nll(-2.0)) / 4
    assert loss.item() == pytest.approx(expected)


def test_bradley_terry_gradient_pushes_the_teacher_up() -> None:
    teacher = torch.tensor([0.5], requires_grad=True)
    student = torch.tensor([0.5, -0.5], requires_grad=True)
    bradley_terry_loss(teacher, student).backward()
    # d/dt of mean(-log σ(t - s)) = -mean(1 - σ(t - s)); d/ds_j = (1 - σ(t - s_j)) / 2
    s0, s1 = 1 - 1 / (1 + math.exp(0.0)), 1 - 1 / (1 + math.exp(-1.0))
    assert teacher.grad.item() == pytest.approx(-(s0 + s1) / 2)
    assert student.grad.tolist() == pytest.approx([s0 / 2, s1 / 2])
    assert teacher.grad.item() < 0 and all(g > 0 for g in student.grad.tolist())


def test_batch_loss_is_the_mean_over_all_pairs() -> None:
    a = (torch.tensor([1.0]), torch.tensor([0.0, 0.0]))  # 2 pairs, margin 1
    b = (torch.tensor([0.0]), torch.tensor([0.0]))  # 1 pair, margin 0
    loss = batch_bradley_terry_loss([a, b])
    assert loss.item() == pytest.approx((2 * _nll(1.0) + _nll(0.0)) / 3)
    with pytest.raises(ValueError, match="no .* pair"):
        batch_bradley_terry_loss([(torch.zeros(0), torch.zeros(2))])


def test_pair_accuracy_counts_ordered_pairs() -> None:
    assert pair_accuracy(torch.tensor([1.0, 0.0]), torch.tensor([0.5, -1.0])) == 0.75
    assert pair_accuracy(torch.tensor([0.0]), torch.tensor([0.0])) == 0.0  # a tie is not right


def test_group_by_prompt_keeps_the_order_of_first_sight() -> None:
    p1 = [{"role": "user", "content": "one"}]
    p2 = [{"role": "user", "content": "two"}]
    groups = group_by_prompt([p1, p2, p1, p2], ["a", "b", "c", "d"])
    assert [answers for _, answers in groups] == [["a", "c"], ["b", "d"]]


# -- the discriminator on the tiny model --------------------------------------------------------

PROMPT = [{"role": "user", "content": "What is 2 + 2?"}]
TEACHER = "2 + 2 = 4, so the answer is 4."
STUDENTS = ["five", "I do not know"]


def _discriminator(model: Path, *, lora: bool = True, lr: float = 1e-2) -> Discriminator:
    torch.manual_seed(0)
    return Discriminator.build(
        str(model), lora={"r": 4, "lora_alpha": 8} if lora else None, learning_rate=lr
    )


def _texts(d: Discriminator) -> tuple[list[str], list[str]]:
    return [d.text(PROMPT, TEACHER)], [d.text(PROMPT, s) for s in STUDENTS]


@pytest.mark.parametrize("lora", [True, False])
def test_discriminator_steps_rank_the_teacher_higher(tiny_student: Path, lora: bool) -> None:
    d = _discriminator(tiny_student, lora=lora)
    teachers, students = _texts(d)
    assert "What is 2 + 2?" in teachers[0] and TEACHER in teachers[0]
    before = d.score(teachers + students)
    first = d.step([(teachers, students)])
    # the logged loss is the Bradley-Terry loss of the scores before the update
    expected = bradley_terry_loss(before[:1], before[1:]).item()
    assert first["gad/discriminator_loss"] == pytest.approx(expected, abs=1e-4)
    for _ in range(4):
        last = d.step([(teachers, students)])
    assert last["gad/discriminator_loss"] < first["gad/discriminator_loss"]
    after = d.score(teachers + students)
    assert (after[0] - after[1:]).mean() > (before[0] - before[1:]).mean()
    assert d.updates == 5


def test_saved_discriminator_reloads_to_the_same_scores(tiny_student: Path, tmp_path: Path) -> None:
    d = _discriminator(tiny_student)
    teachers, students = _texts(d)
    d.step([(teachers, students)])
    scores = d.score(teachers + students)
    folder = d.save(tmp_path / "disc")
    assert (folder / "adapter_config.json").is_file()
    again = Discriminator.load(folder)
    assert torch.allclose(again.score(teachers + students), scores, atol=1e-5)
    assert again.updates == 1 and again.learning_rate == d.learning_rate
    # the optimizer continues too: the next step is the same from both
    a, b = d.step([(teachers, students)]), again.step([(teachers, students)])
    assert a["gad/discriminator_loss"] == pytest.approx(b["gad/discriminator_loss"], abs=1e-5)
    assert torch.allclose(d.score(teachers), again.score(teachers), atol=1e-5)


def test_reward_is_zero_during_the_discriminator_warmup(tiny_student: Path) -> None:
    d = _discriminator(tiny_student)
    reward = GadReward(d, lambda prompt: [TEACHER], warmup_steps=1)
    logged: dict[str, float] = {}

    class State:
        global_step = 0

    prompts = [PROMPT, PROMPT]
    completions = [[{"role": "assistant", "content": s}] for s in STUDENTS]
    warm = reward(prompts, completions, trainer_state=State(), log_metric=logged.__setitem__)
    assert warm == [0.0, 0.0] and logged["gad/warmup"] == 1.0
    assert d.updates == 1 and "gad/discriminator_loss" in logged
    State.global_step = 1
    scored = reward(prompts, completions, trainer_state=State(), log_metric=logged.__setitem__)
    expected = d.score([d.text(PROMPT, s) for s in STUDENTS]).tolist()
    assert d.updates == 2 and logged["gad/warmup"] == 0.0
    # the reward is the score before this step's update (the update came after scoring)
    assert scored != pytest.approx(expected, abs=1e-7)
    # evaluation scores without training the discriminator
    reward.training = lambda: False
    reward(prompts, completions, trainer_state=State())
    assert d.updates == 2


# -- config and dry run -------------------------------------------------------------------------


def test_gad_config_defaults_and_dry_run_line(tiny_student: Path, tmp_path: Path) -> None:
    from ropd.train.preflight import gad_line, readiness_problems

    overrides = {"ropd.method": "gad", "ropd.student": str(tiny_student),
                 "ropd.teacher.store": str(tmp_path / "t.sqlite"),
                 "ropd.teacher.build_missing": True}  # fmt: skip
    config = load_config(None, overrides)
    gad = config.ropd.gad
    assert (gad.learning_rate, gad.max_grad_norm, gad.lora) == (1e-6, 0.2, True)
    assert gad.warmup_discriminator_steps == 10 and gad.warmup_sft_steps == 0
    assert type(config.trl_args()).__name__ == "GRPOConfig"
    assert config.ropd.needs_teacher_store
    line = gad_line(config)
    assert f"discriminator on {tiny_student} (the student)" in line
    assert "M parameters" in line and "K=4 teacher answers" in line and "no judge" in line
    assert readiness_problems(config, probe=False) == []
    assert "does not move" not in line
    short = load_config(None, {**overrides, "max_steps": 10})
    assert "(all of max_steps=10: the student does not move)" in gad_line(short)
    bad = load_config(None, {**overrides, "ropd.gad.discriminator_checkpoint": str(tmp_path)})
    (problem,) = readiness_problems(bad, probe=False)
    assert "ropd.gad.discriminator_checkpoint" in problem
    with pytest.raises(Exception, match="teacher store"):
        load_config(None, {"ropd.method": "gad"})


def test_gad_from_yaml_with_line_numbered_errors(tmp_path: Path) -> None:
    text = (
        "learning_rate: 1.0e-6\n"
        "num_generations: 8\n"
        "ropd:\n"
        "  method: gad\n"
        "  teacher: {store: t.sqlite, build_missing: true, num_answers: 1}\n"
        "  gad:\n"
        "    lora: false\n"
        "    learning_rate: 1.0e-5\n"
        "    warmup_sft_steps: 800\n"
    )
    path = tmp_path / "gad.yaml"
    path.write_text(text)
    config = load_config(path)
    gad = config.ropd.gad
    assert (gad.lora, gad.learning_rate, gad.warmup_sft_steps) == (False, 1e-5, 800)
    assert config.ropd.k == 1
    path.write_text(text.replace("lora: false", "lora_rank: 8"))
    with pytest.raises(Exception, match=r"gad.yaml:7.*lora_rank"):
        load_config(path)


def test_dry_run_names_the_discriminator(tiny_student: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ropd.cli import app

    result = CliRunner().invoke(
        app,
        ["train", "--method", "gad", "--dry-run", "--no-probe",
         "--set", f"ropd.student={tiny_student}",
         "--set", f"ropd.teacher.store={tmp_path / 't.sqlite'}",
         "--set", "ropd.teacher.build_missing=true",
         "--set", f"output_dir={tmp_path / 'out'}"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "method      gad  (TRL GRPOConfig)" in result.output
    assert "discriminator on" in result.output and "Bradley-Terry" in result.output


# -- real training on the tiny model ------------------------------------------------------------


def _overrides(tiny_overrides: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        **tiny_overrides,
        "ropd.method": "gad",
        "ropd.teacher.num_answers": 1,
        "ropd.gad.learning_rate": 1e-3,
        "ropd.gad.warmup_discriminator_steps": 1,
        "ropd.gad.lora_r": 4,
        "ropd.gad.lora_alpha": 8,
        "learning_rate": 1e-3,
        **extra,
    }


def step_logs(checkpoint: Path) -> list[dict[str, float]]:
    state = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    return [entry for entry in state["log_history"] if "gad/discriminator_loss" in entry]


def test_gad_trains_two_steps_and_resumes(
    tiny_overrides: dict[str, Any], tiny_student: Path, scripted_client
) -> None:
    from tests.train.test_methods import changed

    config = load_config(None, _overrides(tiny_overrides))
    report = run(config, client=scripted_client)
    assert report.global_step == 2 and report.traces is None
    assert [p.name for p in report.checkpoints] == ["checkpoint-1", "checkpoint-2"]
    first, second = step_logs(report.checkpoints[-1])
    assert first["gad/warmup"] == 1.0 and second["gad/warmup"] == 0.0
    # step 1 is the discriminator's warm-up: every reward is 0, so GRPO has nothing to follow
    assert first["reward"] == 0.0 and second["reward"] != 0.0
    assert 0.0 <= second["gad/pair_accuracy"] <= 1.0
    assert changed(tiny_student, report.final_model)
    for folder in (*report.checkpoints, report.final_model):
        state = json.loads((folder / DISCRIMINATOR_DIR / "gad_state.json").read_text())
        assert state["base_model"] == str(tiny_student)
    saved = json.loads((report.checkpoints[0] / DISCRIMINATOR_DIR / "gad_state.json").read_text())
    assert saved["updates"] == 1
    # resume: the discriminator of checkpoint-2 continues (2 updates before, 3 after)
    resumed = run(load_config(None, _overrides(tiny_overrides, max_steps=3)), resume=True)
    assert resumed.global_step == 3 and resumed.run_id == report.run_id
    final = json.loads((resumed.final_model / DISCRIMINATOR_DIR / "gad_state.json").read_text())
    assert final["updates"] == 3


def test_gad_warmup_sft_precedes_the_adversarial_stage(
    tiny_overrides: dict[str, Any], tiny_student: Path, scripted_client
) -> None:
    from tests.train.test_methods import changed

    overrides = _overrides(tiny_overrides, max_steps=1)
    overrides["ropd.gad.warmup_sft_steps"] = 1
    report = run(load_config(None, overrides), client=scripted_client)
    warmed = report.output_dir / "warmup-sft" / "final"
    assert (warmed / "model.safetensors").is_file()
    assert changed(tiny_student, warmed)  # SFT moved the student before GRPO started
    assert report.global_step == 1
    args = torch.load(report.checkpoints[-1] / "training_args.bin", weights_only=False)
    assert args.max_steps == 1
    # the adversarial stage started from the warmed-up student (the model card names it)
    assert f"`{warmed}` (a local model folder)" in (report.final_model / "README.md").read_text()
