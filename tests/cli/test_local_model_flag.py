"""`--base-url local` is the embedded model: a model name beside it is refused, not recorded.

Judging with the embedded 135M model while the traces say `gpt-4o` would make every figure of the
run lie about its judge; the flags, the per-role flags and `base_url: local` in a config all stop.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.inprocess import ropd_in_process

from ropd.cli.options import role_from_flags
from ropd.cli.score import role_override
from ropd.errors import InputError
from ropd.llm.config import RoleConfig

ADVICE = "the endpoint that serves gpt-4o"


@pytest.fixture
def groups(tmp_path: Path) -> Path:
    row = {"id": "g1", "prompt": "p", "student_responses": ["a"], "teacher_responses": ["t"]}
    path = tmp_path / "groups.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    return path


def test_role_from_flags_refuses_a_model_name_with_base_url_local():
    with pytest.raises(InputError, match="--base-url local uses the embedded local model") as info:
        role_from_flags("judge", "local", "gpt-4o", None)
    assert "drop --model" in str(info.value) and ADVICE in str(info.value)
    for model in (None, "local", "LOCAL"):  # the embedded model, said either way
        role = role_from_flags("judge", "Local", model, None)
        assert role.base_url is None and role.model == "local"


def test_role_override_refuses_a_model_name_with_its_base_url_local():
    judge = role_from_flags("judge", "http://127.0.0.1:8000/v1", "big", None)
    with pytest.raises(InputError, match="--rubricator-base-url local uses the embedded") as info:
        role_override("rubricator", "local", "gpt-4o", None, judge)
    assert "drop --rubricator-model" in str(info.value)
    assert role_override("rubricator", "local", "local", None, judge) == {
        "base_url": None, "model": "local", "api_key_env": None,
    }  # fmt: skip


@pytest.mark.parametrize(
    "flags",
    [
        ["score", "-o", "out.jsonl", "--base-url", "local", "--model", "gpt-4o"],
        [
            "score",
            "-o",
            "out.jsonl",
            "--rubricator-base-url",
            "local",
            "--rubricator-model",
            "gpt-4o",
        ],
        ["teacher", "build", "--store", "t.db", "--base-url", "local", "--model", "gpt-4o"],
    ],
)
def test_commands_exit_2_before_any_work(flags, groups, tmp_path):
    command = flags[:2] if flags[0] == "teacher" else flags[:1]
    args = [*command, groups, *flags[len(command) :]]
    done = ropd_in_process(args, cwd=tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "local uses the embedded local model, not 'gpt-4o'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "t.db").exists()


def test_a_config_with_base_url_local_and_a_model_name_is_invalid():
    with pytest.raises(ValidationError, match="base_url: local uses the embedded local model"):
        RoleConfig.model_validate({"base_url": "local", "model": "gpt-4o"})
    assert RoleConfig.model_validate({"base_url": "local"}).base_url is None
    assert RoleConfig.model_validate({"base_url": "local", "model": "local"}).model == "local"


def test_a_training_config_names_the_line(tmp_path):
    from ropd.errors import ConfigError
    from ropd.train.config import load_config

    path = tmp_path / "cfg.yaml"
    path.write_text(
        "ropd:\n  scorer:\n    num_teacher_refs: 0\n    judge: {model: gpt-4o, base_url: local}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, {}, check_paths=False)
    assert f"{path}:4: field 'ropd.scorer.judge': base_url: local uses the embedded" in str(
        info.value
    )
