"""Help text for command-line options, taken from the config fields they set.

A flag that sets a config field says what the field's description says, so the two never drift.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import BaseModel

from ropd.errors import InputError
from ropd.llm.config import LimitsConfig, RoleConfig


def field_help(model: type[BaseModel], name: str, extra: str = "") -> str:
    """The description of `model.name`, for a typer option's `help=`."""
    description = model.model_fields[name].description
    if description is None:
        raise KeyError(f"{model.__name__}.{name} has no description")
    return f"{description} {extra}".strip()


# The endpoint limits every command that calls a model takes (help from `LimitsConfig`).
MaxInFlight = Annotated[int, typer.Option(help=field_help(LimitsConfig, "max_in_flight"))]
Rpm = Annotated[
    float | None, typer.Option("--rpm", help=field_help(LimitsConfig, "requests_per_minute"))
]
Tpm = Annotated[
    float | None, typer.Option("--tpm", help=field_help(LimitsConfig, "tokens_per_minute"))
]
MaxRetries = Annotated[int, typer.Option(help=field_help(LimitsConfig, "max_retries"))]


def role_from_flags(
    name: str,
    base_url: str | None,
    model: str | None,
    api_key_env: str | None,
    **sampling: Any,
) -> RoleConfig:
    """A role from `--base-url/--model/--api-key-env` and sampling flags.

    Without a base URL the role is the embedded local model; with one, `--model` is required.
    """
    if base_url is not None and not model:
        raise InputError(f"--model is required with --base-url ({base_url})")
    return RoleConfig(
        name=name, base_url=base_url, model=model or "local", api_key_env=api_key_env, **sampling
    )


def limits_from_flags(
    max_in_flight: int, rpm: float | None, tpm: float | None, max_retries: int
) -> LimitsConfig:
    return LimitsConfig(
        max_in_flight=max_in_flight,
        requests_per_minute=rpm,
        tokens_per_minute=tpm,
        max_retries=max_retries,
    )
