"""Score a JSONL file of groups, resumably: the library behind `ropd score`.

The input is validated completely (and teacher answers looked up in a store) before any judge
call, and so are the paths: the output and the trace database must be writable files (not
directories, devices or unwritable places; checked without changing them), and none of input,
output, trace database and teacher store may be the same file. Every such problem is an
`InputError` naming the path. With K != 0 references (`num_teacher_refs`, None = all) every
group needs at least one teacher answer, from the file or the store.

Groups are scored concurrently, a sliding window of `batch_size` groups (the client's
in-flight and rate limits decide the real request concurrency), and each result line is written
and synced the moment its group finishes, so a killed run loses nothing: `resume=True` skips the
ids already judged and appends; groups whose line holds a failure are taken out of the output
and judged again (`ScoreFileStats.retried_failed`).

The judge settings say the method (`run_config.method_of`): ROPD's `ScorerConfig` scores with
`GroupScorer`, `RaRConfig` with `RaRScorer` (each group's own `rubric`), `TJudgeConfig` with
`TJudgeScorer` and `OVDConfig` with `OVDScorer`, each as `ropd train` would reward the same
answers.

One writer per output: for its whole duration a run holds an advisory lock (`ropd.io.lock`) on
the output and on the trace database, so a second run on either refuses at once (`InputError`,
naming the holder) instead of judging everything again and interleaving lines. The lock is taken
once the paths are checked and before the plan reads (and, on resume, repairs) the output.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ropd.errors import InputError, JudgeError, StoreError
from ropd.io import (
    GroupsFileError,
    LineError,
    OutputLock,
    ResultWriter,
    check_writable,
    hold_locks,
    prepare_resume,
    read_numbered_groups,
    remove_failed_lines,
)
from ropd.io.groups import NO_TEACHER_ANSWERS
from ropd.llm.config import LimitsConfig
from ropd.llm.types import ChatClient, UsageBook
from ropd.reward.base import BaseScorer, GroupScoringError
from ropd.reward.config import OVDConfig, TJudgeConfig
from ropd.reward.traces import TraceStore, TraceStoreError, new_run_id
from ropd.reward.types import Group, GroupResult
from ropd.run_config import JudgeConfig, RunConfig, judge_field, method_of, resolve_k
from ropd.session import Session


class AllGroupsFailed(JudgeError):
    """Every group a run scored failed: the output holds no reward at all (exit 1)."""


@dataclass
class ScoreFileStats:
    """What one scoring of a file did (updated as groups finish, for progress displays).

    `scored` counts the lines this run wrote, `ok` those without an error; `failed` also counts
    the group that stopped a run under policy `raise` (not written). `first_error` is the first
    failure's cause, `id: error`.
    """

    total: int = 0
    skipped: int = 0
    retried_failed: int = 0  # groups that had failed in an earlier run, judged again on resume
    teacher_refs_short: int = 0  # groups of this run judged with fewer teacher answers than K
    scored: int = 0
    ok: int = 0
    failed: int = 0
    first_error: str | None = None
    aborted: str | None = None
    rewards: list[float] = field(default_factory=list)
    usage: UsageBook = field(default_factory=UsageBook)  # the judge's, per role
    wall_s: float = 0.0
    dropped_bytes: int = 0
    run_id: str | None = None
    traces: Path | None = None
    # the chat client while groups are scored (kept after): its live counters (requests in
    # flight, retried, tokens so far) let a display show the judge working between results
    judge: ChatClient | None = field(default=None, repr=False, compare=False)

    @property
    def live_usage(self) -> UsageBook:
        """The judge's usage so far, requests of unfinished groups included when the client
        keeps a book of its own (else the finished groups' usage)."""
        book = getattr(self.judge, "usage", None)
        return book if isinstance(book, UsageBook) else self.usage

    @property
    def reward_mean(self) -> float | None:
        return sum(self.rewards) / len(self.rewards) if self.rewards else None

    @property
    def tokens(self) -> int:
        return self.usage.total_tokens

    @property
    def saved(self) -> int:
        """Groups of the input whose line is in the output (from before and from this run)."""
        return self.skipped + self.scored

    @property
    def all_failed(self) -> bool:
        """This run scored at least one group and none of them succeeded."""
        return self.scored > 0 and self.ok == 0


@dataclass(frozen=True)
class ScoreFilePlan:
    """A validated input: the groups still to score, and what was already done."""

    groups: list[Group]
    todo: list[Group]
    dropped_bytes: int
    retried_failed: int = 0  # groups whose failed line a resume took out, to judge them again


def default_traces_path(output: Path) -> Path:
    """`scores.jsonl` -> `scores.traces.db`, next to the output."""
    return output.with_name(f"{output.stem}.traces.db")


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
    from ropd.teacher.store import open_existing

    errors: list[LineError] = []
    groups: list[Group] = []
    with open_existing(store_path) as store:
        for line, group in numbered:
            if group.teacher_responses:
                groups.append(group)
                continue
            try:
                texts = store.lookup(group.prompt, k=k, accept_any_fingerprint=any_fingerprint)
            except StoreError as exc:  # reported per line; the run stops before judging
                errors.append(LineError(source, line, str(exc), "teacher_responses"))
                continue
            if not texts:
                errors.append(LineError(source, line, NO_TEACHER_ANSWERS, "teacher_responses"))
                continue
            groups.append(group.model_copy(update={"teacher_responses": list(texts)}))
    if errors:
        raise GroupsFileError(errors)
    return groups


def plan_score_file(
    groups_file: Path,
    output: Path,
    config: JudgeConfig,
    *,
    teacher_store: Path | None = None,
    any_teacher_fingerprint: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    traces: Path | None = None,
    teacher_k: int | None = None,
) -> ScoreFilePlan:
    """Validate options, paths, input and output before any judge call; else raise InputError.

    `traces` is the trace database (default: next to the output). `teacher_k` is K for lines
    whose answers come from the store (default: the scorer's K, `run_config.resolve_k`; a
    command passes `RunConfig.k`). Nothing is written here except that `resume` cuts a
    half-written last line off the output.
    """
    if resume and overwrite:
        raise InputError("--resume and --overwrite exclude each other")
    prompts_dir = config.prompts_dir
    if prompts_dir is not None and not Path(prompts_dir).is_dir():
        what = "is not a folder" if Path(prompts_dir).exists() else "does not exist"
        raise InputError(f"{prompts_dir}: the prompts folder {what}")
    traces = traces if traces is not None else default_traces_path(output)
    check_paths(groups_file, output, traces, teacher_store)
    check_writable(output, "output file")
    check_writable(traces, "trace database", sidecars=True)
    if output.exists() and output.stat().st_size > 0 and not (resume or overwrite):
        raise InputError(
            f"{output} exists; pass --resume to continue it or --overwrite to start over"
        )
    k = judge_k(config)
    numbered = read_numbered_groups(groups_file, require_teacher=teacher_store is None and k != 0)
    if teacher_store is not None and k != 0:
        groups = fill_teacher_answers(
            numbered,
            teacher_store,
            resolve_k(k) if teacher_k is None else teacher_k,
            str(groups_file),
            any_fingerprint=any_teacher_fingerprint,
        )
    else:
        groups = [group for _, group in numbered]
    if k != 0:  # every group needs a reference, whichever way it came
        empty = [
            LineError(str(groups_file), line, NO_TEACHER_ANSWERS, "teacher_responses")
            for (line, _), group in zip(numbered, groups, strict=True)
            if not group.teacher_responses
        ]
        if empty:
            raise GroupsFileError(empty)
    done_ids: set[str] = set()
    failed_ids: set[str] = set()
    dropped = 0
    if resume:
        done_ids, dropped = prepare_resume(output)
        failed_ids = remove_failed_lines(output) & done_ids
        done_ids -= failed_ids
    todo = [g for g in groups if g.id not in done_ids]
    retried = sum(1 for g in todo if g.id in failed_ids)
    return ScoreFilePlan(groups=groups, todo=todo, dropped_bytes=dropped, retried_failed=retried)


def judge_k(config: JudgeConfig) -> int | None:
    """The teacher answers a group needs under `config` (None: all the store has; 0: none)."""
    if isinstance(config, TJudgeConfig):
        return config.num_references
    if isinstance(config, OVDConfig):
        return 0  # the teacher judges the answer from its text alone
    return config.num_teacher_refs


def scorer_class(config: JudgeConfig) -> type[BaseScorer[Any]]:
    """The scorer of the method whose settings `config` is."""
    method = method_of(config)
    if method == "rar":
        from ropd.reward.rar import RaRScorer

        return RaRScorer
    if method == "tjudge":
        from ropd.reward.tjudge import TJudgeScorer

        return TJudgeScorer
    if method == "ovd":
        from ropd.reward.ovd import OVDScorer

        return OVDScorer
    from ropd.reward.group_scorer import GroupScorer

    return GroupScorer


def _settings(config: JudgeConfig) -> dict[str, Any]:
    """The switches recorded with the run (the rubric scorers' own list; the scalar judges'
    fields but their role, recorded under `roles`)."""
    own = getattr(config, "ablation_settings", None)
    if own is not None:
        return dict(own())
    return config.model_dump(mode="json", exclude={"judge"})


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        pass
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):  # e.g. a symlink loop
        return os.path.abspath(a) == os.path.abspath(b)


def check_paths(
    groups_file: Path, output: Path, traces: Path, teacher_store: Path | None = None
) -> None:
    """No two of input, output, trace database and teacher store may be the same file."""
    named = [("the input", groups_file), ("the output", output), ("the trace database", traces)]
    if teacher_store is not None:
        named.append(("the teacher store", teacher_store))
    for i, (first, a) in enumerate(named):
        for second, b in named[i + 1 :]:
            if _same_file(a, b):
                raise InputError(
                    f"{b}: {second} is the same file as {first} ({a}); give another path"
                )


def _resumed_run(traces_path: Path, output: Path, resume: bool) -> str:
    """On resume, keep recording under the run that wrote this output; else a new run id."""
    if resume and traces_path.exists():
        try:
            with TraceStore(traces_path, run_id="lookup") as probe:
                previous = probe.latest_run(output=str(output.resolve()))
        except TraceStoreError:
            previous = None
        if previous:
            return previous
    return new_run_id("score")


def score_file(
    groups_file: str | Path,
    output: str | Path,
    config: JudgeConfig,
    *,
    limits: LimitsConfig | None = None,
    traces: str | Path | None = None,
    teacher_store: str | Path | None = None,
    any_teacher_fingerprint: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    batch_size: int = 256,
    run_id: str | None = None,
    client: ChatClient | None = None,
    on_start: Callable[[ScoreFileStats], None] | None = None,
    on_result: Callable[[GroupResult, ScoreFileStats], None] | None = None,
    probe: bool = True,
    teacher_k: int | None = None,
) -> ScoreFileStats:
    """Score every group of `groups_file` into `output` (JSONL), resumably; see the module doc.

    A failure under policy `raise` stops new groups from starting: the groups in flight finish
    and are written, and the returned stats have `aborted` set. A run where every group failed
    still returns its stats (`stats.all_failed`; the command line turns it into
    `AllGroupsFailed`). `on_start` and `on_result` let a caller show progress; `client` scores
    through another `ChatClient` (tests); `probe=False` skips the endpoint check before the
    first group (`GroupScorer.open`). The output and trace database are locked for the
    whole call (`FileLockedError` if another run holds either); KeyboardInterrupt cancels the
    requests in flight and releases the locks, every finished line staying in the output.
    """
    groups_file, output = Path(groups_file), Path(output)
    if batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    traces_path = Path(traces) if traces is not None else default_traces_path(output)
    store_path = Path(teacher_store) if teacher_store is not None else None
    # the lock files go next to these paths: check them first (nothing is changed by this)
    check_paths(groups_file, output, traces_path, store_path)
    check_writable(output, "output file")
    check_writable(traces_path, "trace database", sidecars=True)
    with hold_locks(
        OutputLock(output, advice="wait for it or use another --output"),
        OutputLock(traces_path, advice="wait for it or use another --traces"),
    ):
        return _run(
            groups_file, output, config, limits=limits, traces_path=traces_path,
            teacher_store=store_path, any_teacher_fingerprint=any_teacher_fingerprint,
            resume=resume, overwrite=overwrite, batch_size=batch_size, run_id=run_id,
            client=client, on_start=on_start, on_result=on_result, probe=probe,
            teacher_k=teacher_k,
        )  # fmt: skip


def _run(
    groups_file: Path,
    output: Path,
    config: JudgeConfig,
    *,
    limits: LimitsConfig | None,
    traces_path: Path,
    teacher_store: Path | None,
    any_teacher_fingerprint: bool,
    resume: bool,
    overwrite: bool,
    batch_size: int,
    run_id: str | None,
    client: ChatClient | None,
    on_start: Callable[[ScoreFileStats], None] | None,
    on_result: Callable[[GroupResult, ScoreFileStats], None] | None,
    probe: bool,
    teacher_k: int | None,
) -> ScoreFileStats:
    """`score_file` once its locks are held: plan (resume repairs the output), then score."""
    plan = plan_score_file(
        groups_file,
        output,
        config,
        teacher_store=teacher_store,
        any_teacher_fingerprint=any_teacher_fingerprint,
        resume=resume,
        overwrite=overwrite,
        traces=traces_path,
        teacher_k=teacher_k,
    )
    run_info = {
        "command": "score",
        "input": str(groups_file),
        "output": str(output.resolve()),
        "roles": [
            {"name": r.name, "base_url": r.base_url, "model": r.model, "api_key_env": r.api_key_env}
            for r in config.roles()
        ],
        "method": method_of(config),
        "settings": _settings(config),
    }
    stats = ScoreFileStats(
        total=len(plan.groups),
        skipped=len(plan.groups) - len(plan.todo),
        retried_failed=plan.retried_failed,
        dropped_bytes=plan.dropped_bytes,
        traces=traces_path,
    )
    method = method_of(config)
    run = RunConfig(
        method=method,
        **{judge_field(method): config},
        limits=limits or LimitsConfig(),
        run_id=run_id or _resumed_run(traces_path, output, resume),
        probe=probe and client is None,
    )

    async def in_session() -> None:
        # One session: keys checked, endpoints probed once (before any file is created: a dead
        # endpoint leaves no empty output behind), then the trace store. Nothing left to score:
        # no role is connected (no embedded server started, no probe).
        roles = config.roles() if plan.todo else []
        opening = Session.open(run, client, roles=roles, traces=traces_path, run_info=run_info)
        async with opening as session:
            stats.run_id = session.run_id
            if on_start is not None:
                on_start(stats)
            with ResultWriter(output, append=resume) as writer:
                if plan.todo:
                    scorer = scorer_class(config).from_session(session)
                    await _score_into(plan.todo, scorer, writer, stats, batch_size, on_result)

    asyncio.run(in_session())
    return stats


async def _score_into(
    todo: list[Group],
    scorer: BaseScorer[Any],
    writer: ResultWriter,
    stats: ScoreFileStats,
    batch_size: int,
    on_result: Callable[[GroupResult, ScoreFileStats], None] | None,
) -> None:
    started = time.monotonic()
    stats.judge = scorer.client
    try:
        async for result in scorer.stream(todo, window=batch_size):
            writer.write(result.to_output_row())
            stats.scored += 1
            stats.teacher_refs_short += bool(result.settings.get("teacher_refs_short"))
            if result.failed:
                stats.failed += 1
                if stats.first_error is None:
                    stats.first_error = f"{result.id}: {result.error}"
            else:
                stats.ok += 1
                stats.rewards.extend(r for r in result.rewards if r is not None)
            stats.usage = scorer.usage
            if on_result is not None:
                on_result(result, stats)
    except GroupScoringError as exc:  # policy `raise`: finished groups are written, the rest waits
        stats.failed += 1
        stats.aborted = f"{type(exc).__name__}: {exc}"
    stats.usage = scorer.usage
    stats.wall_s = time.monotonic() - started
