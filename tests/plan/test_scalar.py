"""The plan of the scalar judges (T-Judge, OVD) against numbers worked out by hand, and as
`ropd plan` prints it.

The stand-in counter of test_arithmetic.py makes every judge prompt 1,000 tokens, so each figure
follows from the config alone; the derivation is written beside each expected number. The small
config is 4 groups a step, 8 a reward call, G = 4, 10 steps, limit 12 requests a minute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.inprocess import ropd_in_process
from tests.plan.test_arithmetic import ThousandCounter

from ropd.plan.build import PlanOptions, build_plan
from ropd.plan.render import render_text
from ropd.train.config import load_config

TJUDGE = """\
  tjudge:
    num_references: 2
    judge:
      base_url: http://127.0.0.1:9/v1
      model: judge-model
      max_tokens: 500
      price: {input_per_mtok: 2.0, output_per_mtok: 10.0}
"""
OVD = """\
  ovd:
    per_call: {per_call}
    judge:
      base_url: http://127.0.0.1:9/v1
      model: teacher-model
      max_tokens: 500
      price: {{input_per_mtok: 1.0, output_per_mtok: 4.0}}
"""


def with_method(path: Path, method: str, section: str) -> Path:
    """The small config switched to `method`, with `section` added to its `ropd:` section."""
    text = path.read_text().replace("  method: ropd\n", f"  method: {method}\n")
    path.write_text(text.replace("  limits:\n", section + "  limits:\n"))
    return path


def plan_of(path: Path) -> Any:
    config = load_config(path, check_paths=False)
    options = PlanOptions(latency_s=20, prefill_tps=1000, decode_tps=100)
    return build_plan(config, options, counter=ThousandCounter())


def test_tjudge_matches_the_hand_computed_example(small_config: Path) -> None:
    plan = plan_of(with_method(small_config, "tjudge", TJUDGE))
    shape = plan.shape
    assert (shape.k, shape.pool, shape.rubric_mode, shape.criteria) == (2, 1, "none", 0)
    (judge,) = plan.judge
    assert judge.role == "tjudge" and judge.model == "judge-model"
    # 4 answers, one call each of 1,000 tokens; ~160 tokens of reasoning and score each
    assert judge.per_group.model_dump() == {
        "calls": 4, "input_tokens": 4000, "output_expected": 640, "output_bound": 2000,
    }  # fmt: skip
    assert judge.per_step.calls == 16  # x 4 groups a step
    assert judge.per_run is not None and judge.per_run.input_tokens == 160_000  # x 40 groups
    assert judge.cost_per_step is not None
    assert judge.cost_per_step.expected == pytest.approx(0.0576)  # 16000x2 + 2560x10, /1e6
    assert judge.cost_per_step.bound == pytest.approx(0.112)  # 16000x2 + 8000x10

    t = plan.throughput
    assert t is not None
    assert t.model_dump(include={"phases", "window_s", "requests", "requests_per_minute",
                                 "tokens", "in_flight", "judge_seconds_at_limits"}) == {
        "phases": 1, "window_s": 20,  # all calls at once: one latency of 20 s
        "requests": 32, "in_flight": 32,  # 8 groups x 4 answers
        "requests_per_minute": 96,  # 32 in 20 s
        "tokens": 37120,  # 8 x (4000 + 640)
        "judge_seconds_at_limits": 160,  # 32 requests at 12 a minute
    }  # fmt: skip
    assert t.limited_by == ["requests_per_minute"]

    h = plan.self_hosted
    assert h is not None
    assert h.gpu_seconds == pytest.approx(83.2)  # 32000 / 1000 + 5120 / 100
    assert h.gpus == 5  # 83.2 GPU-s within one latency of 20 s

    b = plan.teacher_build  # K = 2 references a prompt, none stored yet
    assert b is not None and (b.prompts_missing, b.answers_missing) == (3, 6)
    assert b.output_tokens == 1800  # 6 answers of the teacher role's max_tokens 300


def test_ovd_one_call_per_answer_matches_the_hand_computed_example(small_config: Path) -> None:
    plan = plan_of(with_method(small_config, "ovd", OVD.format(per_call="one")))
    assert (plan.shape.k, plan.shape.pool, plan.shape.per_call) == (0, 1, "one")
    (judge,) = plan.judge
    assert judge.role == "ovd"
    # 4 calls of 1,000 tokens, ~8 tokens a score
    assert judge.per_group.model_dump() == {
        "calls": 4, "input_tokens": 4000, "output_expected": 32, "output_bound": 2000,
    }  # fmt: skip
    assert judge.cost_per_step is not None
    assert judge.cost_per_step.expected == pytest.approx(0.016512)  # 16000x1 + 128x4, /1e6
    t = plan.throughput
    assert t is not None and (t.window_s, t.requests, t.in_flight) == (20, 32, 32)
    assert t.tokens == 32256  # 8 x (4000 + 32)
    assert plan.self_hosted is not None
    assert plan.self_hosted.gpu_seconds == pytest.approx(34.56)  # 32000/1000 + 256/100
    assert plan.self_hosted.gpus == 2
    assert plan.teacher_build is None  # OVD reads no teacher answers


def test_ovd_one_call_per_group_matches_the_hand_computed_example(small_config: Path) -> None:
    plan = plan_of(with_method(small_config, "ovd", OVD.format(per_call="group")))
    assert (plan.shape.pool, plan.shape.per_call) == (4, "group")
    (judge,) = plan.judge
    # one call of 1,000 tokens scoring the 4 answers, ~8 tokens a score
    assert judge.per_group.model_dump() == {
        "calls": 1, "input_tokens": 1000, "output_expected": 32, "output_bound": 500,
    }  # fmt: skip
    t = plan.throughput
    assert t is not None
    assert (t.requests, t.in_flight, t.tokens) == (8, 8, 8256)  # 8 groups x (1000 + 32)
    assert t.judge_seconds_at_limits == pytest.approx(40)  # 8 requests at 12 a minute
    assert plan.self_hosted is not None and plan.self_hosted.gpus == 1  # 10.56 GPU-s in 20 s


def test_expected_output_never_passes_max_tokens(small_config: Path) -> None:
    path = with_method(small_config, "tjudge", TJUDGE.replace("max_tokens: 500", "max_tokens: 100"))
    (judge,) = plan_of(path).judge
    assert judge.per_group.output_expected == 400  # 4 calls at the bound 100, not 160


def test_a_group_prompt_over_the_window_is_a_would_fail_note(small_config: Path) -> None:
    section = OVD.format(per_call="group").replace(
        "      max_tokens: 500\n", "      max_tokens: 100\n      context_window: 1000\n"
    )
    config = load_config(with_method(small_config, "ovd", section), check_paths=False)
    # 4 answers of 400 tokens in one prompt cannot fit 1,000 tokens; 4 of 100 can
    plan = build_plan(config, PlanOptions(answer_tokens=400))
    assert any(n.startswith("would fail: a ovd prompt of") for n in plan.notes), plan.notes
    alone = build_plan(config, PlanOptions(answer_tokens=100))
    assert not any(n.startswith("would fail") for n in alone.notes)


def test_the_shape_and_assumptions_speak_of_the_method(small_config: Path) -> None:
    text = "\n".join(render_text(plan_of(with_method(small_config, "ovd",
                                                      OVD.format(per_call="group")))))  # fmt: skip
    assert "all 4 scored 0-9 in one teacher call per group" in text
    assert "verified per rubric" not in text and "rubrics of" not in text
    assert "teacher none" in text
    assert "within 1 x 20 s judge latency; all calls at once" in text
    assert "~8 tokens per score" in text


def test_ropd_plan_prints_an_ovd_plan(small_config: Path) -> None:
    path = with_method(small_config, "ovd", OVD.format(per_call="one"))
    done = ropd_in_process(["plan", "-c", path])
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "method ovd" in out and "(no judge)" not in out
    assert "each scored 0-9 in its own teacher call (no teacher answers, no rubric)" in out
    assert "  ovd (teacher-model;" in out
    assert "judge tokens (counted on 3 rendered group(s)" in out
    for section in ("throughput", "self-hosted judge", "assumptions"):
        assert section in out, section
    assert "teacher build" not in out and "rubricator" not in out
