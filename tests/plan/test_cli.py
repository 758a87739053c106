"""`ropd plan` and the plan printed by `ropd train --dry-run`, and the run folder's plan.json."""

from __future__ import annotations

import json
from pathlib import Path

from tests.inprocess import ropd_in_process

from ropd.plan.files import write_plan_file
from ropd.plan.model import PLAN_FILE, Plan
from ropd.train.config import load_config
from ropd.train.data import load_prompts

SECTIONS = ("judge tokens", "  rubricator", "  verifier", "throughput", "self-hosted judge",
            "teacher build", "assumptions")  # fmt: skip


def test_plan_of_the_embedded_example_prints_every_section() -> None:
    done = ropd_in_process(["plan", "-c", "examples/embedded.yaml"])
    assert done.returncode == 0, done.stderr
    for section in SECTIONS:
        assert section in done.stdout, section
    assert "max_completion_length: the worst case" in done.stdout
    assert "no price set" in done.stdout


def test_plan_json_parses_and_takes_the_flags() -> None:
    args = ["plan", "-c", "examples/embedded.yaml", "--json", "--answer-tokens", "20"]
    done = ropd_in_process([*args, "--steps", "5", "--set", "ropd.scorer.blind=false"])
    assert done.returncode == 0, done.stderr
    plan = Plan.model_validate(json.loads(done.stdout))
    assert plan.shape.answer_tokens == 20
    assert plan.shape.answer_tokens_source == "--answer-tokens"
    assert plan.shape.steps == 5
    assert [r.role for r in plan.judge] == ["rubricator", "verifier"]


def test_a_bad_config_is_refused_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("num_generations: 4\nropd:\n  scorer:\n    min_criteria: zero\n")
    done = ropd_in_process(["plan", "-c", bad])
    assert done.returncode == 2
    assert f"{bad}:4" in done.stderr
    assert "min_criteria" in done.stderr


def test_dry_run_prints_the_plan_when_ready_and_when_not() -> None:
    done = ropd_in_process(["train", "--config", "examples/embedded.yaml", "--dry-run",
                            "--no-probe"])  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "judge tokens" in done.stdout and "throughput" in done.stdout
    unset = ["--set", "ropd.scorer.verifier.base_url=http://127.0.0.1:9/v1",
             "--set", "ropd.scorer.verifier.model=m",
             "--set", "ropd.scorer.verifier.api_key_env=ROPD_PLAN_TEST_NO_SUCH_KEY"]  # fmt: skip
    done = ropd_in_process(
        ["train", "--config", "examples/embedded.yaml", "--dry-run", "--no-probe", *unset]
    )
    assert done.returncode == 2
    assert "ROPD_PLAN_TEST_NO_SUCH_KEY" in done.stderr
    assert "judge tokens" in done.stdout


def test_the_run_folder_gets_plan_json(small_config: Path) -> None:
    config = load_config(small_config, check_paths=False)
    write_plan_file(config, load_prompts(config.ropd.data))
    plan = Plan.model_validate_json((config.output_dir / PLAN_FILE).read_text())
    assert plan.shape.dataset_prompts == 3
    assert plan.judge[0].per_group.calls == 1


def test_methods_without_a_judge_plan_the_teacher_build_only() -> None:
    """SFT, LOPD and ExOPD have no num_generations and no judge: the plan says so, no crash."""
    base = ["plan", "-c", "examples/embedded.yaml", "--json"]
    for extra in (
        ["--set", "ropd.method=sft"],
        ["--set", "ropd.method=lopd", "--set", "ropd.lopd.teacher_model=embedded"],
        ["--set", "ropd.method=exopd", "--set", "ropd.exopd.teacher_model=embedded"],
    ):
        done = ropd_in_process([*base, *extra])
        assert done.returncode == 0, done.stderr
        plan = Plan.model_validate_json(done.stdout)
        assert plan.judge == [] and plan.shape.num_generations == 1
        assert plan.shape.prompts_per_step == 2  # batch 2 x accumulation 1, no groups of G
    text = ropd_in_process(["plan", "-c", "examples/embedded.yaml", "--set", "ropd.method=sft"])
    assert "no judge: the student is trained on K=2 stored teacher answers" in text.stdout
