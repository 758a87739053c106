"""The `ropd` command line. Each area registers its commands from its own module.

`ropd --version` / `ropd version` live here, beside the app they describe: ropd's version, then
Python's and those of the optional packages that decide behaviour (so a bug report says which
torch, TRL, transformers and openai were in play), read from package metadata without importing
them.
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import Annotated

import typer

import ropd
from ropd.cli import (
    analyze,
    bench,
    evaluate,
    inspect,
    plan,
    report,
    score,
    stub,
    teacher,
    train,
    verl,
)
from ropd.cli.errors import RopdGroup

# distribution names, in the order printed; the optional ones may be missing
KEY_PACKAGES = ("torch", "trl", "transformers", "openai", "llama-cpp-python")

app = typer.Typer(
    name="ropd",
    cls=RopdGroup,
    help="Rubric-based On-Policy Distillation: rewards, teacher references, training, evaluation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # click's plain help: every flag name whole at any width (rich's option table cut names
    # such as --rubricator-base-url at 80 columns)
    rich_markup_mode=None,
)
bench_app = typer.Typer(
    help="Benchmarks that start what they need and print one JSON line.", rich_markup_mode=None
)


def version_lines() -> list[str]:
    """`ropd <version>`, then python and each key package (`not installed` when absent)."""
    lines = [
        f"ropd {ropd.__version__}",
        f"python {platform.python_version()} ({sys.executable})",
    ]
    for name in KEY_PACKAGES:
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            found = "not installed"
        lines.append(f"{name} {found}")
    return lines


def _print_version(value: bool) -> None:
    if value:
        typer.echo("\n".join(version_lines()))
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the versions of ropd, Python and key packages, then exit.",
        ),
    ] = False,
) -> None:
    """Rubric-based On-Policy Distillation: rewards, teacher references, training, evaluation."""


def version() -> None:
    """Print the versions of ropd, Python and key packages (torch, trl, transformers, openai)."""
    typer.echo("\n".join(version_lines()))


app.add_typer(bench_app, name="bench")
for module in (score, inspect, teacher, train, plan, evaluate, stub, report, analyze, verl):
    module.register(app)
bench.register(bench_app)
app.command("version")(version)


def main() -> None:
    app()
