"""The study table: every method of a study in one table, as the paper's Tables 1 and 2 show it.

A row is one `ropd eval` summary. Its method is read from the training run that produced the
evaluated model (the model path is a run folder, or a checkpoint or `final/` inside one, holding
`ropd_run.json`), so a table cannot call an SFT checkpoint "ropd" by a folder-name accident.
Rows that are no run's output are the base student, the teacher, or "-" (unknown).

Rows go base first, then the black-box methods, then the white-box ones (the paper's order,
`STUDY_ORDER`), unknown ones after them, the teacher last. The gap closed is
`compare.gap_closed` on the task average: (model − base) / (teacher − base).

This module reads training run files, so `compare` (which `report` imports) must not import it:
the report gets a study as the plain dict of `Study.as_dict`.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from ropd.eval.compare import Comparison, RunSummary
from ropd.eval.summary import pct
from ropd.eval.types import EvalError
from ropd.train.config import WHITE_BOX_METHODS
from ropd.train.runner import read_run_file

# The paper's row order: black box (Table 1), then white box (Table 2).
STUDY_ORDER = ("sft", "tjudge", "ovd", "gad", "rar", "ropd", "lopd", "exopd")
BASE, TEACHER, UNKNOWN = "base", "teacher", "-"


@dataclass(frozen=True)
class Origin:
    """Where a row's model came from: a method (or base / teacher / "-") and its training run."""

    method: str
    run: str | None = None  # the run folder's name
    run_id: str | None = None
    run_dir: str | None = None


def find_run(model: str | None) -> tuple[Path, dict[str, Any]] | None:
    """The training run whose output `model` is: the folder itself or its parent (a checkpoint
    or `final/`) holding the run file. Relative paths are taken from the current folder, as
    `ropd eval --model` took them."""
    if not model:
        return None
    try:
        path = Path(model).expanduser()
        if not path.exists():
            return None
    except (OSError, ValueError):
        return None
    for folder in (path, path.parent):
        info = read_run_file(folder)
        if info is not None and isinstance(info.get("method"), str):
            return folder, info
    return None


def origin_of(run: RunSummary, comparison: Comparison, methods: dict[str, str]) -> Origin:
    """A row's method: given on the command line, else its role, else its training run."""
    if run.label in methods:
        return Origin(methods[run.label])
    if run is comparison.base:
        return Origin(BASE)
    if run is comparison.teacher:
        return Origin(TEACHER)
    model = run.settings().get("model") or run.data.get("model")
    found = find_run(model if isinstance(model, str) else None)
    if found is None:
        return Origin(UNKNOWN)
    folder, info = found
    run_id = info.get("run_id")
    return Origin(
        info["method"],
        run=folder.resolve().name,
        run_id=run_id if isinstance(run_id, str) else None,
        run_dir=str(folder),
    )


def access(method: str) -> str | None:
    """Which of the paper's tables a method belongs to: black box (judge only) or white box."""
    if method in (BASE, TEACHER, UNKNOWN):
        return None
    return "white-box" if method in WHITE_BOX_METHODS else "black-box"


def _section(method: str) -> str:
    """The block of the table a row sits in: base, black box, white box, unknown, teacher."""
    return access(method) or method


@dataclass
class StudyRow:
    run: RunSummary
    origin: Origin

    @property
    def method(self) -> str:
        return self.origin.method

    @property
    def name(self) -> str:
        """What the row is called: the training run's folder, else the result folder's name."""
        return self.origin.run or self.run.label


@dataclass
class Study:
    comparison: Comparison
    rows: list[StudyRow]

    @property
    def has_gap(self) -> bool:
        return self.comparison.base is not None and self.comparison.teacher is not None

    @property
    def knows_methods(self) -> bool:
        """Whether any row is a training method's (the study form is then the default)."""
        return any(access(row.method) is not None for row in self.rows)

    def as_dict(self) -> dict[str, Any]:
        c = self.comparison
        rows = [
            {
                "label": row.run.label,
                "method": row.method,
                "access": access(row.method),
                "run": row.origin.run,
                "run_id": row.origin.run_id,
                "run_dir": row.origin.run_dir,
                **c.row(row.run),
            }
            for row in self.rows
        ]
        return {**c.header(), "rows": rows}


def _rank(method: str) -> tuple[int, int]:
    if method == BASE:
        return (0, 0)
    if method == TEACHER:
        return (4, 0)
    if method in STUDY_ORDER:
        return (1, STUDY_ORDER.index(method))
    return (2, 0) if method != UNKNOWN else (3, 0)


def build_study(
    comparison: Comparison, *, methods: dict[str, str] | None = None, as_given: bool = False
) -> Study:
    """One row per result: base first, teacher last; between them the paper's method order
    (`STUDY_ORDER`, stable for equal methods), or the order given when `as_given`.

    `methods` maps a row's label (its result folder's name) to a method, for models whose
    training run cannot be found from the summary (a served model name, a moved checkpoint).
    """
    methods = methods or {}
    labels = {run.label for run in comparison.runs}
    if unknown := sorted(set(methods) - labels):
        raise EvalError(
            f"--method names no row: {', '.join(unknown)} (rows: {', '.join(sorted(labels))})"
        )
    rows = [StudyRow(run, origin_of(run, comparison, methods)) for run in comparison.runs]
    if as_given:
        rows.sort(key=lambda r: {BASE: 0, TEACHER: 2}.get(r.method, 1))
    else:
        rows.sort(key=lambda r: _rank(r.method))
    return Study(comparison, rows)


def parse_methods(pairs: list[str]) -> dict[str, str]:
    """`LABEL=METHOD` pairs of `--method` as a dict; a pair without `=` is an error."""
    out: dict[str, str] = {}
    for pair in pairs:
        label, sep, method = pair.partition("=")
        if not sep or not label or not method:
            raise EvalError(f"--method {pair!r}: expected LABEL=METHOD, e.g. ropd-final=ropd")
        out[label] = method
    return out


def _gap_text(gap: float | None) -> str:
    return "n/a" if gap is None else f"{100 * gap:.1f}%"


def _cells(study: Study, row: StudyRow, *, std: bool) -> list[str]:
    c = study.comparison
    cells = [row.method, row.name]
    for task in c.tasks:
        score = row.run.score(task)
        if score is None:
            cells.append("—")
        else:
            cells.append(f"{pct(score)} ± {pct(row.run.std(task))}" if std else pct(score))
    cells.append(pct(c.average(row.run)))
    if study.has_gap:
        cells.append(_gap_text(c.gap(row.run, None)))
    return cells


def _headers(study: Study) -> list[str]:
    gap = ["gap closed"] if study.has_gap else []
    return ["method", "run", *study.comparison.tasks, "avg", *gap]


def render_study(study: Study) -> Table:
    """The paper's shape for the terminal: a row per method, pass@1 % ± std per task, the
    average and the share of the base-to-teacher gap it closes; black and white box apart."""
    c = study.comparison
    title = "pass@1 (%) by method"
    if study.has_gap and c.base and c.teacher:
        title += f"; gap closed on the average, {c.base.label} → {c.teacher.label}"
    table = Table(title=title)
    for i, header in enumerate(_headers(study)):
        table.add_column(header, justify="left" if i < 2 else "right", style="bold" * (i == 0))
    for i, row in enumerate(study.rows):
        following = study.rows[i + 1] if i + 1 < len(study.rows) else None
        section = following is not None and _section(following.method) != _section(row.method)
        table.add_row(*_cells(study, row, std=True), end_section=section)
    return table


def study_markdown(study: Study) -> str:
    """The table as Markdown (pass@1 % without the spread, as a paper's table reads)."""
    headers = _headers(study)
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join(["---", "---"] + ["---:"] * (len(headers) - 2)) + " |",
    ]
    for row in study.rows:
        cells = [cell.replace("|", "\\|") for cell in _cells(study, row, std=False)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return "" if value is None else repr(round(value, 6))


def study_csv(study: Study) -> str:
    """The table as CSV with unrounded fractions (pass@1 and gap in [0, 1]; empty = n/a)."""
    c = study.comparison
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    tasks = c.tasks
    writer.writerow(
        ["method", "run", "label", *tasks, *(f"{t}_std" for t in tasks), "average", "gap_closed"]
    )
    for row in study.rows:
        run = row.run
        writer.writerow(
            [
                row.method,
                row.name,
                run.label,
                *(_num(run.score(t)) for t in tasks),
                *(_num(run.std(t)) for t in tasks),
                _num(c.average(run)),
                _num(c.gap(run, None)),
            ]
        )
    return out.getvalue()


__all__ = [
    "STUDY_ORDER",
    "Origin",
    "Study",
    "StudyRow",
    "build_study",
    "find_run",
    "parse_methods",
    "render_study",
    "study_csv",
    "study_markdown",
]
