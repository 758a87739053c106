"""The launch scripts of examples/verl pass verl's own config validation, as shipped.

Each script runs for real (its `ropd verl prepare-data` call on the bundled sample, with a small
teacher store), with `LAUNCH` set to a recorder instead of verl's trainer: the recorded argv is
exactly what `python -m verl.trainer.main_ppo` would get. Those overrides are composed with
verl's `ppo_trainer` Hydra config and checked by the functions verl's `main` calls before Ray
starts (`validate_config`, `need_reference_policy`, `need_critic`), so a renamed or missing key
fails here rather than on a cluster. No Ray, no GPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("verl")

import pyarrow.parquet as pq
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, InstantiationException
from verl.trainer.ppo.utils import need_critic, need_reference_policy
from verl.utils.config import validate_config

from ropd.integrations.verl.settings import VerlSettings
from ropd.llm.config import RoleConfig
from ropd.llm.types import Completion
from ropd.teacher import TeacherFingerprint, TeacherStore

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "src" / "ropd" / "data" / "sample_math.jsonl"
RECIPES = {
    "paper-math.sh": "sync",
    "paper-math-async.sh": "colocate_async",
    "judge-on-verl.sh": "sync",
}
# the ropd config each recipe hands the reward manager
ROPD_CONFIGS = {"judge-on-verl.sh": "examples/verl/ropd-judge-on-verl.yaml"}
VAL_SIZE = 8
K = 4  # scorer.num_teacher_refs of examples/verl/ropd.yaml
# keys verl's validate_config refuses to go without (no dynamic batch size in the recipes)
REQUIRED = [
    "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu",
]
RECORDER = (
    "import json, os, sys\n"
    "with open(os.environ['RECORD_ARGV'], 'w') as f:\n"
    "    json.dump(sys.argv[1:], f)\n"
)


@dataclass(frozen=True)
class Launch:
    """What a recipe would hand verl's trainer, and where it wrote its data."""

    recipe: str
    overrides: list[str]
    run: Path


def sample_prompts() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]


def build_teacher_store(path: Path) -> Path:
    """K teacher answers for every sample prompt, under the default teacher fingerprint."""
    fingerprint = TeacherFingerprint.from_role(RoleConfig(name="teacher"))
    with TeacherStore(path) as store:
        for record in sample_prompts():
            messages = [{"role": "user", "content": record["prompt"]}]
            answers = [Completion(f"{record['answer']} (way {i})", "stop") for i in range(K)]
            store.add_answers(messages, fingerprint, answers)
    return path


def run_recipe(recipe: str, folder: Path) -> Launch:
    """Run the script as a user would, its trainer replaced by the argv recorder."""
    recorder = folder / "record_argv.py"
    recorder.write_text(RECORDER, encoding="utf-8")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"MODE", "NAME", "ROPD_CONFIG", "NODES", "GPUS", "RUN"}
        and not key.startswith("JUDGE_")
    }
    run = folder / "run"
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # its `ropd`
        "DATA": str(SAMPLE),
        "TEACHER_STORE": str(build_teacher_store(folder / "teacher.sqlite")),
        "VAL_SIZE": str(VAL_SIZE),
        "RUN": str(run),
        "LAUNCH": f"{sys.executable} {recorder}",
        "RECORD_ARGV": str(folder / "argv.json"),
    }
    done = subprocess.run(
        ["bash", str(REPO / "examples" / "verl" / recipe)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    overrides = json.loads((folder / "argv.json").read_text(encoding="utf-8"))
    return Launch(recipe, overrides, run)


@pytest.fixture(scope="module", params=list(RECIPES))
def launch(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Launch:
    return run_recipe(request.param, tmp_path_factory.mktemp(request.param.removesuffix(".sh")))


def compose_config(overrides: list[str]) -> Any:
    """verl's `ppo_trainer` config with the overrides, composed as verl's `main` does."""
    import verl

    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


def validate(config: Any) -> None:
    """The checks verl's `main_ppo.main` runs before it starts Ray."""
    validate_config(
        config=config,
        use_reference_policy=need_reference_policy(config),
        use_critic=need_critic(config),
    )


def key_of(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def without(overrides: list[str], key: str) -> list[str]:
    kept = [o for o in overrides if key_of(o) != key]
    assert len(kept) == len(overrides) - 1, f"the recipe does not set {key}"
    return kept


def test_recipe_passes_verls_config_validation(
    launch: Launch, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = [key_of(o) for o in launch.overrides]
    assert len(keys) == len(set(keys)), "a key set twice: one of the values is silently lost"
    config = compose_config(launch.overrides)
    validate(config)

    # V1 trainer in the recipe's mode, validation on its own file
    assert config.trainer.use_v1 is True
    assert config.trainer.v1.trainer_mode == RECIPES[launch.recipe]
    assert config.data.train_files == str(launch.run / "train.parquet")
    assert config.data.val_files == str(launch.run / "val.parquet")
    assert not need_critic(config) and not need_reference_policy(config)  # GRPO, no KL
    if launch.recipe == "paper-math-async.sh":
        assert config.trainer.v1.sampler.max_off_policy_threshold == 1

    # the reward side reads the shipped ropd.yaml (relative to the repository, as the script runs)
    monkeypatch.chdir(REPO)
    settings = VerlSettings.from_verl_config(config, "10.0.0.1:30000")
    assert settings.config_path == ROPD_CONFIGS.get(launch.recipe, "examples/verl/ropd.yaml")
    assert settings.section.k == K
    assert (settings.group_size, settings.groups_per_step) == (8, 32)
    assert settings.warnings() == []  # enough concurrency, validation on its own rows
    servers = settings.judge_servers
    if launch.recipe == "judge-on-verl.sh":  # two replicas of the judge (8 GPUs, tensor parallel 4)
        assert servers is not None and (servers.replicas, servers.max_in_flight) == (2, 512)
        assert all(role.on_verl for role in settings.section.judge_roles())
    else:
        assert servers is None


def test_recipe_trains_and_validates_on_disjoint_prompts(launch: Launch) -> None:
    train = pq.read_table(launch.run / "train.parquet").to_pylist()
    val = pq.read_table(launch.run / "val.parquet").to_pylist()
    assert len(val) == VAL_SIZE
    assert {row["extra_info"]["split"] for row in train} == {"train"}
    assert {row["extra_info"]["split"] for row in val} == {"val"}
    train_ids = {row["extra_info"]["id"] for row in train}
    val_ids = {row["extra_info"]["id"] for row in val}
    assert not train_ids & val_ids
    assert train_ids | val_ids == {record["id"] for record in sample_prompts()}
    # the K teacher answers are in every row, validation rows too
    assert all(len(row["extra_info"]["teacher_responses"]) == K for row in train + val)


@pytest.mark.parametrize("key", REQUIRED)
def test_validation_fails_without_a_required_key(launch: Launch, key: str) -> None:
    config = compose_config(without(launch.overrides, key))
    # verl builds the actor's dataclass through Hydra, which wraps its refusal
    refusals = (AssertionError, ValueError, InstantiationException)
    with pytest.raises(refusals, match=key.rsplit(".", 1)[-1]):
        validate(config)


def test_a_renamed_key_fails_composition(launch: Launch) -> None:
    key = "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu"
    renamed = [*without(launch.overrides, key), f"{key.replace('_per_gpu', '_per_device')}=1"]
    with pytest.raises(ConfigCompositionException):
        compose_config(renamed)
