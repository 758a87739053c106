"""The one YAML loader: every config file ropd reads goes through here.

`ropd train`, verl's reward manager and every command's `-c ropd.yaml --set key=value` read
files the same way: YAML parsed once, `--set` overrides applied as dotted keys, and every problem
reported as `file:line: field 'a.b': message` (all problems of a file in one error, in file
order; an overridden field says so instead of pointing at a line).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ValidationError

from ropd.errors import ConfigError

_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
M = TypeVar("M", bound=BaseModel)


def yaml_lines(text: str) -> dict[tuple[str, ...], int]:
    """Map each key path of a YAML document to its 1-based line (for error messages)."""
    out: dict[tuple[str, ...], int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return out

    def walk(node: yaml.Node, path: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = (*path, str(key.value))
                out[sub] = key.start_mark.line + 1
                walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                sub = (*path, str(i))
                out[sub] = item.start_mark.line + 1
                walk(item, sub)

    if root is not None:
        walk(root, ())
    return out


class Locator:
    """Where a field of a loaded config came from: `file:line`, or the command line."""

    def __init__(self, source: str, lines: dict[tuple[str, ...], int], overridden: Iterable[str]):
        self.source = source
        self.lines = lines
        self.overridden = set(overridden)

    def where(self, path: tuple[str, ...]) -> str:
        dotted = ".".join(path)
        if any(dotted == o or dotted.startswith(o + ".") for o in self.overridden):
            return f"{self.source} (overridden on the command line)"
        for n in range(len(path), 0, -1):
            line = self.lines.get(tuple(path[:n]))
            if line is not None:
                return f"{self.source}:{line}"
        return self.source

    def error(self, path: tuple[str, ...], message: str) -> ConfigError:
        return ConfigError(f"{self.where(path)}: field '{'.'.join(path)}': {message}")

    def pydantic_problems(
        self,
        prefix: tuple[str, ...],
        exc: ValidationError,
        model: type[BaseModel] | None = None,
    ) -> list[str]:
        """Each error of `exc` (raised validating the part at `prefix`) as one located line.

        With `model` (the class validated), an unknown key gets the closest field name of the
        model it was found in: `min_critera` → "(did you mean 'min_criteria'?)".
        """
        problems = []
        for err in exc.errors():
            path = (*prefix, *(str(p) for p in err["loc"]))
            message = err["msg"].removeprefix("Value error, ")
            if model is not None and err["type"] == "extra_forbidden" and err["loc"]:
                message += did_you_mean(str(err["loc"][-1]), field_names(model, err["loc"][:-1]))
            problems.append(f"{self.where(path)}: field '{'.'.join(path)}': {message}")
        return problems


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (`X | None`, `list[X]`, `dict[str, X]`…)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def field_names(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The field names of the model(s) at `loc` inside `model` (a pydantic error's location).

    A part that names no field (a list index, a dict key, a union member's tag) keeps the models
    found so far: the names offered are a hint, never a judgement.
    """
    models = [model]
    for part in loc:
        inner = [
            found
            for m in models
            if isinstance(part, str) and part in m.model_fields
            for found in _models_in(m.model_fields[part].annotation)
        ]
        if inner:
            models = inner
        elif any(isinstance(part, str) and part in m.model_fields for m in models):
            return []  # a field that holds no model (a dict of values): no names to offer
    return sorted({name for m in models for name in m.model_fields})


def did_you_mean(key: str, names: Iterable[str]) -> str:
    """ " (did you mean 'name'?)" for the known name closest to `key`, else ""."""
    close = difflib.get_close_matches(key, [n for n in names if n != key], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def parse_override(item: str) -> tuple[str, Any]:
    """`key.sub=value` -> (`key.sub`, YAML-parsed value)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value (e.g. --set learning_rate=1e-5)")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {item!r}: value is not valid YAML ({exc})") from exc
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()):
        value = float(value)  # YAML 1.1 reads `1e-5` as a string
    return key, value


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """`--set` items as a dict of dotted keys (a later item wins)."""
    return dict(parse_override(item) for item in items)


def apply_override(data: dict[str, Any], key: str, value: Any) -> None:
    """Set a dotted key in a nested dict (`ropd.scorer.blind=false`)."""
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: '{part}' is not a section")
        node = child
    node[parts[-1]] = value


def read_yaml(path: Path) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    """A YAML mapping and the line of each of its keys; `ConfigError` naming file and line."""
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the config must be a mapping of fields")
    return data, yaml_lines(text)


def read_with_overrides(
    path: str | Path | None, overrides: dict[str, Any] | None = None
) -> tuple[dict[str, Any], Locator]:
    """The file's mapping (`{}` without a file) with `overrides` applied, and its `Locator`."""
    if path is None:
        data: dict[str, Any] = {}
        lines: dict[tuple[str, ...], int] = {}
        source = "<defaults>"
    else:
        data, lines = read_yaml(Path(path))
        source = str(path)
    overrides = dict(overrides or {})
    for key, value in overrides.items():
        apply_override(data, key, value)
    return data, Locator(source, lines, overrides)


def config_error(source: str, problems: list[str]) -> ConfigError:
    """One error listing every problem in file order (the count first when there are several)."""
    problems = list(dict.fromkeys(problems))
    if len(problems) == 1:
        return ConfigError(problems[0])
    at_line = re.compile(re.escape(source) + r":(\d+): ")

    def line_of(problem: str) -> float:
        found = at_line.match(problem)
        return int(found.group(1)) if found else float("inf")  # overrides and file-wide last

    ordered = sorted(problems, key=line_of)
    return ConfigError(
        f"{len(problems)} problems in {source}:\n" + "\n".join(f"  {p}" for p in ordered)
    )


def load_section(
    model: type[M],
    path: str | Path | None,
    overrides: dict[str, Any] | None = None,
    *,
    section: str = "ropd",
    ignore: Iterable[str] = (),
) -> M:
    """`model` validated from the file's `section:` mapping, `--set` overrides applied.

    Overrides are dotted keys inside the section (`scorer.blind=false`); the same key with the
    section's name in front (`ropd.scorer.blind=false`) works too, as in `ropd train --set`.
    Keys outside the section are the other tools' (TRL's, verl's) and are left alone here, as
    are the section's keys named in `ignore` (read by another command of the same file).
    """
    prefixed = {}
    for key, value in (overrides or {}).items():
        prefixed[key if key.split(".", 1)[0] == section else f"{section}.{key}"] = value
    data, loc = read_with_overrides(path, prefixed)
    raw = data.get(section)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise loc.error((section,), "must be a mapping")
    raw = {key: value for key, value in raw.items() if key not in set(ignore)}
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise config_error(loc.source, loc.pydantic_problems((section,), exc, model)) from None


__all__ = [
    "Locator",
    "apply_override",
    "config_error",
    "did_you_mean",
    "field_names",
    "load_section",
    "parse_override",
    "parse_overrides",
    "read_with_overrides",
    "read_yaml",
    "yaml_lines",
]
