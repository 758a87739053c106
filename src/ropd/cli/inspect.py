"""`ropd inspect`: show what produced a group's rewards, from the trace store.

One group: the prompt, the rubric (id, category, points, criterion), every answer's verdicts
and reward, and the answer texts. The verdicts are a grid (one column per criterion) when it fits
the terminal, else stacked: per answer, its reward and the ids it passed and failed, wrapped.
`--list` lists traced groups, `--stats` prints the per-step numbers the training log got: the
trace store rebuilds each step's results and `ropd.reward.metrics` computes them, the same
function training calls. They are a table when it fits with every value whole, else stacked:
per step, one `name: value` line per metric. `--layout` chooses for both.

Without `--traces` the store is found in the current folder (`traces.db`, else the one
`*.traces.db` or `traces.sqlite`), so `ropd inspect` works where `ropd score` wrote its output.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from enum import Enum
from pathlib import Path
from typing import Annotated, NamedTuple

import typer
from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.console import Group as RichGroup
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ropd.errors import InputError, RopdError
from ropd.reward.health import HEALTH
from ropd.reward.metrics import StepMetrics, judge_usage, step_metrics
from ropd.reward.traces import StepSummary, TracedGroup, TracedStep, TraceStore
from ropd.reward.types import AnswerVerdicts, GroupResult
from ropd.rubric import Rubric

TRUNCATE_CHARS = 600
DEFAULT_TRACES = "traces.db"
TRACE_PATTERNS = ("*.traces.db", "traces.sqlite")  # `ropd score` output; older training runs
NEARBY_DEPTH = 2  # how deep the "found nearby" hint of a failed search looks
NEARBY_MAX_DIRS = 2000
UNBOUNDED_WIDTH = 100_000  # to measure the width a table wants, not what the terminal allows


class Layout(str, Enum):
    """How the verdicts of a group are laid out."""

    auto = "auto"  # the grid when it fits the terminal, else stacked
    grid = "grid"
    stacked = "stacked"


def find_traces(folder: Path) -> Path:
    """The trace store in `folder`: `traces.db`, else the only `*.traces.db` / `traces.sqlite`.

    Several candidates, or none, raise `InputError` naming what was found and how to choose, so
    a bare `ropd inspect` never guesses between two runs.
    """
    exact = folder / DEFAULT_TRACES
    if exact.is_file():
        return exact
    found = sorted({p for pattern in TRACE_PATTERNS for p in folder.glob(pattern) if p.is_file()})
    if len(found) == 1:
        return found[0]
    where = "the current folder" if folder == Path() else str(folder)
    if found:
        names = ", ".join(p.name for p in found)
        raise InputError(f"several trace stores in {where}: {names}; choose one with --traces PATH")
    nearby = _nearby_traces(folder)
    hint = f"; found nearby: {', '.join(map(str, nearby))}" if nearby else ""
    raise InputError(
        f"no trace store in {where} (looked for {DEFAULT_TRACES}, *.traces.db, traces.sqlite): "
        "pass --traces PATH. `ropd score OUT.jsonl` writes OUT.traces.db next to its output, "
        f"`ropd train` writes traces.db in its output_dir (older runs: traces.sqlite){hint}"
    )


def _nearby_traces(folder: Path, limit: int = 5) -> list[Path]:
    """Trace stores up to NEARBY_DEPTH folders below `folder` (hidden folders skipped)."""
    found: list[Path] = []
    for visited, (root, dirs, files) in enumerate(os.walk(folder), start=1):
        depth = len(Path(root).relative_to(folder).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")) and d != "node_modules")
        if depth >= NEARBY_DEPTH:
            dirs.clear()
        if depth > 0:
            found += [
                Path(root) / f
                for f in sorted(files)
                if f in (DEFAULT_TRACES, "traces.sqlite") or f.endswith(".traces.db")
            ]
        if len(found) >= limit or visited >= NEARBY_MAX_DIRS:
            break
    return found[:limit]


def resolve_traces(traces: Path | None) -> tuple[Path, bool]:
    """The trace file to open and whether it was found rather than named exactly."""
    if traces is None:
        return find_traces(Path()), True
    if traces.is_dir():
        return find_traces(traces), True
    if not traces.is_file():
        raise InputError(f"{traces}: no trace database there")
    return traces, False


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


def render_group(
    traced: TracedGroup,
    *,
    full: bool = False,
    console: Console | None = None,
    layout: Layout = Layout.auto,
) -> RichGroup:
    """The rich view of one traced group; `console` sets the width the verdicts must fit."""
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

    parts.append(render_verdicts(result, console=console, layout=layout))

    texts = [("student", i, t) for i, t in enumerate(traced.student_responses)] + [
        ("teacher", j, t) for j, t in enumerate(traced.teacher_responses)
    ]
    for source, index, text in texts:
        parts.append(Panel(_clip(text, full) or "(empty)", title=f"{source} #{index}"))

    if result.usage:
        usage = ", ".join(
            f"{role}: {u.calls:.0f} calls, {_tokens(u.input_tokens, u.output_tokens)} tokens, "
            f"{u.latency_s:.2f} s" + ("" if u.cost is None else f", cost {_money(u.cost)}")
            for role, u in judge_usage([result.usage]).items()
        )
        parts.append(Text(f"usage  {usage}", style="dim"))
    if result.settings:
        parts.append(Text(f"settings  {json.dumps(result.settings)}", style="dim"))
    return RichGroup(*parts)


_Row = tuple[str, int, float | None, AnswerVerdicts | None]
GRID_TITLE = "answers (pass/fail per criterion; label = number shown to the verifier)"


def render_verdicts(
    result: GroupResult, *, console: Console | None = None, layout: Layout = Layout.auto
) -> RenderableType:
    """Every answer's verdicts and reward: the grid if it fits `console`'s width, else stacked.

    A grid of 12 criteria needs about 120 columns; squeezed into fewer, rich would cut the
    criterion ids down to "…", so narrow terminals get one block per answer instead.
    """
    judged = {(v.source, v.index): v for v in result.verdicts}
    ids = list(dict.fromkeys(c.id for r in result.rubrics for c in r.criteria))
    rows: list[_Row] = [
        ("student", i, r, judged.get(("student", i))) for i, r in enumerate(result.rewards)
    ] + [("teacher", j, s, judged.get(("teacher", j))) for j, s in enumerate(result.teacher_scores)]
    grid = _verdict_grid(ids, rows)
    if layout is Layout.grid:
        return grid
    if layout is Layout.auto:
        console = console or Console()
        unbounded = console.options.update_width(UNBOUNDED_WIDTH)  # else rich caps the measure
        if Measurement.get(console, unbounded, grid).maximum <= console.width:
            return grid
    return _verdict_stack(ids, rows, result.rubrics)


def _label(v: AnswerVerdicts | None) -> str:
    label = "" if v is None or v.label is None else str(v.label)
    if v is not None and v.duplicate_of is not None:
        label += f" (= #{v.duplicate_of})"
    return label


def _verdict_grid(ids: list[str], rows: list[_Row]) -> Table:
    answers = Table(title=GRID_TITLE)
    for name in ("source", "#", "label"):
        answers.add_column(name, no_wrap=True)
    for cid in ids:
        answers.add_column(cid, justify="center", no_wrap=True)
    answers.add_column("reward", justify="right", no_wrap=True)
    for source, index, reward, v in rows:
        marks = []
        for cid in ids:
            if v is None or cid not in v.verdicts:
                marks.append(Text("·", style="dim"))
            else:
                marks.append(
                    Text("pass", style="green") if v.verdicts[cid] else Text("fail", style="red")
                )
        answers.add_row(source, str(index), _label(v), *marks, _fmt(reward))
    return answers


def _verdict_stack(ids: list[str], rows: list[_Row], rubrics: list[Rubric]) -> RichGroup:
    """Per answer: source, number, label and reward, then its passed and failed ids, wrapped.

    With one rubric per answer (`per_pair`), an answer's ids are those of its own rubric.
    """
    parts: list[RenderableType] = [
        Text("answers (label = number shown to the verifier)", style="italic")
    ]
    for source, index, reward, v in rows:
        head = Text()
        head.append(f"{source} #{index}", style="bold")
        if _label(v):
            head.append(f"   label {_label(v)}")
        if len(rubrics) > 1 and v is not None:
            head.append(f"   rubric {v.rubric_index}")
        head.append("   reward ")
        head.append(_fmt(reward), style="bold")
        body = Table.grid(padding=(0, 1))
        body.add_column(no_wrap=True)
        body.add_column(ratio=1, overflow="fold")
        if v is None:
            body.add_row("   ", Text("no verdicts", style="dim"))
        else:
            own = ids
            if len(rubrics) > 1 and 0 <= v.rubric_index < len(rubrics):
                own = [c.id for c in rubrics[v.rubric_index].criteria]
            passed = [c for c in own if v.verdicts.get(c) is True]
            failed = [c for c in own if v.verdicts.get(c) is False]
            missing = [c for c in own if c not in v.verdicts]
            for name, marked, style in (
                ("pass", passed, "green"),
                ("fail", failed, "red"),
                ("·", missing, "dim"),
            ):
                if marked or name != "·":
                    body.add_row(Text(f"   {name}", style=style), " ".join(marked) or "-")
            if v.note:
                body.add_row("   ", Text(v.note, style="dim"))
        parts += [head, body]
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


STATS_TITLE = "per-step summary of {path}"
STATS_CAPTION = (
    "std: sample std of all rewards (TRL's reward_std); std in groups: mean of the groups' "
    "stds (the spread GRPO learns from). Failed groups count in groups and failure rate "
    "only; their rewards are left out"
)
STATS_COLUMNS = (
    "run",
    "step",
    "groups",
    "failure rate",
    "reward mean ± std",
    "std in groups",
    "teacher mean",
    "beat teacher",
    "rubric size",
    "pass rate by category",
    "judge tokens in / out",
    "judge cost",
)
PASS_RATE = STATS_COLUMNS.index("pass rate by category")


class _StatsRow(NamedTuple):
    cells: list[str]  # one per STATS_COLUMNS; the pass rates joined with ", "
    pass_rates: list[str]  # "category 58%" per category


def render_stats(
    store: TraceStore,
    *,
    run: str | None,
    step: int | None,
    console: Console | None = None,
    layout: Layout = Layout.auto,
) -> RenderableType:
    """The per-step numbers of the training log (`ropd.reward.metrics`), one row per step.

    A table if it fits `console`'s width with every value whole (only the pass rates may wrap,
    between categories), else stacked: per (run, step), one `name: value` line per metric.
    Twelve columns need about 210 columns; squeezed into 80, rich cuts every value to "…".
    """
    traced = store.steps(run_id=run, step=step)  # what `store.summary` reads, read once
    summaries = [StepSummary(t.run_id, t.step, step_metrics(t.results)) for t in traced]
    totals = Text("\n".join(run_totals(summaries)))
    health = Text("\n".join(health_lines(traced)))
    return RichGroup(_stats_view(store, summaries, console, layout), totals, health)


def health_lines(traced: list[TracedStep]) -> list[str]:
    """One line per step with the `ropd/health/*` numbers the store gives (docs/health.md):
    anchors and sampled checks from the results, length correlation and judge imitation from
    the stored answers, gold agreement where their gold checks were stored; none when no step
    has any."""
    lines = []
    for step in traced:
        numbers = step.health().as_dict()
        if numbers:
            where = f"run {step.run_id} step {'-' if step.step is None else step.step}"
            shown = ", ".join(f"{name.removeprefix(HEALTH)} {v:.3g}" for name, v in numbers.items())
            lines.append(f"reward health, {where}: {shown}")
    return lines


def _stats_view(
    store: TraceStore, summaries: list[StepSummary], console: Console | None, layout: Layout
) -> RenderableType:
    rows = [_stats_row(s.run_id, s.step, s.metrics) for s in summaries]
    title = STATS_TITLE.format(path=store.path)
    console = console or Console()
    if layout is Layout.stacked:
        return _stats_stack(title, rows, console.width)
    table = _stats_table(title, rows, whole=True)
    unbounded = console.options.update_width(UNBOUNDED_WIDTH)  # else rich caps the measure
    if Measurement.get(console, unbounded, table).minimum <= console.width:
        return table
    if layout is Layout.grid:  # asked for, though it does not fit: rich shortens the values
        return _stats_table(title, rows, whole=False)
    return _stats_stack(title, rows, console.width)


def _stats_row(run_id: str, step: int | None, m: StepMetrics) -> _StatsRow:
    reward = _fmt(m.reward_mean)
    if m.reward_std is not None:
        reward += f" ± {m.reward_std:.3f}"
    pass_rates = [f"{c} {r:.0%}" for c, r in m.pass_rate.items()]
    cells = [
        run_id,
        "" if step is None else str(step),
        str(m.groups),
        f"{m.failed_group_rate:.1%}",
        reward,
        _fmt(m.reward_std_within_group_mean),
        _fmt(m.teacher_score_mean),
        "n/a" if m.beat_teacher_rate is None else f"{m.beat_teacher_rate:.1%}",
        "n/a" if m.rubric_size is None else f"{m.rubric_size:.1f}",
        ", ".join(pass_rates),
        _tokens(m.judge_input_tokens, m.judge_output_tokens),
        "n/a" if m.judge_cost is None else _money(m.judge_cost),
    ]
    return _StatsRow(cells, pass_rates)


def _tokens(input_tokens: float, output_tokens: float) -> str:
    return f"{input_tokens:,.0f} / {output_tokens:,.0f}"


def _money(cost: float) -> str:
    """A cost in the price table's currency: cents stay visible, fractions of a cent too."""
    return f"{cost:,.2f}" if cost >= 1 else f"{cost:.4f}"


def run_totals(summaries: list[StepSummary]) -> list[str]:
    """One line per run: steps, groups, judge tokens in / out, and cost when priced."""
    lines = []
    for run_id in dict.fromkeys(s.run_id for s in summaries):
        steps = [s.metrics for s in summaries if s.run_id == run_id]
        costs = [m.judge_cost for m in steps if m.judge_cost is not None]
        tokens = _tokens(
            sum(m.judge_input_tokens for m in steps), sum(m.judge_output_tokens for m in steps)
        )
        line = (
            f"run {run_id}: {len(steps)} step(s), {sum(m.groups for m in steps)} groups, "
            f"judge tokens {tokens}"
        )
        if costs:
            line += f", judge cost {_money(math.fsum(costs))}"
        lines.append(line)
    return lines


def _stats_table(title: str, rows: list[_StatsRow], *, whole: bool) -> Table:
    """The summary table; `whole`: no value may be wrapped or cut, and rich's measured minimum
    width is the width that needs (pass rates wrap between categories, never inside one)."""
    table = Table(title=title, expand=True, caption=STATS_CAPTION)
    for index, name in enumerate(STATS_COLUMNS):
        if not whole:
            table.add_column(name)
        elif index == PASS_RATE:
            longest = max((cell_len(f"{p},") for r in rows for p in r.pass_rates), default=1)
            table.add_column(name, min_width=longest)
        else:
            cells = [name, *(r.cells[index] for r in rows)]
            table.add_column(name, no_wrap=True, min_width=max(map(cell_len, cells)))
    for r in rows:
        table.add_row(*r.cells)
    return table


def _stats_stack(title: str, rows: list[_StatsRow], width: int) -> RichGroup:
    """Per (run, step): a head line, then `name: value` lines, the values wrapped to `width`."""
    parts: list[RenderableType] = [Text(title, style="italic")]
    if not rows:
        parts.append(Text("no steps match", style="dim"))
    labels = [f"   {name}:" for name in STATS_COLUMNS[2:]]
    value_width = max(width - max(map(cell_len, labels)) - 1, 1)  # the grid pads by 1
    for r in rows:
        run_id, step = r.cells[:2]
        head = Text()
        head.append(f"run {run_id}", style="bold")
        head.append(f"   step {step or '-'}")
        body = Table.grid(padding=(0, 1))
        body.add_column(no_wrap=True)
        body.add_column(overflow="fold")
        for index, label in enumerate(labels, start=2):
            value = r.cells[index]
            if index == PASS_RATE:
                value = _pack(r.pass_rates, value_width) or "-"
            body.add_row(label, value)
        parts += [Text(""), head, body]
    parts += [Text(""), Text(STATS_CAPTION, style="dim")]
    return RichGroup(*parts)


def _pack(items: list[str], width: int) -> str:
    """`items` joined with ", ", a line break between items where the next would pass `width`."""
    lines: list[str] = []
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if lines and cell_len(lines[-1]) + 1 + cell_len(piece) <= width:
            lines[-1] += " " + piece
        else:
            lines.append(piece)
    return "\n".join(lines)


def inspect(
    group_id: Annotated[
        str | None, typer.Argument(help="Group id to show.", show_default=False)
    ] = None,
    traces: Annotated[
        Path | None,
        typer.Option(
            help="Trace database written by `ropd score` (OUT.traces.db, next to its output) or "
            "`ropd train` (traces.db in its output_dir), or a folder holding one. "
            "Default: traces.db, else the only *.traces.db or traces.sqlite, in the current "
            "folder.",
            show_default=False,
        ),
    ] = None,
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
    layout: Annotated[
        Layout,
        typer.Option(
            help="Verdicts as a grid (a column per criterion), stacked (per answer, the ids it "
            "passed and failed), or auto: the grid when it fits the terminal's width. With "
            "--stats: a table (a column per metric) or stacked (per step, a line per metric)."
        ),
    ] = Layout.auto,
) -> None:
    """Show the rubric, verdicts and rewards of one scored group (or list groups)."""
    console = Console()
    path, found = resolve_traces(traces)
    if found:
        Console(stderr=True, highlight=False).print(
            f"trace store: {path} (found; --traces PATH picks another)", markup=False
        )
    with TraceStore(path, run_id="inspect") as store:
        if stats:
            console.print(render_stats(store, run=run, step=step, console=console, layout=layout))
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
            raise RopdError(f"no group {group_id!r}{where} in {path}")  # exit 1: not found
        console.print(render_group(traced, full=full, console=console, layout=layout))


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.command("inspect")(inspect)
