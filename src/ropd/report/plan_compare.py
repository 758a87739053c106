"""Planned against spent: the run folder's `plan.json` (`ropd plan`) beside the trace store.

A run writes its plan when it starts; the report puts each judge role's planned calls and tokens
per group next to what the groups of the run actually used, and the planned cost of a step next
to the mean spent per step. The plan counts answers at `max_completion_length` unless told
otherwise (its worst case), so actual input below the plan is the usual reading; actual above
it means longer prompts, re-asks or context splits the plan did not count.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ropd.plan.model import PLAN_FILE, Plan
from ropd.redact import scrub


def load_plan(run_dir: Path | None) -> tuple[Plan | None, str]:
    """The run folder's plan and, when it cannot be read, why (shown instead of the table)."""
    if run_dir is None or not (run_dir / PLAN_FILE).is_file():
        return None, ""
    path = run_dir / PLAN_FILE
    try:
        return Plan.model_validate_json(path.read_text(encoding="utf-8")), ""
    except (OSError, UnicodeDecodeError, ValidationError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        return None, scrub(f"{path}: not a readable plan ({first})")


def _ratio(actual: float | None, planned: float | None) -> float | None:
    if actual is None or not planned:
        return None
    return actual / planned


def plan_vs_actual(plan: Plan, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Per judge role: planned and actual calls, input and output tokens per group, and cost.

    Actual per group is the role's total over every group of the run (failed ones too: their
    calls were spent) divided by the number of groups. Roles the plan does not cover (sampled
    health checks, an audit judge) are listed as spent with no plan.
    """
    groups = sum(s["groups"] for s in steps)
    spent: dict[str, dict[str, float]] = {}
    for s in steps:
        for role, usage in s["judge"].items():
            book = spent.setdefault(role, {"calls": 0.0, "input": 0.0, "output": 0.0, "cost": 0.0})
            book["calls"] += usage["calls"]
            book["input"] += usage["input_tokens"]
            book["output"] += usage["output_tokens"]
            book["cost"] += usage["cost"] or 0.0
    rows = []
    for role_plan in plan.judge:
        used = spent.pop(role_plan.role, None)
        per = {k: v / groups for k, v in used.items()} if used and groups else None
        planned = role_plan.per_group
        rows.append(
            {
                "role": role_plan.role,
                "planned_calls": planned.calls,
                "actual_calls": per["calls"] if per else None,
                "planned_input": planned.input_tokens,
                "actual_input": per["input"] if per else None,
                "input_ratio": _ratio(per["input"] if per else None, planned.input_tokens),
                "planned_output": planned.output_expected,
                "planned_output_bound": planned.output_bound,
                "actual_output": per["output"] if per else None,
                "output_ratio": _ratio(per["output"] if per else None, planned.output_expected),
            }
        )
    for role, used in sorted(spent.items()):
        rows.append(
            {
                "role": role,
                "planned_calls": None,
                "actual_calls": used["calls"] / groups if groups else None,
                "planned_input": None,
                "actual_input": used["input"] / groups if groups else None,
                "input_ratio": None,
                "planned_output": None,
                "planned_output_bound": None,
                "actual_output": used["output"] / groups if groups else None,
                "output_ratio": None,
            }
        )
    planned_costs = [r.cost_per_step.expected for r in plan.judge if r.cost_per_step is not None]
    costs = [s["judge_cost"] for s in steps if s["judge_cost"] is not None]
    trained = [s for s in steps if s["step"] is not None]
    return {
        "rows": rows,
        "groups": groups,
        "answer_tokens": plan.shape.answer_tokens,
        "answer_tokens_source": scrub(plan.shape.answer_tokens_source),
        "planned_cost_per_step": math.fsum(planned_costs) if planned_costs else None,
        "actual_cost_per_step": (math.fsum(costs) / len(trained) if costs and trained else None),
        "assumptions": [scrub(a) for a in plan.assumptions],
    }


__all__ = ["load_plan", "plan_vs_actual"]
