"""Where errors become exit codes: the one place the command line decides them.

Every command raises `ropd.errors.RopdError` subclasses and lets them rise; the top-level group
prints the message and exits with the category's code (input 2, judge 1, unavailable judge 2,
store 2, stopped run 3, interrupted 130 — Ctrl-C in any command). Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import click
import typer
import typer.core
from rich.console import Console

from ropd.errors import Interrupted, RopdError
from ropd.io import GroupsFileError
from ropd.redact import scrub

MAX_LINE_ERRORS_SHOWN = 50


def report(error: RopdError, console: Console | None = None) -> int:
    """Print `error` for a person and return its exit code."""
    console = console or Console(stderr=True, soft_wrap=True)
    if isinstance(error, GroupsFileError):  # one line per bad input line, capped
        for line in error.errors[:MAX_LINE_ERRORS_SHOWN]:
            console.print(scrub(str(line)), markup=False, highlight=False)
        if len(error.errors) > MAX_LINE_ERRORS_SHOWN:
            more = len(error.errors) - MAX_LINE_ERRORS_SHOWN
            console.print(f"... and {more} more bad lines", markup=False, highlight=False)
    else:
        console.print(f"error: {scrub(str(error))}", markup=False, highlight=False)
    return error.exit_code


class RopdGroup(typer.core.TyperGroup):
    """The top-level command group: maps ropd's error categories to exit codes."""

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except RopdError as error:
            raise typer.Exit(report(error)) from None
        except KeyboardInterrupt:  # commands that say more raise Interrupted themselves
            raise typer.Exit(report(Interrupted("interrupted"))) from None
