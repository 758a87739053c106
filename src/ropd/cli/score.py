"""`ropd score`: score a JSONL file of groups with the ROPD reward, resumably.

The input is validated completely before any judge call. Groups are scored concurrently (a
sliding window of `--batch-size` groups; the client's in-flight and rate limits decide the real
request concurrency) and each result line is written and synced the moment its group finishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ropd.io import (
    GroupsFileError,
    LineError,
    OutputFileError,
    ResultWriter,
    prepare_resume,
    read_numbered_groups,
)
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.llm.types import ChatClient
from ropd.reward.config import ScorerConfig
from ropd.reward.types import Group, GroupResult
from ropd.traces import TraceStore, TraceStoreError, new_run_id

ClientFactory = Callable[
    [Sequence[RoleConfig], LimitsConfig],
    AbstractAsyncContextManager[tuple[ChatClient, list[RoleConfig]]],
]
MAX_ERRORS_SHOWN = 50


def _open_chat_client(
    roles: Sequence[RoleConfig], limits: LimitsConfig
) -> AbstractAsyncContextManager[tuple[ChatClient, list[RoleConfig]]]:
    from ropd.llm.client import open_chat_client

    return open_chat_client(roles, limits)


# The one seam for tests and embedding applications: replace this factory to score through
# another ChatClient (e.g. `ropd.llm.scripted.ScriptedChatClient`). The default is the real
# OpenAI-compatible client, starting the embedded local judge for roles without a base URL.
client_factory: ClientFactory = _open_chat_client


class RubricModeChoice(str, Enum):
    shared = "shared"
    per_pair = "per_pair"


class FailurePolicyChoice(str, Enum):
    nan = "nan"
    constant = "constant"
    raise_ = "raise"


class InputError(ValueError):
    """Bad options or input found before any judge call (exit code 2)."""


@dataclass
class RunStats:
    """What one `ropd score` invocation did."""

    total: int = 0
    skipped: int = 0
    scored: int = 0
    failed: int = 0
    aborted: str | None = None
    rewards: list[float] = field(default_factory=list)
    tokens: int = 0
    wall_s: float = 0.0

    @property
    def reward_mean(self) -> float | None:
        return sum(self.rewards) / len(self.rewards) if self.rewards else None


def default_traces_path(output: Path) -> Path:
    """`scores.jsonl` -> `scores.traces.db`, next to the output."""
    return output.with_name(f"{output.stem}.traces.db")


def build_roles(
    *,
    base_url: str | None,
    model: str | None,
    api_key_env: str | None,
    temperature: float,
    max_tokens: int,
    timeout_s: float,
    overrides: dict[str, dict[str, str | None]],
) -> list[RoleConfig]:
    """The rubricator and verifier roles: one judge by default, each overridable."""
    roles = []
    for name in ("rubricator", "verifier"):
        own = overrides.get(name, {})
        url = own.get("base_url") or base_url
        role_model = own.get("model") or model
        if role_model is None:
            if url is not None:
                flag = f"--{name}-model" if own.get("base_url") else "--model"
                raise InputError(f"{flag} is required with a base URL ({name} at {url})")
            role_model = "local"
        role = RoleConfig(
            name=name,
            base_url=url,
            model=role_model,
            api_key_env=own.get("api_key_env") or api_key_env,
            temperature=temperature,
            max_tokens=max_tokens,
            timeout_s=timeout_s,
        )
        if role.base_url is not None:
            try:
                role.api_key()  # fail now, not after the first group; the value is not kept
            except ValueError as exc:
                raise InputError(str(exc)) from None
        roles.append(role)
    return roles


def fill_teacher_answers(
    numbered: list[tuple[int, Group]],
    store_path: Path,
    k: int,
    source: str,
    *,
    any_fingerprint: bool = False,
) -> list[Group]:
    """Look teacher answers up in the store for groups that came without any.

    Every missing prompt is reported (by input line) before any judge call is made.
    """
    from ropd.teacher.store import TeacherStore

    errors: list[LineError] = []
    groups: list[Group] = []
    try:
        store = TeacherStore(store_path)
    except (sqlite3.DatabaseError, RuntimeError) as exc:
        raise InputError(f"{store_path}: cannot open the teacher store ({exc})") from None
    with store:
        for line, group in numbered:
            if group.teacher_responses:
                groups.append(group)
                continue
            try:
                texts = store.lookup(group.prompt, k=k, accept_any_fingerprint=any_fingerprint)
            except Exception as exc:  # noqa: BLE001 - reported per line, the run stops before judging
                errors.append(LineError(source, line, str(exc), "teacher_responses"))
                continue
            groups.append(group.model_copy(update={"teacher_responses": list(texts)}))
    if errors:
        raise GroupsFileError(errors)
    return groups


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


async def score_stream(
    groups: Sequence[Group],
    config: ScorerConfig,
    roles: Sequence[RoleConfig],
    limits: LimitsConfig,
    *,
    writer: ResultWriter,
    traces: TraceStore | None,
    batch_size: int,
    on_result: Callable[[GroupResult, int], None] | None = None,
) -> RunStats:
    """Score `groups`, writing each result as it finishes; keeps `batch_size` groups in flight.

    A failure under policy `raise` (or an unexpected error) stops new groups from starting; the
    groups already in flight finish and are written, then the run ends with `aborted` set.
    """
    from ropd.reward.engine import GroupScorer

    stats = RunStats(total=len(groups))
    started = time.monotonic()
    async with client_factory(roles, limits) as (client, resolved):
        by_name = {role.name: role for role in resolved}
        config = config.model_copy(
            update={"rubricator": by_name["rubricator"], "verifier": by_name["verifier"]}
        )
        scorer = GroupScorer(config, client, traces=traces)
        queue = iter(groups)
        pending: set[asyncio.Task[GroupResult]] = set()

        def refill() -> None:
            while stats.aborted is None and len(pending) < batch_size:
                group = next(queue, None)
                if group is None:
                    return
                pending.add(asyncio.create_task(scorer.score_group(group), name=group.id))

        refill()
        try:
            while pending:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    pending.discard(task)
                    try:
                        result = task.result()
                    except Exception as exc:  # noqa: BLE001 - policy raise or a bug: stop feeding
                        stats.failed += 1
                        if stats.aborted is None:
                            stats.aborted = f"{type(exc).__name__}: {exc}"
                        continue
                    writer.write(result.to_output_row())
                    stats.scored += 1
                    if result.failed:
                        stats.failed += 1
                    stats.rewards.extend(r for r in result.rewards if r is not None)
                    stats.tokens = scorer.usage.total_tokens
                    if on_result is not None:
                        on_result(result, stats.tokens)
                refill()
        finally:
            for task in pending:
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*pending, return_exceptions=True)
        stats.tokens = scorer.usage.total_tokens
    stats.wall_s = time.monotonic() - started
    return stats


def _print_line_errors(console: Console, errors: list[LineError]) -> None:
    for error in errors[:MAX_ERRORS_SHOWN]:
        console.print(str(error), markup=False, highlight=False)
    if len(errors) > MAX_ERRORS_SHOWN:
        console.print(f"... and {len(errors) - MAX_ERRORS_SHOWN} more bad lines", markup=False)


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
        typer.Option(help="OpenAI-compatible endpoint of the judge; none = embedded local judge."),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Judge model name at --base-url.")] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            help="Environment variable holding the judge's API key (default OPENAI_API_KEY if set)."
        ),
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
    temperature: Annotated[float, typer.Option(help="Judge sampling temperature.")] = 0.0,
    max_tokens: Annotated[int, typer.Option(help="Judge reply budget per call.")] = 2048,
    timeout: Annotated[float, typer.Option(help="Seconds per judge request.")] = 120.0,
    k: Annotated[
        int, typer.Option("-k", "--num-teacher-refs", help="Teacher answers used per group (K).")
    ] = 4,
    min_criteria: Annotated[int, typer.Option(help="Fewest rubric criteria accepted.")] = 4,
    max_criteria: Annotated[int, typer.Option(help="Most rubric criteria accepted.")] = 12,
    rubric_mode: Annotated[
        RubricModeChoice,
        typer.Option(help="One rubric per group, or one per (teacher, student) pair."),
    ] = RubricModeChoice.shared,
    blind: Annotated[
        bool,
        typer.Option("--blind/--no-blind", help="Hide who wrote each answer from the Verifier."),
    ] = True,
    teacher_in_pool: Annotated[
        bool,
        typer.Option(
            "--teacher-in-pool/--no-teacher-in-pool",
            help="Verify teacher answers alongside the students'.",
        ),
    ] = True,
    strip_think: Annotated[
        bool, typer.Option("--strip-think/--keep-think", help="Drop <think> blocks before judging.")
    ] = True,
    failure_policy: Annotated[
        FailurePolicyChoice,
        typer.Option(help="A group that cannot be scored: null rewards, a constant, or stop."),
    ] = FailurePolicyChoice.nan,
    constant_reward: Annotated[
        float, typer.Option(help="Reward under --failure-policy constant.")
    ] = 0.0,
    max_in_flight: Annotated[
        int, typer.Option(help="Judge requests in flight at once (all groups).")
    ] = 64,
    rpm: Annotated[float | None, typer.Option(help="Judge requests per minute limit.")] = None,
    tpm: Annotated[float | None, typer.Option(help="Judge tokens per minute limit.")] = None,
    max_retries: Annotated[int, typer.Option(help="Retries of a failed judge request.")] = 4,
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
        Path | None, typer.Option(help="Folder overriding the judge prompt templates.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the answer shuffling.")] = 0,
    run_id: Annotated[str | None, typer.Option(help="Name of this run in the trace store.")] = None,
) -> None:
    """Score groups of student answers with the ROPD rubric reward."""
    err = Console(stderr=True)
    out = Console()
    source = str(groups_file)
    try:
        if resume and overwrite:
            raise InputError("--resume and --overwrite exclude each other")
        if output.exists() and output.stat().st_size > 0 and not (resume or overwrite):
            raise InputError(
                f"{output} exists; pass --resume to continue it or --overwrite to start over"
            )
        roles = build_roles(
            base_url=base_url,
            model=model,
            api_key_env=api_key_env,
            temperature=temperature,
            max_tokens=max_tokens,
            timeout_s=timeout,
            overrides={
                "rubricator": {
                    "base_url": rubricator_base_url,
                    "model": rubricator_model,
                    "api_key_env": rubricator_api_key_env,
                },
                "verifier": {
                    "base_url": verifier_base_url,
                    "model": verifier_model,
                    "api_key_env": verifier_api_key_env,
                },
            },
        )
        config = ScorerConfig(
            rubricator=roles[0],
            verifier=roles[1],
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
        limits = LimitsConfig(
            max_in_flight=max_in_flight,
            requests_per_minute=rpm,
            tokens_per_minute=tpm,
            max_retries=max_retries,
        )
        if batch_size < 1:
            raise InputError("--batch-size must be at least 1")
        numbered = read_numbered_groups(
            groups_file, require_teacher=teacher_store is None and k != 0
        )
        if teacher_store is not None and k != 0:
            if not teacher_store.is_file():
                raise InputError(f"{teacher_store}: teacher store not found")
            groups = fill_teacher_answers(
                numbered, teacher_store, k, source, any_fingerprint=any_teacher_fingerprint
            )
        else:
            groups = [group for _, group in numbered]
        done_ids: set[str] = set()
        if resume:
            done_ids, cut = prepare_resume(output)
            if cut:
                err.print(f"{output}: dropped a half-written last line ({cut} bytes)")
    except GroupsFileError as exc:
        _print_line_errors(err, exc.errors)
        raise typer.Exit(2) from None
    except (InputError, OutputFileError, ValueError) as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None

    todo = [g for g in groups if g.id not in done_ids]
    skipped = len(groups) - len(todo)
    traces_path = traces or default_traces_path(output)
    run_info = {
        "command": "score",
        "input": str(groups_file),
        "output": str(output.resolve()),
        "roles": [
            {"name": r.name, "base_url": r.base_url, "model": r.model, "api_key_env": r.api_key_env}
            for r in roles
        ],
        "settings": config.ablation_settings(),
    }
    try:
        store = TraceStore(
            traces_path,
            run_info=run_info,
            run_id=run_id or _resumed_run(traces_path, output, resume),
        )
    except TraceStoreError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None

    stats = RunStats(total=len(groups), skipped=skipped)
    try:
        with ResultWriter(output, append=resume) as writer, _progress(err) as progress:
            task = progress.add_task(
                "scoring", total=len(groups), completed=skipped, failed=0, tokens=0
            )
            failures = 0

            def on_result(result: GroupResult, tokens: int) -> None:
                nonlocal failures
                failures += int(result.failed)
                progress.update(task, advance=1, failed=failures, tokens=tokens)

            if todo:
                stats = asyncio.run(
                    score_stream(
                        todo,
                        config,
                        roles,
                        limits,
                        writer=writer,
                        traces=store,
                        batch_size=batch_size,
                        on_result=on_result,
                    )
                )
                stats.total, stats.skipped = len(groups), skipped
    except Exception as exc:  # a judge that cannot start (e.g. no local server): say so plainly
        from ropd.llm.local_server import LocalModelUnavailable, LocalServerError

        if isinstance(exc, LocalModelUnavailable | LocalServerError):
            err.print(f"error: {exc}", markup=False, highlight=False)
            raise typer.Exit(2) from None
        raise
    finally:
        store.close()

    _print_summary(out, stats, output, traces_path, store.run_id)
    if stats.aborted is not None:
        err.print(f"stopped: {stats.aborted}", markup=False, highlight=False)
        err.print("finished groups are saved; run again with --resume to continue")
        raise typer.Exit(1)


def _resumed_run(traces_path: Path, output: Path, resume: bool) -> str:
    """On --resume, keep recording under the run that wrote this output; else a new run id."""
    if resume and traces_path.exists():
        try:
            with TraceStore(traces_path, run_id="lookup") as probe:
                previous = probe.latest_run(output=str(output.resolve()))
        except TraceStoreError:
            previous = None
        if previous:
            return previous
    return new_run_id("score")


def _print_summary(
    console: Console, stats: RunStats, output: Path, traces_path: Path, run_id: str
) -> None:
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
        f"traces: {traces_path} (run {run_id}; `ropd inspect --traces {traces_path} --list`)",
        markup=False,
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to the top-level app."""
    app.command("score")(score)
