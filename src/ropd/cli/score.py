"""`ropd score`: score a JSONL file of groups with the ROPD reward, resumably.

Only flags and printing live here; the work is `ropd.score_file.score_file`.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ropd.cli.options import (
    MaxInFlight,
    MaxRetries,
    Rpm,
    Tpm,
    field_help,
    limits_from_flags,
    role_from_flags,
)
from ropd.errors import InputError
from ropd.llm.config import RoleConfig
from ropd.reward.config import ScorerConfig
from ropd.reward.types import GroupResult
from ropd.score_file import ScoreFileStats, default_traces_path, score_file

__all__ = ["default_traces_path", "register", "score"]


class RubricModeChoice(str, Enum):
    shared = "shared"
    per_pair = "per_pair"


class FailurePolicyChoice(str, Enum):
    nan = "nan"
    constant = "constant"
    raise_ = "raise"


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("failed {task.fields[failed]}"),
        TextColumn("judge tokens {task.fields[tokens]:,}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def score(
    groups_file: Annotated[
        Path,
        typer.Argument(
            help="JSONL: id, prompt, student_responses, teacher_responses.", show_default=False
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where score lines go (JSONL).")],
    base_url: Annotated[
        str | None,
        typer.Option(help=field_help(RoleConfig, "base_url")),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help=field_help(RoleConfig, "model", "Required with --base-url."))
    ] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(help=field_help(RoleConfig, "api_key_env")),
    ] = None,
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
    temperature: Annotated[float, typer.Option(help=field_help(RoleConfig, "temperature"))] = 0.0,
    max_tokens: Annotated[int, typer.Option(help=field_help(RoleConfig, "max_tokens"))] = 2048,
    timeout: Annotated[float, typer.Option(help=field_help(RoleConfig, "timeout_s"))] = 120.0,
    k: Annotated[
        int,
        typer.Option("-k", "--num-teacher-refs", help=field_help(ScorerConfig, "num_teacher_refs")),
    ] = 4,
    min_criteria: Annotated[int, typer.Option(help=field_help(ScorerConfig, "min_criteria"))] = 4,
    max_criteria: Annotated[int, typer.Option(help=field_help(ScorerConfig, "max_criteria"))] = 12,
    rubric_mode: Annotated[
        RubricModeChoice,
        typer.Option(help=field_help(ScorerConfig, "rubric_mode")),
    ] = RubricModeChoice.shared,
    blind: Annotated[
        bool,
        typer.Option("--blind/--no-blind", help=field_help(ScorerConfig, "blind")),
    ] = True,
    teacher_in_pool: Annotated[
        bool,
        typer.Option(
            "--teacher-in-pool/--no-teacher-in-pool",
            help=field_help(ScorerConfig, "teacher_in_pool"),
        ),
    ] = True,
    strip_think: Annotated[
        bool,
        typer.Option("--strip-think/--keep-think", help=field_help(ScorerConfig, "strip_think")),
    ] = True,
    failure_policy: Annotated[
        FailurePolicyChoice,
        typer.Option(help=field_help(ScorerConfig, "failure_policy")),
    ] = FailurePolicyChoice.nan,
    constant_reward: Annotated[
        float, typer.Option(help=field_help(ScorerConfig, "constant_reward"))
    ] = 0.0,
    max_in_flight: MaxInFlight = 64,
    rpm: Rpm = None,
    tpm: Tpm = None,
    max_retries: MaxRetries = 4,
    batch_size: Annotated[int, typer.Option(help="Groups scored concurrently.")] = 32,
    traces: Annotated[
        Path | None, typer.Option(help="Trace database (default: next to the output, *.traces.db).")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Skip ids already in the output and append.")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    teacher_store: Annotated[
        Path | None, typer.Option(help="Teacher store to look answers up in for lines without any.")
    ] = None,
    any_teacher_fingerprint: Annotated[
        bool,
        typer.Option(help="Use store answers made under any teacher fingerprint."),
    ] = False,
    prompts_dir: Annotated[
        Path | None, typer.Option(help=field_help(ScorerConfig, "prompts_dir"))
    ] = None,
    seed: Annotated[int, typer.Option(help=field_help(ScorerConfig, "seed"))] = 0,
    run_id: Annotated[str | None, typer.Option(help="Name of this run in the trace store.")] = None,
) -> None:
    """Score groups of student answers with the ROPD rubric reward."""
    try:  # a flag value the configs refuse is an input error naming the flag
        judge = judge_role(base_url, model, api_key_env, temperature, max_tokens, timeout)
        config = ScorerConfig(
            judge=judge,
            rubricator=role_override(
                "rubricator", rubricator_base_url, rubricator_model, rubricator_api_key_env, judge
            ),
            verifier=role_override(
                "verifier", verifier_base_url, verifier_model, verifier_api_key_env, judge
            ),
            num_teacher_refs=k,
            min_criteria=min_criteria,
            max_criteria=max_criteria,
            rubric_mode=rubric_mode.value,
            blind=blind,
            teacher_in_pool=teacher_in_pool,
            strip_think=strip_think,
            failure_policy=failure_policy.value,
            constant_reward=constant_reward,
            seed=seed,
            prompts_dir=prompts_dir,
        )
        limits = limits_from_flags(max_in_flight, rpm, tpm, max_retries)
    except ValidationError as exc:
        raise InputError(_flag_errors(exc)) from None
    err = Console(stderr=True)
    with _progress(err) as progress:
        task = progress.add_task("scoring", total=None, failed=0, tokens=0)

        def on_start(stats: ScoreFileStats) -> None:
            if stats.dropped_bytes:
                err.print(
                    f"{output}: dropped a half-written last line ({stats.dropped_bytes} bytes)"
                )
            progress.update(task, total=stats.total, completed=stats.skipped)

        def on_result(result: GroupResult, stats: ScoreFileStats) -> None:
            progress.update(task, advance=1, failed=stats.failed, tokens=stats.tokens)

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
        )
    _print_summary(Console(), stats, output)
    if stats.aborted is not None:
        err.print(f"stopped: {stats.aborted}", markup=False, highlight=False)
        err.print("finished groups are saved; run again with --resume to continue")
        raise typer.Exit(1)


# Config fields whose flag is not simply `--field-name`.
_FLAG_OF = {
    "num_teacher_refs": "-k/--num-teacher-refs",
    "timeout_s": "--timeout",
    "requests_per_minute": "--rpm",
    "tokens_per_minute": "--tpm",
}


def _flag_errors(exc: ValidationError) -> str:
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


def judge_role(
    base_url: str | None,
    model: str | None,
    api_key_env: str | None,
    temperature: float,
    max_tokens: int,
    timeout_s: float,
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
    )


def role_override(
    name: str,
    base_url: str | None,
    model: str | None,
    api_key_env: str | None,
    judge: RoleConfig,
) -> dict[str, str] | None:
    """A role's own flags as a partial override of the judge (None when it has none)."""
    own = {"base_url": base_url, "model": model, "api_key_env": api_key_env}
    own = {key: value for key, value in own.items() if value is not None}
    if base_url is not None and model is None:
        raise InputError(f"--{name}-model is required with a base URL ({name} at {base_url})")
    return own or None


def _print_summary(console: Console, stats: ScoreFileStats, output: Path) -> None:
    mean = f"{stats.reward_mean:.4f}" if stats.reward_mean is not None else "n/a"
    console.print(
        f"groups {stats.total} (scored {stats.scored}, skipped {stats.skipped} already done), "
        f"failed {stats.failed}, mean reward {mean}, judge tokens {stats.tokens:,}, "
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
