"""The `ropd` command line. Each area registers its commands from its own module."""

from __future__ import annotations

import typer

from ropd.cli import bench, evaluate, inspect, score, teacher, train
from ropd.cli.errors import RopdGroup

app = typer.Typer(
    name="ropd",
    cls=RopdGroup,
    help="Rubric-based On-Policy Distillation: rewards, teacher references, training, evaluation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
bench_app = typer.Typer(help="Benchmarks that start what they need and print one JSON line.")
app.add_typer(bench_app, name="bench")

for module in (score, inspect, teacher, train, evaluate):
    module.register(app)
bench.register(bench_app)


def main() -> None:
    app()
