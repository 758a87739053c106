"""Per-step line charts as inline SVG strings (matplotlib, imported only when a report is made).

Charts are drawn with matplotlib's object API (`Figure`, no pyplot), which renders without any
GUI backend and leaves the process's global backend alone (a training process calling
`write_report` keeps its own). Text stays text (`svg.fonttype: none`): the page is smaller and
its numbers and labels can be searched. Each chart's element ids get a prefix of their own, so
several charts inline in one page never share an id.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ropd.errors import ConfigError

INSTALL_HINT = 'pip install "ropd[report]"'
Series = dict[str, list[float | None]]

_PROLOG = re.compile(r"\A.*?(?=<svg[\s>])", re.DOTALL)  # the XML declaration and DOCTYPE
_ROOT_SIZE = re.compile(r'(<svg[^>]*?)\s(?:width|height)="[^"]*"')
_ID = re.compile(r'\bid="([^"]+)"')


@dataclass(frozen=True)
class Chart:
    """One chart of the page: a title, what it shows, and the SVG markup."""

    key: str
    title: str
    caption: str
    svg: str


def _matplotlib() -> Any:
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigError(
            f"`ropd report` draws its charts with matplotlib: {INSTALL_HINT}"
        ) from None
    return matplotlib, Figure


def _label(text: str) -> str:
    """A legend label shown as written (a `$` would start matplotlib's math mode)."""
    return text.replace("$", r"\$")


def _values(values: Sequence[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def line_chart(
    key: str,
    x: Sequence[float],
    series: Series,
    *,
    ylabel: str,
    xlabel: str = "step",
    band: tuple[str, list[float | None]] | None = None,
    percent: bool = False,
    dashed: Sequence[str] = (),
) -> str:
    """SVG of one or more lines over the steps; gaps where a value is None.

    `band` shades mean ± spread around the named series (reward ± reward_std).
    """
    matplotlib, figure_cls = _matplotlib()
    style = {
        "svg.fonttype": "none",
        "font.family": "sans-serif",
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
    with matplotlib.rc_context(style):
        fig = figure_cls(figsize=(6.0, 3.0), layout="constrained")
        ax = fig.add_subplot()
        marker = "o" if len(x) <= 40 else None
        for name, values in series.items():
            ys = _values(values)
            ax.plot(
                x,
                ys,
                marker=marker,
                markersize=3,
                linewidth=1.4,
                linestyle="--" if name in dashed else "-",
                label=_label(name),
            )
            if band is not None and band[0] == name:
                spread = _values(band[1])
                ax.fill_between(
                    x,
                    [m - s for m, s in zip(ys, spread, strict=True)],
                    [m + s for m, s in zip(ys, spread, strict=True)],
                    alpha=0.15,
                    linewidth=0,
                )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        from matplotlib.ticker import MaxNLocator, PercentFormatter

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        if percent:
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        if len(series) > 1 or band is not None:
            ax.legend(fontsize=8, loc="best", frameon=False)
        buffer = io.StringIO()
        fig.savefig(
            buffer,
            format="svg",
            metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
        )
    return inline_svg(buffer.getvalue(), key)


def inline_svg(svg: str, prefix: str) -> str:
    """matplotlib's SVG file as an element for an HTML page: no prolog, no fixed size, and
    every id (and each reference to it) prefixed, so ids stay unique beside other charts."""
    svg = _PROLOG.sub("", svg, count=1).strip()
    svg = _ROOT_SIZE.sub(r"\1", svg, count=1)
    svg = _ROOT_SIZE.sub(r"\1", svg, count=1)
    for old in set(_ID.findall(svg)):
        new = f"{prefix}-{old}"
        svg = svg.replace(f'id="{old}"', f'id="{new}"')
        svg = svg.replace(f'href="#{old}"', f'href="#{new}"')
        svg = svg.replace(f"url(#{old})", f"url(#{new})")
    return svg


def _x(steps: list[dict[str, Any]]) -> tuple[list[float], str]:
    """Step numbers, or record positions when a store has no steps (`ropd score` runs)."""
    if steps and all(s["step"] is not None for s in steps):
        return [float(s["step"]) for s in steps], "step"
    return [float(i) for i in range(len(steps))], "record"


def step_charts(
    steps: list[dict[str, Any]], categories: list[str], roles: list[str]
) -> list[Chart]:
    """The per-step charts of a report: rewards, rates, rubric size, pass rates, judge traffic."""
    if not steps:
        return []
    x, xlabel = _x(steps)

    def column(name: str) -> list[float | None]:
        return [s[name] for s in steps]

    def per_role(field: str) -> dict[str, list[float | None]]:
        return {r: [s["judge"].get(r, {}).get(field) for s in steps] for r in roles}

    charts = [
        Chart(
            "reward",
            "Reward",
            "student reward mean, shaded ± reward_std (all rewards of the step pooled); "
            "std within groups (the spread GRPO learns from); teacher score mean",
            line_chart(
                "reward",
                x,
                {
                    "reward mean": column("reward_mean"),
                    "std within groups": column("reward_std_within_group_mean"),
                    "teacher score mean": column("teacher_score_mean"),
                },
                ylabel="reward",
                xlabel=xlabel,
                band=("reward mean", column("reward_std")),
            ),
        ),
        Chart(
            "rates",
            "Beat-teacher and failed-group rates",
            "share of groups whose best student answer beat the best teacher answer; share of "
            "groups that could not be scored",
            line_chart(
                "rates",
                x,
                {
                    "beat teacher": column("beat_teacher_rate"),
                    "failed groups": column("failed_group_rate"),
                },
                ylabel="share of groups",
                xlabel=xlabel,
                percent=True,
            ),
        ),
        Chart(
            "rubric",
            "Rubric size",
            "mean number of criteria per rubric",
            line_chart(
                "rubric", x, {"criteria": column("rubric_size")}, ylabel="criteria", xlabel=xlabel
            ),
        ),
    ]
    if categories:
        charts.append(
            Chart(
                "pass-rate",
                "Pass rate by category",
                "share of passed student verdicts per criterion category",
                line_chart(
                    "pass-rate",
                    x,
                    {c: [s["pass_rate"].get(c) for s in steps] for c in categories},
                    ylabel="pass rate",
                    xlabel=xlabel,
                    percent=True,
                ),
            )
        )
    if roles:
        calls = per_role("calls")
        failed = {f"{r} failed": v for r, v in per_role("failed_calls").items()}
        tokens = {f"{r} input": v for r, v in per_role("input_tokens").items()}
        output = {f"{r} output": v for r, v in per_role("output_tokens").items()}
        charts += [
            Chart(
                "calls",
                "Judge calls",
                "requests per role (dashed: failed requests)",
                line_chart(
                    "calls",
                    x,
                    {**calls, **failed},
                    ylabel="calls",
                    xlabel=xlabel,
                    dashed=list(failed),
                ),
            ),
            Chart(
                "tokens",
                "Judge tokens",
                "input (prompt) and output (completion, dashed) tokens per role",
                line_chart(
                    "tokens",
                    x,
                    {**tokens, **output},
                    ylabel="tokens",
                    xlabel=xlabel,
                    dashed=list(output),
                ),
            ),
            Chart(
                "latency",
                "Judge latency",
                "mean seconds per call, per role",
                line_chart("latency", x, per_role("latency_s"), ylabel="seconds", xlabel=xlabel),
            ),
        ]
        if any(s["judge_cost"] is not None for s in steps):
            cost = {r: v for r, v in per_role("cost").items() if any(c is not None for c in v)}
            charts.append(
                Chart(
                    "cost",
                    "Judge cost",
                    "cost per role and in total, per step (where a price was configured)",
                    line_chart(
                        "cost",
                        x,
                        {**cost, "total": column("judge_cost")},
                        ylabel="cost",
                        xlabel=xlabel,
                    ),
                )
            )
    return charts
