"""Bad groups files, paths and options: `ropd score` exits 2 with one clear message, no judge call.

The table and the runner live in `ropd_dev.bad_inputs` (the fault benchmark reports the same
cases). Each case runs the real `ropd score` command in process (`CliRunner`: a subprocess
would add only its imports; the benchmark runs the same table in subprocesses) against a
`StubJudgeServer`, and checks the exit code, the message (file:line and field where there is
one), that no traceback is printed, that the stub received no request and that no output was
left behind.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ropd_dev.bad_inputs import CASES, KEY_ENV, Case, run_case
from tests.inprocess import ropd_in_process

from ropd.testing import StubJudgeServer


def in_process(args: list[str], env: dict[str, str]):  # type: ignore[no-untyped-def]
    return ropd_in_process(args, env={KEY_ENV: env[KEY_ENV], "COLUMNS": env["COLUMNS"]})


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_exits_2_with_a_clear_message(
    case: Case, stub: StubJudgeServer, tmp_path: Path
) -> None:
    outcome = run_case(case, tmp_path, stub.base_url, {}, stub=stub, runner=in_process)
    if outcome.skipped:
        pytest.skip(outcome.skip_reason)
    problems = "\n".join(outcome.problems())
    assert outcome.clear, f"{problems}\n--- printed ---\n{outcome.shown}"
