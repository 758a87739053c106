"""The plan's arithmetic against numbers worked out by hand.

Prompts are counted by a stand-in counter (every judge prompt is 1,000 tokens), so each figure
below follows from the config alone; the derivation is written beside each expected number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ropd.plan.build import PlanOptions, build_plan
from ropd.train.config import load_config


class ThousandCounter:
    """Every judge prompt counts 1,000 tokens; text counts 4 characters a token."""

    def text(self, text: str) -> int:
        return max(1, len(text) // 4)

    def messages(self, messages: Any) -> int:
        return 1000


def plan_of(path: Path) -> Any:
    config = load_config(path, check_paths=False)
    options = PlanOptions(latency_s=20, prefill_tps=1000, decode_tps=100)
    return build_plan(config, options, counter=ThousandCounter())


def test_tokens_cost_throughput_and_gpus_match_the_hand_computed_example(
    small_config: Path,
) -> None:
    plan = plan_of(small_config)
    shape = plan.shape
    assert shape.prompts_per_step == 4  # 8 per device x 2 accumulation / G 4
    assert shape.groups_per_reward_call == 8  # 8 per device x 4 steps_per_generation / G 4
    assert (shape.steps, shape.steps_source) == (10, "max_steps")
    assert shape.criteria == 5  # the middle of 4 and 6
    assert shape.pool == 6  # G 4 + K 2
    assert shape.dataset_prompts == 3 and shape.groups_planned == 3

    rubricator, verifier = plan.judge
    # Rubricator: 1 call of 1,000 tokens; output 5 criteria x 40 = 200, bound max_tokens 1000
    assert rubricator.per_group.model_dump() == {
        "calls": 1, "input_tokens": 1000, "output_expected": 200, "output_bound": 1000,
    }  # fmt: skip
    # Verifier: 1 call (no window); output 6 answers x 5 criteria x 8 = 240, bound 500
    assert verifier.per_group.model_dump() == {
        "calls": 1, "input_tokens": 1000, "output_expected": 240, "output_bound": 500,
    }  # fmt: skip
    assert rubricator.per_step.input_tokens == 4000  # x 4 groups a step
    assert verifier.per_run is not None and verifier.per_run.output_expected == 9600  # x 40
    # cost at $2 in / $10 out per million tokens
    assert rubricator.cost_per_step is not None
    assert rubricator.cost_per_step.expected == pytest.approx(0.016)  # 4000x2 + 800x10, /1e6
    assert rubricator.cost_per_step.bound == pytest.approx(0.048)  # 4000x2 + 4000x10
    assert verifier.cost_per_step is not None
    assert verifier.cost_per_step.expected == pytest.approx(0.0176)  # 4000x2 + 960x10
    assert verifier.cost_per_run is not None
    assert verifier.cost_per_run.bound == pytest.approx(0.28)  # 40000x2 + 20000x10

    t = plan.throughput
    assert t is not None
    assert t.window_s == 40  # two latencies of 20 s
    assert t.requests == 16  # 8 groups x (1 + 1)
    assert t.requests_per_minute == pytest.approx(24)  # 16 in 40 s
    assert t.tokens == 19520  # 8 x (1000 + 200 + 1000 + 240)
    assert t.tokens_per_minute == pytest.approx(29280)
    assert t.in_flight == 8
    assert t.judge_seconds_at_limits == pytest.approx(80)  # 16 requests at 12 a minute
    assert t.limited_by == ["requests_per_minute"]

    h = plan.self_hosted
    assert h is not None
    assert h.gpu_seconds == pytest.approx(51.2)  # 16000 / 1000 + 3520 / 100
    assert h.gpus == 2  # 51.2 GPU-s in 40 s

    b = plan.teacher_build
    assert b is not None and not b.store_exists
    assert (b.prompts, b.prompts_missing, b.answers_missing) == (3, 3, 6)
    assert b.answer_tokens == 300  # no store: the teacher role's max_tokens
    # a 30-character prompt: 30 // 4 + 4 + 1 = 12 tokens at 4 characters, x 4/3 = 16
    assert b.input_tokens == 3 * 16
    assert b.output_tokens == 1800
    assert b.cost == pytest.approx(0.007248)  # 48 x 1 + 1800 x 4, per million


def test_no_price_means_no_cost(small_config: Path) -> None:
    text = small_config.read_text().replace(
        "      price: {input_per_mtok: 2.0, output_per_mtok: 10.0}\n", ""
    )
    small_config.write_text(text)
    plan = plan_of(small_config)
    assert all(not r.price_set and r.cost_per_step is None for r in plan.judge)
    from ropd.plan.render import render_text

    assert "    cost       no price set" in render_text(plan)


def test_per_pair_rubrics_multiply_the_rubricator_calls(small_config: Path) -> None:
    config = load_config(small_config, {"ropd.scorer.rubric_mode": "per_pair"}, check_paths=False)
    plan = build_plan(config, counter=ThousandCounter())
    rubricator, verifier = plan.judge
    assert plan.shape.rubrics_per_group == 4
    assert rubricator.per_group.calls == 4  # one rubric per student answer
    assert verifier.per_group.calls == 4  # each verified with the K teacher answers
    assert verifier.per_group.output_expected == 4 * 3 * 5 * 8  # (1 + 2) answers per call
    assert plan.throughput is not None and plan.throughput.in_flight == 8 * 4


def test_steps_from_epochs_and_dataset_size(small_config: Path) -> None:
    config = load_config(small_config, {"max_steps": -1, "num_train_epochs": 3}, check_paths=False)
    plan = build_plan(config, counter=ThousandCounter())
    assert plan.shape.steps == 3  # ceil(3 epochs x 3 prompts / 4 per step)
    assert build_plan(config, PlanOptions(steps=7)).shape.steps == 7


def test_sampled_health_checks_are_planned_under_their_own_roles(small_config: Path) -> None:
    text = small_config.read_text().replace(
        "  limits:\n",
        "    stability_check_share: 0.5\n"
        "    audit_share: 0.25\n"
        "    audit:\n"
        "      base_url: http://127.0.0.1:9/v1\n"
        "      model: audit-model\n"
        "      price: {input_per_mtok: 1.0, output_per_mtok: 1.0}\n"
        "  limits:\n",
    )
    small_config.write_text(text)
    plan = plan_of(small_config)
    roles = {r.role: r for r in plan.judge}
    assert list(roles) == ["rubricator", "verifier", "verifier_check", "audit"]
    # half the groups get one more Verifier pass: half of the Verifier's 1,000 in / 240 out
    assert roles["verifier_check"].per_group.model_dump() == {
        "calls": 0.5, "input_tokens": 500, "output_expected": 120, "output_bound": 250,
    }  # fmt: skip
    check_cost = roles["verifier_check"].cost_per_step
    assert check_cost is not None  # at the Verifier's price, x 4 groups a step
    assert check_cost.expected == pytest.approx(0.0088)  # 2000x2 + 480x10, /1e6
    audit_cost = roles["audit"].cost_per_step
    assert roles["audit"].per_group.calls == 0.25 and audit_cost is not None
    assert audit_cost.expected == pytest.approx(0.00124)  # (1000 + 240) x 1, /1e6, at its price
    t = plan.throughput
    assert t is not None
    assert t.requests == 22  # 8 groups x (1 + 1 + 0.5 + 0.25)
    assert t.in_flight == 14  # the second phase: 8 x (1 + 0.5 + 0.25) at once
