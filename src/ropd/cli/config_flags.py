"""Command-line flags generated from the run configuration's fields.

`@config_flags("scorer.min_criteria", "scorer.blind", ...)` adds one option per field to a typer
command: its name (`--min-criteria`, `--blind/--no-blind`), type (a `Literal` becomes a choice),
default shown in `--help` and help text are the field's own, so a flag and the field it sets
cannot drift. The command receives `config_overrides`: the dotted path and value of each flag
typed, ready for `RunConfig.load(path, overrides)`; a flag left out overrides nothing (the
file's value, or the field's default, stays).
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ropd.run_config import RunConfig

F = TypeVar("F", bound=Callable[..., Any])
OVERRIDES = "config_overrides"  # the parameter a decorated command receives


@dataclass(frozen=True)
class Flag:
    """A field's flag where its spelling is not just `--field-name` (`-k`, `--keep-think`)."""

    path: str
    decls: tuple[str, ...] = ()


def field_at(path: str, model: type[BaseModel] = RunConfig) -> FieldInfo:
    """The pydantic field at a dotted path of `model` (`scorer.min_criteria`)."""
    *parents, name = path.split(".")
    for part in parents:
        model = _model_of(model.model_fields[part].annotation)
    try:
        return model.model_fields[name]
    except KeyError:
        raise KeyError(f"{model.__name__} has no field {name!r} ({path})") from None


def _model_of(annotation: Any) -> type[BaseModel]:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    raise TypeError(f"{annotation!r} is not a config section")


def _click_type(annotation: Any) -> tuple[Any, dict[str, Any]]:
    """The python type typer sees for a field, and extra Option arguments (choices)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = args[0] if typing.get_origin(annotation) in (typing.Union, _union_type()) else annotation
    if typing.get_origin(base) is typing.Literal:  # typer offers an Enum's values as choices
        values = [str(v) for v in typing.get_args(base)]
        return Enum("Choice", {v: v for v in values}, type=str), {}
    if base in (bool, int, float, str, Path) or (isinstance(base, type) and issubclass(base, Enum)):
        return base, {}
    raise TypeError(f"no flag for a field of type {annotation!r}")


def _union_type() -> Any:
    import types

    return types.UnionType


def _option(flag: Flag) -> inspect.Parameter:
    field = field_at(flag.path)
    name = flag.path.rsplit(".", 1)[-1]
    kind, extra = _click_type(field.annotation)
    dashed = "--" + name.replace("_", "-")
    decls = flag.decls or ((f"{dashed}/--no-{dashed[2:]}",) if kind is bool else (dashed,))
    default = field.get_default(call_default_factory=True)
    option = typer.Option(
        *decls,
        help=field.description or "",
        show_default=False if default is None else str(getattr(default, "value", default)),
        **extra,
    )
    return inspect.Parameter(
        _param(flag.path),
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[kind | None, option],
    )


def _param(path: str) -> str:
    return "cfg_" + path.replace(".", "__")


def config_flags(*flags: str | Flag) -> Callable[[F], F]:
    """Add a generated option for each field path to a typer command (see the module doc)."""
    specs = [flag if isinstance(flag, Flag) else Flag(flag) for flag in flags]

    def decorate(command: F) -> F:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != OVERRIDES]
        generated = [_option(spec) for spec in specs]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            overrides = {}
            for spec in specs:
                value = kwargs.pop(_param(spec.path), None)
                if isinstance(value, Enum):
                    value = value.value
                if value is not None:
                    overrides[spec.path] = str(value) if isinstance(value, Path) else value
            return command(*args, **kwargs, **{OVERRIDES: overrides})

        wrapper.__signature__ = signature.replace(parameters=[*own, *generated])  # type: ignore[attr-defined]
        wrapper.__annotations__ = {}  # the signature above is the truth (typer reads it)
        return wrapper  # type: ignore[return-value]

    return decorate


__all__ = ["OVERRIDES", "Flag", "config_flags", "field_at"]
