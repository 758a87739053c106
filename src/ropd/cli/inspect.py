"""`ropd inspect`: show what produced a group's rewards, from the trace store.

One group: the prompt, the rubric (id, category, points, criterion), a table of every answer's
verdicts and reward, and the answer texts. `--list` lists traced groups, `--stats` prints the
per-step numbers the training log got: the trace store rebuilds each step's results and
`ropd.reward.metrics` computes them, the same function training calls.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.console import Group as RichGroup
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ropd.errors import InputError, RopdError
from ropd.reward.metrics import judge_usage
from ropd.reward.traces import TracedGroup, TraceStore
from ropd.reward.types import AnswerVerdicts

TRUNCATE_CHARS = 600


def _clip(text: str, full: bool, limit: int = TRUNCATE_CHARS) -> str:
    if full or len(text) <= limit:
        return text
    return text[:limit] + f" … [{len(text) - limit} more characters; --full shows all]"


def _prompt_text(prompt: str | list[dict]) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"[{m.get('role')}] {m.get('content')}" for m in prompt)


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _fmt(x: float | None) -> str:
    return "null" if x is None else f"{x:.3f}"


def render_group(traced: TracedGroup, *, full: bool = False) -> RichGroup:
    """The rich view of one traced group."""
    result = traced.result
    header = Text()
    header.append(f"group {traced.group_id}", style="bold")
    step = "-" if traced.step is None else traced.step
    header.append(f"   run {traced.run_id}   step {step}   {_when(traced.created_at)}")
    parts: list = [header]
    if result.error is not None:
        parts.append(Text(f"FAILED ({result.failure_policy}): {result.error}", style="bold red"))
    parts.append(Panel(_clip(_prompt_text(traced.prompt), full), title="prompt", expand=True))

    for r_index, rubric in enumerate(result.rubrics):
        title = "rubric" if len(result.rubrics) == 1 else f"rubric {r_index}"
        table = Table(title=f"{title} ({rubric.total_points} points)", expand=True)
        table.add_column("id", no_wrap=True)
        table.add_column("category", no_wrap=True)
        table.add_column("points", justify="right")
        table.add_column("criterion", ratio=1)
        for c in rubric.criteria:
            table.add_row(c.id, c.category, str(c.points), c.criterion)
        parts.append(table)

    judged: dict[tuple[str, int], AnswerVerdicts] = {
        (v.source, v.index): v for v in result.verdicts
    }
    ids = list(dict.fromkeys(c.id for r in result.rubrics for c in r.criteria))
    answers = Table(title="answers (pass/fail per criterion; label = number shown to the verifier)")
    for name in ("source", "#", "label"):
        answers.add_column(name, no_wrap=True)
    for cid in ids:
        answers.add_column(cid, justify="center", no_wrap=True)
    answers.add_column("reward", justify="right", no_wrap=True)
    rows = [("student", i, r) for i, r in enumerate(result.rewards)] + [
        ("teacher", j, s) for j, s in enumerate(result.teacher_scores)
    ]
    for source, index, reward in rows:
        v = judged.get((source, index))
        marks = []
        for cid in ids:
            if v is None or cid not in v.verdicts:
                marks.append(Text("·", style="dim"))
            else:
                marks.append(
                    Text("pass", style="green") if v.verdicts[cid] else Text("fail", style="red")
                )
        label = "" if v is None or v.label is None else str(v.label)
        if v is not None and v.duplicate_of is not None:
            label += f" (= #{v.duplicate_of})"
        answers.add_row(source, str(index), label, *marks, _fmt(reward))
    parts.append(answers)

    texts = [("student", i, t) for i, t in enumerate(traced.student_responses)] + [
        ("teacher", j, t) for j, t in enumerate(traced.teacher_responses)
    ]
    for source, index, text in texts:
        parts.append(Panel(_clip(text, full) or "(empty)", title=f"{source} #{index}"))

    if result.usage:
        usage = ", ".join(
            f"{role}: {u.calls:.0f} calls, {u.tokens:.0f} tokens, {u.latency_s:.2f} s"
            for role, u in judge_usage([result.usage]).items()
        )
        parts.append(Text(f"usage  {usage}", style="dim"))
    if result.settings:
        parts.append(Text(f"settings  {json.dumps(result.settings)}", style="dim"))
    return RichGroup(*parts)


def render_list(
    store: TraceStore, *, run: str | None, step: int | None, failed: bool | None, limit: int
) -> Table:
    table = Table(title=f"groups in {store.path}", expand=True)
    for name in ("group", "run", "step", "time", "answers", "criteria", "mean reward", "error"):
        table.add_column(name)
    found = store.list(run_id=run, step=step, failed=failed, limit=limit)
    if not found:
        table.caption = "no groups match"
    for g in found:
        table.add_row(
            g.group_id,
            g.run_id,
            "" if g.step is None else str(g.step),
            _when(g.created_at),
            f"{g.num_student}+{g.num_teacher}",
            str(g.num_criteria),
            _fmt(g.reward_mean),
            _clip(g.error or "", False, 80),
        )
    return table


def render_stats(store: TraceStore, *, run: str | None, step: int | None) -> Table:
    """The per-step numbers of the training log (`ropd.reward.metrics`), one row per step."""
    table = Table(title=f"per-step summary of {store.path}", expand=True)
    table.caption = (
        "failed groups count in groups and failure rate only; their rewards are left out"
    )
    for name in (
        "run",
        "step",
        "groups",
        "failure rate",
        "reward mean ± std",
        "teacher mean",
        "beat teacher",
        "rubric size",
        "pass rate by category",
        "judge tokens",
    ):
        table.add_column(name)
    for s in store.summary(run_id=run, step=step):
        m = s.metrics
        reward = "null" if m.reward_mean is None else f"{m.reward_mean:.3f} ± {m.reward_std:.3f}"
        table.add_row(
            s.run_id,
            "" if s.step is None else str(s.step),
            str(m.groups),
            f"{m.failed_group_rate:.1%}",
            reward,
            _fmt(m.teacher_score_mean),
            "n/a" if m.beat_teacher_rate is None else f"{m.beat_teacher_rate:.1%}",
            "n/a" if m.rubric_size is None else f"{m.rubric_size:.1f}",
            ", ".join(f"{c} {r:.0%}" for c, r in m.pass_rate.items()),
            f"{m.judge_tokens:,.0f}",
        )
    return table


def inspect(
    group_id: Annotated[
        str | None, typer.Argument(help="Group id to show.", show_default=False)
    ] = None,
    traces: Annotated[
        Path, typer.Option(help="Trace database written by `ropd score` or training.")
    ] = Path("traces.db"),
    run: Annotated[str | None, typer.Option(help="Only this run id.")] = None,
    step: Annotated[int | None, typer.Option(help="Only this training step.")] = None,
    list_groups: Annotated[
        bool, typer.Option("--list", help="List traced groups instead.")
    ] = False,
    failed: Annotated[
        bool | None,
        typer.Option("--failed/--ok", help="With --list: only failed (or only scored) groups."),
    ] = None,
    limit: Annotated[int, typer.Option(help="With --list: at most this many rows.")] = 50,
    stats: Annotated[
        bool,
        typer.Option(
            "--stats", help="Per-step summary: reward, failures, rubric size, pass rates."
        ),
    ] = False,
    full: Annotated[
        bool, typer.Option("--full", help="Show prompt and answers untruncated.")
    ] = False,
) -> None:
    """Show the rubric, verdicts and rewards of one scored group (or list groups)."""
    console = Console()
    if not traces.is_file():
        raise InputError(f"{traces}: no trace database there")
    with TraceStore(traces, run_id="inspect") as store:
        if stats:
            console.print(render_stats(store, run=run, step=step))
            return
        if list_groups or group_id is None:
            console.print(render_list(store, run=run, step=step, failed=failed, limit=limit))
            return
        traced = store.get(group_id, run_id=run, step=step)
        if traced is None:
            where = "".join(
                f" {name} {value}"
                for name, value in (("run", run), ("step", step))
                if value is not None
            )
            raise RopdError(f"no group {group_id!r}{where} in {traces}")  # exit 1: not found
        console.print(render_group(traced, full=full))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.command("inspect")(inspect)
