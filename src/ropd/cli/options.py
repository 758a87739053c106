"""Help text for command-line options, taken from the config fields they set.

A flag that sets a config field says what the field's description says, so the two never drift.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError

from ropd.errors import InputError
from ropd.llm.config import LOCAL, LimitsConfig, Price, RoleConfig


def field_help(model: type[BaseModel], name: str, extra: str = "") -> str:
    """The description of `model.name`, for a typer option's `help=`."""
    description = model.model_fields[name].description
    if description is None:
        raise KeyError(f"{model.__name__}.{name} has no description")
    return f"{description} {extra}".strip()


# The endpoint limits every command that calls a model takes (help from `LimitsConfig`).
DEFAULT_IN_FLIGHT = LimitsConfig.model_fields["max_in_flight"].default
MaxInFlight = Annotated[int, typer.Option(help=field_help(LimitsConfig, "max_in_flight"))]
# Flag names follow the config keys (`requests_per_minute`); the short forms stay as aliases.
Rpm = Annotated[
    float | None,
    typer.Option(
        "--requests-per-minute", "--rpm", help=field_help(LimitsConfig, "requests_per_minute")
    ),
]
Tpm = Annotated[
    float | None,
    typer.Option(
        "--tokens-per-minute", "--tpm", help=field_help(LimitsConfig, "tokens_per_minute")
    ),
]
MaxRetries = Annotated[int, typer.Option(help=field_help(LimitsConfig, "max_retries"))]

# The judge flags of every command that scores (help from `RoleConfig`).
BaseUrl = Annotated[str | None, typer.Option(help=field_help(RoleConfig, "base_url"))]
Model = Annotated[
    str | None, typer.Option(help=field_help(RoleConfig, "model", "Required with --base-url."))
]
ApiKeyEnv = Annotated[str | None, typer.Option(help=field_help(RoleConfig, "api_key_env"))]
Temperature = Annotated[float, typer.Option(help=field_help(RoleConfig, "temperature"))]
MaxTokens = Annotated[int, typer.Option(help=field_help(RoleConfig, "max_tokens"))]
TimeoutS = Annotated[
    float, typer.Option("--timeout", "--timeout-s", help=field_help(RoleConfig, "timeout_s"))
]

# A judge's price, for cost figures only (score lines, traces, `ropd inspect --stats`, report).
JudgePrice = Annotated[
    str | None,
    typer.Option(
        "--price",
        metavar="IN,OUT",
        help="Judge price per million input and output tokens, e.g. 2.5,10 (any currency); "
        "gives cost per group, step and run. Unset: no cost is reported.",
        show_default=False,
    ),
]


def price_from_flag(value: str | None) -> Price | None:
    """`--price 2.5,10` as a `Price` (input, output per million tokens)."""
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",")]
    try:
        input_price, output_price = (float(p) for p in parts)
        return Price(input_per_mtok=input_price, output_per_mtok=output_price)
    except ValueError:  # also pydantic's ValidationError (a ValueError): negative prices
        raise InputError(
            f"--price: two non-negative numbers IN,OUT per million tokens (got {value!r})"
        ) from None


# Every command that opens an endpoint probes it first (reachable, key accepted, model served);
# the flag is the way out for a gateway whose `/models` listing does not match what it serves.
# Use it as `no_probe: NoProbe = False` and pass `probe=not no_probe` on.
NoProbe = Annotated[
    bool,
    typer.Option(
        "--no-probe",
        help="Do not probe the endpoints before starting (reachable, API key accepted, model "
        "listed at /models); the first real request finds any problem instead.",
    ),
]


def embedded_model_named(model: str, base_url_flag: str, model_flag: str) -> str:
    """Why `--base-url local --model gpt-4o` is refused (the name would go unserved)."""
    return (
        f"{base_url_flag} local uses the embedded local model, not {model!r}: drop "
        f"{model_flag}, or give {base_url_flag} the endpoint that serves {model}"
    )


def role_from_flags(
    name: str,
    base_url: str | None,
    model: str | None,
    api_key_env: str | None,
    **sampling: Any,
) -> RoleConfig:
    """A role from `--base-url/--model/--api-key-env` and sampling flags.

    Without a base URL (or with `--base-url local`) the role is the embedded local model; with
    one, `--model` is required. `--model` alone, or a model name with `--base-url local`, is
    refused: scoring with the embedded 135M model while the traces say `gpt-4o` is worse than
    stopping.
    """
    local = base_url is not None and base_url.strip().lower() == LOCAL
    if base_url is None and model:
        raise InputError(
            f"--model {model} needs --base-url (the endpoint serving it); for the embedded "
            "local model leave both out or pass --base-url local"
        )
    if base_url is not None and not local and not model:
        raise InputError(f"--model is required with --base-url ({base_url})")
    if local and model and model.strip().lower() != LOCAL:
        raise InputError(embedded_model_named(model, "--base-url", "--model"))
    return RoleConfig(
        name=name,
        base_url=None if local else base_url,
        model=LOCAL if local else model or LOCAL,
        api_key_env=api_key_env,
        **sampling,
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


# How a config's field is spelled as a flag, where it differs from --field-name.
_FLAG_OF = {
    "num_teacher_refs": "-k/--num-teacher-refs",
    "timeout_s": "--timeout",
    "requests_per_minute": "--requests-per-minute",
    "tokens_per_minute": "--tokens-per-minute",
}


def flag_errors(exc: ValidationError) -> str:
    """A config's validation error as `--flag: problem` lines."""
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        msg = error["msg"].removeprefix("Value error, ")
        if not loc:
            lines.append(f"invalid options: {msg}")
            continue
        field = loc[-1]
        flag = _FLAG_OF.get(field, "--" + field.replace("_", "-"))
        if len(loc) > 1 and loc[0] in ("rubricator", "verifier"):
            flag = f"--{loc[0]}-{field.replace('_', '-')}"
        shown = f" (got {error['input']!r})" if "input" in error else ""
        lines.append(f"{flag}: {msg}{shown}")
    return "\n".join(lines)
