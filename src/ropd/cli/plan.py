"""`ropd plan`: what a training config will cost in judge tokens, money, rate and GPUs, before
anything is paid for (no endpoint is contacted)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ropd.plan.model import DEFAULT_DECODE_TPS, DEFAULT_LATENCY_S, DEFAULT_PREFILL_TPS


def plan(
    config: Annotated[
        Path,
        typer.Option(
            "--config", "-c", help="the training YAML (TRL fields plus a `ropd:` section)"
        ),
    ],
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="override one field as `ropd train` does: key=value (dotted for ropd.*)",
        ),
    ] = None,
    answer_tokens: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="student answer length in tokens (default: max_completion_length, the worst case)",
        ),
    ] = None,
    teacher_tokens: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="teacher answer length in tokens (default: the stored answers' mean, "
            "else the teacher role's max_tokens)",
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="optimizer steps (default: max_steps, else epochs x prompts / prompts per step)",
        ),
    ] = None,
    processes: Annotated[
        int, typer.Option(min=1, help="training processes (GPUs) sharing each step")
    ] = 1,
    judge_prefill_tps: Annotated[
        float,
        typer.Option(min=1, help="self-hosted judge: prompt tokens per second one GPU reads"),
    ] = DEFAULT_PREFILL_TPS,
    judge_decode_tps: Annotated[
        float,
        typer.Option(min=1, help="self-hosted judge: tokens per second one GPU writes (batched)"),
    ] = DEFAULT_DECODE_TPS,
    latency_s: Annotated[
        float, typer.Option(min=0.001, help="one judge call's latency to plan within, seconds")
    ] = DEFAULT_LATENCY_S,
    sample: Annotated[
        int, typer.Option(min=1, help="groups of the dataset rendered and counted")
    ] = 32,
    json_: Annotated[bool, typer.Option("--json", help="print the plan as JSON")] = False,
) -> None:
    """Plan a training run's judge work and cost (nothing is sent to any endpoint).

    Counts the Rubricator's and Verifier's prompts as ropd would send them (the dataset's
    prompts, teacher answers from the store, student answers of the planned length), then
    gives tokens, cost (from each role's price), the request and token rates the judge must
    sustain, the judge GPUs a self-hosted judge needs, and the teacher store build's cost.
    """
    from ropd.config_file import parse_override
    from ropd.plan.build import PlanOptions, build_plan
    from ropd.plan.render import render_text
    from ropd.train.config import load_config

    overrides = dict(parse_override(item) for item in set_ or [])
    cfg = load_config(config, overrides, check_paths=False)
    options = PlanOptions(
        answer_tokens=answer_tokens,
        teacher_tokens=teacher_tokens,
        steps=steps,
        latency_s=latency_s,
        prefill_tps=judge_prefill_tps,
        decode_tps=judge_decode_tps,
        num_processes=processes,
        sample=sample,
    )
    result = build_plan(cfg, options)
    if json_:
        typer.echo(result.model_dump_json(indent=2))
        return
    for line in render_text(result):
        typer.echo(line)


def plan_lines(config: Any) -> list[str]:
    """The plan of a loaded training config as text (for `ropd train --dry-run`); a plan that
    cannot be made says why in one line instead."""
    from ropd.errors import RopdError
    from ropd.plan.build import build_plan
    from ropd.plan.render import render_text

    try:
        return render_text(build_plan(config))
    except RopdError as error:
        return [f"plan: not available ({error})"]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.command("plan")(plan)
