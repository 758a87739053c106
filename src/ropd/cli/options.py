"""Help text for command-line options, taken from the config fields they set.

A flag that sets a config field says what the field's description says, so the two never drift.
"""

from __future__ import annotations

from pydantic import BaseModel


def field_help(model: type[BaseModel], name: str, extra: str = "") -> str:
    """The description of `model.name`, for a typer option's `help=`."""
    description = model.model_fields[name].description
    if description is None:
        raise KeyError(f"{model.__name__}.{name} has no description")
    return f"{description} {extra}".strip()
