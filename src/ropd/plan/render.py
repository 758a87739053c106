"""The plan as text for a person: one renderer, used by `ropd plan` and `ropd train --dry-run`."""

from __future__ import annotations

from ropd.plan.model import Cost, Load, Plan, RolePlan, Shape, TeacherBuild, Throughput


def _n(value: float | None) -> str:
    """1234567 -> 1.23M (k, M, B); small numbers as they are."""
    if value is None:
        return "?"
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}" if value != int(value) else str(int(value))


def _money(cost: Cost | None) -> str:
    if cost is None:
        return "no price set"
    return f"{cost.expected:.4g} expected, {cost.bound:.4g} at max_tokens"


def _load(load: Load | None) -> str:
    if load is None:
        return "unknown (steps unknown)"
    return (
        f"{_n(load.calls):>6} calls  in {_n(load.input_tokens):>7}  "
        f"out {_n(load.output_expected):>7} expected / {_n(load.output_bound):>7} bound"
    )


def _role_lines(role: RolePlan, steps_known: bool) -> list[str]:
    window = f"window {role.window}" if role.window else "window unknown (no splitting planned)"
    lines = [
        f"  {role.role} ({role.model}; {role.counting}; {window}; max_tokens {role.max_tokens})",
        f"    per group  {_load(role.per_group)}",
        f"    per step   {_load(role.per_step)}",
        f"    per run    {_load(role.per_run if steps_known else None)}",
    ]
    if not role.price_set:
        lines.append("    cost       no price set")
    else:
        lines += [
            f"    cost/group {_money(role.cost_per_group)}",
            f"    cost/step  {_money(role.cost_per_step)}",
            f"    cost/run   {_money(role.cost_per_run) if steps_known else '?'}",
        ]
    return lines


def _limit(needed: float, limit: float | None) -> str:
    if limit is None:
        return "no limit set"
    return f"limit {_n(limit)}: " + ("ok" if needed <= limit else "too low")


def _throughput_lines(t: Throughput) -> list[str]:
    lines = [
        (
            f"throughput (one reward call: {t.groups} groups within {t.phases} x "
            f"{t.latency_s:g} s judge latency" + ("; all calls at once)" if t.phases == 1 else ")")
        ),
        (
            f"  requests   {_n(t.requests)} -> {_n(t.requests_per_minute)}/min "
            f"({_limit(t.requests_per_minute, t.limit_requests_per_minute)})"
        ),
        (
            f"  tokens     {_n(t.tokens)} -> {_n(t.tokens_per_minute)}/min "
            f"({_limit(t.tokens_per_minute, t.limit_tokens_per_minute)})"
        ),
        f"  in flight  {_n(t.in_flight)} (max_in_flight {t.limit_max_in_flight}: "
        + ("ok)" if t.in_flight <= t.limit_max_in_flight else "too low)"),
    ]
    if t.limited_by:
        lines.append(
            f"  judge time at least {t.judge_seconds_at_limits:.0f} s per reward call, set by "
            + ", ".join(t.limited_by)
        )
    return lines


def _teacher_lines(b: TeacherBuild) -> list[str]:
    where = f"{b.store} ({'exists' if b.store_exists else 'not built yet'})"
    lines = [f"teacher build  {where}, {b.answers_per_prompt} answers a prompt"]
    if b.prompts is None:
        lines.append("  prompts unknown (data not read): nothing to count")
        return lines
    lines.append(
        f"  {b.prompts_missing} of {b.prompts} prompts need answers: {b.answers_missing} answers "
        f"of {b.answer_tokens} tokens ({b.answer_tokens_source})"
    )
    lines.append(f"  tokens     in {_n(b.input_tokens)}  out {_n(b.output_tokens)}")
    lines.append(
        f"  cost       {b.cost:.4g}" if b.cost is not None else "  cost       no price set"
    )
    return lines


NO_JUDGE_METHODS = ("sft", "lopd", "exopd", "gad")  # trained without a judge: no judge call


def _judging(s: Shape) -> str:
    """How a group is judged, in the method's own terms."""
    if s.method == "tjudge":
        refs = f"with K={s.k} teacher references in each prompt" if s.k else "no references"
        return (
            f"G={s.num_generations} students, each scored 0-10 in its own T-Judge call ({refs}; "
            "no rubric)"
        )
    if s.method == "ovd":
        if s.per_call == "group":
            how = f"all {s.num_generations} scored 0-9 in one teacher call per group"
        else:
            how = "each scored 0-9 in its own teacher call"
        return f"G={s.num_generations} students, {how} (no teacher answers, no rubric)"
    if s.method == "rar":
        teachers = f" + K={s.k} teachers" if s.k else ""
        induced = f" + {s.induced_criteria} induced" if s.induced_criteria else ""
        size = f"{s.dataset_criteria:.3g}" if s.dataset_criteria is not None else "?"
        return (
            f"G={s.num_generations} students{teachers}, dataset rubric of ~{size} "
            f"criteria{induced}, {s.pool} answers verified"
        )
    if s.method == "sft":
        return f"no judge: the student is trained on K={s.k} stored teacher answers a prompt"
    if s.method == "gad":
        return (
            f"no judge: G={s.num_generations} students scored by the trained discriminator, "
            f"which ranks K={s.k} stored teacher answers above them"
        )
    if s.method in ("lopd", "exopd"):
        return "no judge: a local white-box teacher scores every token of one answer a prompt"
    if s.rubric_mode == "none":
        return f"G={s.num_generations} students (no judge)"
    return (
        f"G={s.num_generations} students + K={s.k} teachers, rubric {s.rubric_mode}, {s.pool} "
        "answers verified per rubric"
    )


def render_text(plan: Plan) -> list[str]:
    """The plan, section by section (no endpoint was contacted to make it)."""
    s = plan.shape
    steps = f"{s.steps} ({s.steps_source})" if s.steps is not None else s.steps_source
    lines = [
        f"plan of {plan.source} (method {s.method}; nothing was sent to any endpoint)",
        (
            f"  groups     {s.prompts_per_step:g} per optimizer step"
            + (
                f", {s.groups_per_reward_call:g} per reward call"
                if s.method not in NO_JUDGE_METHODS
                else ""
            )
            + f"; {_judging(s)}"
        ),
        f"  steps      {steps}",
        f"  answers    student {s.answer_tokens} tokens ({s.answer_tokens_source})",
        (
            f"             teacher {s.teacher_tokens:.0f} tokens ({s.teacher_tokens_source})"
            if s.k
            else "             teacher none (the judge reads no teacher answers)"
        ),
    ]
    if plan.judge:
        where = (
            f"{s.groups_planned} rendered group(s) of the dataset's prompts"
            if s.dataset_prompts is not None
            else "a group with an assumed prompt (data not read)"
        )
        lines.append(f"judge tokens (counted on {where})")
        for role in plan.judge:
            lines += _role_lines(role, s.steps is not None)
        if len(plan.judge) > 1:
            per_step = sum(r.per_step.input_tokens for r in plan.judge)
            lines.append(f"  all roles: {_n(per_step)} input tokens per step")
    if plan.throughput is not None:
        lines += _throughput_lines(plan.throughput)
    if plan.self_hosted is not None:
        h = plan.self_hosted
        lines.append(
            f"self-hosted judge  {h.gpus} GPU(s) at {_n(h.prefill_tps)} prefill / "
            f"{_n(h.decode_tps)} decode tokens/s each ({h.gpu_seconds:.0f} GPU-s per reward call)"
        )
    if plan.teacher_build is not None:
        lines += _teacher_lines(plan.teacher_build)
    if plan.notes:
        lines.append("notes")
        lines += [f"  - {note}" for note in plan.notes]
    if plan.assumptions:
        lines.append("assumptions")
        lines += [f"  - {a}" for a in plan.assumptions]
    return lines
