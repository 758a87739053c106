"""Config validation: TRL fields against the real dataclasses, the ropd section, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ropd.config_file import parse_override
from ropd.errors import ConfigError
from ropd.train.config import load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_unknown_trl_field_names_file_line_and_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, "learning_rate: 1.0e-6\nnum_generation: 8\nropd:\n  student: x\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, check_paths=False)
    message = str(err.value)
    assert f"{path}:2" in message
    assert "'num_generation'" in message
    assert "did you mean 'num_generations'" in message


def test_unknown_ropd_field_and_wrong_type(tmp_path: Path) -> None:
    path = write(tmp_path, "ropd:\n  method: ropd\n  scorer:\n    blindd: true\n")
    with pytest.raises(ConfigError, match=r"cfg.yaml:4: field 'ropd.scorer.blindd'"):
        load_config(path, check_paths=False)
    path = write(tmp_path, "learning_rate: fast\n")
    with pytest.raises(ConfigError, match=r"cfg.yaml:1: field 'learning_rate'.*'fast'"):
        load_config(path, check_paths=False)
    path = write(tmp_path, "ropd:\n  gate:\n    threshold: 2\n")
    with pytest.raises(ConfigError, match=r"cfg.yaml:3: field 'ropd.gate.threshold'"):
        load_config(path, check_paths=False)
    path = write(tmp_path, "ropd:\n  method: ppo\n")
    with pytest.raises(ConfigError, match=r"cfg.yaml:2: field 'ropd.method'"):
        load_config(path, check_paths=False)


def test_missing_teacher_store_is_an_error_unless_built(tmp_path: Path) -> None:
    path = write(tmp_path, f"ropd:\n  teacher:\n    store: {tmp_path / 'nope.sqlite'}\n")
    with pytest.raises(ConfigError, match=r"cfg.yaml:3: field 'ropd.teacher.store'.*does not"):
        load_config(path)
    config = load_config(path, {"ropd.teacher.build_missing": True})
    assert config.ropd.teacher.build_missing
    with pytest.raises(ConfigError, match="needs a teacher store path"):
        load_config(None)
    # K = 0 (the ablation without references) and LOPD need no store
    assert load_config(None, {"ropd.scorer.num_teacher_refs": 0}).method == "ropd"


def test_overrides_and_command_line_location(tmp_path: Path) -> None:
    assert parse_override("ropd.scorer.blind=false") == ("ropd.scorer.blind", False)
    assert parse_override("learning_rate=1e-5") == ("learning_rate", 1e-5)
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("learning_rate")
    base = {"ropd.scorer.num_teacher_refs": 0}
    config = load_config(None, {**base, "ropd.scorer.blind": False, "max_steps": 3})
    assert config.ropd.scorer.blind is False
    assert config.trl["max_steps"] == 3
    with pytest.raises(ConfigError, match="overridden on the command line"):
        load_config(None, {**base, "max_steps": "many"})


def test_fields_of_other_trainers_are_dropped_not_misused(tmp_path: Path) -> None:
    path = write(tmp_path, "beta: 0.0\nnum_generations: 8\nlearning_rate: 1.0e-5\n")
    lopd = load_config(path, {"ropd.method": "lopd", "ropd.lopd.teacher_model": "t"})
    assert lopd.trl["beta"] == 1.0  # reverse KL, not GRPO's KL coefficient of 0
    assert "num_generations" in lopd.dropped and "beta" in lopd.dropped
    assert lopd.trl["learning_rate"] == 1e-5
    args = lopd.trl_args()
    assert type(args).__name__ == "DistillationConfig" and args.beta == 1.0
    grpo = load_config(path, {"ropd.scorer.num_teacher_refs": 0})
    assert grpo.trl["beta"] == 0.0 and type(grpo.trl_args()).__name__ == "GRPOConfig"
    override = load_config(
        path,
        {
            "ropd.method": "lopd",
            "ropd.lopd.teacher_model": "t",
            "ropd.trl_overrides": {"lopd": {"beta": 0.5}},
        },
    )
    assert override.trl["beta"] == 0.5
    with pytest.raises(ConfigError, match="lopd baseline needs a white-box teacher"):
        load_config(path, {"ropd.method": "lopd"})


def test_trl_own_checks_run_before_training(tmp_path: Path) -> None:
    config = load_config(
        None,
        {"ropd.scorer.num_teacher_refs": 0, "per_device_train_batch_size": 3, "num_generations": 2},
    )
    with pytest.raises(ConfigError, match="TRL rejected"):
        config.trl_args()


@pytest.mark.parametrize("name", ["embedded.yaml", "paper-math.yaml"])
def test_examples_validate(name: str) -> None:
    config = load_config(EXAMPLES / name, check_paths=False)
    args = config.trl_args()
    assert config.method == "ropd"
    if name == "paper-math.yaml":
        assert (args.learning_rate, args.num_generations, args.beta) == (1e-6, 8, 0.0)
        assert (args.epsilon, args.epsilon_high, args.loss_type) == (0.2, 0.28, "dapo")
        assert args.temperature == 1.0 and args.num_train_epochs == 1
        prompts_per_step = (
            args.per_device_train_batch_size
            * args.gradient_accumulation_steps
            // args.num_generations
        )
        assert prompts_per_step == 32
        assert config.ropd.scorer.num_teacher_refs == 4


def test_cli_bad_config_fails_before_any_model_loads(tmp_path: Path) -> None:
    from ropd.cli import app

    # the student does not exist: had anything tried to load it, that would be the error
    path = write(
        tmp_path, "learning_rate: 1.0e-6\nwarmup_ratioo: 0.1\nropd:\n  student: /no/such/model\n"
    )
    result = CliRunner().invoke(app, ["train", "--config", str(path)])
    assert result.exit_code == 2
    assert "cfg.yaml:2" in result.output and "warmup_ratioo" in result.output
    assert "/no/such/model" not in result.output
    # the paper's setting validates anywhere once what this machine lacks is switched off
    # (vLLM, the key, the GPU server: see test_preflight.py for what is reported otherwise)
    args = ["train", "--config", str(EXAMPLES / "paper-math.yaml"), "--dry-run", "--no-probe"]
    result = CliRunner().invoke(
        app, [*args, "--set", "use_vllm=false"], env={"TEACHER_API_KEY": "any"}
    )
    assert result.exit_code == 0, result.output
    assert "config is valid" in result.output


def test_cli_takes_trl_fields_and_ropd_keys_as_options_of_their_own() -> None:
    """`--learning_rate 1e-5` (TRL's spelling) is `--set learning_rate=1e-5`; typos are refused."""
    from ropd.cli import app

    base = ["train", "--config", str(EXAMPLES / "paper-math.yaml"), "--dry-run", "--no-probe"]
    env = {"TEACHER_API_KEY": "any"}
    fields = ["--use_vllm=false", "--learning_rate", "3e-6", "--ropd.scorer.blind", "false"]
    result = CliRunner().invoke(app, [*base, *fields], env=env)
    assert result.exit_code == 0, result.output
    assert "learning_rate=3e-06" in result.output and "blind=False" in result.output
    # --set still wins over the same field given on its own
    result = CliRunner().invoke(app, [*base, *fields, "--set", "learning_rate=4e-6"], env=env)
    assert result.exit_code == 0 and "learning_rate=4e-06" in result.output, result.output
    # not a field: a usage error naming the closest TRL field or ropd train option
    result = CliRunner().invoke(app, [*base, "--learning_rat", "1e-5"], env=env)
    assert result.exit_code == 2
    assert "--learning_rat" in result.output and "did you mean 'learning_rate'" in result.output
    result = CliRunner().invoke(app, [*base, "--max-step", "3"], env=env)
    assert result.exit_code == 2 and "did you mean '--max-steps'" in result.output
    result = CliRunner().invoke(app, [*base, "--ropd.scorer.blindd", "true"], env=env)
    assert result.exit_code == 2 and "did you mean 'blind'" in result.output
