"""`-c ropd.yaml --set key=value` for every command: the run configuration from a file.

Each command that calls a model builds a `RunConfig` from its flags, as always. With `-c` or
`--set`, the configuration is instead the file's `ropd:` section (the one `ropd train` and verl
read), `--set` applied on top, and then every flag given on the command line: a flag is one
config field (its path in `RunConfig` is named once, in the command's table), so
`ropd score -c ropd.yaml --max-in-flight 64` is the file with `limits.max_in_flight: 64`.
A flag left at its default never overrides the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from ropd.config_file import parse_overrides
from ropd.run_config import RunConfig

ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "-c",
        "--config",
        help="ropd.yaml (or a training config) whose `ropd:` section sets this run: judges, "
        "limits, teacher store and K, traces, run id, probe. Flags given override it.",
        show_default=False,
    ),
]
Sets = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Set a field of the `ropd:` section (repeatable), e.g. --set scorer.blind=false "
        "--set limits.max_in_flight=64.",
        show_default=False,
    ),
]


TYPED = ("COMMANDLINE", "ENVIRONMENT")  # click's ParameterSource names of a value a user gave


def given_on_command_line(ctx: click.Context, name: str) -> bool:
    """True when the parameter `name` was typed (or came from an environment variable)."""
    source = ctx.get_parameter_source(name)
    # by name: typer may hand over a context whose enum is its own copy of click's
    return getattr(source, "name", None) in TYPED


def _at(data: Mapping[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def run_config(
    ctx: click.Context,
    config_file: Path | None,
    sets: list[str] | None,
    from_flags: RunConfig,
    fields: Mapping[str, str],
    *,
    typed: Mapping[str, Any] | None = None,
) -> RunConfig:
    """The command's run configuration (see the module doc).

    `from_flags` is the configuration the flags alone describe; `fields` maps each parameter
    name to its dotted path in `RunConfig`; `typed` holds the generated flags typed, already as
    paths (`cli/config_flags.py`). Without `-c` and `--set` it is returned as it is.
    """
    if config_file is None and not sets:
        return from_flags
    overrides = {**parse_overrides(sets or []), **(typed or {})}
    flat = from_flags.model_dump(mode="json")
    for name, path in fields.items():
        if given_on_command_line(ctx, name):
            overrides[path] = _at(flat, path)
    return RunConfig.load(config_file, overrides)


def judge_fields(prefix: str) -> dict[str, str]:
    """The flags of a judge role (`--base-url`, `--model`, ...) as fields under `prefix`."""
    return {
        "base_url": f"{prefix}.base_url",
        "model": f"{prefix}.model",
        "api_key_env": f"{prefix}.api_key_env",
        "temperature": f"{prefix}.temperature",
        "max_tokens": f"{prefix}.max_tokens",
        "timeout": f"{prefix}.timeout_s",
        "context_window": f"{prefix}.context_window",
        "tokenizer": f"{prefix}.tokenizer",
        "price": f"{prefix}.price",
    }


# The endpoint limits every command takes, and the probe switch.
LIMIT_FIELDS = {
    "max_in_flight": "limits.max_in_flight",
    "rpm": "limits.requests_per_minute",
    "tpm": "limits.tokens_per_minute",
    "max_retries": "limits.max_retries",
    "no_probe": "probe",
}


__all__ = [
    "LIMIT_FIELDS",
    "ConfigFile",
    "Sets",
    "given_on_command_line",
    "judge_fields",
    "run_config",
]
