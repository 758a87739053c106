"""Training fails early and says everything: config errors, missing packages, keys, endpoints.

`--dry-run` runs the real CLI in a subprocess; the runner is called as a library with a student
that does not exist, so any problem found after a model load would show up as that instead.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ropd.errors import ConfigError, JudgeError, JudgeUnavailable
from ropd.llm.local_server import free_port
from ropd.testing import ScriptedChatClient, StubJudgeServer, schema_reply
from ropd.train.config import load_config
from ropd.train.data import load_prompts
from ropd.train.preflight import readiness_problems
from ropd.train.runner import prepare_teacher, run

NO_STUDENT = "/no/such/student-model"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def dry_run(path: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    base = {k: v for k, v in os.environ.items() if not k.startswith("ROPD_TEST")}
    return subprocess.run(
        [sys.executable, "-m", "ropd", "train", "--config", str(path), "--dry-run", *args],
        capture_output=True,
        text=True,
        env={**base, "COLUMNS": "300", **(env or {})},
        timeout=300,
        check=False,
    )


def judged(url: str, model: str = "stub", key: str | None = None) -> str:
    key_line = f", api_key_env: {key}" if key else ""
    return f"{{base_url: '{url}', model: {model}{key_line}}}"


# -- --dry-run ------------------------------------------------------------------------------------


def test_dry_run_reports_every_problem_of_the_machine_at_once(tmp_path: Path) -> None:
    if importlib.util.find_spec("vllm") or importlib.util.find_spec("wandb"):
        pytest.skip("vllm or wandb is installed here: nothing to report")
    dead = f"http://127.0.0.1:{free_port()}/v1"
    path = write(
        tmp_path,
        f"use_vllm: true\nreport_to: [wandb]\nropd:\n  student: {NO_STUDENT}\n"
        f"  teacher:\n    store: {tmp_path / 't.db'}\n    build_missing: true\n"
        f"    role: {judged(dead, 'teacher-model', 'ROPD_TEST_TEACHER_KEY')}\n"
        f"  scorer:\n    judge: {judged(dead, 'judge-model', 'ROPD_TEST_JUDGE_KEY')}\n",
    )
    done = dry_run(path, env={"ROPD_TEST_JUDGE_KEY": "judge-key-123"})
    assert done.returncode == 2, done.stdout + done.stderr
    err = done.stderr
    assert "cannot run on this machine as it is (4 problems)" in err
    assert "field 'use_vllm': true needs vllm: pip install vllm" in err
    assert "field 'report_to': wandb is not installed: pip install wandb" in err
    assert "environment variable ROPD_TEST_TEACHER_KEY is not set (role teacher" in err
    port = dead.split(":")[2].split("/")[0]
    assert f"roles rubricator, verifier (model judge-model at 127.0.0.1:{port}" in err
    assert f"nothing answers at 127.0.0.1:{port}" in err
    assert "judge-key-123" not in err + done.stdout
    assert "config is valid" not in done.stdout


def test_dry_run_passes_when_the_endpoint_serves_the_model(tmp_path: Path) -> None:
    with StubJudgeServer(latency_s=0.0, models=["served-judge"]) as stub:
        text = (
            f"report_to: none\nropd:\n  student: {NO_STUDENT}\n  scorer:\n"
            f"    num_teacher_refs: 0\n    judge: {judged(stub.base_url, 'served-judge')}\n"
        )
        done = dry_run(write(tmp_path, text))
        assert done.returncode == 0, done.stderr
        assert "config is valid and this machine can run it" in done.stdout
        assert stub.models_requests == 1 and stub.requests == 0


def test_a_model_the_endpoint_does_not_serve_and_no_probe(tmp_path: Path) -> None:
    with StubJudgeServer(latency_s=0.0, models=["served-judge"]) as stub:
        overrides = {
            "report_to": "none",
            "ropd.student": NO_STUDENT,
            "ropd.scorer.num_teacher_refs": 0,
            "ropd.scorer.judge": {"base_url": stub.base_url, "model": "gpt-4o"},
        }
        config = load_config(None, overrides)
        problems = readiness_problems(config)
        assert len(problems) == 1
        assert "model gpt-4o is not served at 127.0.0.1" in problems[0]
        assert "(it serves: served-judge)" in problems[0]
        assert readiness_problems(config, probe=False) == []
        assert stub.models_requests == 1


def test_used_roles_only(tmp_path: Path) -> None:
    """The judge of another method is not probed or key-checked (one file serves every method)."""
    overrides = {
        "report_to": "none",
        "ropd.student": NO_STUDENT,
        "ropd.method": "lopd",
        "ropd.lopd.teacher_model": NO_STUDENT,
        "ropd.scorer.judge": {
            "base_url": "http://127.0.0.1:9/v1",
            "model": "m",
            "api_key_env": "ROPD_TEST_UNSET",
        },
    }
    assert readiness_problems(load_config(None, overrides)) == []


# -- config errors: all of them in one run --------------------------------------------------------


def test_every_config_error_is_reported_in_one_run(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "learning_rate: fast\n"  # 1: TRL type
        "num_generation: 8\n"  # 2: unknown TRL field
        "ropd:\n"
        "  scorer:\n"
        "    blindd: true\n"  # 5: unknown ropd field
        "  gate:\n"
        "    threshold: 2\n"  # 7: out of range
        "  teacher:\n"
        "    role: {model: gpt-4o-mini}\n",  # 9: a model without an endpoint
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, check_paths=False)
    lines = str(info.value).splitlines()
    assert lines[0] == f"5 problems in {path}:"
    for number, field in [(1, "learning_rate"), (2, "num_generation"),
                          (5, "ropd.scorer.blindd"), (7, "ropd.gate.threshold"),
                          (9, "ropd.teacher.role.model")]:  # fmt: skip
        assert any(f"cfg.yaml:{number}: field '{field}'" in line for line in lines), field
    assert [int(line.split(":")[1]) for line in lines[1:]] == [1, 2, 5, 7, 9]  # file order


def test_a_model_without_an_endpoint_needs_base_url_local(tmp_path: Path) -> None:
    base = {"ropd.scorer.num_teacher_refs": 0}
    path = write(tmp_path, "ropd:\n  scorer:\n    judge: {model: gpt-4o}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, base)
    message = str(info.value)
    assert message.count("needs a base_url") == 1  # the judge's mistake, once, at its line
    assert "cfg.yaml:3: field 'ropd.scorer.judge.model': model 'gpt-4o' needs a base_url" in message
    assert "base_url: local" in message
    path = write(tmp_path, "ropd:\n  scorer:\n    judge: {base_url: local}\n")
    config = load_config(path, base)
    assert config.ropd.scorer.rubricator.base_url is None  # the embedded model, on purpose
    assert load_config(None, {**base, "ropd.scorer.judge": {"model": "local"}}).method == "ropd"
    overrides = {**base, "ropd.tjudge.judge": {"model": "gpt-4o"}}
    with pytest.raises(ConfigError, match="'ropd.tjudge.judge.model': model 'gpt-4o' needs"):
        load_config(None, overrides)


# -- the runner -----------------------------------------------------------------------------------


def test_run_fails_on_a_dead_judge_before_loading_anything(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    config = load_config(
        None,
        {
            "output_dir": str(tmp_path / "out"),
            "report_to": "none",
            "ropd.student": NO_STUDENT,
            "ropd.scorer.num_teacher_refs": 0,
            "ropd.scorer.judge": {"base_url": dead, "model": "m"},
        },
    )
    with pytest.raises(ConfigError) as info:
        run(config)
    assert "nothing answers at 127.0.0.1" in str(info.value)
    assert NO_STUDENT not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_run_reports_the_unreachable_teacher_not_no_usable_answers(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    with StubJudgeServer(latency_s=0.0) as stub:
        config = load_config(
            None,
            {
                "output_dir": str(tmp_path / "out"),
                "report_to": "none",
                "ropd.student": NO_STUDENT,
                "ropd.data.limit": 2,
                "ropd.teacher.store": str(tmp_path / "teacher.sqlite"),
                "ropd.teacher.build_missing": True,
                "ropd.teacher.role": {"base_url": dead, "model": "teacher-model"},
                "ropd.scorer.judge": {"base_url": stub.base_url, "model": "stub"},
            },
        )
        with pytest.raises(JudgeUnavailable) as info:
            run(config)
    message = str(info.value)
    assert "role teacher (model teacher-model" in message and "nothing answers" in message
    assert "no usable answers" not in message


def test_prepare_teacher_reports_what_the_teacher_said(tmp_path: Path) -> None:
    def down(messages: Any, schema: Any) -> str:
        raise JudgeError("teacher endpoint said: quota exhausted")

    overrides = {
        "ropd.data.limit": 2,
        "ropd.teacher.store": str(tmp_path / "teacher.sqlite"),
        "ropd.teacher.build_missing": True,
        "ropd.teacher.num_answers": 1,
    }
    config = load_config(None, overrides)
    prompts = load_prompts(config.ropd.data)
    with pytest.raises(JudgeError) as info:
        prepare_teacher(config, prompts, ScriptedChatClient({"teacher": down}))
    message = str(info.value)
    assert "has no usable answers" in message and "quota exhausted" in message
    assert "set ropd.teacher.build_missing: true" not in message  # it is true already

    def empty(messages: Any, schema: Any) -> str:
        return ""

    with pytest.raises(JudgeError, match=r"gave no usable answer \(it answered \d+ empty\)"):
        prepare_teacher(config, prompts, ScriptedChatClient({"teacher": empty}))
    store = prepare_teacher(config, prompts, ScriptedChatClient({"teacher": schema_reply}))
    store.close()


def test_a_config_that_starts_but_would_not_finish_on_a_cpu_says_so() -> None:
    from ropd.train.preflight import cpu_warnings

    big = load_config(
        None,
        {"ropd.student": "Qwen/Qwen3-4B", "max_completion_length": 8192, "bf16": True,
         "ropd.scorer.num_teacher_refs": 0},
        check_paths=False,
    )  # fmt: skip
    warnings = cpu_warnings(big, has_gpu=False)
    assert len(warnings) == 3
    assert "Qwen/Qwen3-4B (4B parameters)" in warnings[0] and "8192 tokens" in warnings[1]
    assert cpu_warnings(big, has_gpu=True) == []
    demo = load_config(None, {"ropd.scorer.num_teacher_refs": 0}, check_paths=False)
    assert cpu_warnings(demo, has_gpu=False) == []  # the embedded 135M student is fine
