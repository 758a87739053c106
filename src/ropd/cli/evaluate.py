"""`ropd eval`: the paper's evaluation protocol as one command, and `ropd eval compare`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ropd.errors import InputError

eval_app = typer.Typer(
    help=(
        "Evaluate a model (pass@1 over n samples) on math, multiple-choice, IFEval and "
        "rubric-graded tasks; `ropd eval compare` puts several results side by side."
    ),
    epilog=(
        "Examples:\n\n"
        "ropd eval --model ./outputs/checkpoint-200 --tasks aime24,gpqa_diamond,ifeval "
        "--n 16 -o results/ropd\n\n"
        "ropd eval --base-url http://127.0.0.1:8000/v1 --model my-model --tasks healthbench "
        "--grader-base-url https://api.openai.com/v1 --grader-model gpt-4.1 "
        "--grader-api-key-env OPENAI_API_KEY -o results/teacher\n\n"
        "ropd eval compare results/base results/teacher results/ropd"
    ),
    no_args_is_help=False,
)

_console = Console()
_err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.add_typer(eval_app, name="eval")


def _fail(message: str) -> None:
    """A bad option (printed and mapped to exit 2 by `ropd.cli.errors`)."""
    raise InputError(message)


@eval_app.callback(invoke_without_command=True)
def run(
    ctx: typer.Context,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Checkpoint folder or Hugging Face id; with --base-url, the served model name.",
        ),
    ] = None,
    tasks: Annotated[
        str | None,
        typer.Option(
            "--tasks",
            "-t",
            help="Comma list: aime24, aime25, hmmt25, gpqa_diamond, healthbench, ifeval, or "
            "local files FAMILY=PATH / NAME@FAMILY=PATH (families: math, mcq, ifeval, rubric).",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Result folder (samples.jsonl, summary.json, summary.md).",
        ),
    ] = None,
    n: Annotated[int, typer.Option(help="Samples per item; pass@1 is their mean.", min=1)] = 16,
    temperature: Annotated[float, typer.Option(min=0.0)] = 1.0,
    top_p: Annotated[float, typer.Option("--top-p", min=0.0, max=1.0)] = 0.95,
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", help="Generation budget per sample (new tokens).", min=1)
    ] = 8192,
    system_prompt: Annotated[
        str | None, typer.Option("--system-prompt", help="System message put before every prompt.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds sampling and the option shuffling.")] = 0,
    limit: Annotated[
        int | None, typer.Option(help="Only the first N items of each task (quick checks).", min=1)
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help="OpenAI-compatible endpoint to sample from ('local' = the embedded llama.cpp "
            "server). Without it, --model is loaded with transformers.",
        ),
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option("--api-key-env", help="Environment variable holding the endpoint's API key."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per endpoint request.")] = 600.0,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="transformers: prompts per generate call.", min=1)
    ] = 8,
    dtype: Annotated[
        str, typer.Option(help="transformers: auto, bfloat16, float16 or float32.")
    ] = "auto",
    device: Annotated[str, typer.Option(help="transformers: auto, cpu, cuda, cuda:1 ...")] = "auto",
    gguf_file: Annotated[
        str | None,
        typer.Option(
            "--gguf-file", help="transformers: load this GGUF file from the --model folder."
        ),
    ] = None,
    grader_base_url: Annotated[
        str | None,
        typer.Option(
            "--grader-base-url",
            help="Endpoint of the rubric grader (default: the embedded llama.cpp server).",
        ),
    ] = None,
    grader_model: Annotated[
        str | None, typer.Option("--grader-model", help="Model name of the rubric grader.")
    ] = None,
    grader_api_key_env: Annotated[
        str | None,
        typer.Option(
            "--grader-api-key-env", help="Environment variable holding the grader's API key."
        ),
    ] = None,
    grader_max_tokens: Annotated[int, typer.Option("--grader-max-tokens", min=1)] = 1024,
    max_in_flight: Annotated[
        int,
        typer.Option(
            "--max-in-flight",
            help="Endpoint requests open at once (student and grader).",
            min=1,
        ),
    ] = 64,
    max_retries: Annotated[int, typer.Option("--max-retries", min=0)] = 4,
) -> None:
    """Run the evaluation: `ropd eval --model M --tasks T -o DIR` (re-running resumes)."""
    if ctx.invoked_subcommand is not None:
        return
    missing = [
        flag
        for flag, value in (("--model", model), ("--tasks", tasks), ("--output", output))
        if not value
    ]
    if missing:
        _err.print(ctx.get_help())
        _fail(f"missing {', '.join(missing)}")
    from ropd.eval.types import GenerationSettings

    settings = GenerationSettings(
        n=n,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_tokens,
        system_prompt=system_prompt,
        seed=seed,
    )
    result = asyncio.run(
        _run(
            model=model,
            tasks=tasks,
            output=output,
            settings=settings,
            limit=limit,
            base_url=base_url,
            api_key_env=api_key_env,
            timeout=timeout,
            batch_size=batch_size,
            dtype=dtype,
            device=device,
            gguf_file=gguf_file,
            grader_base_url=grader_base_url,
            grader_model=grader_model,
            grader_api_key_env=grader_api_key_env,
            grader_max_tokens=grader_max_tokens,
            max_in_flight=max_in_flight,
            max_retries=max_retries,
        )
    )
    _report(result)


async def _run(**opts: Any) -> Any:
    from ropd.eval.generate import EndpointGenerator, TransformersGenerator
    from ropd.eval.runner import Grader, prepare, run_eval
    from ropd.eval.tasks import parse_tasks
    from ropd.llm.config import LimitsConfig, RoleConfig

    settings = opts["settings"]
    prepared = prepare(parse_tasks(opts["tasks"]), limit=opts["limit"], seed=settings.seed)
    roles: list[RoleConfig] = []
    if opts["base_url"]:
        roles.append(
            RoleConfig(
                name="student",
                base_url=None if opts["base_url"] == "local" else opts["base_url"],
                model=opts["model"],
                api_key_env=opts["api_key_env"],
                timeout_s=opts["timeout"],
            )
        )
    if any(spec.family == "rubric" for spec, _ in prepared):
        if opts["grader_base_url"] and not opts["grader_model"]:
            from ropd.eval.types import EvalError

            raise EvalError("--grader-base-url needs --grader-model")
        if not opts["grader_base_url"]:
            _err.print(
                "[yellow]note:[/] rubric tasks are graded by the embedded local model, "
                "a smoke-test model; pass --grader-base-url/--grader-model for real "
                "numbers",
                highlight=False,
            )
        roles.append(
            RoleConfig(
                name="grader",
                base_url=opts["grader_base_url"],
                model=opts["grader_model"] or "local",
                api_key_env=opts["grader_api_key_env"],
                temperature=0.0,
                max_tokens=opts["grader_max_tokens"],
                timeout_s=opts["timeout"],
            )
        )
    out_dir = opts["output"]
    if not roles:
        generator = TransformersGenerator(
            opts["model"],
            dtype=opts["dtype"],
            device=opts["device"],
            batch_size=opts["batch_size"],
            gguf_file=opts["gguf_file"],
        )
        return await run_eval(prepared, generator, settings, out_dir, console=_err)

    from ropd.llm.client import open_chat_client

    limits = LimitsConfig(max_in_flight=opts["max_in_flight"], max_retries=opts["max_retries"])
    async with open_chat_client(roles, limits) as (client, resolved):
        by_name = {role.name: role for role in resolved}
        grader = Grader(client, by_name["grader"]) if "grader" in by_name else None
        if "student" in by_name:
            generator: Any = EndpointGenerator(client, by_name["student"])
        else:
            generator = TransformersGenerator(
                opts["model"],
                dtype=opts["dtype"],
                device=opts["device"],
                batch_size=opts["batch_size"],
                gguf_file=opts["gguf_file"],
            )
        return await run_eval(prepared, generator, settings, out_dir, grader=grader, console=_err)


def _report(result: Any) -> None:
    from rich.table import Table

    from ropd.eval.summary import pct

    table = Table(title=f"{result.summary['model']} → {result.out_dir}")
    for column in ("task", "pass@1 (%)", "std", "items", "n", "failed", "truncated"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for name, task in result.summary["tasks"].items():
        table.add_row(
            name,
            pct(task["pass_at_1"]),
            pct(task["pass_at_1_std"]),
            str(task["items"]),
            str(task["n"]),
            str(task["failed"]),
            str(task["truncated"]),
        )
    _console.print(table)
    _console.print(
        f"generated {result.generated} samples, re-used {result.reused}, scored {result.scored}"
    )
    for failure in result.failed[:10]:
        _err.print(f"[yellow]generation failed:[/] {failure}", highlight=False)
    unscored = sum(t["failed"] for t in result.summary["tasks"].values())
    if unscored:
        _err.print(
            f"[yellow]{unscored} samples could not be graded[/] (see 'error' in samples.jsonl)",
            highlight=False,
        )
    if result.failed or unscored:
        _err.print("re-run the same command to retry them; finished samples are kept")
        raise typer.Exit(code=1)


@eval_app.command("compare")
def compare(
    results: Annotated[
        list[Path], typer.Argument(help="Result folders of `ropd eval` (each with a summary.json).")
    ],
    base: Annotated[
        Path | None,
        typer.Option(help="The base student's result (default: a folder named 'base')."),
    ] = None,
    teacher: Annotated[
        Path | None, typer.Option(help="The teacher's result (default: a folder named 'teacher').")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Side-by-side pass@1 table, and the share of the base-to-teacher gap each model closes.

    Example: ropd eval compare results/base results/teacher results/ropd results/lopd
    """
    from ropd.eval.compare import build_comparison, render_gap_table, render_table

    comparison = build_comparison(results, base=base, teacher=teacher)
    if as_json:
        typer.echo(json.dumps(comparison.as_dict(), indent=2))
        return
    _console.print(render_table(comparison))
    gap_table = render_gap_table(comparison)
    if gap_table is not None:
        _console.print(gap_table)
    else:
        _console.print(
            "(give --base and --teacher, or name the folders base/ and teacher/, "
            "to see the share of the gap closed)"
        )
