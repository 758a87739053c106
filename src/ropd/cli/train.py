"""`ropd train`: ROPD (or a baseline) on TRL from a YAML config, with single-field overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ropd.cli.options import NoProbe
from ropd.errors import RunStopped

EXIT_GATE = RunStopped.exit_code


def _overrides(
    sets: list[str] | None,
    method: str | None,
    output_dir: Path | None,
    max_steps: int | None,
    fields: list[str] | None = None,
) -> dict[str, Any]:
    from ropd.config_file import parse_override

    out: dict[str, Any] = dict(parse_override(item) for item in [*(fields or []), *(sets or [])])
    if method is not None:
        out["ropd.method"] = method
    if output_dir is not None:
        out["output_dir"] = str(output_dir)
    if max_steps is not None:
        out["max_steps"] = max_steps
    return out


def _field_options(args: list[str], own_options: list[str]) -> list[str]:
    """Options `ropd train` does not define, as `--set` items: `--learning_rate 1e-5` and
    `--learning_rate=1e-5` (TRL's own spelling) are `--set learning_rate=1e-5`; a bare
    `--bf16` is `bf16=true`. A name must be a TRL training field (of any method: the config
    drops those its trainer does not use) or a dotted `ropd.*` key (checked with the config);
    anything else is refused (`ConfigError`), naming the closest option or field."""
    from ropd.config_file import did_you_mean
    from ropd.errors import ConfigError
    from ropd.train.config import METHODS, trl_fields

    known = set().union(*(trl_fields(m) for m in METHODS)) if args else set()
    items: list[str] = []
    rest = list(args)
    while rest:
        token = rest.pop(0)
        if not token.startswith("--") or token == "--":
            raise ConfigError(f"unexpected argument {token!r} (options are --name value)")
        name, has_value, value = token[2:].partition("=")
        key = name if name in known or name.startswith("ropd.") else name.replace("-", "_")
        if key not in known and not key.startswith("ropd."):
            hint = did_you_mean(token.partition("=")[0], own_options) or did_you_mean(
                key, sorted(known)
            )
            raise ConfigError(
                f"no such option: --{name}: not a `ropd train` option, a TRL training field "
                f"nor a ropd.* key{hint}; any field can also be given as --set key=value"
            )
        if not has_value:
            bare = not rest or rest[0].startswith("--")
            value = "true" if bare else rest.pop(0)
        items.append(f"{key}={value}")
    return items


def _method_folder(config: Path | None, overrides: dict[str, Any]) -> str | None:
    """`--method X` over a config written for another method (and no output_dir on the command
    line): the run goes next to the config's folder, `<output_dir>-<X>`, so a baseline never
    writes into (or resumes) the config's own run. None: keep the config's folder."""
    method = overrides.get("ropd.method")
    if config is None or method is None or "output_dir" in overrides:
        return None
    from ropd.config_file import read_yaml

    data, _ = read_yaml(config)
    section = data.get("ropd") if isinstance(data.get("ropd"), dict) else {}
    folder = data.get("output_dir")
    if method == section.get("method", "ropd") or not isinstance(folder, str) or not folder:
        return None  # same method, or no folder named: the default runs/<run id> is its own
    return f"{folder.rstrip('/')}-{method}"


def _describe(config: Any, plan: Any = None, moved: bool = False) -> list[str]:
    from ropd.train.config import TRL_CLASS_BY_METHOD

    section = config.ropd
    lines = [
        f"config      {config.source}",
        f"method      {section.method}  (TRL {TRL_CLASS_BY_METHOD[section.method]})",
        f"student     {section.student}",
        f"data        {section.data.source} (split {section.data.split})",
        f"output_dir  {_folder_line(config, plan, moved)}",
    ]
    if plan is not None:
        state = "resumed" if plan.resume else "new"
        lines.append(f"run         {plan.run_id} ({state})")
    if section.needs_teacher_store:
        lines.append(
            f"teacher     {section.teacher.store} (build missing: {section.teacher.build_missing})"
        )
    if section.method == "ropd":
        s = section.scorer
        lines.append(
            f"scorer      K={s.num_teacher_refs} criteria {s.min_criteria}-{s.max_criteria} "
            f"rubric={s.rubric_mode} blind={s.blind} teacher_in_pool={s.teacher_in_pool} "
            f"failure_policy={s.failure_policy}"
        )
    if section.method == "ovd":
        o = section.ovd
        gold = f", gold from data.{section.data.answer_field}" if o.outcome_weight > 0 else ""
        lines.append(
            f"ovd         teacher judge {o.judge.model} scores 0-9 (per_call={o.per_call}) "
            f"reject_below={o.reject_below} outcome_weight={o.outcome_weight}{gold} "
            f"failure_policy={o.failure_policy}"
        )
    if section.method == "rar":
        r = section.rar
        mix = (
            f"plus the rubricator's criteria (K={r.num_teacher_refs}, {r.min_criteria}-"
            f"{r.max_criteria} induced)"
            if r.mix_induced
            else f"no rubricator, K={r.num_teacher_refs}"
        )
        lines.append(
            f"rar         needs a rubric on every row (column data.{section.data.rubric_field}: "
            f"items with description and weight); verifier {r.verifier.model} checks it, {mix}; "
            f"blind={r.blind} failure_policy={r.failure_policy}"
        )
    if section.method == "exopd":
        x = section.exopd
        lines.append(
            f"exopd       white-box teacher {x.teacher_model} (must share the student's "
            f"tokenizer; checked) scores every sampled token; reward "
            f"lambda_={x.lambda_} x (log p_teacher - log p_ref), reference {x.reference}"
        )
    if section.method == "gad":
        from ropd.train.preflight import gad_line

        lines.append(gad_line(config))
    keys = (
        "learning_rate",
        "per_device_train_batch_size",
        "gradient_accumulation_steps",
        "num_generations",
        "max_completion_length",
        "temperature",
        "beta",
        "loss_type",
        "epsilon",
        "epsilon_high",
        "num_train_epochs",
        "max_steps",
    )
    shown = [f"{k}={config.trl[k]}" for k in keys if k in config.trl]
    lines.append("trl         " + " ".join(shown))
    if config.dropped:
        lines.append("not used    " + ", ".join(f"{k} ({v})" for k, v in config.dropped.items()))
    return lines


def _folder_line(config: Any, plan: Any, moved: bool) -> str:
    if plan is None and config.output_dir_default:
        return "runs/<run id> (chosen when the run starts)"
    folder = plan.config.output_dir if plan is not None else config.output_dir
    if moved:
        return f"{folder}  (--method {config.method} differs from the config's: its own folder)"
    return str(folder)


def train(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML: TRL fields plus a `ropd:` section")
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            help="ropd | tjudge | ovd | rar | sft | lopd | exopd | gad (overrides ropd.method)"
        ),
    ] = None,
    output_dir: Annotated[Path | None, typer.Option(help="overrides output_dir")] = None,
    max_steps: Annotated[int | None, typer.Option(help="overrides max_steps")] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="continue the run in output_dir (same run id) from its newest checkpoint; "
            "without output_dir, the newest runs/<method>-* run",
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite", help="replace the run in output_dir (its artefacts are removed first)"
        ),
    ] = False,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="override one field: key=value (dotted for ropd.*)"),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="validate the config, check that this machine can run it (packages, API-key "
            "variables, endpoints) and print the plan; load nothing",
        ),
    ] = False,
    no_probe: NoProbe = False,
) -> None:
    """Train a student with ROPD (or a baseline) on TRL. Works under `accelerate launch -m ropd`.

    Any TRL training field or dotted ropd key may also be given as an option of its own,
    `--learning_rate 1e-5` or `--ropd.scorer.blind=false` (the same as `--set key=value`).
    """
    from ropd.train.config import load_config

    own = [opt for param in ctx.command.params for opt in getattr(param, "opts", [])]
    fields = _field_options(list(ctx.args), own)
    overrides = _overrides(set_, method, output_dir, max_steps, fields)
    moved = _method_folder(config, overrides)
    if moved is not None:
        overrides["output_dir"] = moved
    cfg = load_config(config, overrides, check_paths=not dry_run)
    if dry_run:
        from ropd.train.preflight import check_ready, cpu_warnings

        for line in _describe(cfg, moved=moved is not None):
            typer.echo(line)
        from ropd.cli.plan import plan_lines
        from ropd.errors import ConfigError

        try:
            check_ready(cfg, probe=not no_probe)  # every problem at once, as one ConfigError
        except ConfigError:
            for line in plan_lines(cfg):  # the plan too: it needs no working machine
                typer.echo(line)
            raise
        for line in plan_lines(cfg):
            typer.echo(line)
        slow = cpu_warnings(cfg)
        if not slow:
            typer.echo("config is valid and this machine can run it (dry run: nothing was loaded)")
            return
        typer.echo("config is valid and starts here, but it would not finish in useful time:")
        for line in slow:
            typer.echo(f"  - {line}")
        typer.echo("(dry run: nothing was loaded)")
        return

    import os

    from ropd.train.runner import plan_run, run

    main = os.environ.get("RANK", "0") == "0"  # one report under torchrun / accelerate
    plan = plan_run(cfg, resume=resume, overwrite=overwrite)  # refuses before loading anything
    if plan.nothing_to_do:
        if main:
            typer.echo(plan.finished_message())
        return
    if main:
        for line in [*_describe(cfg, plan, moved is not None), *plan.notes]:
            typer.echo(line)
    report = run(plan.config, plan=plan, probe=not no_probe)
    if main:
        typer.echo("")
        for line in report.lines():
            typer.echo(line)
    if report.stopped:
        typer.echo(f"stopped: {report.stopped}", err=True)
        raise typer.Exit(EXIT_GATE)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    # options it does not define are TRL fields or ropd keys (`_field_options`)
    settings = {"allow_extra_args": True, "ignore_unknown_options": True}
    app.command("train", context_settings=settings)(train)
