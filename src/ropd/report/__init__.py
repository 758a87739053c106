"""`ropd report`: one self-contained HTML page about a run, readable offline.

`data` gathers the numbers (the trace store's per-step `StepMetrics`, eval summaries,
`ropd analyze` results) and the groups of the rubric browser into plain values; `charts` draws
the per-step curves as inline SVG (matplotlib); `html` renders the page (jinja2). matplotlib and
jinja2 come with the `report` extra and are imported only when a page is made.

`write_report(run_dir)` is what a training recipe calls at the end of a run.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ropd.report.data import (
    DEFAULT_MAX_ANSWER_CHARS,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_GROUPS,
    ReportData,
    collect,
    default_analysis,
)
from ropd.report.html import render, write_html

REPORT_FILE = "report.html"
TRACES_FILE = "traces.db"  # what `ropd train` writes in its output_dir (TrainConfig.traces_path)


def build_report(
    traces: Path,
    output: Path,
    *,
    run_id: str | None = None,
    run_dir: Path | None = None,
    evals: Iterable[Path] = (),
    study: dict[str, Any] | None = None,
    analysis: Path | None = None,
    max_groups: int = DEFAULT_MAX_GROUPS,
    max_answer_chars: int = DEFAULT_MAX_ANSWER_CHARS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> ReportData:
    """Collect, render and write the page to `output`; returns what it shows.

    `study` is `ropd.eval.study.build_study(...).as_dict()`: every method side by side.
    Without `analysis`, `RUN_DIR/analysis/analysis.json` is used when `ropd analyze` wrote one.
    """
    data = collect(
        traces,
        run_id=run_id,
        run_dir=run_dir,
        evals=evals,
        study=study,
        analysis=analysis if analysis is not None else default_analysis(run_dir),
        max_groups=max_groups,
        max_answer_chars=max_answer_chars,
        max_bytes=max_bytes,
    )
    write_html(render(data), output)
    return data


def write_report(
    run_dir: Path,
    *,
    traces: Path | None = None,
    run_id: str | None = None,
    output: Path | None = None,
) -> Path:
    """The report of a training run, written to `RUN_DIR/report.html`; returns its path.

    `traces` defaults to `RUN_DIR/traces.db` (pass `TrainConfig.traces_path` when the config
    moved it); the run is `ropd_run.json`'s unless `run_id` is given. Raises `ConfigError`
    without the `report` extra and `RopdError`s for unusable inputs, so a recipe can log them
    and finish the run anyway.
    """
    run_dir = Path(run_dir)
    output = output or run_dir / REPORT_FILE
    build_report(traces or run_dir / TRACES_FILE, output, run_id=run_id, run_dir=run_dir)
    return output


__all__ = ["REPORT_FILE", "ReportData", "build_report", "write_report"]
