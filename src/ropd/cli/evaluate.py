"""`ropd eval`: the paper's evaluation protocol as one command, and `ropd eval compare`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from ropd.cli.options import (
    DEFAULT_IN_FLIGHT,
    MaxInFlight,
    MaxRetries,
    NoProbe,
    Rpm,
    Tpm,
    field_help,
    limits_from_flags,
)
from ropd.cli.run_options import LIMIT_FIELDS, ConfigFile, Sets, run_config
from ropd.errors import InputError
from ropd.llm.config import RoleConfig
from ropd.run_config import RunConfig

eval_app = typer.Typer(
    help=(
        "Evaluate a model (pass@1 over n samples) on math, multiple-choice, IFEval and "
        "rubric-graded tasks; `ropd eval compare` puts several results side by side."
    ),
    epilog=(
        "Examples:\n\n"
        "vllm serve ./outputs/checkpoint-200 --port 8000   # real sizes: serve the checkpoint\n\n"
        "ropd eval --base-url http://127.0.0.1:8000/v1 --model ./outputs/checkpoint-200 "
        "--tasks aime24,gpqa_diamond,ifeval -o results/ropd\n\n"
        "ropd eval --model ./outputs/checkpoint-200 --tasks aime24 --limit 5 --num-samples 2 "
        "--max-tokens 1024 -o /tmp/smoke   # a quick local look (transformers)\n\n"
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


def _num_samples(ctx: typer.Context, num_samples: int, n_alias: int | None) -> int:
    """`--num-samples`, or the older `--n` (kept working, hidden from --help)."""
    if n_alias is None:
        return num_samples
    source = ctx.get_parameter_source("num_samples")
    given = source is not None and source.name == "COMMANDLINE"  # typer may vendor click
    if given and num_samples != n_alias:
        _fail(f"--n {n_alias} and --num-samples {num_samples} disagree; give only --num-samples")
    return n_alias


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
    num_samples: Annotated[
        int,
        typer.Option(
            "--num-samples",
            help="Samples per item; pass@1 is their mean (the paper: 16).",
            min=1,
        ),
    ] = 16,
    n_alias: Annotated[
        int | None, typer.Option("--n", hidden=True, min=1, help="Old name of --num-samples.")
    ] = None,
    temperature: Annotated[
        float, typer.Option(min=0.0, help="Sampling temperature (the paper: 1.0).")
    ] = 1.0,
    top_p: Annotated[
        float, typer.Option("--top-p", min=0.0, max=1.0, help="Nucleus sampling (the paper: 0.95).")
    ] = 0.95,
    max_tokens: Annotated[
        int,
        typer.Option("--max-tokens", help="Generation budget per sample, in new tokens.", min=1),
    ] = 8192,
    system_prompt: Annotated[
        str | None, typer.Option("--system-prompt", help="System message put before every prompt.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds sampling and the option shuffling.")] = 0,
    limit: Annotated[
        int | None,
        typer.Option(
            help="Only the first N items of each task (quick checks; recorded in the summary).",
            min=1,
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help="OpenAI-compatible endpoint to sample from (e.g. `vllm serve CKPT` at "
            "http://127.0.0.1:8000/v1; 'local' = the embedded llama.cpp server). Without it, "
            "--model is loaded with transformers (slow for real sizes).",
        ),
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option("--api-key-env", help=field_help(RoleConfig, "api_key_env")),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            "--timeout-s",
            help=field_help(RoleConfig, "timeout_s", "Student and grader."),
        ),
    ] = 600.0,
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
    grader_max_tokens: Annotated[
        int, typer.Option("--grader-max-tokens", min=1, help="Reply budget of the grader.")
    ] = 1024,
    max_in_flight: MaxInFlight = DEFAULT_IN_FLIGHT,
    rpm: Rpm = None,
    tpm: Tpm = None,
    max_retries: MaxRetries = 4,
    no_probe: NoProbe = False,
    config_file: ConfigFile = None,
    sets: Sets = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Load and check the tasks, print the work they ask for, and stop before any "
            "model is loaded or called.",
        ),
    ] = False,
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
    if base_url and base_url != "local" and not base_url.startswith(("http://", "https://")):
        _fail(f"--base-url {base_url!r}: give an http(s) URL such as http://127.0.0.1:8000/v1")
    from ropd.eval.types import GenerationSettings

    # -c ropd.yaml: the endpoint limits and the probe switch of the file's `ropd:` section
    flagged = RunConfig(
        limits=limits_from_flags(max_in_flight, rpm, tpm, max_retries), probe=not no_probe
    )
    run_cfg = run_config(ctx, config_file, sets, flagged, LIMIT_FIELDS)

    settings = GenerationSettings(
        n=_num_samples(ctx, num_samples, n_alias),
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
            limits=run_cfg.limits,
            probe=run_cfg.probe,
            dry_run=dry_run,
        )
    )
    if result is None:  # --dry-run
        return
    _report(result)
    result.check()  # failed samples: SamplesFailedError, exit 1 (ropd.cli.errors)


def _print_plan(estimate: Any, backend: str) -> None:
    """What --dry-run shows: per task the items, samples and the token budget."""
    from rich.table import Table

    from ropd.eval.plan import human_tokens

    table = Table(title=f"planned work ({backend})")
    for column in ("task", "family", "items", "samples", "max new tokens", "grader calls"):
        table.add_column(column, justify="left" if column in ("task", "family") else "right")
    for task in estimate.tasks:
        table.add_row(
            task.name,
            task.family,
            str(task.items),
            str(task.samples),
            human_tokens(task.max_generated_tokens),
            str(task.grader_calls) if task.family == "rubric" else "-",
        )
    _console.print(table)
    _console.print(
        f"total: {estimate.items} items, {estimate.samples} samples, up to "
        f"{human_tokens(estimate.max_generated_tokens)} generated tokens "
        "(finished samples in the output folder are reused)"
    )


async def _run(**opts: Any) -> Any:
    from ropd.eval.generate import EndpointGenerator, TransformersGenerator
    from ropd.eval.plan import estimate_work, local_run_warning
    from ropd.eval.runner import Grader, prepare, run_eval
    from ropd.eval.tasks import parse_tasks

    settings = opts["settings"]
    prepared = prepare(parse_tasks(opts["tasks"]), limit=opts["limit"], seed=settings.seed)
    local = not opts["base_url"]
    estimate = estimate_work(prepared, settings)
    if opts["dry_run"]:
        _print_plan(estimate, "transformers" if local else f"endpoint {opts['base_url']}")
    if local and (warning := local_run_warning(estimate, opts["model"])):
        # Before the model is loaded: a big checkpoint takes minutes just to load.
        _err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    roles: list[RoleConfig] = []
    if not local:
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
    if opts["dry_run"]:
        _console.print("dry run: nothing was loaded, generated or written")
        return None
    out_dir = opts["output"]

    def local_generator() -> TransformersGenerator:
        return TransformersGenerator(
            opts["model"],
            dtype=opts["dtype"],
            device=opts["device"],
            batch_size=opts["batch_size"],
            gguf_file=opts["gguf_file"],
        )

    if not roles:
        return await run_eval(
            prepared, local_generator(), settings, out_dir, console=_err, limit=opts["limit"]
        )

    from ropd.session import Session

    endpoints = RunConfig(limits=opts["limits"], probe=opts["probe"])
    async with Session.open(endpoints, roles=roles) as session:
        client = session.client
        by_name = {role.name: role for role in session.roles}
        grader = Grader(client, by_name["grader"]) if "grader" in by_name else None
        if "student" in by_name:
            generator: Any = EndpointGenerator(client, by_name["student"])
        else:
            generator = local_generator()
        return await run_eval(
            prepared,
            generator,
            settings,
            out_dir,
            grader=grader,
            console=_err,
            limit=opts["limit"],
        )


def _report(result: Any) -> None:
    """The per-task table (failed = not generated or not graded), then what went wrong."""
    from rich.table import Table

    from ropd.eval.summary import pct

    table = Table(title=f"{result.summary['model']} → {result.out_dir}")
    for column in ("task", "pass@1 (%)", "std", "items", "n", "failed", "truncated"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for name in result.tasks:
        task = result.summary["tasks"][name]
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
    totals = result.totals()
    _console.print(
        f"generated {result.generated} samples, re-used {result.reused}, scored {result.scored}, "
        f"failed {totals['failed']} of {totals['expected']}"
    )
    limit = result.summary["settings"]["limit"]
    if limit is not None:
        _err.print(
            f"[yellow]note:[/] --limit {limit}: only the first {limit} items of each task "
            "(recorded in summary.json; `compare` will not mix it with full runs)",
            highlight=False,
        )
    for failure in result.failed[:10]:
        _err.print(f"[yellow]generation failed:[/] {escape(failure)}", highlight=False)
    if len(result.failed) > 10:
        _err.print(f"... and {len(result.failed) - 10} more failed requests", highlight=False)
    if totals["failed_grading"]:
        _err.print(
            f"[yellow]{totals['failed_grading']} samples could not be graded[/] "
            "(see 'error' in samples.jsonl)",
            highlight=False,
        )


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
    study: Annotated[
        bool | None,
        typer.Option(
            "--study/--no-study",
            help="One table in the paper's shape: a row per method (read from the training "
            "run each model came from), base first, teacher last, the task average and the gap "
            "closed. Default: on when some row's method is known.",
            show_default=False,
        ),
    ] = None,
    methods: Annotated[
        list[str] | None,
        typer.Option(
            "--method",
            metavar="LABEL=METHOD",
            help="The method of a row whose training run cannot be found from its summary "
            "(a served model name, a moved checkpoint); LABEL is the result folder's name. "
            "Repeat for several.",
            show_default=False,
        ),
    ] = None,
    as_given: Annotated[
        bool,
        typer.Option(
            "--as-given",
            help="Study rows in the order given (base still first, teacher last) instead of "
            "the paper's method order.",
        ),
    ] = False,
    as_markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the study table as Markdown.")
    ] = False,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="Print the study table as CSV (fractions, 6 decimals).")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Compare even when the rows were generated with different settings "
            "(temperature, samples, max tokens, limit, grader...); a warning names them.",
        ),
    ] = False,
) -> None:
    """Side-by-side pass@1 table, and the share of the base-to-teacher gap each model closes.

    Rows must share their generation settings (only the model may differ); otherwise the
    command stops and lists the differences, unless --force. When a model is a training run's
    output (its folder, final/ or a checkpoint), the row's method is read from the run, and one
    study table shows every method in the paper's order (--markdown, --csv, --json for files).

    Example: ropd eval compare results/base results/teacher results/ropd results/lopd
    """
    from ropd.eval.compare import build_comparison, render_gap_table, render_table
    from ropd.eval.study import build_study, parse_methods, render_study, study_csv, study_markdown

    if sum((as_json, as_markdown, as_csv)) > 1:
        raise InputError("--json, --markdown and --csv: choose one")
    comparison = build_comparison(results, base=base, teacher=teacher)
    table = build_study(comparison, methods=parse_methods(methods or []), as_given=as_given)
    check = comparison.settings_check
    if (unchecked := check.unchecked_warning()) is not None:
        _err.print(unchecked, markup=False, highlight=False, soft_wrap=True)
    comparison.require_same_settings(force=force)  # IncomparableRunsError: exit 2
    if check.differences:
        _err.print(check.force_warning(), markup=False, highlight=False, soft_wrap=True)
    if as_json:
        typer.echo(json.dumps({**comparison.as_dict(), "study": table.as_dict()}, indent=2))
        return
    if as_markdown or as_csv:
        typer.echo(study_markdown(table) if as_markdown else study_csv(table), nl=False)
        return
    if table.knows_methods if study is None else study:
        _console.print(render_study(table))
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
