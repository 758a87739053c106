"""`ropd inspect` as a person runs it: the real CLI (in process), a real SQLite trace store.

Two things are checked here: the verdicts and the `--stats` summary fit the terminal (a grid or
table when wide, stacked when narrow, never a line past the width, never an id or value cut to
"…"), and a bare `ropd inspect` finds the trace store in the current folder or says exactly why
it cannot.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from tests.inprocess import ropd_in_process

from ropd.reward.traces import TraceStore
from ropd.reward.types import AnswerVerdicts, Group, GroupResult
from ropd.rubric import Criterion, Rubric, weighted_score

N_CRITERIA = 12
IDS = [f"C{i}" for i in range(1, N_CRITERIA + 1)]
POINTS = [(i % 5) + 1 for i in range(N_CRITERIA)]
CATEGORIES = ["correctness", "reasoning", "instruction_following", "format"]


def inspect_cli(*args: object, cwd: Path, columns: int = 240) -> subprocess.CompletedProcess[str]:
    """`ropd inspect ...` in `cwd`, at a terminal width of `columns` (in process: the width
    comes from COLUMNS either way, and a child process would add only its imports)."""
    env = {"COLUMNS": str(columns), "NO_COLOR": "1", "LINES": None}
    return ropd_in_process(["inspect", *args], env=env, cwd=cwd)


def verdicts_for(seed: int) -> dict[str, bool]:
    """A fixed, varied pass/fail pattern per answer."""
    return {cid: (i * 7 + seed * 3) % 5 < 3 for i, cid in enumerate(IDS)}


def record_group(path: Path, gid: str = "wide", *, run_id: str = "r1") -> GroupResult:
    """A traced group with 12 long criteria, 4 student answers and 2 teacher answers."""
    rubric = Rubric(
        criteria=[
            Criterion(
                id=cid,
                category=CATEGORIES[i % len(CATEGORIES)],
                points=POINTS[i],
                criterion=f"The answer states fact number {i + 1} and explains why it holds "
                "for the numbers in the question, without hedging.",
            )
            for i, cid in enumerate(IDS)
        ]
    )
    verdicts = []
    for source, count, offset in (("student", 4, 0), ("teacher", 2, 10)):
        for index in range(count):
            booleans = verdicts_for(index + offset)
            verdicts.append(
                AnswerVerdicts(
                    source=source,
                    index=index,
                    verdicts=booleans,
                    score=weighted_score(POINTS, [booleans[c] for c in IDS]),
                    label=index + 1 + (4 if source == "teacher" else 0),
                )
            )
    scores = {(v.source, v.index): v.score for v in verdicts}
    result = GroupResult(
        id=gid,
        rewards=[scores["student", i] for i in range(4)],
        teacher_scores=[scores["teacher", j] for j in range(2)],
        rubrics=[rubric],
        verdicts=verdicts,
    )
    group = Group(
        id=gid,
        prompt="A shop sells 17 crates of 23 apples. How many apples? " * 3,
        student_responses=[f"student answer {i}: 391 because 17 * 23 = 391" for i in range(4)],
        teacher_responses=[f"teacher answer {j}: 17 * 23 = 391" for j in range(2)],
    )
    with TraceStore(path, run_id=run_id) as store:
        store.record(group, result, step=3)
    return result


def answer_blocks(stdout: str) -> dict[str, str]:
    """Stacked layout: the text of each answer's block, keyed by "student #0" etc."""
    start = stdout.index("answers (label")
    section = stdout[start : stdout.index("╭", start)]  # up to the answer texts' panels
    heads = list(re.finditer(r"^(student|teacher) #(\d+)", section, re.MULTILINE))
    return {
        m.group(0): section[m.start() : nxt.start() if nxt else len(section)]
        for m, nxt in zip(heads, [*heads[1:], None])
    }


@pytest.mark.parametrize("columns", [80, 200])
def test_twelve_criteria_fit_the_terminal_with_every_id_and_answer(tmp_path, columns):
    db = tmp_path / "scores.traces.db"
    result = record_group(db)
    shown = inspect_cli("--traces", db, "wide", cwd=tmp_path, columns=columns)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    too_long = [line for line in lines if len(line) > columns]
    assert not too_long, "\n".join(too_long)
    assert "…" not in shown.stdout  # nothing cut short to fit

    expected_rows = [("student", i, r) for i, r in enumerate(result.rewards)] + [
        ("teacher", j, s) for j, s in enumerate(result.teacher_scores)
    ]
    judged = {(v.source, v.index): v.verdicts for v in result.verdicts}
    if columns == 200:  # the grid: one header row with every id, one row per answer
        header = next(line for line in lines if "┃ source" in line)
        assert re.findall(r"\bC\d+\b", header) == IDS
        for source, index, reward in expected_rows:
            row = next(line for line in lines if re.match(rf"│ {source}\s*│ {index}\s*│", line))
            cells = [c.strip() for c in row.split("│")[1:-1]]
            marks = ["pass" if judged[source, index][c] else "fail" for c in IDS]
            assert cells[3:] == [*marks, f"{reward:.3f}"]
    else:  # stacked: per answer its reward, then the ids it passed and failed
        assert not any("┃ source" in line for line in lines)
        blocks = answer_blocks(shown.stdout)
        assert list(blocks) == [f"{s} #{i}" for s, i, _ in expected_rows]
        for source, index, reward in expected_rows:
            block = blocks[f"{source} #{index}"]
            assert f"reward {reward:.3f}" in block
            passed = re.search(r"pass\s+(.*?)\n\s+fail", block, re.DOTALL)
            failed = re.search(r"fail\s+(.*)", block, re.DOTALL)
            assert passed and failed, block
            verdicts = judged[source, index]
            assert passed.group(1).split() == [c for c in IDS if verdicts[c]]
            assert failed.group(1).split() == [c for c in IDS if not verdicts[c]]
    for cid in IDS:  # the rubric table keeps every id too
        assert re.search(rf"│ {cid}\s+│", shown.stdout), cid


def test_layout_flag_overrides_the_width(tmp_path):
    db = tmp_path / "t.traces.db"
    record_group(db)
    wide_stacked = inspect_cli("--traces", db, "wide", "--layout", "stacked", cwd=tmp_path)
    assert wide_stacked.returncode == 0, wide_stacked.stderr
    assert "student #3" in wide_stacked.stdout and "┃ source" not in wide_stacked.stdout
    bad = inspect_cli("--traces", db, "wide", "--layout", "sideways", cwd=tmp_path)
    assert bad.returncode == 2 and "sideways" in bad.stderr


def test_stats_and_list_fit_80_columns(tmp_path):
    db = tmp_path / "t.traces.db"
    record_group(db)
    for args in (["--stats"], ["--list"]):
        shown = inspect_cli("--traces", db, *args, cwd=tmp_path, columns=80)
        assert shown.returncode == 0, shown.stderr
        assert max(map(len, shown.stdout.splitlines())) <= 80, shown.stdout


STATS_LABELS = [
    "groups",
    "failure rate",
    "reward mean ± std",
    "std in groups",
    "teacher mean",
    "beat teacher",
    "rubric size",
    "pass rate by category",
    "judge tokens in / out",
    "judge cost",
]
_Stats = dict[tuple[str, str], dict[str, str]]  # (run, step) -> metric label -> value


def stats_table(stdout: str) -> _Stats:
    """`--stats` as a table: per row, its cells by header; wrapped cells joined with a space."""
    lines = stdout.splitlines()
    names = [c.strip() for c in next(ln for ln in lines if ln.startswith("┃ run")).split("┃")[1:-1]]
    rows: list[list[str]] = []
    for line in lines:
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells[0]:
            rows.append(cells)
        else:  # a wrapped cell goes on
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells)]
    table = {}
    for cells in rows:
        by_name = dict(zip(names, cells))
        table[by_name.pop("run"), by_name.pop("step")] = by_name
    return table


def stats_blocks(stdout: str) -> _Stats:
    """`--stats` stacked: per "run R   step S" head, its `name: value` lines; wrapped values
    joined with a space."""
    blocks: _Stats = {}
    block = label = None
    for line in stdout.splitlines():
        if head := re.fullmatch(r"run (\S+)   step (\S+)\s*", line):
            block = blocks.setdefault((head.group(1), head.group(2)), {})
        elif not line.strip():
            block = None
        elif block is None:
            continue
        elif named := re.fullmatch(r"   (\S[^:]*):\s+(.*?)\s*", line):
            label = named.group(1)
            block[label] = named.group(2)
        else:
            assert label is not None and line.startswith("    "), line
            block[label] += " " + line.strip()
    return blocks


def record_steps(path: Path) -> None:
    record_group(path, "g1", run_id="r1")
    record_group(path, "g2", run_id="r1")
    record_group(path, "g3", run_id="run-2024-05-01-long-name")


def test_stats_stack_at_80_columns_with_the_wide_tables_values(tmp_path):
    db = tmp_path / "t.traces.db"
    record_steps(db)
    wide = inspect_cli("--traces", db, "--stats", cwd=tmp_path, columns=240)
    narrow = inspect_cli("--traces", db, "--stats", cwd=tmp_path, columns=80)
    for shown, columns in ((wide, 240), (narrow, 80)):
        assert shown.returncode == 0, shown.stderr
        too_long = [line for line in shown.stdout.splitlines() if len(line) > columns]
        assert not too_long, "\n".join(too_long)
        assert "…" not in shown.stdout, shown.stdout  # no value cut short

    table = stats_table(wide.stdout)
    assert list(table) == [("r1", "3"), ("run-2024-05-01-long-name", "3")]
    assert all(list(row) == STATS_LABELS for row in table.values())
    assert table["r1", "3"]["groups"] == "2"
    assert "instruction_following 58%" in table["r1", "3"]["pass rate by category"]

    assert "┏" not in narrow.stdout  # no table: one block per (run, step)
    blocks = stats_blocks(narrow.stdout)
    assert list(blocks) == list(table)
    for key, row in table.items():
        assert list(blocks[key]) == STATS_LABELS, blocks[key]
        assert blocks[key] == row
    assert "std in groups: mean of the groups' stds" in " ".join(narrow.stdout.split())


def test_stats_layout_flag_overrides_the_width(tmp_path):
    db = tmp_path / "t.traces.db"
    record_steps(db)
    grid = inspect_cli("--traces", db, "--stats", "--layout", "grid", cwd=tmp_path, columns=80)
    assert grid.returncode == 0, grid.stderr
    assert "┏" in grid.stdout and not stats_blocks(grid.stdout)  # the table, however cramped
    assert max(map(len, grid.stdout.splitlines())) <= 80, grid.stdout

    stacked = inspect_cli("--traces", db, "--stats", "--layout", "stacked", cwd=tmp_path)
    assert stacked.returncode == 0, stacked.stderr
    assert "┏" not in stacked.stdout
    table = stats_table(inspect_cli("--traces", db, "--stats", cwd=tmp_path).stdout)
    assert stats_blocks(stacked.stdout) == table


@pytest.mark.parametrize("name", ["traces.db", "scores.traces.db", "traces.sqlite"])
def test_bare_inspect_finds_the_store_in_the_current_folder(tmp_path, name):
    record_group(tmp_path / name, "g-found")
    shown = inspect_cli("g-found", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "group g-found" in shown.stdout
    assert f"trace store: {name} (found" in shown.stderr  # says which one it used
    listed = inspect_cli(cwd=tmp_path)
    assert listed.returncode == 0 and "g-found" in listed.stdout


def test_traces_db_wins_over_other_candidates(tmp_path):
    record_group(tmp_path / "traces.db", "main")
    record_group(tmp_path / "other.traces.db", "other")
    shown = inspect_cli("--list", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "main" in shown.stdout and "other" not in shown.stdout


def test_several_candidates_exit_2_listing_them(tmp_path):
    record_group(tmp_path / "a.traces.db", "a")
    record_group(tmp_path / "b.traces.db", "b")
    record_group(tmp_path / "traces.sqlite", "c")
    shown = inspect_cli("a", cwd=tmp_path)
    assert shown.returncode == 2
    assert "several trace stores in the current folder" in shown.stderr
    assert "a.traces.db, b.traces.db, traces.sqlite" in shown.stderr
    assert "--traces PATH" in shown.stderr and "Traceback" not in shown.stderr


def test_no_candidate_exits_2_saying_where_stores_are(tmp_path):
    (tmp_path / "notes.db").write_text("")  # not a trace store name
    record_group(tmp_path / "runs" / "embedded" / "traces.sqlite", "t")
    shown = inspect_cli("--list", cwd=tmp_path)
    assert shown.returncode == 2 and "Traceback" not in shown.stderr
    message = " ".join(shown.stderr.split())
    assert "no trace store in the current folder" in message
    assert "pass --traces PATH" in message
    assert (
        "OUT.traces.db next to its output" in message and "traces.db in its output_dir" in message
    )
    assert "found nearby: runs/embedded/traces.sqlite" in message


def test_a_folder_or_a_missing_file_as_traces(tmp_path):
    record_group(tmp_path / "runs" / "traces.db", "in-run")
    shown = inspect_cli("--traces", "runs", "--list", cwd=tmp_path)
    assert shown.returncode == 0 and "in-run" in shown.stdout
    assert "trace store: runs/traces.db" in shown.stderr
    missing = inspect_cli("--traces", "nope.db", cwd=tmp_path)
    assert missing.returncode == 2 and "nope.db: no trace database there" in missing.stderr


def test_stacked_per_pair_and_failed_groups(tmp_path):
    db = tmp_path / "traces.db"
    small = Rubric(criteria=[Criterion(id="C1", criterion="gives 391", points=2)])
    big = Rubric(
        criteria=[Criterion(id=f"C{i}", criterion=f"check {i}", points=1) for i in (1, 2, 3)]
    )
    per_pair = GroupResult(
        id="pair",
        rewards=[1.0, 1 / 3],
        rubrics=[small, big],
        verdicts=[
            AnswerVerdicts(source="student", index=0, verdicts={"C1": True}, score=1.0),
            AnswerVerdicts(
                source="student",
                index=1,
                verdicts={"C1": True, "C2": False, "C3": False},
                score=1 / 3,
                rubric_index=1,
            ),
        ],
    )
    failed = GroupResult(id="down", rewards=[None, None], error="JudgeError: HTTP 503")
    with TraceStore(db, run_id="r") as store:
        for result in (per_pair, failed):
            group = Group(id=result.id, prompt="q", student_responses=["a", "b"])
            store.record(group, result)

    shown = inspect_cli("pair", "--layout", "stacked", cwd=tmp_path, columns=80)
    assert shown.returncode == 0, shown.stderr
    blocks = answer_blocks(shown.stdout)
    assert "rubric 0" in blocks["student #0"] and "rubric 1" in blocks["student #1"]
    assert re.search(r"pass\s+C1\s+fail\s+-", blocks["student #0"])  # its own rubric: C1 only
    assert re.search(r"pass\s+C1\s+fail\s+C2 C3", blocks["student #1"])

    down = inspect_cli("down", "--layout", "stacked", cwd=tmp_path, columns=80)
    assert down.returncode == 0, down.stderr
    assert "FAILED" in down.stdout and "HTTP 503" in down.stdout
    assert [b.count("no verdicts") for b in answer_blocks(down.stdout).values()] == [1, 1]
