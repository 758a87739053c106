"""`ropd bench ...`: the benchmarks live in the development package `ropd_dev` (folder `dev/`).

Each benchmark module of `ropd_dev.bench` registers its own command. Without `ropd_dev`
(installed ropd, not a source checkout) `ropd bench` stays listed but every use of it, `--help`
included, fails with one message saying how to install the development package.
"""

from __future__ import annotations

import click
import typer
import typer.core

from ropd.errors import InputError

MISSING = (
    "ropd bench needs the development package: from a source checkout run "
    "`pip install --no-deps -e dev/` (make setup installs it)"
)


class MissingBenchGroup(typer.core.TyperGroup):
    """`ropd bench` without `ropd_dev`: refuses anything it is given, `--help` included."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        raise InputError(MISSING)


def register(bench_app: typer.Typer) -> None:
    """Add the benchmark commands to `ropd bench`, or the one refusal when `ropd_dev` is absent."""
    try:
        from ropd_dev.bench import faults, judge, teacher, train, verl
    except ModuleNotFoundError as error:
        if error.name not in ("ropd_dev", "ropd_dev.bench"):
            raise  # ropd_dev is there but broken: show what is missing

        @bench_app.callback(cls=MissingBenchGroup, invoke_without_command=True)
        def _missing() -> None:
            """Benchmarks (need the development package: `pip install --no-deps -e dev/`)."""

        return
    for module in (judge, teacher, train, faults, verl):
        module.register(bench_app)
