"""`ropd bench ...`: each benchmark module registers its own command."""

from __future__ import annotations

import typer

from ropd.bench import faults, judge, teacher, train, verl


def register(bench_app: typer.Typer) -> None:
    """Add the benchmark commands to `ropd bench`."""
    for module in (judge, teacher, train, faults, verl):
        module.register(bench_app)
