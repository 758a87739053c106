"""`ropd bench` without the development package `ropd_dev`: one clear refusal, never a traceback.

Absence is simulated in a fresh interpreter (`sys.modules["ropd_dev"] = None` makes every import
of it fail as if it were not installed) before `ropd.cli` is imported, as an installed wheel
without `dev/` would see it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

RUN_WITHOUT_DEV = (
    "import sys; sys.modules['ropd_dev'] = None; "
    "from ropd.cli import main; sys.argv = ['ropd', *sys.argv[1:]]; main()"
)


@pytest.mark.parametrize(
    "args",
    [["bench"], ["bench", "--help"], ["bench", "judge", "--groups", "4"], ["bench", "nope"]],
    ids=["bare", "help", "judge", "unknown"],
)
def test_bench_without_ropd_dev_names_the_dev_package(args: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_DEV, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "ropd bench needs the development package" in out.stderr
    assert "pip install --no-deps -e dev/" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_the_rest_of_the_cli_works_without_ropd_dev() -> None:
    out = subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_DEV, "--help"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "bench" in out.stdout and "score" in out.stdout


def test_a_fault_name_of_ropd_testing_says_where_it_moved() -> None:
    import pytest

    import ropd.testing

    with pytest.raises(ImportError, match=r"moved to ropd_dev\.faults.*-e dev/"):
        from ropd.testing import FaultJudgeServer  # noqa: F401
    assert not hasattr(ropd.testing, "NOT_A_NAME")
