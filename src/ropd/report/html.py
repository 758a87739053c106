"""`ReportData` and its charts → one self-contained HTML page (a jinja2 template).

The page must open offline and years later, so nothing is fetched: styles, scripts, charts and
images are inline, and a Content-Security-Policy forbids every network request besides. Text
is escaped by jinja2's autoescaping; the rubric browser's groups travel as JSON in a
`<script type="application/json">` block with `<`, `>` and `&` written as `\\u003c`... so no
answer (answers are adversarial) can close the block, and the inline script only ever puts
them into the page as text (`textContent`), never as markup.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from ropd.errors import ConfigError
from ropd.report.charts import (
    INSTALL_HINT,
    Chart,
    analysis_charts,
    group_charts,
    step_charts,
)
from ropd.report.data import ReportData

TEMPLATE = "report.html.j2"
_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def script_json(value: Any) -> str:
    """JSON that is safe inside `<script type="application/json">` whatever strings it holds."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for char, escaped in _JSON_ESCAPES.items():
        text = text.replace(char, escaped)
    return text


def sig(value: float | None, digits: int = 3) -> str:
    """A number to `digits` significant digits (whole numbers of 1000 and up in full)."""
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 10**digits else f"{value:.{digits}g}"


def num(value: float | None, digits: int = 3) -> str:
    """A metric as the page shows it: fixed decimals, `n/a` when absent."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def count(value: float | None) -> str:
    """A count or token total, thousands separated."""
    return "n/a" if value is None else f"{value:,.0f}"


def when(ts: float | None) -> str:
    return "" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _environment() -> Any:
    try:
        import jinja2
    except ImportError:
        raise ConfigError(f"`ropd report` renders its page with jinja2: {INSTALL_HINT}") from None
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ropd.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=num, pct=pct, count=count, when=when, sig=sig)
    return env


def render(data: ReportData, charts: list[Chart] | None = None) -> str:
    """The page's HTML; `charts` defaults to the per-step charts of `data` (none for a `ropd
    score` store or a single step: the groups' charts stand in for them)."""
    if charts is None:
        charts = step_charts(data.steps, data.categories, data.roles) if data.has_curves else []
    groups = [] if data.has_curves else group_charts(data.scored)
    roc = analysis_charts(data.analysis)
    env = _environment()
    import markupsafe  # jinja2's own dependency

    browser = {
        "groups": data.groups,
        "total": data.groups_total,
        "note": data.groups_note,
    }
    return env.get_template(TEMPLATE).render(
        data=data,
        # matplotlib escaped its text
        charts=[(c, markupsafe.Markup(c.svg)) for c in charts],
        group_charts=[(c, markupsafe.Markup(c.svg)) for c in groups],
        roc_charts=[(c, markupsafe.Markup(c.svg)) for c in roc],
        groups_json=markupsafe.Markup(script_json(browser)),
    )


def write_html(html: str, output: Path) -> Path:
    """Write the page atomically, so a browser never opens half a report."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    try:
        # errors="replace": a lone surrogate in some text must not cost the whole page
        tmp.write_text(html, encoding="utf-8", errors="replace")
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return output
