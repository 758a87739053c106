"""The analysis images: ROC curves of all methods on one plot, reward histograms per method.

matplotlib is imported here, lazily, with the Agg backend (no display needed), so that
`import ropd` and the rest of the analysis stay light. Each image is saved as SVG and PNG.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ropd.analysis.methods import Outcome
from ropd.analysis.stats import roc_points, scored_pairs
from ropd.errors import InputError

FORMATS = ("svg", "png")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise InputError(
            "the analysis plots need matplotlib: pip install 'ropd[analyze]' (or --no-plots)"
        ) from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def slug(name: str) -> str:
    """A method name as a file name part (`ropd:k=1` -> `ropd_k_1`)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def _save(fig: Any, base: Path) -> list[Path]:
    paths = []
    for fmt in FORMATS:
        path = base.with_suffix(f".{fmt}")
        fig.savefig(path, format=fmt, bbox_inches="tight")
        paths.append(path)
    return paths


def write_plots(out_dir: Path, by_method: Mapping[str, Sequence[Outcome]]) -> list[Path]:
    """ROC curves (`roc.svg`) and one histogram per method (`hist_<method>.svg`); their paths."""
    plt = _pyplot()
    written: list[Path] = []
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance")
    for name, outcomes in by_method.items():
        points = roc_points(outcomes)
        if points is not None:
            ax.plot(*points, label=name)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC: reward vs correctness")
    ax.legend(loc="lower right", fontsize="small")
    written += _save(fig, out_dir / "roc")
    plt.close(fig)
    for name, outcomes in by_method.items():
        pairs = [pair for outcome in outcomes for pair in scored_pairs(outcome)]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        right = [r for ok, r in pairs if ok]
        wrong = [r for ok, r in pairs if not ok]
        values = right + wrong
        bins: Any = 20
        if values and min(values) == max(values):
            bins = 1
        if right:
            ax.hist(right, bins=bins, alpha=0.6, label=f"correct ({len(right)})")
        if wrong:
            ax.hist(wrong, bins=bins, alpha=0.6, label=f"incorrect ({len(wrong)})")
        ax.set_xlabel("reward")
        ax.set_ylabel("responses")
        ax.set_title(f"{name}: reward by correctness")
        if values:
            ax.legend(fontsize="small")
        written += _save(fig, out_dir / f"hist_{slug(name)}")
        plt.close(fig)
    return written
