"""The report in a real headless Chromium: no script error, the numbers, the rubric browser.

`--dump-dom` prints the DOM after the page's scripts ran: the browser's grid exists only if the
inline script parsed the JSON block and built it. Script errors are caught twice: the page's
first script records them in `<html data-errors>`, and Chromium's own log (stderr) must not
report an uncaught one.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path

import pytest
from tests.report.helpers import ERROR, HOSTILE, RUN

from ropd.report import build_report
from ropd.report.html import num, pct
from ropd.reward.traces import TraceStore


@pytest.fixture
def report_page(tmp_path: Path, run_dir: Path, eval_dir: Path, analysis_dir: Path) -> Path:
    out = tmp_path / "report.html"
    build_report(
        run_dir / "traces.db", out, run_dir=run_dir, evals=[eval_dir], analysis=analysis_dir
    )
    return out


def render(chromium: str, page: Path, fragment: str, profile: Path) -> str:
    """The DOM after load; fails on any script error, recorded by the page or logged."""
    done = subprocess.run(
        [
            chromium,
            "--headless=new",
            "--no-sandbox",  # tests may run as root
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page.as_uri() + fragment,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Uncaught" not in done.stderr, done.stderr[-2000:]
    dom = done.stdout
    errors = re.search(r'<html[^>]*\bdata-errors="([^"]*)"', dom)
    assert errors is not None, dom[:500]
    assert json.loads(html.unescape(errors.group(1))) == []
    assert 'data-browser="ready"' in dom
    return dom


def test_the_page_renders_its_numbers_and_the_hostile_answer_as_text(
    chromium: str, report_page: Path, run_dir: Path, tmp_path: Path
) -> None:
    dom = render(chromium, report_page, "#group=g-hostile&step=2", tmp_path / "profile")
    with TraceStore(run_dir / "traces.db") as store:
        last = store.summary(run_id=RUN)[-1].metrics
    assert f'data-total="last_reward_mean">{num(last.reward_mean)}<' in dom
    assert f'data-key="beat_teacher_rate">{pct(last.beat_teacher_rate)}<' in dom
    assert 'data-key="reward_mean">0.639<' in dom
    # the browser built the grid of g-hostile from the JSON: 3 answers x 3 criteria
    assert 'id="group-view" data-group="g-hostile"' in dom
    grid = re.search(r'<table class="plain grid" id="verdict-grid">(.*?)</table>', dom, re.DOTALL)
    assert grid is not None
    assert grid.group(1).count("data-verdict=") == 9
    assert grid.group(1).count('data-verdict="pass"') == 6
    assert '<tr class="answer teacher"' in grid.group(1)
    assert ">0.111<" in grid.group(1) and ">1.000<" in grid.group(1)  # the two student rewards
    # the answer is shown as text: escaped in the DOM, no element made of it
    assert html.escape(HOSTILE, quote=False) in dom
    assert "<b>bold?</b>" not in dom
    assert "<title>ropd report: run</title>" in dom  # the analysis SVG's script never ran
    assert dom.count("<li>") == 4  # every group of the run is listed, the other run's not


def test_a_failed_group_shows_its_error(chromium: str, report_page: Path, tmp_path: Path) -> None:
    dom = render(chromium, report_page, "#group=g-failed&step=2", tmp_path / "profile")
    error = re.search(r'<p class="error" id="group-error">(.*?)</p>', dom, re.DOTALL)
    assert error is not None and ERROR in html.unescape(error.group(1))
    assert 'id="verdict-grid"' in dom


def test_a_search_link_narrows_the_list(chromium: str, report_page: Path, tmp_path: Path) -> None:
    dom = render(chromium, report_page, "#search=beta", tmp_path / "profile")
    assert dom.count("<li>") == 1 and 'data-group="g-beta"' in dom
    assert "1 of 4 groups" in dom


def test_a_score_store_page_renders_without_errors(
    chromium: str, run_dir: Path, tmp_path: Path
) -> None:
    from tests.report.helpers import OTHER_RUN

    out = tmp_path / "score.html"
    build_report(run_dir / "traces.db", out, run_id=OTHER_RUN)
    dom = render(chromium, out, "", tmp_path / "profile")
    assert 'id="scored"' in dom and 'data-chart="reward-hist"' in dom
    assert 'id="charts"' not in dom and 'data-group="g-other"' in dom
