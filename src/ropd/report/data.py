"""Everything a report shows, gathered into plain dicts (numbers, strings, lists) first.

The HTML layer then only formats: it never opens the trace store, so what the page says is
exactly what was collected here (and what the tests check). The per-step numbers are
`TraceStore.summary()`'s `StepMetrics`, the very numbers the training log got.

Every string that reaches the page passes `redact.scrub` again: the trace store already scrubbed
what it stored, but eval summaries and analysis files did not come through it, and a key
remembered since (this process read it) is removed too.

A long run has far more groups than a page can carry, so the rubric browser gets at most
`max_groups` of them (failed groups first, up to half of that, then the newest scored ones),
every answer clipped to `max_answer_chars`, within `max_bytes` of JSON; the page says how many
were left out and `ropd inspect GROUP_ID` shows any of them.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ropd.errors import InputError
from ropd.eval.compare import load_run
from ropd.eval.summary import pct
from ropd.ranking import auc, pair_counts, roc_curve
from ropd.redact import scrub, scrub_value
from ropd.report.plan_compare import load_plan, plan_vs_actual
from ropd.reward.metrics import (
    METRIC_CATEGORIES,
    OTHER_CATEGORY,
    StepMetrics,
    metric_category,
    step_metrics,
)
from ropd.reward.traces import GroupSummary, TracedGroup, TracedStep, TraceStore
from ropd.reward.types import GroupResult
from ropd.text import clip_middle

DEFAULT_MAX_GROUPS = 2000
DEFAULT_MAX_ANSWER_CHARS = 4000
DEFAULT_MAX_BYTES = 40_000_000  # of group JSON: a page a browser still opens without a fight
MAX_IMAGE_BYTES = 5_000_000  # an analysis image larger than this is named, not embedded
# train/runner.py's RUN_FILE, not imported from there: that module loads the OpenAI client
RUN_FILE = "ropd_run.json"
ANALYSIS_JSON = "analysis.json"
REWARDS_JSONL = "rewards.jsonl"  # `ropd analyze`'s per-response rewards: the report's own ROC
BOOTSTRAP_RESAMPLES = 1000  # of groups, for the 95% intervals of AUC and pair accuracy
BOOTSTRAP_SEED = 0  # fixed: the same files always give the same page
ANALYSIS_DIR = "analysis"  # where `ropd analyze` writes, inside a run folder
# `ropd analyze`'s per-method numbers, in the order shown; any others follow them
ANALYSIS_COLUMNS = (
    "auc",
    "auc_ci",
    "auc_within_prompt",
    "pair_accuracy",
    "pair_accuracy_ci",
    "reward_mean_correct",
    "reward_mean_incorrect",
    "failed_groups",
)
# human column headers of the analysis tables; any other key shows with spaces for underscores
HEADERS = {
    "auc": "AUC",
    "auc_ci": "AUC 95% CI",
    "auc_within_prompt": "AUC within prompt",
    "prompts_with_both_classes": "prompts with both classes",
    "pair_accuracy": "pair accuracy",
    "pair_accuracy_ci": "pair accuracy 95% CI",
    "reward_mean_correct": "reward mean (correct)",
    "reward_mean_incorrect": "reward mean (incorrect)",
    "responses_scored": "responses scored",
    "failed_calls": "failed calls",
    "prompt_tokens": "input tokens",
    "completion_tokens": "output tokens",
    "latency_s": "latency (s)",
    "pass_rate_correct": "pass rate (correct)",
    "pass_rate_incorrect": "pass rate (incorrect)",
    "verdicts_correct": "verdicts (correct)",
    "verdicts_incorrect": "verdicts (incorrect)",
}
USAGE_COLUMNS = ("calls", "failed_calls", "prompt_tokens", "completion_tokens", "latency_s", "cost")


@dataclass
class ReportData:
    """What one report page shows, as plain values (see the module doc for the caps)."""

    title: str
    traces: str
    generated_at: float
    run_id: str | None
    other_runs: list[str] = field(default_factory=list)
    run_info: dict[str, Any] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)
    groups: list[dict[str, Any]] = field(default_factory=list)
    groups_total: int = 0
    groups_note: str = ""
    evals: list[dict[str, Any]] = field(default_factory=list)
    study: dict[str, Any] | None = None  # every method side by side (`study_view`)
    analysis: dict[str, Any] | None = None
    scored: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] | None = None  # planned against spent (`report/plan_compare.py`)
    plan_note: str = ""  # why the run folder's plan.json could not be read

    @property
    def has_cost(self) -> bool:
        return any(s["judge_cost"] is not None for s in self.steps)

    @property
    def is_score(self) -> bool:
        """A `ropd score` store: groups without training steps."""
        return bool(self.steps) and all(s["step"] is None for s in self.steps)

    @property
    def has_curves(self) -> bool:
        """Per-step curves only where there are steps to draw a curve over (two or more)."""
        return not self.is_score and len(self.steps) >= 2


def number(value: Any) -> float | None:
    """A finite float, or None (NaN rewards are masked answers; JSON has no NaN)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


# -- per-step numbers ---------------------------------------------------------------------------


def quartiles(values: list[float]) -> tuple[float, float, float] | None:
    """(q1, median, q3) of the values (linear interpolation, numpy's default); None if empty."""
    if not values:
        return None
    xs = sorted(values)

    def at(q: float) -> float:
        pos = q * (len(xs) - 1)
        low = math.floor(pos)
        high = min(low + 1, len(xs) - 1)
        return xs[low] + (xs[high] - xs[low]) * (pos - low)

    return at(0.25), at(0.5), at(0.75)


def _rewards(values: Iterable[Any]) -> list[float]:
    return [x for x in map(number, values) if x is not None]


def step_rewards(results: Iterable[GroupResult]) -> list[float]:
    """Every student reward of the step's scored groups (what `reward_mean` averages)."""
    return [r for res in results if not res.failed for r in _rewards(res.rewards)]


def step_row(
    run_id: str, step: int | None, m: StepMetrics, rewards: list[float] | None = None
) -> dict[str, Any]:
    """One step's numbers; judge cost only where the metrics carry one (a price was set).

    `rewards` (the step's student rewards) give the interquartile range the reward chart
    shades; a failed step (groups, none scored) is flagged for the chart to mark.
    """
    spread = quartiles(rewards or [])
    judge = {
        role: {
            "calls": u.calls,
            "failed_calls": u.failed_calls,
            "input_tokens": u.prompt_tokens,
            "output_tokens": u.completion_tokens,
            "latency_s": number(u.mean_latency_s),
            "cost": number(u.cost),
        }
        for role, u in m.judge.items()
    }
    return {
        "run": run_id,
        "step": step,
        "groups": m.groups,
        "failed_groups": m.failed_groups,
        "failed_group_rate": m.failed_group_rate,
        "reward_mean": number(m.reward_mean),
        "reward_std": number(m.reward_std),
        "reward_std_within_group_mean": number(m.reward_std_within_group_mean),
        "reward_q1": spread[0] if spread else None,
        "reward_median": spread[1] if spread else None,
        "reward_q3": spread[2] if spread else None,
        "rewards_counted": len(rewards or []),
        "failed_step": m.groups > 0 and m.failed_groups == m.groups,
        "teacher_score_mean": number(m.teacher_score_mean),
        "beat_teacher_rate": number(m.beat_teacher_rate),
        "rubric_size": number(m.rubric_size),
        "pass_rate": {c: number(r) for c, r in m.pass_rate.items()},
        "judge": judge,
        "judge_calls": math.fsum(u.calls for u in m.judge.values()),
        "judge_cost": number(m.judge_cost),
        # reward health the store gives (`reward/health.py`): anchors, sampled checks, answer
        # texts, and gold agreement where the answers' gold checks were stored
        "health": {name: number(v) for name, v in m.health.as_dict(prefix="").items()},
    }


def _step_order(s: TracedStep) -> tuple[bool, int]:
    return (s.step is not None, s.step or 0)


def step_rows(traced: list[TracedStep]) -> list[dict[str, Any]]:
    """Per step, in step order: `step_metrics` (the numbers `TraceStore.summary` gives), its
    health numbers also from the stored answers and their gold checks."""
    return [
        step_row(
            t.run_id,
            t.step,
            step_metrics(t.results, answers=t.answers or None, correct=t.correct or None),
            step_rewards(t.results),
        )
        for t in sorted(traced, key=_step_order)
    ]


def scored_summary(traced: list[TracedStep]) -> dict[str, Any]:
    """Per group of the run (every group, not only the browser's): what a page without
    training curves shows instead of them: counts, rewards, teacher scores, rubric sizes."""
    results = [res for t in traced for res in t.results]
    scored = [res for res in results if not res.failed]
    group_means, pairs, sizes = [], [], []
    for res in scored:
        student = _rewards(res.rewards)
        teacher = _rewards(res.teacher_scores)
        if student:
            group_means.append(math.fsum(student) / len(student))
        if student and teacher:
            pairs.append((math.fsum(teacher) / len(teacher), math.fsum(student) / len(student)))
        sizes += [len(rubric.criteria) for rubric in res.rubrics]
    rewards = [r for res in scored for r in _rewards(res.rewards)]
    teacher_scores = [r for res in scored for r in _rewards(res.teacher_scores)]
    spread = quartiles(rewards)
    return {
        "groups": len(results),
        "failed": len(results) - len(scored),
        "responses": len(rewards),
        "rewards": rewards,
        "group_means": group_means,
        "teacher_scores": teacher_scores,
        "teacher_vs_student": pairs,
        "rubric_sizes": sizes,
        "reward_mean": math.fsum(rewards) / len(rewards) if rewards else None,
        "reward_median": spread[1] if spread else None,
        "reward_iqr": (spread[0], spread[2]) if spread else None,
        "teacher_mean": math.fsum(teacher_scores) / len(teacher_scores) if teacher_scores else None,
        "student_above_teacher": sum(1 for t, s in pairs if s > t),
        "rubric_size_mean": math.fsum(sizes) / len(sizes) if sizes else None,
    }


def _totals(steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Whole-run sums for the head of the page."""
    costs = [s["judge_cost"] for s in steps if s["judge_cost"] is not None]
    roles = [r for s in steps for r in s["judge"].values()]
    return {
        "steps": len(steps),
        "groups": sum(s["groups"] for s in steps),
        "failed_groups": sum(s["failed_groups"] for s in steps),
        "judge_calls": math.fsum(r["calls"] for r in roles),
        "input_tokens": math.fsum(r["input_tokens"] for r in roles),
        "output_tokens": math.fsum(r["output_tokens"] for r in roles),
        "judge_cost": math.fsum(costs) if costs else None,
        "last": steps[-1] if steps else None,
    }


def _categories(steps: list[dict[str, Any]]) -> list[str]:
    """The categories seen, in the fixed metric order (`other` last)."""
    seen = {c for s in steps for c in s["pass_rate"]}
    order = [*METRIC_CATEGORIES, OTHER_CATEGORY]
    return [c for c in order if c in seen] + sorted(seen - set(order))


# -- which run ----------------------------------------------------------------------------------


def choose_run(
    store: TraceStore, wanted: str | None, run_dir: Path | None
) -> tuple[str | None, list[str], dict[str, Any]]:
    """The run to report, the store's other runs with groups, and the chosen run's info.

    `--run` wins; else the run named by the run folder's `ropd_run.json`; else the newest run
    with groups (the page names the others, so a shared store is never silently mixed).
    """
    runs = store.runs()
    by_id = {r["run_id"]: r for r in runs}
    with_groups = [r["run_id"] for r in runs if r["groups"]]
    if wanted is not None:
        if wanted not in by_id:
            known = ", ".join(with_groups) or "none"
            raise InputError(f"no run {wanted!r} in {store.path} (runs with groups: {known})")
        chosen: str | None = wanted
    else:
        chosen = _run_file_id(run_dir)
        if chosen not in by_id:
            chosen = with_groups[-1] if with_groups else None
    others = [r for r in with_groups if r != chosen]
    info = by_id[chosen]["info"] if chosen in by_id else {}
    return chosen, others, info


def _run_file_id(run_dir: Path | None) -> str | None:
    if run_dir is None or not (run_dir / RUN_FILE).is_file():
        return None
    try:
        run_id = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8")).get("run_id")
    except (json.JSONDecodeError, OSError, AttributeError):
        return None
    return run_id if isinstance(run_id, str) else None


# -- the rubric browser -------------------------------------------------------------------------


def select_groups(listing: list[GroupSummary], max_groups: int) -> list[GroupSummary]:
    """Failed groups first (at most half of `max_groups` while scored ones remain), then the
    newest scored; `listing` is newest first, as `TraceStore.list` returns it."""
    if max_groups <= 0:
        return []
    failed = [g for g in listing if g.error is not None]
    scored = [g for g in listing if g.error is None]
    take_failed = min(len(failed), max(max_groups // 2, max_groups - len(scored)))
    take_scored = min(len(scored), max_groups - take_failed)
    return failed[:take_failed] + scored[:take_scored]


def prompt_text(prompt: str | list[dict[str, Any]]) -> str:
    """A chat prompt as `[role] content` lines (the way `ropd inspect` prints it)."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"[{m.get('role')}] {m.get('content')}" for m in prompt)


def group_entry(traced: TracedGroup, max_answer_chars: int) -> dict[str, Any]:
    """One group for the browser: prompt, rubrics, answers with verdicts, rewards, error."""
    result = traced.result
    judged = {(v.source, v.index): v for v in result.verdicts}
    texts = [("student", i, t) for i, t in enumerate(traced.student_responses)]
    texts += [("teacher", j, t) for j, t in enumerate(traced.teacher_responses)]
    answers = []
    for source, index, text in texts:
        values = result.rewards if source == "student" else result.teacher_scores
        v = judged.get((source, index))
        answers.append(
            {
                "source": source,
                "index": index,
                "reward": number(values[index]) if index < len(values) else None,
                "label": v.label if v else None,
                "rubric": v.rubric_index if v else 0,
                "duplicate_of": v.duplicate_of if v else None,
                "note": scrub(v.note) if v and v.note else None,
                "verdicts": dict(v.verdicts) if v else {},
                "chars": len(text),
                "text": scrub(clip_middle(text, max_answer_chars)),
            }
        )
    rewards = [a["reward"] for a in answers if a["source"] == "student"]
    valid = [r for r in rewards if r is not None]
    return {
        "id": scrub(traced.group_id),
        "run": scrub(traced.run_id),
        "step": traced.step,
        "created_at": traced.created_at,
        "prompt": scrub(prompt_text(traced.prompt)),
        "error": scrub(result.error) if result.error is not None else None,
        "failure_policy": result.failure_policy,
        "reward_mean": math.fsum(valid) / len(valid) if valid and not result.failed else None,
        "rubrics": [
            [
                {
                    "id": scrub(c.id),
                    "category": scrub(c.category),
                    "metric_category": metric_category(c.category),
                    "points": c.points,
                    "text": scrub(c.criterion),
                }
                for c in rubric.criteria
            ]
            for rubric in result.rubrics
        ],
        "answers": answers,
    }


def collect_groups(
    store: TraceStore,
    run_id: str | None,
    *,
    max_groups: int,
    max_answer_chars: int,
    max_bytes: int,
) -> tuple[list[dict[str, Any]], int, str]:
    """The browser's groups, how many the run has, and a note on what was left out."""
    if run_id is None:
        return [], 0, ""
    listing = store.list(run_id=run_id, limit=None)
    chosen = select_groups(listing, max_groups)
    entries: list[dict[str, Any]] = []
    size = 0
    over_budget = False
    for summary in chosen:
        traced = store.get(summary.group_id, run_id=run_id, step=summary.step)
        if traced is None:  # replaced since the listing (a run writing right now)
            continue
        entry = group_entry(traced, max_answer_chars)
        size += len(json.dumps(entry, ensure_ascii=False))
        if size > max_bytes and entries:
            over_budget = True
            break
        entries.append(entry)
    entries.sort(key=lambda e: (-(e["step"] if e["step"] is not None else -1), -e["created_at"]))
    left = len(listing) - len(entries)
    note = ""
    if left:
        why = f"{max_bytes / 1e6:.0f} MB of group data" if over_budget else f"{max_groups} groups"
        failed = sum(1 for e in entries if e["error"] is not None)
        note = (
            f"{len(entries)} of {len(listing)} groups embedded (failed groups first: {failed}; "
            f"then the newest scored); {left} left out to keep the page under {why}. "
            "`ropd inspect GROUP_ID` shows any group."
        )
    return entries, len(listing), note


# -- eval summaries and analysis ----------------------------------------------------------------


def load_eval(path: Path) -> dict[str, Any]:
    """One `ropd eval` summary (a folder holding summary.json, or the file) as table rows."""
    run = load_run(path)
    data = run.data
    rows = []
    for name, task in data["tasks"].items():
        if not isinstance(task, dict):
            continue
        rows.append(
            {
                "task": scrub(str(name)),
                "family": scrub(str(task.get("family", ""))),
                "pass_at_1": pct(number(task.get("pass_at_1"))),
                "std": pct(number(task.get("pass_at_1_std"))),
                "items": task.get("items"),
                "n": task.get("n"),
                "failed": task.get("failed"),
                "truncated": task.get("truncated"),
            }
        )
    return {
        "label": scrub(run.label),
        "path": scrub(str(path)),
        "model": scrub(str(data.get("model", "?"))),
        "fingerprint": scrub(str(data.get("model_fingerprint", ""))),
        "settings": {k: _plain(v) for k, v in scrub_value(run.settings()).items()},
        "tasks": rows,
    }


def study_view(study: dict[str, Any]) -> dict[str, Any]:
    """The study table (`ropd.eval.study.Study.as_dict`: a row per method, base first, teacher
    last) as page cells: pass@1 % per task, the average and the gap closed on it."""
    tasks = [str(t) for t in study.get("tasks", [])]
    has_gap = study.get("base") is not None and study.get("teacher") is not None
    rows = []
    for row in study.get("rows", []):
        scores = row.get("pass_at_1") or {}
        gaps = row.get("gap_closed") or {}
        gap = number(gaps.get("average"))
        rows.append(
            {
                "method": scrub(str(row.get("method", "-"))),
                "name": scrub(str(row.get("run") or row.get("label", ""))),
                "model": scrub(str(row.get("model") or "")),
                "access": row.get("access"),
                "scores": [pct(number(scores.get(t))) for t in tasks],
                "average": pct(number(row.get("average"))),
                "gap": "n/a" if gap is None else f"{100 * gap:.1f}%",
            }
        )
    differences = (study.get("settings_check") or {}).get("differences") or {}
    return {
        "tasks": [scrub(t) for t in tasks],
        "has_gap": has_gap,
        "base": scrub(str(study.get("base"))),
        "teacher": scrub(str(study.get("teacher"))),
        "rows": rows,
        "differences": [scrub(str(name)) for name in differences],
    }


def _plain(value: Any) -> str:
    """A settings value or an unknown analysis field as short text."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    return "none" if value is None else scrub(str(value))


def analysis_file(path: Path) -> Path:
    """`analysis.json` in a folder, or the file itself; InputError when there is none."""
    file = path / ANALYSIS_JSON if path.is_dir() else path
    if not file.is_file():
        raise InputError(f"{path}: no {ANALYSIS_JSON} (run `ropd analyze` first)")
    return file


def load_analysis(path: Path) -> dict[str, Any]:
    """`ropd analyze`'s results as tables, and the folder's SVG images as data URIs.

    The images are embedded as `<img src="data:...">`, never inline: a file in a folder is
    not ropd's own output, and a script inside an SVG does not run from an image.
    """
    file = analysis_file(path)
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{file}: expected a JSON object (`ropd analyze` output)")
    raw = scrub_value(raw)
    pool = raw.get("pool") if isinstance(raw.get("pool"), dict) else {}
    methods = {k: v for k, v in (raw.get("methods") or {}).items() if isinstance(v, dict)}
    categories = {k: v for k, v in (raw.get("categories") or {}).items() if isinstance(v, dict)}
    # per method: numbers in one table; judge usage (role -> totals) in another; settings apart
    scalars = {
        name: {k: v for k, v in figures.items() if not isinstance(v, dict | list)}
        for name, figures in methods.items()
    }
    usage = {
        f"{name} / {role}": totals
        for name, figures in methods.items()
        if isinstance(figures.get("judge_usage"), dict)
        for role, totals in figures["judge_usage"].items()
        if isinstance(totals, dict)
    }
    settings = {
        name: {str(k): _plain(v) for k, v in figures["settings"].items()}
        for name, figures in methods.items()
        if isinstance(figures.get("settings"), dict)
    }
    roc = load_roc(file.parent / REWARDS_JSONL, methods)
    for curve in roc:
        if curve["name"] in scalars:
            scalars[curve["name"]]["auc_ci"] = _interval(curve["auc_ci"])
            scalars[curve["name"]]["pair_accuracy_ci"] = _interval(curve["pair_accuracy_ci"])
    images, skipped = [], []
    for svg in sorted(file.parent.glob("*.svg")):
        if roc and svg.name == "roc.svg":
            continue  # the page draws the ROC itself, with each curve's AUC in its legend
        body = svg.read_bytes()
        if len(body) > MAX_IMAGE_BYTES:
            skipped.append(svg.name)
            continue
        uri = "data:image/svg+xml;base64," + base64.b64encode(body).decode("ascii")
        images.append({"name": scrub(svg.name), "uri": uri})
    return {
        "path": scrub(str(file)),
        "pool": {str(k): _plain(v) for k, v in pool.items()},
        "methods": _table(scalars, ANALYSIS_COLUMNS),
        "usage": _table(usage, USAGE_COLUMNS),
        "settings": settings,
        "categories": _table(categories, ()),
        "categories_method": _plain(raw.get("categories_method")),
        "roc": roc,
        "images": images,
        "skipped_images": skipped,
    }


# -- ROC and bootstrap intervals, from `ropd analyze`'s rewards.jsonl -------------------------


def _pair_accuracy(groups: list[list[tuple[bool, float]]]) -> float | None:
    """Correct-over-incorrect wins within each group, as `ropd analyze` counts them."""
    counts = [pair_counts(group) for group in groups]
    pairs = sum(n for _, n in counts)
    return sum(wins for wins, _ in counts) / pairs if pairs else None


def bootstrap_intervals(
    groups: list[list[tuple[bool, float]]], resamples: int = BOOTSTRAP_RESAMPLES
) -> dict[str, tuple[float, float] | None]:
    """95% percentile intervals of AUC and pair accuracy, resampling whole groups (the
    responses of one prompt are not independent), with a fixed seed."""
    import random

    rng = random.Random(BOOTSTRAP_SEED)
    aucs, accuracies = [], []
    for _ in range(resamples if len(groups) > 1 else 0):
        sample = [groups[rng.randrange(len(groups))] for _ in groups]
        flat = [pair for group in sample for pair in group]
        a = auc([ok for ok, _ in flat], [r for _, r in flat])
        if a is not None:
            aucs.append(a)
        p = _pair_accuracy(sample)
        if p is not None:
            accuracies.append(p)

    def interval(values: list[float]) -> tuple[float, float] | None:
        if len(values) < resamples // 2:  # most resamples undefined: no honest interval
            return None
        values.sort()
        return values[int(0.025 * (len(values) - 1))], values[int(0.975 * (len(values) - 1))]

    return {"auc_ci": interval(aucs), "pair_accuracy_ci": interval(accuracies)}


def load_roc(path: Path, methods: dict[str, Any]) -> list[dict[str, Any]]:
    """Per method of `rewards.jsonl` (scored groups, responses with a reward, as `ropd
    analyze` counts them): the ROC curve, its AUC (analysis.json's, else computed) and
    bootstrap intervals. Empty when there is no such file or it cannot be read."""
    if not path.is_file():
        return []
    by_method: dict[str, dict[str, list[tuple[bool, float]]]] = {}
    try:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                row = json.loads(line) if line.strip() else None
                if not isinstance(row, dict) or row.get("failed"):
                    continue
                reward = number(row.get("reward"))
                if reward is None or not isinstance(row.get("correct"), bool):
                    continue
                groups = by_method.setdefault(str(row.get("method")), {})
                groups.setdefault(str(row.get("group_id")), []).append((row["correct"], reward))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return []
    curves = []
    for name, by_group in by_method.items():
        groups = list(by_group.values())
        flat = [pair for group in groups for pair in group]
        labels, scores = [ok for ok, _ in flat], [r for _, r in flat]
        if len(set(labels)) < 2:
            continue
        stated = number((methods.get(name) or {}).get("auc"))
        fpr, tpr = roc_curve(labels, scores)
        curves.append(
            {
                "name": scrub(name),
                "auc": stated if stated is not None else auc(labels, scores),
                "fpr": fpr,
                "tpr": tpr,
                "responses": len(flat),
                **bootstrap_intervals(groups),
            }
        )
    return curves


def _interval(value: tuple[float, float] | None) -> str | None:
    return None if value is None else f"{value[0]:.3g} to {value[1]:.3g}"


def header(key: str) -> str:
    """An analysis column as the page heads it."""
    return HEADERS.get(key, key.replace("_", " "))


def _table(rows: dict[str, dict[str, Any]], first: Iterable[str]) -> dict[str, Any]:
    """Rows keyed by name → columns (the known ones first) and cells (numbers or text)."""
    seen = list(dict.fromkeys(k for row in rows.values() for k in row))
    columns = [c for c in first if c in seen] + [c for c in seen if c not in first]
    cells = [
        {"name": str(name), "cells": [_cell(row.get(c)) for c in columns]}
        for name, row in rows.items()
    ]
    return {"columns": columns, "headers": [header(c) for c in columns], "rows": cells}


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):  # three significant digits; large values whole
        return f"{value:.3g}" if abs(value) < 1e3 else f"{value:,.0f}"
    return _plain(value)


def default_analysis(run_dir: Path | None) -> Path | None:
    """`RUN_DIR/analysis/analysis.json`, when `ropd analyze` wrote one there."""
    if run_dir is None:
        return None
    file = run_dir / ANALYSIS_DIR / ANALYSIS_JSON
    return file if file.is_file() else None


# -- all of it ----------------------------------------------------------------------------------


def collect(
    traces: Path,
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
    """Read the trace store (one run of it), eval summaries and analysis into `ReportData`.

    `study` is `ropd.eval.study.Study.as_dict()` of several evals (the caller builds it: the
    study reads training run files, which this layer does not import).

    Eval and analysis files are read first, so a wrong path fails before the store is read.
    """
    if not traces.is_file():  # opening a missing path would create an empty store
        raise InputError(f"{traces}: no trace database there")
    eval_data = [load_eval(p) for p in evals]
    analysis_data = load_analysis(analysis) if analysis is not None else None
    plan, plan_note = load_plan(run_dir)
    with TraceStore(traces, run_id="report") as store:
        chosen, others, info = choose_run(store, run_id, run_dir)
        traced = store.steps(run_id=chosen) if chosen is not None else []
        steps = step_rows(traced)
        groups, total, note = collect_groups(
            store,
            chosen,
            max_groups=max_groups,
            max_answer_chars=max_answer_chars,
            max_bytes=max_bytes,
        )
    title = (run_dir.name if run_dir is not None else traces.name) or str(traces)
    return ReportData(
        title=scrub(title),
        traces=scrub(str(traces)),
        generated_at=time.time(),
        run_id=scrub(chosen) if chosen is not None else None,
        other_runs=[scrub(r) for r in others],
        run_info=scrub_value(info) if isinstance(info, dict) else {},
        steps=steps,
        categories=_categories(steps),
        roles=sorted({role for s in steps for role in s["judge"]}),
        totals=_totals(steps),
        groups=groups,
        groups_total=total,
        groups_note=note,
        evals=eval_data,
        study=study_view(study) if study is not None else None,
        analysis=analysis_data,
        scored=scored_summary(traced) if traced else {},
        plan=plan_vs_actual(plan, steps) if plan is not None and steps else None,
        plan_note=plan_note,
    )
