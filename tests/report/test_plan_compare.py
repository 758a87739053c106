"""The report puts the run folder's plan.json beside what the run's groups spent.

The known store (`helpers.build_store`) has four groups in RUN: three scored, each with one
rubricator call (900 in, 210 out) and two verifier calls (2400 in, 130 out), and one failed
group with three verifier calls (1000 in, 0 out). Per group that is rubricator 0.75 calls,
675 input, 157.5 output; verifier 2.25 calls, 2050 input, 97.5 output.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ropd.plan.model import PLAN_FILE, Load, Plan, RolePlan, Shape
from ropd.report import build_report
from ropd.report.data import collect


def plan() -> Plan:
    def role(name: str, calls: float, tokens: float, out: float) -> RolePlan:
        load = Load(calls=calls, input_tokens=tokens, output_expected=out, output_bound=4 * out)
        return RolePlan(
            role=name, model="judge", counting="estimate", window=None, max_tokens=512,
            price_set=False, per_group=load, per_step=load.scaled(2),
        )  # fmt: skip

    shape = Shape(
        method="ropd", num_generations=2, k=1, pool=3, rubric_mode="shared", rubrics_per_group=1,
        prompts_per_step=2, groups_per_reward_call=2, num_processes=1, steps=2,
        steps_source="max_steps", dataset_prompts=4, groups_planned=4, answer_tokens=48,
        answer_tokens_source="max_completion_length (the worst case)", teacher_tokens=64,
        teacher_tokens_source="teacher role max_tokens", criteria=3,
    )  # fmt: skip
    return Plan(
        source="ropd.yaml",
        shape=shape,
        judge=[role("rubricator", 1, 900, 150), role("verifier", 2, 4100, 130)],
    )


def test_planned_and_spent_per_group_and_role(run_dir: Path) -> None:
    (run_dir / PLAN_FILE).write_text(plan().model_dump_json())
    data = collect(run_dir / "traces.db", run_dir=run_dir)
    assert data.plan is not None
    rows = {row["role"]: row for row in data.plan["rows"]}
    assert rows["rubricator"]["actual_calls"] == pytest.approx(0.75)
    assert rows["rubricator"]["actual_input"] == pytest.approx(675)
    assert rows["rubricator"]["input_ratio"] == pytest.approx(675 / 900)
    assert rows["rubricator"]["actual_output"] == pytest.approx(157.5)
    assert rows["verifier"]["actual_calls"] == pytest.approx(2.25)
    assert rows["verifier"]["input_ratio"] == pytest.approx(2050 / 4100)
    assert rows["verifier"]["output_ratio"] == pytest.approx(97.5 / 130)
    assert data.plan["planned_cost_per_step"] is None  # no price in the plan: no made-up cost


def test_the_page_shows_the_table_and_a_broken_plan_is_named(tmp_path: Path, run_dir: Path) -> None:
    (run_dir / PLAN_FILE).write_text(plan().model_dump_json())
    out = tmp_path / "report.html"
    build_report(run_dir / "traces.db", out, run_dir=run_dir)
    html = out.read_text(encoding="utf-8")
    assert 'id="plan-table"' in html and "Planned and spent" in html
    assert 'data-role="verifier"' in html

    (run_dir / PLAN_FILE).write_text('{"source": "x"')  # cut off mid-write
    data = collect(run_dir / "traces.db", run_dir=run_dir)
    assert (
        data.plan is None
        and PLAN_FILE in data.plan_note
        and "not a readable plan" in data.plan_note
    )


def test_no_plan_file_no_section(tmp_path: Path, run_dir: Path) -> None:
    out = tmp_path / "report.html"
    data = build_report(run_dir / "traces.db", out, run_dir=run_dir)
    assert data.plan is None and data.plan_note == ""
    assert 'id="plan"' not in out.read_text(encoding="utf-8")
