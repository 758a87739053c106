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
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
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


STYLE = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
FAILED_COLOR = "#c62828"
GROUP_SIZE = (4.6, 3.2)  # inches: the charts of a run's groups, three to a row
Band = tuple[str, list[float | None], list[float | None], str]  # series, low, high, label


def _finite(values: Iterable[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def y_range(values: Sequence[float], *, percent: bool = False) -> tuple[float, float] | None:
    """The y limits for these values where matplotlib's own would mislead, else None.

    A constant series is not zoomed into noise (matplotlib spans ±0.045 around it): an integer
    constant gets ±1, another one ±10% (at least ±0.1); shares (`percent`) always show 0-100%.
    """
    finite = _finite(values)
    if percent:
        low = min([0.0, *finite])
        high = max([1.0, *finite])
        return low - 0.04 * (high - low), high + 0.04 * (high - low)
    if not finite:
        return None
    low, high = min(finite), max(finite)
    if high - low > 1e-9 * max(1.0, abs(high)):
        return None
    if is_integral(finite):
        return low - 1, high + 1
    pad = max(0.1 * abs(low), 0.1)
    return (max(low - pad, 0.0) if low >= 0 else low - pad), high + pad


def is_integral(values: Iterable[float]) -> bool:
    """Whether every value is a whole number (counts, rubric sizes): integer ticks then."""
    finite = _finite(values)
    return bool(finite) and all(float(v).is_integer() for v in finite)


@contextmanager
def _figure(size: tuple[float, float] = (6.0, 3.0)) -> Iterator[tuple[Any, Any]]:
    """A figure and its axes, drawn and saved under the report's style."""
    matplotlib, figure_cls = _matplotlib()
    with matplotlib.rc_context(STYLE):
        fig = figure_cls(figsize=size, layout="constrained")
        yield fig, fig.add_subplot()


def _svg(fig: Any, key: str) -> str:
    buffer = io.StringIO()
    fig.savefig(
        buffer,
        format="svg",
        metadata={"Date": None, "Creator": None, "Format": None, "Type": None},
    )
    return inline_svg(buffer.getvalue(), key)


def _scale_y(ax: Any, values: Sequence[float], *, percent: bool = False) -> None:
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    if percent:
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    elif is_integral(values):
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    limits = y_range(values, percent=percent)
    if limits is not None:
        ax.set_ylim(*limits)


def line_chart(
    key: str,
    x: Sequence[float],
    series: Series,
    *,
    ylabel: str,
    xlabel: str = "step",
    band: Band | None = None,
    percent: bool = False,
    dashed: Sequence[str] = (),
    failed: Sequence[float] = (),
    reference: tuple[float, str] | None = None,
    ylim: tuple[float, float] | None = None,
) -> str:
    """SVG of one or more lines over the steps; gaps where a value is None.

    `band` shades the range (low, high) around the named series, labelled in the legend;
    `failed` are steps where nothing was scored: a red x on the bottom axis each;
    `reference` (value, label) is a dotted horizontal line, e.g. chance; `ylim` fixes the
    y axis (a 0-1 score keeps its scale whatever the values).
    """
    with _figure() as (fig, ax):
        marker = "o" if len(x) <= 40 else None
        drawn: list[float] = []
        for name, values in series.items():
            ys = _values(values)
            drawn += ys
            (line,) = ax.plot(
                x,
                ys,
                marker=marker,
                markersize=3,
                linewidth=1.4,
                linestyle="--" if name in dashed else "-",
                label=_label(name),
            )
            if band is not None and band[0] == name:
                low, high = _values(band[1]), _values(band[2])
                drawn += low + high
                ax.fill_between(
                    x, low, high, alpha=0.18, linewidth=0, color=line.get_color(), label=band[3]
                )
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        _scale_y(ax, drawn, percent=percent)
        if ylim is not None:
            ax.set_ylim(*ylim)
        if reference is not None:
            ax.axhline(
                reference[0], color="#777777", linestyle=":", linewidth=1.2, label=reference[1]
            )
        if failed:
            ax.plot(
                list(failed),
                [0.0] * len(failed),
                linestyle="none",
                marker="x",
                markersize=8,
                markeredgewidth=2,
                color=FAILED_COLOR,
                transform=ax.get_xaxis_transform(),  # x in steps, y on the axis itself
                clip_on=False,
                zorder=5,
                label="failed step (no group scored)",
            )
        entries = len(series) + (band is not None) + bool(failed) + (reference is not None)
        if entries > 1:  # below the plot, where it covers no line
            fig.legend(fontsize=8, loc="outside lower center", ncols=min(entries, 3), frameon=False)
        return _svg(fig, key)


def histogram(
    key: str, values: Sequence[float], *, xlabel: str, bins: int = 20, integer: bool = False
) -> str:
    """SVG of a histogram; whole-number values get one bar per value."""
    with _figure(GROUP_SIZE) as (fig, ax):
        finite = _finite(values)
        if integer and finite:
            low, high = int(min(finite)), int(max(finite))
            counts = {v: 0 for v in range(low, high + 1)}
            for v in finite:
                counts[int(v)] += 1
            ax.bar(list(counts), list(counts.values()), width=0.6)
            ax.set_xlim(low - 1, high + 1)
            from matplotlib.ticker import MaxNLocator

            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        elif finite:
            low, high = min(finite), max(finite)
            if low >= 0 and high <= 1:  # rewards: the whole scale, so pages compare
                low, high = 0.0, 1.0
            elif high - low < 1e-9:
                low, high = low - 0.05, high + 0.05
            ax.hist(finite, bins=bins, range=(low, high), edgecolor="white", linewidth=0.5)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("count")
        from matplotlib.ticker import MaxNLocator

        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, axis="y", alpha=0.3)
        return _svg(fig, key)


def scatter_chart(
    key: str, points: Sequence[tuple[float, float]], *, xlabel: str, ylabel: str
) -> str:
    """SVG of (x, y) points with the diagonal y = x (above it: y beat x)."""
    with _figure(GROUP_SIZE) as (fig, ax):
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        finite = _finite(xs + ys)
        low = min([0.0, *finite])
        high = max([1.0, *finite])
        ax.plot([low, high], [low, high], linestyle=":", color="grey", label="equal")
        ax.scatter(xs, ys, s=14, alpha=0.6, label=f"groups ({len(points)})")
        ax.set_xlim(low - 0.03, high + 0.03)
        ax.set_ylim(low - 0.03, high + 0.03)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best", frameon=False)
        return _svg(fig, key)


def roc_chart(key: str, curves: Sequence[dict[str, Any]]) -> str:
    """SVG of ROC curves, each labelled with its AUC (and 95% interval when there is one)."""
    with _figure((4.6, 4.0)) as (fig, ax):
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="chance (AUC 0.5)")
        for curve in curves:
            ax.plot(curve["fpr"], curve["tpr"], linewidth=1.5, label=_label(roc_label(curve)))
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_aspect("equal")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right", frameon=False)
        return _svg(fig, key)


def roc_label(curve: dict[str, Any]) -> str:
    """`ropd (AUC 0.812, 95% CI 0.70-0.90)`: a curve's legend entry."""
    auc = curve.get("auc")
    text = "AUC n/a" if auc is None else f"AUC {auc:.3f}"
    ci = curve.get("auc_ci")
    if ci is not None:
        text += f", 95% CI {ci[0]:.2f}-{ci[1]:.2f}"
    return f"{curve['name']} ({text})"


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
    """The per-step charts of a report: rewards, rates, rubric size, pass rates, judge traffic.

    Only for two or more steps: a single step (or a `ropd score` store) has no curve to draw;
    `group_charts` shows its groups instead.
    """
    if len(steps) < 2:
        return []
    x, xlabel = _x(steps)

    def column(name: str) -> list[float | None]:
        return [s[name] for s in steps]

    def per_role(field: str) -> dict[str, list[float | None]]:
        return {r: [s["judge"].get(r, {}).get(field) for s in steps] for r in roles}

    failed = [xi for xi, s in zip(x, steps, strict=True) if s["failed_step"]]
    charts = [
        Chart(
            "reward",
            "Reward",
            "student reward mean per step, shaded: interquartile range (25th-75th percentile) "
            "of the step's student rewards; std within groups (the spread GRPO learns from); "
            "teacher score mean"
            + ("; red x: a failed step, where no group could be scored" if failed else ""),
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
                band=(
                    "reward mean",
                    column("reward_q1"),
                    column("reward_q3"),
                    "reward IQR (25th-75th pct.)",
                ),
                failed=failed,
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
    ]
    if any(v is not None for v in column("rubric_size")):  # scalar judges write no rubric
        charts.append(
            Chart(
                "rubric",
                "Rubric size",
                "mean number of criteria per rubric",
                line_chart(
                    "rubric",
                    x,
                    {"criteria": column("rubric_size")},
                    ylabel="criteria",
                    xlabel=xlabel,
                ),
            )
        )
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
    charts += health_charts(steps, x, xlabel)
    return charts


# the store's reward-health rates drawn per step (`reward/health.py`, docs/health.md)
HEALTH_RATES = (
    "teacher_fail_rate",
    "no_spread_rate",
    "judge_imitation_rate",
    "verdict_flip_rate",
    "audit_disagreement_rate",
)


# agreement of the reward with gold correctness per step: 0.5 is chance
GOLD_AGREEMENT = ("gold_auc", "gold_pair_accuracy")


def _health_series(steps: list[dict[str, Any]], names: Sequence[str]) -> Series:
    return {
        name: [s.get("health", {}).get(name) for s in steps]
        for name in names
        if any(s.get("health", {}).get(name) is not None for s in steps)
    }


def health_charts(steps: list[dict[str, Any]], x: list[float], xlabel: str) -> list[Chart]:
    """The reward against gold correctness, and the reward-health rates, per step (each chart
    only when the steps have its numbers)."""
    charts = []
    gold = _health_series(steps, GOLD_AGREEMENT)
    if gold:
        charts.append(
            Chart(
                "gold",
                "Reward against gold",
                "per step: AUC of the reward against gold correctness over all student answers, "
                "and the share of (correct, incorrect) answer pairs within a group where the "
                "correct one got the higher reward (ties half); the dotted line is chance",
                line_chart(
                    "gold",
                    x,
                    gold,
                    ylabel="agreement",
                    xlabel=xlabel,
                    reference=(0.5, "chance"),
                    ylim=(-0.04, 1.04),
                ),
            )
        )
    series = _health_series(steps, HEALTH_RATES)
    if not series:
        return charts
    return [
        *charts,
        Chart(
            "health",
            "Reward health",
            "per step: groups whose best teacher answer fails the rubric, groups whose answers "
            "all scored alike, answers imitating judge output, and the sampled re-check rates "
            "(docs/health.md); rising lines mean the reward tracks quality less",
            line_chart("health", x, series, ylabel="share", xlabel=xlabel, percent=True),
        ),
    ]


def group_charts(scored: dict[str, Any]) -> list[Chart]:
    """Charts of a run's groups as a whole (a `ropd score` store, or a single step): the reward
    distribution, teacher against student scores, rubric sizes. Empty charts are left out."""
    charts = []
    if scored.get("rewards"):
        charts.append(
            Chart(
                "reward-hist",
                "Reward distribution",
                f"student rewards of the scored groups ({len(scored['rewards'])} answers)",
                histogram("reward-hist", scored["rewards"], xlabel="reward"),
            )
        )
    if scored.get("teacher_vs_student"):
        charts.append(
            Chart(
                "teacher-student",
                "Teacher vs student",
                "per group: mean teacher score (x) against mean student reward (y); "
                "above the dotted line the students scored higher",
                scatter_chart(
                    "teacher-student",
                    scored["teacher_vs_student"],
                    xlabel="teacher score mean",
                    ylabel="student reward mean",
                ),
            )
        )
    if scored.get("rubric_sizes"):
        charts.append(
            Chart(
                "rubric-sizes",
                "Rubric sizes",
                "number of criteria per rubric",
                histogram("rubric-sizes", scored["rubric_sizes"], xlabel="criteria", integer=True),
            )
        )
    return charts


def analysis_charts(analysis: dict[str, Any] | None) -> list[Chart]:
    """The ROC curves of `ropd analyze`'s methods, drawn from its rewards.jsonl."""
    if not analysis or not analysis.get("roc"):
        return []
    return [
        Chart(
            "roc",
            "ROC: reward vs correctness",
            "pooled over the scored responses of each method; AUC as analysis.json states it, "
            "95% interval from 1000 bootstrap resamples of groups",
            roc_chart("roc", analysis["roc"]),
        )
    ]
