"""What the charts and tables say: page kinds, failed steps, axes, spread, ROC AUC, headers."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from tests.report.helpers import ANALYSIS, ERROR, OTHER_RUN, RUN, build_store, group

from ropd.report import build_report
from ropd.report.charts import is_integral, line_chart, roc_label, y_range
from ropd.report.data import auc, bootstrap_intervals, collect, header, quartiles, roc_curve
from ropd.reward.traces import TraceStore
from ropd.reward.types import GroupResult


def y_ticks(svg: str) -> list[str]:
    """The y axis' tick labels of a chart (numbers only; the axis label is text too)."""
    start = svg.index("matplotlib.axis_2")
    end = svg.index("patch_", start)
    texts = re.findall(r">([^<>]+)</text>", svg[start:end])
    return [t for t in texts if re.fullmatch(r"[−\-]?[\d.,]+%?", t)]


def chart(page: str, key: str) -> str:
    found = re.search(rf'<figure id="chart-{key}"(.*?)</figure>', page, re.DOTALL)
    assert found is not None, key
    return found.group(1)


def fail(store: TraceStore, gid: str, step: int | None) -> None:
    store.record(
        group(gid, ["391", "12"], ["391"]),
        GroupResult(
            id=gid, rewards=[None, None], teacher_scores=[None], error=ERROR, failure_policy="nan"
        ),
        step=step,
    )


# -- 1: a `ropd score` store gets a page of its groups, no training curves ----------------------


def test_a_score_store_shows_its_groups_not_training_curves(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "score.html"
    data = build_report(run_dir / "traces.db", out, run_id=OTHER_RUN)
    page = out.read_text()
    assert data.is_score and not data.has_curves
    assert 'id="charts"' not in page and "Per-step charts" not in page
    assert 'data-chart="reward"' not in page and 'data-chart="rates"' not in page
    assert 'id="scored"' in page and "scoring run" in page
    for key in ("reward-hist", "rubric-sizes"):
        assert f'data-chart="{key}"' in page
    assert data.scored["groups"] == 1 and data.scored["failed"] == 0
    assert data.scored["rubric_sizes"] == [3]
    # the rubric-size histogram: one bar at 3, on whole-number ticks
    assert not any("." in t for t in re.findall(r">(\d[\d.]*)</text>", chart(page, "rubric-sizes")))


def test_a_single_training_step_shows_its_groups_too(tmp_path: Path) -> None:
    traces = tmp_path / "one.db"
    build_store(traces)
    out = tmp_path / "one.html"
    data = build_report(traces, out, run_id=RUN)
    assert data.has_curves and 'data-chart="reward"' in out.read_text()
    with TraceStore(tmp_path / "single.db", run_id="single") as store:
        fail(store, "g-1", 1)
    data = build_report(tmp_path / "single.db", out)
    page = out.read_text()
    assert not data.has_curves and 'id="charts"' not in page and "One training step" in page
    assert "1 failed (not scored)" in page and "<figure" not in page  # nothing to draw


# -- 2: a failed step is marked on the reward chart ---------------------------------------------


def test_a_failed_step_is_marked_not_dropped(tmp_path: Path) -> None:
    traces = tmp_path / "failed.db"
    build_store(traces)
    with TraceStore(traces, run_id=RUN) as store:
        fail(store, "g-down-1", 3)
        fail(store, "g-down-2", 3)
    out = tmp_path / "failed.html"
    data = build_report(traces, out, run_id=RUN)
    assert [s["failed_step"] for s in data.steps] == [False, False, True]
    assert data.steps[-1]["reward_mean"] is None
    reward = chart(out.read_text(), "reward")
    assert "failed step" in reward and "red x" in reward
    assert "#c62828" in reward  # the marker itself
    assert "failed step" not in chart(out.read_text(), "rubric")


# -- 3: axes scaled to their data ---------------------------------------------------------------


def test_a_constant_integer_series_gets_integer_ticks_and_a_padded_range() -> None:
    assert y_range([2.0, 2.0, 2.0]) == (1.0, 3.0)
    assert is_integral([2.0, 3.0]) and not is_integral([2.5]) and not is_integral([])
    low, high = y_range([0.7, 0.7]) or (0, 0)
    assert high - low > 0.1  # not matplotlib's ±0.045
    assert y_range([0.2, 0.8]) is None  # varying data: matplotlib's own limits
    assert y_range([0.5], percent=True) == pytest.approx((-0.04, 1.04))
    ticks = y_ticks(line_chart("k", [1, 2, 3], {"criteria": [2, 2, 2]}, ylabel="criteria"))
    assert ticks and all(t.isdigit() for t in ticks), ticks
    assert "2" in ticks and "1.900" not in ticks and "2.100" not in ticks


def test_the_rubric_size_chart_has_integer_ticks(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    build_report(run_dir / "traces.db", out, run_dir=run_dir)
    ticks = y_ticks(chart(out.read_text(), "rubric"))
    assert ticks == ["2", "3", "4"], ticks


# -- 4: spread where there is more than one sample ----------------------------------------------


def test_the_reward_line_has_an_interquartile_band(run_dir: Path, tmp_path: Path) -> None:
    data = collect(run_dir / "traces.db", run_dir=run_dir)
    first = data.steps[0]  # g-alpha and g-beta: student rewards 8/9, 4/9, 5/9, 6/9
    assert first["rewards_counted"] == 4
    assert (first["reward_q1"], first["reward_q3"]) == pytest.approx(
        (quartiles([8 / 9, 4 / 9, 5 / 9, 6 / 9]) or (0, 0, 0))[::2]
    )
    assert first["reward_q1"] <= first["reward_median"] <= first["reward_q3"]
    out = tmp_path / "band.html"
    build_report(run_dir / "traces.db", out, run_dir=run_dir)
    reward = chart(out.read_text(), "reward")
    assert "reward IQR (25th-75th pct.)" in reward and "interquartile range" in reward


def test_quartiles_interpolate() -> None:
    assert quartiles([]) is None
    assert quartiles([1.0]) == (1.0, 1.0, 1.0)
    assert quartiles([4.0, 1.0, 3.0, 2.0]) == (1.75, 2.5, 3.25)


@pytest.fixture
def analysis_with_rewards(analysis_dir: Path) -> Path:
    """`ropd analyze`'s folder with its rewards.jsonl: the report draws its own ROC."""
    rng = random.Random(3)
    with (analysis_dir / "rewards.jsonl").open("w") as f:
        for method, shift in (("ropd", 0.3), ("tjudge", 0.1)):
            for g in range(10):
                for i in range(6):
                    ok = i % 2 == 0
                    reward = rng.random() * 0.6 + (shift if ok else 0)
                    row = {"method": method, "group_id": f"p{g}", "index": i, "correct": ok,
                           "reward": reward, "failed": False}  # fmt: skip
                    f.write(json.dumps(row) + "\n")
            row = {"method": method, "group_id": "bad", "index": 0, "correct": True,
                   "reward": None, "failed": True}  # fmt: skip
            f.write(json.dumps(row) + "\n")
    return analysis_dir


def test_analysis_tables_get_bootstrap_intervals(
    run_dir: Path, analysis_with_rewards: Path
) -> None:
    data = collect(run_dir / "traces.db", analysis=analysis_with_rewards)
    assert data.analysis is not None
    methods = data.analysis["methods"]
    assert methods["columns"][:2] == ["auc", "auc_ci"]
    assert "pair_accuracy_ci" in methods["columns"]
    ci = methods["rows"][0]["cells"][1]
    low, high = (float(x) for x in ci.split(" to "))
    rows = [json.loads(line) for line in (analysis_with_rewards / "rewards.jsonl").open()]
    ropd = [r for r in rows if r["method"] == "ropd" and not r["failed"]]
    pooled = auc([r["correct"] for r in ropd], [r["reward"] for r in ropd])
    assert pooled is not None and low < pooled < high and high - low < 0.5
    again = collect(run_dir / "traces.db", analysis=analysis_with_rewards)
    assert again.analysis == data.analysis  # fixed seed: the same page every time


def test_bootstrap_needs_more_than_one_group() -> None:
    one = [[(True, 0.9), (False, 0.1)]]
    assert bootstrap_intervals(one) == {"auc_ci": None, "pair_accuracy_ci": None}


# -- 5: ROC legends carry the AUC ---------------------------------------------------------------


def test_auc_and_roc_curve_by_hand() -> None:
    labels, scores = [True, False, True, False], [0.9, 0.1, 0.4, 0.4]
    assert auc(labels, scores) == pytest.approx(3.5 / 4)  # the tie counts half
    assert auc([True, True], [0.1, 0.2]) is None
    fpr, tpr = roc_curve(labels, scores)
    assert fpr == [0.0, 0.0, 0.5, 1.0] and tpr == [0.0, 0.5, 1.0, 1.0]


def test_roc_legend_carries_each_auc(
    run_dir: Path, analysis_with_rewards: Path, tmp_path: Path
) -> None:
    out = tmp_path / "roc.html"
    build_report(run_dir / "traces.db", out, run_dir=run_dir, analysis=analysis_with_rewards)
    page = out.read_text()
    roc = chart(page, "roc")
    assert "ropd (AUC 0.812, 95% CI" in roc  # analysis.json's AUC
    assert "tjudge (AUC 0.654" in roc and "chance (AUC 0.5)" in roc
    assert 'alt="roc.svg"' not in page  # analyze's own ROC (no AUC in its legend) is left out
    assert roc_label({"name": "x", "auc": None}) == "x (AUC n/a)"


# -- 6: readable headers, numbers, tables that scroll -------------------------------------------


def test_analysis_tables_have_readable_headers_and_scroll(
    run_dir: Path, analysis_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "h.html"
    build_report(run_dir / "traces.db", out, run_dir=run_dir, analysis=analysis_dir)
    page = out.read_text()
    methods = re.search(
        r'<table class="plain" id="analysis-methods">(.*?)</thead>', page, re.DOTALL
    )
    assert methods is not None
    heads = re.findall(r"<th[^>]*>([^<]*)</th>", methods.group(1))
    assert "pair accuracy" in heads and "AUC" in heads and "reward mean (correct)" in heads
    assert not any("_" in h for h in heads), heads
    assert '<div class="table-wrap">\n  <table class="plain" id="analysis-methods">' in page
    assert re.search(r"\.table-wrap \{[^}]*overflow-x: auto", page)
    usage = re.search(r'id="analysis-usage">(.*?)</table>', page, re.DOTALL)
    assert usage is not None and ">0.0123<" in usage.group(1)  # 3 significant digits
    assert header("some_new_key") == "some new key"
    assert ANALYSIS["methods"]["ropd"]["pair_accuracy"] == 0.7021
    assert 'data-key="pair_accuracy">0.702<' in page


def test_a_scalar_judge_run_draws_no_empty_rubric_chart(tmp_path: Path) -> None:
    """T-Judge and OVD write no rubric: no 'Rubric size' chart on a ±0.045 axis of nothing."""
    traces = tmp_path / "scalar.db"
    with TraceStore(traces, run_id="ovd-run") as store:
        for step in (1, 2):
            gid = f"g-{step}"
            store.record(
                group(gid, ["391", "400"], []),
                GroupResult(id=gid, rewards=[1.0, 0.0], usage={}, failure_policy="nan"),
                step=step,
            )
    out = tmp_path / "scalar.html"
    build_report(traces, out)
    page = out.read_text()
    assert 'data-chart="reward"' in page and 'data-chart="rubric"' not in page
    build_store(tmp_path / "rubrics.db")
    build_report(tmp_path / "rubrics.db", out, run_id=RUN)
    assert 'data-chart="rubric"' in out.read_text()  # a rubric run keeps it
