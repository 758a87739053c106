"""`ropd score`: score a JSONL file of groups with the ROPD reward, resumably.

With `-c ropd.yaml` the file's `method` decides the judge: `ropd` (the flags' default),
`rar` (each group's own `rubric`, the `rar:` section), `tjudge` or `ovd` (their sections);
`sft` and `lopd` have no judge and are refused. The judge flags and switches set `scorer.*`,
so with another method they are refused too (its section is set with `--set`).

Only flags and printing live here; the work is `ropd.score_file.score_file`. Progress goes to
stderr (`ropd.cli.progress`); Ctrl-C ends with what is saved and the command that resumes (exit
130); a run in which every group failed ends with `AllGroupsFailed` (exit 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from ropd.cli.config_flags import Flag, config_flags
from ropd.cli.options import (
    DEFAULT_IN_FLIGHT,
    ApiKeyEnv,
    BaseUrl,
    JudgePrice,
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
    price_from_flag,
    role_from_flags,
)
from ropd.cli.progress import RunProgress, resume_command
from ropd.cli.run_options import (
    LIMIT_FIELDS,
    ConfigFile,
    Sets,
    given_on_command_line,
    judge_fields,
    run_config,
)
from ropd.errors import InputError, Interrupted, JudgeError
from ropd.llm.config import LOCAL, Price, RoleConfig
from ropd.progress import judge_activity
from ropd.reward.config import ScorerConfig
from ropd.reward.types import GroupResult
from ropd.run_config import JUDGE_FIELDS, RunConfig
from ropd.score_file import AllGroupsFailed, ScoreFileStats, default_traces_path, score_file
from ropd.teacher.config import TeacherConfig

__all__ = ["default_traces_path", "register", "score"]


class ScoringStopped(JudgeError):
    """Policy `raise` stopped the run after a failed group; finished groups are saved (exit 1)."""


# How `ropd score` resumes the run this process is doing.
RESUME_ADD = ("--resume",)
RESUME_REMOVE = ("--overwrite", "--no-resume")
MAX_CAUSE_CHARS = 400


# The scorer's switches: flags generated from the `ScorerConfig` fields (cli/config_flags.py).
SCORER_FLAGS = (
    Flag("scorer.num_teacher_refs", ("-k", "--num-teacher-refs")),
    "scorer.min_teacher_refs", "scorer.min_criteria", "scorer.max_criteria", "scorer.rubric_mode",
    "scorer.blind", "scorer.teacher_in_pool", Flag("scorer.strip_think", ("--strip-think/--keep-think",)),
    "scorer.failure_policy", "scorer.constant_reward", "scorer.seed", "scorer.prompts_dir",
    "scorer.stability_check_share", "scorer.reinduce_on_bad_anchor",
)  # fmt: skip
# Each flag is one field of the run configuration (`-c ropd.yaml` and `--set` read the same).
SCORE_FIELDS = {
    **judge_fields("scorer.judge"),
    **{f"rubricator_{f}": f"scorer.rubricator.{f}" for f in ("base_url", "model", "api_key_env")},
    **{f"verifier_{f}": f"scorer.verifier.{f}" for f in ("base_url", "model", "api_key_env")},
    **LIMIT_FIELDS,
    "traces": "traces",
    "teacher_store": "teacher.store",
    "any_teacher_fingerprint": "teacher.accept_any_fingerprint",
    "run_id": "run_id",
}


@config_flags(*SCORER_FLAGS)
def score(
    ctx: typer.Context,
    groups_file: Annotated[
        Path,
        typer.Argument(
            help="JSONL: id, prompt, student_responses, teacher_responses.", show_default=False
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where score lines go (JSONL).")],
    base_url: BaseUrl = None,
    model: Model = None,
    api_key_env: ApiKeyEnv = None,
    rubricator_base_url: Annotated[
        str | None, typer.Option(help="Own endpoint for the Rubricator.")
    ] = None,
    rubricator_model: Annotated[
        str | None, typer.Option(help="Own model for the Rubricator.")
    ] = None,
    rubricator_api_key_env: Annotated[
        str | None, typer.Option(help="Own key variable for the Rubricator.")
    ] = None,
    verifier_base_url: Annotated[
        str | None, typer.Option(help="Own endpoint for the Verifier.")
    ] = None,
    verifier_model: Annotated[str | None, typer.Option(help="Own model for the Verifier.")] = None,
    verifier_api_key_env: Annotated[
        str | None, typer.Option(help="Own key variable for the Verifier.")
    ] = None,
    temperature: Temperature = 0.0,
    max_tokens: MaxTokens = 2048,
    timeout: TimeoutS = 120.0,
    context_window: Annotated[
        int | None, typer.Option(help=field_help(RoleConfig, "context_window"))
    ] = None,
    tokenizer: Annotated[str | None, typer.Option(help=field_help(RoleConfig, "tokenizer"))] = None,
    max_in_flight: MaxInFlight = DEFAULT_IN_FLIGHT,
    rpm: Rpm = None,
    tpm: Tpm = None,
    max_retries: MaxRetries = 4,
    batch_size: Annotated[
        int,
        typer.Option(
            help="Groups scored concurrently (a sliding window). Keep --max-in-flight at about "
            "twice this, so that every group's requests can be in flight together."
        ),
    ] = 256,
    traces: Annotated[
        Path | None, typer.Option(help="Trace database (default: next to the output, *.traces.db).")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Skip ids already judged in the output, judge failed ones again, append."
        ),
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    teacher_store: Annotated[
        Path | None, typer.Option(help="Teacher store to look answers up in for lines without any.")
    ] = None,
    any_teacher_fingerprint: Annotated[
        bool,
        typer.Option(help="Use store answers made under any teacher fingerprint."),
    ] = False,
    run_id: Annotated[str | None, typer.Option(help="Name of this run in the trace store.")] = None,
    progress: Annotated[
        bool,
        typer.Option(
            help="Show progress on stderr: a bar on a terminal, else a line every "
            "ROPD_PROGRESS_EVERY seconds (default 30)."
        ),
    ] = True,
    no_probe: NoProbe = False,
    price: JudgePrice = None,
    config_file: ConfigFile = None,
    sets: Sets = None,
    config_overrides: dict[str, Any] | None = None,
) -> None:
    """Score groups of student answers with the ROPD rubric reward.

    With `-c ropd.yaml` the judges, limits, K, teacher store, traces and run id come from the
    file's `ropd:` section (`--set` and the flags given override it).
    """
    typed = config_overrides or {}  # the scorer switches typed (all under `scorer.`)
    try:  # a flag value the configs refuse is an input error naming the flag
        judge = judge_role(
            base_url,
            model,
            api_key_env,
            temperature,
            max_tokens,
            timeout,
            price_from_flag(price),
            context_window=context_window,
            tokenizer=tokenizer,
        )
        config = ScorerConfig(
            judge=judge,
            rubricator=role_override(
                "rubricator", rubricator_base_url, rubricator_model, rubricator_api_key_env, judge
            ),
            verifier=role_override(
                "verifier", verifier_base_url, verifier_model, verifier_api_key_env, judge
            ),
            **{path.split(".", 1)[1]: value for path, value in typed.items()},
        )
        limits = limits_from_flags(max_in_flight, rpm, tpm, max_retries)
        flagged = RunConfig(
            scorer=config,
            limits=limits,
            traces=traces,
            teacher=TeacherConfig(
                store=teacher_store, accept_any_fingerprint=any_teacher_fingerprint
            ),
            run_id=run_id,
            probe=not no_probe,
        )
    except ValidationError as exc:
        raise InputError(flag_errors(exc)) from None
    run = run_config(ctx, config_file, sets, flagged, SCORE_FIELDS, typed=typed)
    _check_method(ctx, run, typed)
    config, limits, traces, run_id = run.judge_config, run.limits, run.traces, run.run_id
    teacher_store, any_teacher_fingerprint = run.teacher.store, run.teacher.accept_any_fingerprint
    err = Console(stderr=True, soft_wrap=True)
    seen: list[ScoreFileStats] = []  # the run's live stats, once the plan is done
    display = RunProgress(
        "scoring", "groups", enabled=progress, console=err, poll=lambda: _live(seen)
    )

    def on_start(stats: ScoreFileStats) -> None:
        seen.append(stats)
        if stats.dropped_bytes:
            err.print(
                f"{output}: dropped a half-written last line ({stats.dropped_bytes} bytes)",
                markup=False,
                highlight=False,
            )
        if stats.retried_failed:
            err.print(
                f"{output}: {stats.retried_failed} groups failed in an earlier run; judging them "
                "again",
                markup=False,
                highlight=False,
            )
        display.start(total=stats.total, done=stats.skipped, failed=stats.failed, **_tokens(stats))

    def on_result(result: GroupResult, stats: ScoreFileStats) -> None:
        display.update(done=stats.saved, failed=stats.failed, **_tokens(stats))

    try:
        with display:
            stats = score_file(
                groups_file,
                output,
                config,
                limits=limits,
                traces=traces,
                teacher_store=teacher_store,
                any_teacher_fingerprint=any_teacher_fingerprint,
                resume=resume,
                overwrite=overwrite,
                batch_size=batch_size,
                run_id=run_id,
                on_start=on_start,
                on_result=on_result,
                probe=run.probe,
                teacher_k=run.k,
            )
    except KeyboardInterrupt:
        raise Interrupted(_interrupted_message(seen[0] if seen else None, output)) from None
    _print_summary(Console(soft_wrap=True), stats, output)
    if stats.aborted is not None:
        raise ScoringStopped(
            f"stopped: {stats.aborted}\n"
            f"finished groups are saved in {output}; run again with --resume to continue: "
            f"{resume_command(RESUME_ADD, RESUME_REMOVE)}"
        )
    if stats.teacher_refs_short:
        err.print(
            f"{stats.teacher_refs_short} of {stats.scored} groups had fewer teacher answers than "
            f"K={run.k} (judged with what there was; `--min-teacher-refs` "
            "fails such groups instead)",
            markup=False,
            highlight=False,
        )
    if stats.all_failed:
        cause = " ".join((stats.first_error or "unknown").split())
        if len(cause) > MAX_CAUSE_CHARS:
            cause = cause[: MAX_CAUSE_CHARS - 1] + "…"
        raise AllGroupsFailed(f"every group failed ({stats.scored} scored); first cause: {cause}")
    if stats.failed:
        err.print(
            f"{stats.failed} of {stats.scored} groups failed (their error is in the output; "
            f"`ropd inspect --traces {stats.traces} --list --failed` lists them)",
            markup=False,
            highlight=False,
        )


def _check_method(ctx: typer.Context, run: RunConfig, typed: dict[str, Any]) -> None:
    """A method without a judge, or ROPD-scorer flags given for another method, is refused."""
    if run.method not in JUDGE_FIELDS:
        raise InputError(
            f"method: {run.method} trains without a judge, so `ropd score` has nothing to score "
            f"with; set method to one of {', '.join(JUDGE_FIELDS)} (--set method=ropd)"
        )
    if run.method == "ropd":
        return
    flags = sorted(
        {f"--{name.replace('_', '-')}" for name, path in SCORE_FIELDS.items()
         if path.startswith("scorer.") and given_on_command_line(ctx, name)}
        | {path for path in typed}
    )  # fmt: skip
    if flags:
        section = JUDGE_FIELDS[run.method]
        raise InputError(
            f"{', '.join(flags)} set the ROPD scorer (`scorer:`), which method {run.method} does "
            f"not read; set its judge with --set {section}.<field> or in the `{section}:` section"
        )


def _interrupted_message(stats: ScoreFileStats | None, output: Path) -> str:
    """What Ctrl-C leaves behind, and the exact command that continues."""
    command = resume_command(RESUME_ADD, RESUME_REMOVE)
    if stats is None:
        return f"interrupted before scoring started; resume with: {command}"
    return (
        f"interrupted: {stats.saved} of {stats.total} groups are saved in {output} "
        f"(traces: {stats.traces})\nresume with: {command}"
    )


# Config fields whose flag is not simply `--field-name`.
def judge_role(
    base_url: str | None,
    model: str | None,
    api_key_env: str | None,
    temperature: float,
    max_tokens: int,
    timeout_s: float,
    price: Price | None = None,
    *,
    context_window: int | None = None,
    tokenizer: str | None = None,
) -> RoleConfig:
    """The judge both roles share, from the flags."""
    return role_from_flags(
        "judge",
        base_url,
        model,
        api_key_env,
        temperature=temperature,
        max_tokens=max_tokens,
        timeout_s=timeout_s,
        price=price,
        context_window=context_window,
        tokenizer=tokenizer,
    )


def role_override(
    name: str,
    base_url: str | None,
    model: str | None,
    api_key_env: str | None,
    judge: RoleConfig,
) -> dict[str, str] | None:
    """A role's own flags as a partial override of the judge (None when it has none).

    The same rules as the judge's flags: a base URL needs a model, except `local` (the embedded
    model, which takes no other model name); a model needs an endpoint, its own or the judge's.
    """
    from ropd.cli.options import embedded_model_named

    local = base_url is not None and base_url.strip().lower() == LOCAL
    if base_url is not None and not local and model is None:
        raise InputError(f"--{name}-model is required with a base URL ({name} at {base_url})")
    if model is not None and base_url is None and judge.base_url is None:
        raise InputError(
            f"--{name}-model {model} needs an endpoint: give --{name}-base-url (or --base-url); "
            f"for the embedded local model leave it out or pass --{name}-base-url local"
        )
    if local and model is not None and model.strip().lower() != LOCAL:
        raise InputError(embedded_model_named(model, f"--{name}-base-url", f"--{name}-model"))
    if local:  # the embedded model on purpose, whatever the judge uses
        return {"base_url": None, "model": LOCAL, "api_key_env": api_key_env}
    own = {"base_url": base_url, "model": model, "api_key_env": api_key_env}
    own = {key: value for key, value in own.items() if value is not None}
    return own or None


def _tokens(stats: ScoreFileStats) -> dict[str, int]:
    """The judge's tokens for the progress line, input and output apart (priced apart),
    counted as requests finish (not only as groups do)."""
    usage = stats.live_usage
    return {"judge_tokens_in": usage.input_tokens, "out": usage.output_tokens}


def _live(seen: list[ScoreFileStats]) -> tuple[None, dict[str, float | str | None]]:
    """Fresh counters for the progress line between results: tokens so far, and the judge's
    requests in flight, retried and waiting out a Retry-After (zeros until the judge opens)."""
    if not seen:
        return None, {}
    stats = seen[0]
    return None, {**_tokens(stats), **judge_activity(stats.judge)}


def _print_summary(console: Console, stats: ScoreFileStats, output: Path) -> None:
    mean = f"{stats.reward_mean:.4f}" if stats.reward_mean is not None else "n/a"
    cost = "" if stats.usage.cost is None else f", judge cost {stats.usage.cost:.4f}"
    again = f", {stats.retried_failed} of them failed before" if stats.retried_failed else ""
    console.print(
        f"groups {stats.total} (scored {stats.scored}{again}, skipped {stats.skipped} already "
        f"done), failed {stats.failed}, mean reward {mean}, judge tokens "
        f"{stats.usage.input_tokens:,} in / {stats.usage.output_tokens:,} out{cost}, "
        f"{stats.wall_s:.1f} s",
        markup=False,
        highlight=False,
    )
    console.print(f"scores: {output}", markup=False, highlight=False)
    console.print(
        f"traces: {stats.traces} (run {stats.run_id}; "
        f"`ropd inspect --traces {stats.traces} --list`)",
        markup=False,
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.command("score")(score)
