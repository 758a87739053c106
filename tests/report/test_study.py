"""The report's study table: several evals (written by the real `ropd eval` run, methods read
from run folders the runner's writer made) as one table, in the paper's order, with the gap
closed; one eval shows none; differing settings are shown with a warning, not refused."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from tests.eval.study_runs import ALL, evaluate, training_run
from typer.testing import CliRunner

from ropd.cli import app


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """base knows 17*23 (avg 1/6), teacher all (avg 1), ropd and sft from their runs."""
    root = tmp_path_factory.mktemp("report-study")
    ropd_run = training_run(root / "runs" / "ropd-math", "ropd")
    sft_run = training_run(root / "runs" / "sft-math", "sft")
    return {
        "base": evaluate(root / "base", "Qwen/Qwen3-0.6B", frozenset({"17 * 23"})),
        "teacher": evaluate(root / "teacher", "Qwen/Qwen3-8B", ALL),
        # math 2/3, mcq 1/2: avg 7/12, gap (7/12 - 1/6) / (5/6) = 1/2
        "ropd": evaluate(
            root / "ropd", str(ropd_run / "final"), frozenset({"17 * 23", "6/8", "Red Planet"})
        ),
        # math 1/3, mcq 1/2: avg 5/12, gap 3/10
        "sft": evaluate(root / "sft", str(sft_run / "final"), frozenset({"17 * 23", "sodium"})),
    }


def report(run_dir: Path, *evals: Path) -> str:
    flags = [x for e in evals for x in ("--eval", str(e))]
    result = CliRunner().invoke(app, ["report", str(run_dir), *flags])
    assert result.exit_code == 0, result.output
    return (run_dir / "report.html").read_text()


def study_rows(page: str) -> list[list[str]]:
    """The cells of the study table's body rows, as text."""
    found = re.search(r'<table class="plain eval-table" id="study">(.*?)</table>', page, re.DOTALL)
    assert found, "no study table on the page"
    body = found.group(1).split("<tbody>")[1]
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td.*?</td>", r)]
        for r in re.findall(r"<tr.*?</tr>", body, re.DOTALL)
    ]


def test_several_evals_make_one_study_table(run_dir: Path, results: dict[str, Path]) -> None:
    page = report(run_dir, results["teacher"], results["ropd"], results["base"], results["sft"])
    assert study_rows(page) == [
        ["base", "base", "33.3", "0.0", "16.7", "0.0%"],
        ["sft", "sft-math", "33.3", "50.0", "41.7", "30.0%"],
        ["ropd", "ropd-math", "66.7", "50.0", "58.3", "50.0%"],
        ["teacher", "teacher", "100.0", "100.0", "100.0", "100.0%"],
    ]
    assert "Every method side by side" in page and "base → teacher" in page
    assert "not comparable" not in page


def test_one_eval_has_no_study_table(run_dir: Path, results: dict[str, Path]) -> None:
    page = report(run_dir, results["ropd"])
    assert 'id="evals"' in page and 'id="study"' not in page


def test_without_base_and_teacher_there_is_no_gap(run_dir: Path, results: dict[str, Path]) -> None:
    page = report(run_dir, results["ropd"], results["sft"])
    assert study_rows(page) == [
        ["sft", "sft-math", "33.3", "50.0", "41.7"],
        ["ropd", "ropd-math", "66.7", "50.0", "58.3"],
    ]
    assert "gap closed" not in page


def test_differing_settings_are_shown_with_a_warning(
    run_dir: Path, results: dict[str, Path], tmp_path: Path
) -> None:
    hot = evaluate(tmp_path / "hot", "hot-model", ALL, temperature=0.7)
    page = report(run_dir, results["base"], results["teacher"], hot)
    assert "different settings (temperature)" in page
    assert [row[0] for row in study_rows(page)] == ["base", "-", "teacher"]
