"""`ropd analyze`: reward quality of several methods on a fixed pool of judged answers.

`ropd analyze POOL -o DIR --methods ropd,tjudge,teacher_logprob` (the `run` subcommand is the
default) and `ropd analyze pool-from-eval samples.jsonl -o pool.jsonl`. Only flags and printing
live here; the work is `ropd.analysis.runner.analyze` and `ropd.analysis.pool.pool_from_eval`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import click
import typer
import typer.core
from pydantic import ValidationError
from rich.console import Console

from ropd.analysis.methods import KINDS, SHORTCUTS, Outcome, ropd_fields
from ropd.analysis.pool import pool_from_eval
from ropd.analysis.runner import AnalysisRun, analyze
from ropd.analysis.templates import AUTO
from ropd.cli.options import (
    ApiKeyEnv,
    BaseUrl,
    MaxInFlight,
    MaxRetries,
    MaxTokens,
    Model,
    NoProbe,
    Rpm,
    Temperature,
    TimeoutS,
    Tpm,
    field_help,
    flag_errors,
    limits_from_flags,
    role_from_flags,
)
from ropd.cli.progress import RunProgress, resume_command
from ropd.cli.run_options import LIMIT_FIELDS, ConfigFile, Sets, judge_fields, run_config
from ropd.cli.score import judge_role
from ropd.errors import InputError, Interrupted, RopdError
from ropd.redact import scrub
from ropd.reward.config import ScorerConfig
from ropd.run_config import RunConfig
from ropd.teacher.config import TeacherConfig

RESUME_ADD = ("--resume",)
RESUME_REMOVE = ("--overwrite", "--no-resume")
METHODS_HELP = (
    f"Comma-separated methods: {', '.join(KINDS)}; ropd ablations as ropd:<switch>[+<switch>], "
    f"a switch being field=value ({', '.join(ropd_fields())}; k = num_teacher_refs) or one of "
    f"{', '.join(sorted(SHORTCUTS))}; tjudge:num_references=N; "
    "gad:checkpoint=<discriminator folder> (a GAD run's final/discriminator)."
)


class _DefaultRunGroup(typer.core.TyperGroup):
    """`ropd analyze POOL ...` means `ropd analyze run POOL ...`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


analyze_app = typer.Typer(
    cls=_DefaultRunGroup,
    help="Reward quality on a fixed pool: AUC, within-prompt AUC, pair accuracy per method.",
    no_args_is_help=True,
)


def _out(console: Console, text: str) -> None:
    console.print(scrub(text), markup=False, highlight=False)


# Each flag is one field of the run configuration (`-c ropd.yaml` and `--set` read the same).
ANALYZE_FIELDS = {
    **{name: path for name, path in judge_fields("scorer.judge").items()
       if name in ("base_url", "model", "api_key_env", "temperature", "max_tokens", "timeout")},
    **{f"teacher_{f}": f"teacher.role.{f}" for f in ("base_url", "model", "api_key_env")},
    **LIMIT_FIELDS,
    "teacher_store": "teacher.store",
    "any_teacher_fingerprint": "teacher.accept_any_fingerprint",
    "traces": "traces",
    "strip_think": "scorer.strip_think",
    "prompts_dir": "scorer.prompts_dir",
}  # fmt: skip


@analyze_app.command("run")
def run(
    ctx: typer.Context,
    pool: Annotated[
        Path,
        typer.Argument(
            help="JSONL: id, prompt, responses, correct (or answer), teacher_responses.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for analysis.json, plots, rewards.")
    ],
    methods: Annotated[str, typer.Option(help=METHODS_HELP)] = "ropd,tjudge",
    base_url: BaseUrl = None,
    model: Model = None,
    api_key_env: ApiKeyEnv = None,
    temperature: Temperature = 0.0,
    max_tokens: MaxTokens = 2048,
    timeout: TimeoutS = 120.0,
    teacher_base_url: Annotated[
        str | None,
        typer.Option(help="Endpoint of the teacher_logprob model (default: the judge's)."),
    ] = None,
    teacher_model: Annotated[
        str | None, typer.Option(help="Model for teacher_logprob (default: the judge's).")
    ] = None,
    teacher_api_key_env: Annotated[
        str | None, typer.Option(help="Key variable of the teacher_logprob endpoint.")
    ] = None,
    chat_template: Annotated[
        str,
        typer.Option(
            help="Layout of prompt + response for teacher_logprob: auto (the embedded model's "
            "own template, else plain), plain (prompt, blank line, response), embedded, or a "
            "Jinja file / tokenizer folder with the model's chat template."
        ),
    ] = AUTO,
    teacher_store: Annotated[
        Path | None, typer.Option(help="Teacher store to look answers up in for lines without.")
    ] = None,
    any_teacher_fingerprint: Annotated[
        bool, typer.Option(help="Use store answers made under any teacher fingerprint.")
    ] = False,
    strip_think: Annotated[
        bool,
        typer.Option("--strip-think/--keep-think", help=field_help(ScorerConfig, "strip_think")),
    ] = True,
    prompts_dir: Annotated[
        Path | None, typer.Option(help=field_help(ScorerConfig, "prompts_dir"))
    ] = None,
    max_in_flight: MaxInFlight = 64,
    rpm: Rpm = None,
    tpm: Tpm = None,
    max_retries: MaxRetries = 4,
    batch_size: Annotated[int, typer.Option(help="Groups scored concurrently.")] = 16,
    traces: Annotated[
        Path | None, typer.Option(help="Trace database (default: traces.db in the output folder).")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Skip groups already finished and go on.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Start over in an existing folder.")] = False,
    plots: Annotated[bool, typer.Option(help="Write ROC and histogram images.")] = True,
    progress: Annotated[bool, typer.Option(help="Show progress on stderr.")] = True,
    no_probe: NoProbe = False,
    config_file: ConfigFile = None,
    sets: Sets = None,
) -> None:
    """Score a fixed pool with every method and measure how well rewards track correctness.

    With `-c ropd.yaml` the judge (`scorer.judge`), the teacher endpoint, limits, teacher store
    and traces come from the file's `ropd:` section (`--set` and the flags given override it).
    """
    try:
        judge = judge_role(base_url, model, api_key_env, temperature, max_tokens, timeout)
        teacher = None
        if teacher_base_url is not None or teacher_model is not None:
            teacher = role_from_flags(
                "teacher", teacher_base_url, teacher_model, teacher_api_key_env, timeout_s=timeout
            )
        limits = limits_from_flags(max_in_flight, rpm, tpm, max_retries)
        flagged = RunConfig(
            scorer=ScorerConfig(judge=judge, strip_think=strip_think, prompts_dir=prompts_dir),
            teacher=TeacherConfig(
                store=teacher_store,
                accept_any_fingerprint=any_teacher_fingerprint,
                **({"role": teacher} if teacher is not None else {}),
            ),
            limits=limits,
            traces=traces,
            probe=not no_probe,
        )
    except ValidationError as exc:
        raise InputError(flag_errors(exc)) from None
    run_cfg = run_config(ctx, config_file, sets, flagged, ANALYZE_FIELDS)
    if run_cfg is not flagged:
        judge = (run_cfg.scorer.judge or run_cfg.scorer.rubricator).with_name("judge")
        if teacher is None and run_cfg.teacher.role.base_url is not None:
            teacher = run_cfg.teacher.role  # a teacher endpoint the file names
        limits, traces, teacher_store = run_cfg.limits, run_cfg.traces, run_cfg.teacher.store
        any_teacher_fingerprint = run_cfg.teacher.accept_any_fingerprint
        strip_think, prompts_dir = run_cfg.scorer.strip_think, run_cfg.scorer.prompts_dir
    err = Console(stderr=True, soft_wrap=True)
    display = RunProgress("analyzing", "groups", enabled=progress, console=err)
    seen: list[AnalysisRun] = []

    def on_start(state: AnalysisRun) -> None:
        seen.append(state)
        if state.dropped_bytes:
            _out(err, f"dropped a half-written last line ({state.dropped_bytes} bytes)")
        display.start(total=state.total, done=state.skipped, failed=state.failed)

    def on_result(outcome: Outcome, state: AnalysisRun) -> None:
        display.update(done=state.saved, failed=state.failed, method=outcome.method)

    settings: dict[str, Any] = {"strip_think": strip_think, "prompts_dir": prompts_dir}
    try:
        with display:
            state = analyze(
                pool, output, methods=methods, judge=judge, teacher=teacher, limits=limits,
                settings=settings, teacher_store=teacher_store,
                any_teacher_fingerprint=any_teacher_fingerprint, chat_template=chat_template,
                traces=traces, resume=resume, overwrite=overwrite, batch_size=batch_size,
                probe=run_cfg.probe, plots=plots, on_start=on_start, on_result=on_result,
            )  # fmt: skip
    except KeyboardInterrupt:
        command = resume_command(RESUME_ADD, RESUME_REMOVE)
        saved = f"{seen[0].saved} of {seen[0].total} groups are saved" if seen else "nothing saved"
        raise Interrupted(f"interrupted: {saved} in {output}\nresume with: {command}") from None
    except RopdError:
        if seen and seen[0].analysis:  # stopped late: the finished methods were written
            _print_summary(Console(soft_wrap=True), seen[0])
        raise  # one `error:` line and its exit code (ropd.cli.errors)
    _print_summary(Console(soft_wrap=True), state)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _print_summary(console: Console, state: AnalysisRun) -> None:
    pool = state.analysis["pool"]
    _out(
        console,
        f"pool: {pool['groups']} groups, {pool['responses']} responses, {pool['correct']} "
        f"correct; scored {state.scored} method-groups now, {state.skipped} already done",
    )
    for name, figures in state.analysis["methods"].items():
        _out(
            console,
            f"{name}: auc {_fmt(figures['auc'])}, within-prompt auc "
            f"{_fmt(figures['auc_within_prompt'])}, pair accuracy "
            f"{_fmt(figures['pair_accuracy'])}, failed groups {figures['failed_groups']}",
        )
    _out(console, f"analysis: {state.out_dir / 'analysis.json'}")
    _out(console, f"traces: {state.traces} (`ropd inspect --traces {state.traces} --list`)")


@analyze_app.command("pool-from-eval")
def from_eval(
    samples: Annotated[
        Path, typer.Argument(help="samples.jsonl written by `ropd eval`.", show_default=False)
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="The pool file to write.")],
    threshold: Annotated[
        float, typer.Option(help="A sample is correct when its stored score is at least this.")
    ] = 0.5,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing pool file.")] = False,
    teacher_store: Annotated[
        Path | None,
        typer.Option(
            help="Teacher store built from the task file the eval read (`ropd teacher build "
            "FILE`): attach its answers as teacher_responses, looked up by the task's prompt."
        ),
    ] = None,
    any_teacher_fingerprint: Annotated[
        bool, typer.Option(help="Use store answers made under any teacher fingerprint.")
    ] = False,
) -> None:
    """Turn an eval samples file into a pool: one line per item, graded completions."""
    done = pool_from_eval(
        samples, output, threshold=threshold, overwrite=overwrite, teacher_store=teacher_store,
        any_teacher_fingerprint=any_teacher_fingerprint,
    )  # fmt: skip
    console = Console(soft_wrap=True)
    _out(
        console,
        f"pool: {done.groups} groups, {done.responses} responses, {done.correct} correct "
        f"-> {output}",
    )
    if done.skipped_ungraded:
        _out(console, f"left out {done.skipped_ungraded} samples without a score")
    if teacher_store is not None:
        _out(console, f"teacher answers: {done.with_teacher} groups from {teacher_store}")
    if done.without_teacher:
        _out(
            console,
            f"no teacher answers for {len(done.without_teacher)} groups (first: "
            f"{done.without_teacher[0]}); ropd methods with K != 0 reject those lines",
        )


def register(app: typer.Typer) -> None:
    """Add `ropd analyze` (and its `pool-from-eval`) to the top-level app."""
    app.add_typer(analyze_app, name="analyze")
