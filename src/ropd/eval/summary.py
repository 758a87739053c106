"""Pass@1 per task from scored samples, and the `summary.json` / `summary.md` files.

pass@1 is the mean score over all items and samples. Its spread is reported as the standard
deviation, over the n sample indices, of the per-index accuracy (the run-to-run spread you
would see evaluating n times with one sample each): that is the paper's "avg@n ± std".

`failed` counts every wanted sample without a score: not generated (the request failed) or not
graded (the grader failed). A summary is only written at the end of a run, when every missing
sample has been tried, so a missing sample is a failed one.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize_task(
    name: str,
    family: str,
    source: str,
    records: list[dict[str, Any]],
    n: int,
    items: int,
    *,
    limit: int | None = None,
) -> dict[str, Any]:
    """Aggregate one task's sample records (one per item and sample index)."""
    scored = [r for r in records if r.get("score") is not None]
    per_index: list[float] = []
    for index in range(n):
        values = [float(r["score"]) for r in scored if r["sample_index"] == index]
        if values:
            per_index.append(sum(values) / len(values))
    summary: dict[str, Any] = {
        "family": family,
        "source": source,
        "pass_at_1": _mean([float(r["score"]) for r in scored]),
        # no score at all: no spread either (n/a, not a reassuring 0.0)
        "pass_at_1_std": (
            None if not scored else statistics.stdev(per_index) if len(per_index) > 1 else 0.0
        ),
        "n": n,
        "items": items,
        "limit": limit,
        "samples": len(records),
        "scored": len(scored),
        "failed": n * items - len(scored),
        "failed_generation": n * items - len(records),
        "failed_grading": len(records) - len(scored),
        "missing": n * items - len(records),  # = failed_generation; kept for older readers
        "truncated": sum(1 for r in records if r.get("finish_reason") == "length"),
    }
    summary.update(_family_metrics(family, scored))
    return summary


def _family_metrics(family: str, scored: list[dict[str, Any]]) -> dict[str, Any]:
    details = [r.get("details") or {} for r in scored]
    if family == "ifeval":
        inst_strict = [v for d in details for v in d.get("inst_strict", [])]
        inst_loose = [v for d in details for v in d.get("inst_loose", [])]
        return {
            "prompt_level_strict": _mean([float(d.get("prompt_strict", 0)) for d in details]),
            "prompt_level_loose": _mean([float(d.get("prompt_loose", 0)) for d in details]),
            "inst_level_strict": _mean([float(v) for v in inst_strict]),
            "inst_level_loose": _mean([float(v) for v in inst_loose]),
        }
    if family in ("math", "mcq"):
        return {"no_answer": sum(1 for d in details if d.get("extracted") is None)}
    return {}


def write_summary(out_dir: Path, summary: dict[str, Any]) -> None:
    """Write `summary.json`, merging tasks of earlier runs made with the same settings."""
    path = out_dir / SUMMARY_JSON
    if path.exists():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            previous = {}
        if previous.get("generation_key") == summary["generation_key"]:
            summary["tasks"] = {**previous.get("tasks", {}), **summary["tasks"]}
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out_dir / SUMMARY_MD).write_text(render_markdown(summary), encoding="utf-8")


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


SETTING_LABELS = {
    "model": "model",
    "backend": "backend",
    "endpoint": "endpoint",
    "dtype": "dtype",
    "device": "device",
    "num_samples": "samples per item (--num-samples)",
    "temperature": "temperature",
    "top_p": "top-p",
    "max_tokens": "max new tokens",
    "seed": "seed",
    "system_prompt": "system prompt",
    "system_prompt_sha256": "system prompt sha256",
    "limit": "limit (first N items per task)",
    "grader": "rubric grader",
    "grader_max_tokens": "grader max tokens",
}


def render_markdown(summary: dict[str, Any]) -> str:
    settings = summary["settings"]
    lines = [
        f"# Evaluation of `{summary['model']}`",
        "",
        f"Model fingerprint: `{summary['model_fingerprint']}`",
        "",
        "| setting | value |",
        "| --- | --- |",
    ]
    for key, value in settings.items():
        if key in ("grader", "grader_max_tokens") and value is None:
            continue
        shown = "none (all items)" if key == "limit" and value is None else _cell(value)
        lines.append(f"| {SETTING_LABELS.get(key, key)} | {shown} |")
    lines += [
        "",
        "| task | family | pass@1 (%) | std | items | n | failed | truncated |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, task in summary["tasks"].items():
        lines.append(
            f"| {name} | {task['family']} | {pct(task['pass_at_1'])} | "
            f"{pct(task['pass_at_1_std'])} | {task['items']} | {task['n']} | "
            f"{task['failed']} | {task['truncated']} |"
        )
    ifeval = {k: t for k, t in summary["tasks"].items() if t["family"] == "ifeval"}
    for name, task in ifeval.items():
        lines += [
            "",
            (
                f"**{name}** — prompt strict {pct(task['prompt_level_strict'])}, "
                f"prompt loose {pct(task['prompt_level_loose'])}, "
                f"instruction strict {pct(task['inst_level_strict'])}, "
                f"instruction loose {pct(task['inst_level_loose'])}"
            ),
        ]
    tasks = summary["tasks"].values()
    failed = sum(t["failed"] for t in tasks)
    if failed:
        generation = sum(t.get("failed_generation", 0) for t in tasks)
        grading = sum(t.get("failed_grading", 0) for t in tasks)
        lines += [
            "",
            (
                f"**{failed} samples failed**: {generation} could not be generated (the "
                f"command printed why), {grading} could not be graded (`error` in "
                "samples.jsonl). pass@1 covers only the scored samples; re-run the same "
                "command to retry the failed ones."
            ),
        ]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    """A value for a Markdown table cell (pipes and newlines would break the row)."""
    if value is None:
        return "none"
    if not isinstance(value, str):
        return json.dumps(value)
    return "`" + value.replace("|", "\\|").replace("\n", " ").replace("`", "'") + "`"
