"""`ropd report`: one self-contained HTML page about a run (flags and printing only).

The trace store is found the way `ropd inspect` finds it: a run folder holds `traces.db`
(`ropd train`), else the one `*.traces.db` (`ropd score`) or `traces.sqlite`; a file is used
as named. The work is in `ropd.report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ropd.cli.inspect import resolve_traces
from ropd.errors import InputError
from ropd.report import REPORT_FILE, build_report
from ropd.report.data import DEFAULT_MAX_ANSWER_CHARS, DEFAULT_MAX_GROUPS


def report(
    target: Annotated[
        Path,
        typer.Argument(
            help="A run folder (`ropd train`'s output_dir, holding traces.db) or a trace "
            "database (`ropd score`'s OUT.traces.db).",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="The HTML file to write. Default: report.html in the run folder, or beside "
            "the trace database.",
            show_default=False,
        ),
    ] = None,
    evals: Annotated[
        list[Path] | None,
        typer.Option(
            "--eval",
            metavar="PATH",
            help="An `ropd eval` output folder (or its summary.json) whose pass@1 table to "
            "include; repeat for several.",
            show_default=False,
        ),
    ] = None,
    analysis: Annotated[
        Path | None,
        typer.Option(
            help="`ropd analyze` output: its folder (analysis.json and SVG plots) or "
            "analysis.json. Default: RUN_DIR/analysis when it exists.",
            show_default=False,
        ),
    ] = None,
    run: Annotated[
        str | None,
        typer.Option(
            help="The run to report. Default: the run folder's run (ropd_run.json), else the "
            "newest run in the store.",
            show_default=False,
        ),
    ] = None,
    max_groups: Annotated[
        int,
        typer.Option(
            min=0,
            help="At most this many groups in the rubric browser (failed ones first, then the "
            "newest), so a long run still makes a page a browser opens.",
        ),
    ] = DEFAULT_MAX_GROUPS,
    max_answer_chars: Annotated[
        int,
        typer.Option(min=100, help="Answer texts longer than this keep their head and tail."),
    ] = DEFAULT_MAX_ANSWER_CHARS,
) -> None:
    """Write one HTML page (no network needed to open it): per-step charts and numbers, eval
    and analysis tables, and a browser of every embedded group's rubric and verdicts."""
    if not target.exists():
        raise InputError(f"{target}: no such run folder or trace database")
    traces, found = resolve_traces(target)
    run_dir = target if target.is_dir() else None
    output = output or (target / REPORT_FILE if run_dir else traces.parent / REPORT_FILE)
    if output.resolve() == traces.resolve():
        raise InputError(f"{output}: that is the trace database; choose another --output")
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if found:
        err.print(f"trace store: {traces} (found)", markup=False)
    data = build_report(
        traces,
        output,
        run_id=run,
        run_dir=run_dir,
        evals=evals or [],
        study=_study(evals or []),
        analysis=analysis,
        max_groups=max_groups,
        max_answer_chars=max_answer_chars,
    )
    if data.other_runs and run is None:
        err.print(
            f"run {data.run_id}; the store holds {len(data.other_runs)} other run(s) "
            f"({', '.join(data.other_runs)}): --run RUN_ID picks one",
            markup=False,
        )
    if data.groups_note:
        err.print(data.groups_note, markup=False)
    steps = len(data.steps)
    kind = "a scoring run" if data.is_score else f"{steps} step{'s' * (steps != 1)}"
    typer.echo(f"report: {output} ({kind}, {len(data.groups)} of {data.groups_total} groups)")


def _study(evals: list[Path]) -> dict[str, Any] | None:
    """Several evals: every method side by side (`ropd eval compare`'s study table); base and
    teacher are the folders named base/ and teacher/."""
    if len(evals) < 2:
        return None
    from ropd.eval.compare import build_comparison
    from ropd.eval.study import build_study

    return build_study(build_comparison(evals)).as_dict()


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.command("report")(report)
