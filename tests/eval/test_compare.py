"""`ropd eval compare`: the table, the gap closed, and the settings check (real CLI, subprocess)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.eval.cli_run import one_line, ropd

from ropd.eval.compare import build_comparison, check_settings, load_run

PAPER = {
    "backend": "openai-compatible",
    "endpoint": "127.0.0.1:8000",
    "num_samples": 16,
    "temperature": 1.0,
    "top_p": 0.95,
    "max_tokens": 8192,
    "seed": 0,
    "system_prompt": None,
    "system_prompt_sha256": None,
    "limit": None,
    "grader": None,
    "grader_max_tokens": None,
}


def summary(
    folder: Path,
    model: str,
    scores: dict[str, float],
    *,
    items: int = 30,
    settings: dict[str, Any] | None = None,
    legacy: dict[str, Any] | None = None,
) -> Path:
    """A summary.json as `ropd eval` writes it; `settings=None` and no `legacy`: an old one."""
    folder.mkdir(parents=True)
    n = (settings or {}).get("num_samples", 16)
    tasks = {
        t: {"family": "math", "pass_at_1": v, "pass_at_1_std": 0.01, "n": n, "items": items}
        for t, v in scores.items()
    }
    data: dict[str, Any] = {"model": model, "tasks": tasks}
    if settings is not None:
        data["settings"] = {"model": model, **settings}
    if legacy is not None:
        data["generation"] = legacy
        data["grader"] = None
    (folder / "summary.json").write_text(json.dumps(data))
    return folder


def paper_runs(tmp_path: Path, **ropd_changes: Any) -> list[Path]:
    base = summary(tmp_path / "base", "student-0", {"aime24": 0.2, "aime25": 0.1}, settings=PAPER)
    teacher = summary(tmp_path / "teacher", "big", {"aime24": 0.6, "aime25": 0.5}, settings=PAPER)
    ropd_run = summary(
        tmp_path / "ropd",
        "student-ropd",
        {"aime24": 0.5, "aime25": 0.3},
        settings={**PAPER, **ropd_changes},
    )
    return [base, teacher, ropd_run]


def test_same_settings_compare_with_gap_closed(tmp_path: Path) -> None:
    runs = paper_runs(tmp_path, backend="transformers", endpoint=None, dtype="bfloat16")
    result = ropd("eval", "compare", *map(str, runs), "--json")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr  # model, backend and dtype may differ
    data = json.loads(result.stdout)
    assert (data["base"], data["teacher"]) == ("base", "teacher")
    assert data["settings_check"]["differences"] == {}
    gaps = data["runs"]["ropd"]["gap_closed"]
    assert gaps["aime24"] == pytest.approx(0.75)
    assert gaps["aime25"] == pytest.approx(0.5)
    assert gaps["average"] == pytest.approx((0.40 - 0.15) / (0.55 - 0.15))
    assert data["runs"]["ropd"]["settings"]["dtype"] == "bfloat16"

    table = ropd("eval", "compare", *map(str, runs))
    assert table.returncode == 0, table.stderr
    assert "50.0 ± 1.0" in table.stdout and "75.0%" in table.stdout


def test_different_temperature_is_refused_with_the_differences(tmp_path: Path) -> None:
    runs = paper_runs(tmp_path, temperature=0.7)
    result = ropd("eval", "compare", *map(str, runs))
    assert result.returncode == 2
    assert result.stdout == ""  # no table
    message = one_line(result.stderr)
    assert "not comparable" in message
    assert "temperature: base=1.0, teacher=1.0, ropd=0.7" in message
    assert "--force" in message

    as_json = ropd("eval", "compare", *map(str, runs), "--json")
    assert as_json.returncode == 2 and as_json.stdout == ""


def test_force_prints_the_table_with_a_warning_naming_the_settings(tmp_path: Path) -> None:
    runs = paper_runs(tmp_path, temperature=0.7, max_tokens=4096)
    result = ropd("eval", "compare", *map(str, runs), "--force")
    assert result.returncode == 0, result.stderr
    assert "50.0 ± 1.0" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "temperature: base=1.0, teacher=1.0, ropd=0.7" in warnings[0]
    assert "max_tokens: base=8192, teacher=8192, ropd=4096" in warnings[0]

    as_json = ropd("eval", "compare", *map(str, runs), "--force", "--json")
    assert as_json.returncode == 0
    differences = json.loads(as_json.stdout)["settings_check"]["differences"]
    assert set(differences) == {"temperature", "max_tokens"}


def test_limit_and_item_counts_are_checked(tmp_path: Path) -> None:
    full = summary(tmp_path / "base", "a", {"aime24": 0.2}, settings=PAPER)
    quick = summary(
        tmp_path / "ropd", "b", {"aime24": 0.6}, items=5, settings={**PAPER, "limit": 5}
    )
    result = ropd("eval", "compare", str(full), str(quick))
    assert result.returncode == 2
    message = one_line(result.stderr)
    assert "limit: base=none, ropd=5" in message
    assert "items of aime24: base=30, ropd=5" in message


def test_grader_is_checked_only_where_rows_were_graded(tmp_path: Path) -> None:
    graded = {**PAPER, "grader": "gpt-4.1", "grader_max_tokens": 1024}
    a = summary(tmp_path / "a", "a", {"healthbench": 0.3}, settings=graded)
    b = summary(tmp_path / "b", "b", {"healthbench": 0.4}, settings=graded)
    c = summary(tmp_path / "c", "c", {"aime24": 0.4}, settings=PAPER)  # no rubric task
    assert ropd("eval", "compare", str(a), str(b), str(c)).returncode == 0
    other = summary(
        tmp_path / "d", "d", {"healthbench": 0.5}, settings={**graded, "grader": "local"}
    )
    refused = ropd("eval", "compare", str(a), str(other))
    assert refused.returncode == 2
    assert "grader: a='gpt-4.1', d='local'" in one_line(refused.stderr)


def test_rows_without_settings_are_compared_with_a_warning(tmp_path: Path) -> None:
    base = summary(tmp_path / "base", "s", {"t": 0.1})
    teacher = summary(tmp_path / "teacher", "l", {"t": 0.9})
    mid = summary(tmp_path / "ropd", "m", {"t": 0.5}, settings=PAPER)
    result = ropd("eval", "compare", str(base), str(teacher), str(mid), "--json")
    assert result.returncode == 0, result.stderr
    message = one_line(result.stderr)
    assert "cannot be fully checked" in message
    assert "base: no settings recorded" in message and "teacher: no settings recorded" in message
    assert "ropd:" not in message  # the row with settings is not named
    assert json.loads(result.stdout)["runs"]["ropd"]["gap_closed"]["t"] == pytest.approx(0.5)


def test_older_summaries_are_checked_on_what_they_recorded(tmp_path: Path) -> None:
    """Summaries of earlier versions kept temperature & co. under `generation`, not `limit`."""
    old = {
        "n": 16,
        "temperature": 0.7,
        "top_p": 0.95,
        "max_new_tokens": 8192,
        "system_prompt": None,
        "seed": 0,
    }
    base = summary(tmp_path / "base", "s", {"t": 0.1}, legacy=old)
    new = summary(tmp_path / "ropd", "m", {"t": 0.5}, settings=PAPER)
    result = ropd("eval", "compare", str(base), str(new))
    assert result.returncode == 2
    message = one_line(result.stderr)
    assert "temperature: base=0.7, ropd=1.0" in message
    assert "base: limit not recorded" in message

    same = summary(tmp_path / "same", "x", {"t": 0.3}, legacy={**old, "temperature": 1.0})
    check = check_settings([load_run(same), load_run(new)])
    assert check.differences == {} and check.unknown == {"same": ["limit"]}


def test_explicit_base_and_teacher(tmp_path: Path) -> None:
    small = summary(tmp_path / "runs" / "a", "s", {"t": 0.1}, settings=PAPER)
    large = summary(tmp_path / "runs" / "b", "l", {"t": 0.9}, settings=PAPER)
    mid = summary(tmp_path / "runs" / "c", "m", {"t": 0.5}, settings=PAPER)
    result = ropd(
        "eval", "compare", str(mid), "--base", str(small), "--teacher", str(large), "--json"
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["runs"]["c"]["gap_closed"]["t"] == pytest.approx(0.5)
    assert set(data["runs"]) == {"a", "b", "c"}
    comparison = build_comparison([mid], base=small, teacher=large)
    assert comparison.settings_check.differences == {}


def test_folder_without_summary_is_a_clear_error(tmp_path: Path) -> None:
    result = ropd("eval", "compare", str(tmp_path))
    assert result.returncode == 2
    assert "no summary.json" in result.stderr
