"""The summary of `ropd score` is never wrapped when stdout is not a terminal (a file, CI).

Rich wraps at 80 columns off a terminal; a long output path split over two lines cannot be
copied, and a `ropd inspect` command split in two cannot be pasted.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.inprocess import ropd_in_process

ROW = {
    "id": "g1",
    "prompt": "What is 17 * 23?",
    "student_responses": ["391 because 17*23", "It is 401"],
    "teacher_responses": ["391 because 17*23=391, check: 391/23=17, no units"],
}


def test_summary_lines_are_whole_off_a_terminal(stub, tmp_path: Path):
    groups = tmp_path / "groups.jsonl"
    groups.write_text(json.dumps(ROW) + "\n", encoding="utf-8")
    deep = tmp_path / ("a-rather-long-folder-name-" * 3) / "and-another-long-one"
    deep.mkdir(parents=True)
    output = deep / "scores-of-a-run-with-a-long-name.jsonl"
    traces = deep / "traces-of-a-run-with-a-long-name.db"
    assert len(str(output)) > 100
    done = ropd_in_process(
        ["score", groups, "-o", output, "--traces", traces,
         "--base-url", stub.base_url, "--model", "stub"],
        env={"COLUMNS": "80"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"scores: {output}" in lines
    traces_line = [line for line in lines if line.startswith("traces: ")]
    assert len(traces_line) == 1
    assert traces_line[0].endswith(f"`ropd inspect --traces {traces} --list`)")
