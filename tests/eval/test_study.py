"""`ropd eval compare`'s study table: methods read from real run folders, the paper's row order,
the gap closed pinned by hand, unknown rows, and the settings check still refusing.

Numbers (2 samples per item, `study_runs.Student` is right exactly where told):
  base     knows 17*23                          math 1/3, mcq 0    avg 1/6
  teacher  knows everything                     math 1,   mcq 1    avg 1
  ropd     knows 17*23, 6/8, Red Planet         math 2/3, mcq 1/2  avg 7/12  gap (7/12-1/6)/(5/6) = 1/2
  sft      knows 17*23, sodium                  math 1/3, mcq 1/2  avg 5/12  gap 3/10
  lopd     knows 17*23, 6/8, Red Planet, sodium math 2/3, mcq 1    avg 5/6   gap 4/5
  served   knows 17*23 (no run folder)          as base                      gap 0
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.eval.cli_run import one_line, ropd
from tests.eval.study_runs import ALL, evaluate, training_run

from ropd.eval.compare import build_comparison
from ropd.eval.study import STUDY_ORDER, build_study, find_run

KNOWS = {
    "base": frozenset({"17 * 23"}),
    "teacher": ALL,
    "ropd": frozenset({"17 * 23", "6/8", "Red Planet"}),
    "sft": frozenset({"17 * 23", "sodium"}),
    "lopd": frozenset({"17 * 23", "6/8", "Red Planet", "sodium"}),
    "served": frozenset({"17 * 23"}),
}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Result folders by name; ropd and sft evaluated `final/`, lopd its run folder itself."""
    root = tmp_path_factory.mktemp("study")
    runs = {m: training_run(root / "runs" / f"{m}-math", m) for m in ("ropd", "sft", "lopd")}
    models = {
        "base": "Qwen/Qwen3-0.6B",
        "teacher": "Qwen/Qwen3-8B",
        "ropd": str(runs["ropd"] / "final"),
        "sft": str(runs["sft"] / "final"),
        "lopd": str(runs["lopd"]),
        "served": "my-served-model",
    }
    return {
        name: evaluate(root / "results" / name, model, KNOWS[name])
        for name, model in models.items()
    }


def args(study: dict[str, Path], *names: str) -> list[str]:
    return [str(study[n]) for n in names]


SCRAMBLED = ("lopd", "served", "teacher", "ropd", "base", "sft")


def test_methods_come_from_the_run_files_and_rows_follow_the_paper(study) -> None:
    result = ropd("eval", "compare", *args(study, *SCRAMBLED), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)["study"]
    rows = data["rows"]
    assert [r["method"] for r in rows] == ["base", "sft", "ropd", "lopd", "-", "teacher"]
    by_method = {r["method"]: r for r in rows}
    assert by_method["ropd"]["run"] == "ropd-math"  # the run folder, not the result folder
    assert by_method["ropd"]["run_id"] == "ropd-20260101-000000-test"
    assert by_method["lopd"]["access"] == "white-box" and by_method["sft"]["access"] == "black-box"
    assert by_method["-"]["run"] is None and by_method["-"]["label"] == "served"
    assert by_method["base"]["access"] is None


def test_the_gap_closed_by_hand(study) -> None:
    data = json.loads(ropd("eval", "compare", *args(study, *SCRAMBLED), "--json").stdout)
    rows = {r["method"]: r for r in data["study"]["rows"]}
    assert rows["base"]["average"] == pytest.approx(1 / 6)
    assert rows["ropd"]["pass_at_1"] == pytest.approx({"math": 2 / 3, "mcq": 1 / 2})
    expected = {"base": 0.0, "sft": 0.3, "ropd": 0.5, "lopd": 0.8, "-": 0.0, "teacher": 1.0}
    for method, gap in expected.items():
        assert rows[method]["gap_closed"]["average"] == pytest.approx(gap), method
    # per task: math (2/3 - 1/3) / (1 - 1/3), mcq (1/2 - 0) / (1 - 0)
    assert rows["ropd"]["gap_closed"]["math"] == pytest.approx(0.5)
    assert rows["sft"]["gap_closed"]["math"] == pytest.approx(0.0)
    assert rows["sft"]["gap_closed"]["mcq"] == pytest.approx(0.5)


def test_markdown_is_the_papers_table(study) -> None:
    result = ropd("eval", "compare", *args(study, *SCRAMBLED), "--markdown")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "| method | run | math | mcq | avg | gap closed |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        "| base | base | 33.3 | 0.0 | 16.7 | 0.0% |",
        "| sft | sft-math | 33.3 | 50.0 | 41.7 | 30.0% |",
        "| ropd | ropd-math | 66.7 | 50.0 | 58.3 | 50.0% |",
        "| lopd | lopd-math | 66.7 | 100.0 | 83.3 | 80.0% |",
        "| - | served | 33.3 | 0.0 | 16.7 | 0.0% |",
        "| teacher | teacher | 100.0 | 100.0 | 100.0 | 100.0% |",
    ]


def test_csv_keeps_fractions(study) -> None:
    result = ropd("eval", "compare", *args(study, "base", "teacher", "ropd"), "--csv")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "method,run,label,math,mcq,math_std,mcq_std,average,gap_closed"
    assert lines[2] == "ropd,ropd-math,ropd,0.666667,0.5,0.0,0.0,0.583333,0.5"


def test_the_terminal_shows_the_study_by_default_when_methods_are_known(study) -> None:
    result = ropd("eval", "compare", *args(study, "ropd", "base", "teacher"))
    assert result.returncode == 0, result.stderr
    assert "by method" in result.stdout and "ropd-math" in result.stdout
    assert "share of the gap closed" not in result.stdout  # one table, not two
    plain = ropd("eval", "compare", *args(study, "served", "base", "teacher"))
    assert "by method" not in plain.stdout and "share of the gap closed" in plain.stdout
    forced = ropd("eval", "compare", *args(study, "served", "base", "teacher"), "--study")
    assert "by method" in forced.stdout
    off = ropd("eval", "compare", *args(study, "ropd", "base", "teacher"), "--no-study")
    assert "by method" not in off.stdout


def test_a_method_given_for_an_unknown_row(study) -> None:
    given = ("served", "ropd", "base", "teacher", "sft")
    result = ropd("eval", "compare", *args(study, *given), "--method", "served=gad", "--json")
    assert result.returncode == 0, result.stderr
    methods = [r["method"] for r in json.loads(result.stdout)["study"]["rows"]]
    assert methods == ["base", "sft", "gad", "ropd", "teacher"]  # gad sits before ropd
    as_given = ropd("eval", "compare", *args(study, *given), "--as-given", "--json")
    methods = [r["method"] for r in json.loads(as_given.stdout)["study"]["rows"]]
    assert methods == ["base", "-", "ropd", "sft", "teacher"]
    wrong = ropd("eval", "compare", *args(study, *given), "--method", "nosuch=gad")
    assert wrong.returncode == 2 and "--method names no row: nosuch" in one_line(wrong.stderr)
    malformed = ropd("eval", "compare", *args(study, *given), "--method", "gad")
    assert malformed.returncode == 2 and "expected LABEL=METHOD" in one_line(malformed.stderr)


def test_differing_settings_are_still_refused(study, tmp_path: Path) -> None:
    run = training_run(tmp_path / "runs" / "tjudge-hot", "tjudge")
    hot = evaluate(tmp_path / "tjudge", str(run / "final"), ALL, temperature=0.7)
    for form in ("--markdown", "--csv", "--study", "--json"):
        result = ropd("eval", "compare", *args(study, "base", "teacher"), str(hot), form)
        assert result.returncode == 2, form
        assert "temperature: base=1.0, teacher=1.0, tjudge=0.7" in one_line(result.stderr)
        assert result.stdout == ""
    forced = ropd("eval", "compare", *args(study, "base", "teacher"), str(hot), "--force")
    assert forced.returncode == 0 and "tjudge-hot" in forced.stdout


def test_a_model_path_outside_any_run(study, tmp_path: Path) -> None:
    (tmp_path / "ckpt").mkdir()
    assert find_run(str(tmp_path / "ckpt")) is None
    assert find_run("Qwen/Qwen3-0.6B") is None and find_run(None) is None
    comparison = build_comparison([study["served"], study["base"], study["teacher"]])
    assert [r.method for r in build_study(comparison).rows] == ["base", "-", "teacher"]


def test_the_order_covers_every_training_method() -> None:
    from ropd.train.config import METHODS

    assert set(METHODS) <= set(STUDY_ORDER)


def test_a_relative_model_path_is_read_from_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, study
) -> None:
    """`ropd eval --model runs/x/final` recorded the path as typed; compare run from there."""
    monkeypatch.chdir(tmp_path)
    training_run(tmp_path / "runs" / "ovd-math", "ovd")
    ovd = evaluate(tmp_path / "results" / "ovd", "runs/ovd-math/final", KNOWS["ropd"])
    result = ropd("eval", "compare", *args(study, "base", "teacher"), str(ovd), "--markdown")
    assert "| ovd | ovd-math | 66.7 | 50.0 | 58.3 | 50.0% |" in result.stdout.splitlines()
    monkeypatch.chdir(tmp_path / "results")  # elsewhere the path names nothing: unknown
    result = ropd("eval", "compare", *args(study, "base", "teacher"), str(ovd), "--markdown")
    assert "| - | ovd | 66.7 | 50.0 | 58.3 | 50.0% |" in result.stdout.splitlines()


def test_one_output_form_at_a_time(study) -> None:
    result = ropd("eval", "compare", *args(study, "base", "teacher"), "--json", "--csv")
    assert result.returncode == 2 and "choose one" in result.stderr
