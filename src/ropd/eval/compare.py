"""Side-by-side results of several runs, and the share of the student-teacher gap each closes.

gap closed = (model − base) / (teacher − base), per task and on the task average; it is
undefined (n/a) where teacher and base score the same.

Rows are only comparable when they were generated the same way: `SettingsCheck` lists every
generation setting (temperature, samples, token budget, limit, grader...) on which rows differ,
and which rows are too old to say. Which model ran, and how (backend, endpoint, dtype), may
differ: that is what a comparison is for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from ropd.eval.summary import SUMMARY_JSON, pct
from ropd.eval.types import EvalError, IncomparableRunsError

# Settings that must agree between rows (None for the grader ones: the run had no rubric task).
COMPARED_SETTINGS = (
    "num_samples",
    "temperature",
    "top_p",
    "max_tokens",
    "seed",
    "system_prompt",
    "limit",
    "grader",
    "grader_max_tokens",
)
_ONLY_WHEN_SET = ("grader", "grader_max_tokens")
# Per-task fields that must agree for a task several rows share.
COMPARED_TASK_FIELDS = ("items", "n")
# Summaries written before `settings` existed recorded these under `generation`.
_LEGACY_GENERATION = {
    "n": "num_samples",
    "temperature": "temperature",
    "top_p": "top_p",
    "max_new_tokens": "max_tokens",
    "seed": "seed",
    "system_prompt": "system_prompt",
}


@dataclass
class RunSummary:
    label: str
    path: Path
    data: dict[str, Any]

    def score(self, task: str) -> float | None:
        entry = self.data.get("tasks", {}).get(task)
        return None if entry is None else entry.get("pass_at_1")

    def std(self, task: str) -> float | None:
        entry = self.data.get("tasks", {}).get(task)
        return None if entry is None else entry.get("pass_at_1_std")

    def settings(self) -> dict[str, Any]:
        """The recorded settings; from `generation` for older summaries; {} when none."""
        recorded = self.data.get("settings")
        if isinstance(recorded, dict):
            return recorded
        generation = self.data.get("generation")
        if not isinstance(generation, dict):
            return {}
        settings = {
            new: generation[old] for old, new in _LEGACY_GENERATION.items() if old in generation
        }
        if "grader" in self.data:
            settings["grader"] = self.data["grader"]
        return settings


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    return str(value)


@dataclass
class SettingsCheck:
    """Where rows disagree, and which rows are too old to tell.

    `differences`: setting -> row label -> value, for every setting with more than one value.
    `unrecorded`: rows whose summary records no settings at all (cannot be checked).
    `unknown`: row label -> the settings its (older) summary does not record.
    """

    differences: dict[str, dict[str, Any]]
    unrecorded: list[str]
    unknown: dict[str, list[str]]

    def difference_lines(self) -> list[str]:
        return [
            f"{setting}: " + ", ".join(f"{label}={_show(v)}" for label, v in values.items())
            for setting, values in self.differences.items()
        ]

    def refusal(self) -> str:
        lines = "\n".join(f"  {line}" for line in self.difference_lines())
        return (
            "these results were generated with different settings, so their numbers are not "
            f"comparable:\n{lines}\nre-run the odd ones out with the same settings, or pass "
            "--force to compare anyway"
        )

    def force_warning(self) -> str:
        return "warning: compared with --force although the rows differ in " + "; ".join(
            self.difference_lines()
        )

    def unchecked_warning(self) -> str | None:
        parts = [f"{label}: no settings recorded" for label in self.unrecorded]
        parts += [
            f"{label}: {', '.join(missing)} not recorded" for label, missing in self.unknown.items()
        ]
        if not parts:
            return None
        return (
            "warning: these rows come from summaries written by an older ropd and cannot be "
            f"fully checked ({'; '.join(parts)}); re-run their `ropd eval` command to record "
            "the settings (finished samples are reused)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "differences": self.differences,
            "unrecorded": self.unrecorded,
            "unknown": self.unknown,
        }


def check_settings(runs: list[RunSummary]) -> SettingsCheck:
    """Compare every row's generation settings and shared tasks' sizes; the model may differ."""
    recorded = {run.label: run.settings() for run in runs}
    unrecorded = [label for label, settings in recorded.items() if not settings]
    differences: dict[str, dict[str, Any]] = {}
    unknown: dict[str, list[str]] = {}
    for setting in COMPARED_SETTINGS:
        values = {}
        for label, settings in recorded.items():
            if not settings:
                continue
            if setting not in settings:
                # the grader's token budget only matters for a row that was graded at all
                if setting != "grader_max_tokens" or settings.get("grader") is not None:
                    unknown.setdefault(label, []).append(setting)
            elif settings[setting] is not None or setting not in _ONLY_WHEN_SET:
                values[label] = settings[setting]
        if len({json.dumps(v, sort_keys=True) for v in values.values()}) > 1:
            differences[setting] = values
    for task in sorted({task for run in runs for task in run.data["tasks"]}):
        for name in COMPARED_TASK_FIELDS:
            values = {}
            for run in runs:
                entry = run.data["tasks"].get(task)
                if isinstance(entry, dict) and name in entry:
                    values[run.label] = entry[name]
            if len({json.dumps(v) for v in values.values()}) > 1:
                differences[f"{name} of {task}"] = values
    return SettingsCheck(differences, unrecorded, unknown)


def load_run(path: Path) -> RunSummary:
    file = path / SUMMARY_JSON if path.is_dir() else path
    if not file.is_file():
        raise EvalError(f"{path}: no {SUMMARY_JSON} (run `ropd eval ... -o {path}` first)")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise EvalError(f"{file}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data.get("tasks"), dict):
        raise EvalError(f"{file}: field 'tasks' is missing; is this a ropd eval summary?")
    label = file.parent.name if file.name == SUMMARY_JSON else file.stem
    return RunSummary(label=label, path=file.parent, data=data)


def gap_closed(model: float | None, base: float | None, teacher: float | None) -> float | None:
    if model is None or base is None or teacher is None or abs(teacher - base) < 1e-12:
        return None
    return (model - base) / (teacher - base)


@dataclass
class Comparison:
    runs: list[RunSummary]
    tasks: list[str]
    base: RunSummary | None
    teacher: RunSummary | None

    @property
    def settings_check(self) -> SettingsCheck:
        return check_settings(self.runs)

    def require_same_settings(self, *, force: bool = False) -> SettingsCheck:
        """Raise `IncomparableRunsError` when rows differ, unless `force`; return the check."""
        check = self.settings_check
        if check.differences and not force:
            raise IncomparableRunsError(check.refusal())
        return check

    def average(self, run: RunSummary) -> float | None:
        values = [run.score(t) for t in self.tasks]
        if not values or any(v is None for v in values):
            return None
        return sum(values) / len(values)  # type: ignore[arg-type]

    def gap(self, run: RunSummary, task: str | None) -> float | None:
        if self.base is None or self.teacher is None:
            return None
        if task is None:
            return gap_closed(
                self.average(run), self.average(self.base), self.average(self.teacher)
            )
        return gap_closed(run.score(task), self.base.score(task), self.teacher.score(task))

    def row(self, run: RunSummary) -> dict[str, Any]:
        """One row's numbers as JSON: pass@1 and its spread per task, average, gap closed."""
        gaps = None
        if self.base is not None and self.teacher is not None:
            gaps = {t: self.gap(run, t) for t in self.tasks}
            gaps["average"] = self.gap(run, None)
        return {
            "path": str(run.path),
            "model": run.data.get("model"),
            "settings": run.settings() or None,
            "pass_at_1": {t: run.score(t) for t in self.tasks},
            "pass_at_1_std": {t: run.std(t) for t in self.tasks},
            "average": self.average(run),
            "gap_closed": gaps,
        }

    def header(self) -> dict[str, Any]:
        """What every row is read against, as JSON (shared by the study table's JSON)."""
        return {
            "base": self.base.label if self.base else None,
            "teacher": self.teacher.label if self.teacher else None,
            "tasks": self.tasks,
            "settings_check": self.settings_check.as_dict(),
        }

    def as_dict(self) -> dict[str, Any]:
        return {**self.header(), "runs": {run.label: self.row(run) for run in self.runs}}


def _pick(runs: list[RunSummary], given: Path | None, name: str) -> RunSummary | None:
    if given is not None:
        given_run = load_run(given)
        for run in runs:
            if run.path.resolve() == given_run.path.resolve():
                return run
        runs.append(given_run)
        return given_run
    matches = [r for r in runs if r.label.lower() == name]
    return matches[0] if matches else None


def build_comparison(
    paths: list[Path], *, base: Path | None = None, teacher: Path | None = None
) -> Comparison:
    """Load every run; base and teacher are given, or found by a folder named base / teacher."""
    runs = [load_run(p) for p in paths]
    base_run = _pick(runs, base, "base")
    teacher_run = _pick(runs, teacher, "teacher")
    tasks: list[str] = []
    for run in runs:
        for task in run.data["tasks"]:
            if task not in tasks:
                tasks.append(task)
    labels = [r.label for r in runs]
    for label in {x for x in labels if labels.count(x) > 1}:
        for i, run in enumerate(r for r in runs if r.label == label):
            run.label = f"{label}#{i + 1}"
    return Comparison(runs, tasks, base_run, teacher_run)


def render_table(comparison: Comparison) -> Table:
    """Models as rows, tasks as columns (pass@1 % ± std), plus the average and the gap closed."""
    table = Table(title="pass@1 (%)", show_lines=False)
    table.add_column("model", style="bold")
    for task in comparison.tasks:
        table.add_column(task, justify="right")
    table.add_column("avg", justify="right")
    has_gap = comparison.base is not None and comparison.teacher is not None
    if has_gap:
        table.add_column("gap closed (avg)", justify="right")
    for run in comparison.runs:
        role = ""
        if run is comparison.base:
            role = " (base)"
        elif run is comparison.teacher:
            role = " (teacher)"
        cells = [f"{run.label}{role}"]
        for task in comparison.tasks:
            score, std = run.score(task), run.std(task)
            cells.append("—" if score is None else f"{pct(score)} ± {pct(std)}")
        cells.append(pct(comparison.average(run)))
        if has_gap:
            gap = comparison.gap(run, None)
            cells.append("n/a" if gap is None else f"{100 * gap:.1f}%")
        table.add_row(*cells)
    return table


def render_gap_table(comparison: Comparison) -> Table | None:
    """Per-task share of the gap closed, when base and teacher are known."""
    if comparison.base is None or comparison.teacher is None:
        return None
    table = Table(
        title=f"share of the gap closed ({comparison.base.label} → {comparison.teacher.label})"
    )
    table.add_column("model", style="bold")
    for task in comparison.tasks:
        table.add_column(task, justify="right")
    for run in comparison.runs:
        if run is comparison.base or run is comparison.teacher:
            continue
        cells = [run.label]
        for task in comparison.tasks:
            gap = comparison.gap(run, task)
            cells.append("n/a" if gap is None else f"{100 * gap:.1f}%")
        table.add_row(*cells)
    return table
