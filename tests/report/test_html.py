"""The page itself: offline, escaped, its numbers as `StepMetrics` has them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from tests.report.helpers import HOSTILE, RUN, USAGE, build_store, group, scored

from ropd.report import build_report
from ropd.report.charts import inline_svg
from ropd.report.html import num, pct, script_json
from ropd.reward.traces import TraceStore

# an attribute or CSS that would make a browser fetch something
FETCH = re.compile(
    r"""(?:\b(?:src|href|action|poster|srcset)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import)""",
    re.IGNORECASE,
)


@pytest.fixture
def page(tmp_path: Path, run_dir: Path, eval_dir: Path, analysis_dir: Path) -> str:
    out = tmp_path / "report.html"
    build_report(
        run_dir / "traces.db", out, run_dir=run_dir, evals=[eval_dir], analysis=analysis_dir
    )
    return out.read_text(encoding="utf-8")


def test_the_page_needs_no_network(page: str) -> None:
    assert not FETCH.findall(page)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_hostile_answers_cannot_close_the_data_block(page: str) -> None:
    block = re.search(
        r'<script type="application/json" id="ropd-groups">(.*?)</script>', page, re.DOTALL
    )
    assert block is not None
    body = block.group(1)
    assert "<" not in body and ">" not in body  # so nothing inside can end the block
    texts = [a["text"] for g in json.loads(body)["groups"] for a in g["answers"]]
    assert HOSTILE in texts
    assert page.count("<script") == 3  # the error hook, the data block, the browser; no more
    first = page[page.index("<script") :]
    assert first.index("window.onerror") < first.index("</script>")  # the hook comes first


def test_script_json_escapes_what_could_end_a_script() -> None:
    value = {"a": "</script><!-- & \u2028 \u2029"}
    text = script_json(value)
    for char in "<>&\u2028\u2029":
        assert char not in text
    assert json.loads(text) == value


def test_the_step_table_shows_the_metrics(page: str, run_dir: Path) -> None:
    with TraceStore(run_dir / "traces.db") as store:
        summaries = store.summary(run_id=RUN)
    for s in summaries:
        row = re.search(rf'<tr data-step="{s.step}">(.*?)</tr>', page, re.DOTALL)
        assert row is not None
        m = s.metrics
        for key, shown in (
            ("reward_mean", num(m.reward_mean)),
            ("reward_std", num(m.reward_std)),
            ("teacher_score_mean", num(m.teacher_score_mean)),
            ("beat_teacher_rate", pct(m.beat_teacher_rate)),
            ("failed_group_rate", pct(m.failed_group_rate)),
            ("pass_rate/correctness", pct(m.pass_rate["correctness"])),
        ):
            assert f'data-key="{key}">{shown}<' in row.group(1), key
    assert 'data-key="reward_mean">0.639<' in page  # step 1, worked out by hand: 23/36


def test_charts_eval_and_analysis_are_inline(page: str) -> None:
    for key in ("reward", "rates", "rubric", "pass-rate", "calls", "tokens", "latency"):
        assert f'data-chart="{key}"' in page
    assert 'data-chart="cost"' not in page  # no price, no cost chart
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # several SVGs in one page share no id
    assert "math500" in page and "45.7" in page
    assert "0.812" in page and "pair_accuracy" in page
    # the analysis plot is an image (its script cannot run), not inline markup
    assert 'src="data:image/svg+xml;base64,' in page and "pwned" not in page


def test_inline_svg_prefixes_ids_and_their_references() -> None:
    svg = (
        '<?xml version="1.0"?>\n<!DOCTYPE svg>\n<svg width="10pt" height="5pt" viewBox="0 0 1 1">'
        '<defs><path id="m1"/></defs><use xlink:href="#m1"/><g clip-path="url(#m1)"/></svg>'
    )
    out = inline_svg(svg, "c")
    assert out.startswith("<svg") and "width=" not in out and "height=" not in out
    assert 'id="c-m1"' in out and 'href="#c-m1"' in out and "url(#c-m1)" in out


def test_the_command_line_loads_neither_matplotlib_nor_jinja2() -> None:
    code = "import sys, ropd.cli; print(sorted({'matplotlib', 'jinja2'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_priced_run_shows_cost_per_role_and_step(tmp_path: Path) -> None:
    traces = tmp_path / "priced.traces.db"
    build_store(traces)
    priced = {role: {**totals, "cost": 0.0125} for role, totals in USAGE.items()}
    with TraceStore(traces, run_id=RUN) as store:
        store.record(group("g-priced", ["391"], []), scored("g-priced", [[True] * 3], []).model_copy(
            update={"usage": priced}), step=3)  # fmt: skip
    out = tmp_path / "priced.html"
    data = build_report(traces, out, run_id=RUN)
    page = out.read_text()
    assert data.has_cost and data.steps[-1]["judge_cost"] == pytest.approx(0.025)
    assert 'data-chart="cost"' in page
    assert 'data-key="judge/cost">0.0250<' in page
    assert 'data-key="judge/verifier/cost">0.0125<' in page
    assert 'data-key="judge/cost">n/a<' in page  # the steps before the price
