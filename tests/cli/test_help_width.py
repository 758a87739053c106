"""Help pages keep every flag name whole at 80 columns (a terminal's or a CI log's width)."""

from __future__ import annotations

import re

from tests.inprocess import ropd_in_process

LONG_FLAGS = {
    ("score",): ["--rubricator-base-url", "--verifier-api-key-env", "--any-teacher-fingerprint"],
    ("teacher", "build"): ["--max-in-flight", "--system-field"],
    ("analyze", "run"): ["--teacher-api-key-env", "--any-teacher-fingerprint"],
}


def test_flag_names_are_never_cut_at_80_columns() -> None:
    for command, flags in LONG_FLAGS.items():
        text = ropd_in_process([*command, "--help"], env={"COLUMNS": "80"}).stdout
        for flag in flags:
            assert re.search(rf"{re.escape(flag)}\b", text), (command, flag)
