"""`analyze`: score a fixed pool with every method, resumably, and write the analysis folder.

Before any judge call: the methods and their configs are checked (unknown switch: ConfigError),
the pool is validated whole (every bad line reported), teacher answers are looked up in a store
when given, and the paths are checked and locked (one run per output folder). With
`teacher_logprob`, one log-probability request checks the teacher endpoint before any group is
judged (`NoPromptLogprobs` when it has no `/v1/completions`). An endpoint found unavailable
later stops only the methods using it: the others finish, everything is written, then the error
is raised. Then each method
scores every group with the same judge, each as its own run in the trace store, and every
finished group is written and synced to `groups.jsonl` at once (keyed `method id`), so an
interrupted run loses nothing: `resume=True` skips what is there (cutting a half-written last
line, as `ropd score` does). At the end, from all finished groups:

    analysis.json   pool counts, per-method figures (`ropd.analysis.stats`), ropd categories
    rewards.jsonl   one line per method, group and response: reward and correctness
    roc.svg, hist_<method>.svg (and .png)   with matplotlib, unless plots=False
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ropd import redact
from ropd.analysis.methods import (
    NO_JUDGE_KINDS,
    Judges,
    Method,
    Outcome,
    gad_checkpoint,
    ovd_config,
    parse_methods,
    rar_config,
    ropd_config,
    score_method,
    tjudge_config,
)
from ropd.analysis.pool import PoolFileError, PoolItem, read_pool
from ropd.analysis.stats import category_pass_rates, method_stats
from ropd.analysis.templates import AUTO, ChatTemplate, resolve_template
from ropd.errors import InputError, JudgeUnavailable, RopdError
from ropd.io import LineError, OutputLock, ResultWriter, check_writable, hold_locks, prepare_resume
from ropd.io.groups import NO_TEACHER_ANSWERS
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.llm.types import ChatClient
from ropd.reward.traces import TraceStore, TraceStoreError, new_run_id
from ropd.run_config import resolve_k
from ropd.score_file import check_paths, fill_teacher_answers

GROUPS_FILE = "groups.jsonl"
REWARDS_FILE = "rewards.jsonl"
ANALYSIS_FILE = "analysis.json"
TRACES_FILE = "traces.db"


@dataclass
class AnalysisRun:
    """What one `analyze` call did, updated as groups finish (for progress displays)."""

    out_dir: Path
    traces: Path
    total: int = 0  # groups x methods
    skipped: int = 0
    scored: int = 0
    failed: int = 0
    dropped_bytes: int = 0
    stopped: RopdError | None = None  # why a method stopped early (raised after the writing)
    run_ids: dict[str, str] = field(default_factory=dict)
    analysis: dict[str, Any] = field(default_factory=dict)
    images: list[Path] = field(default_factory=list)

    @property
    def saved(self) -> int:
        return self.skipped + self.scored


def analyze(
    pool: str | Path,
    out_dir: str | Path,
    *,
    methods: str | Sequence[str] = "ropd,tjudge",
    judge: RoleConfig | None = None,
    teacher: RoleConfig | None = None,
    limits: LimitsConfig | None = None,
    settings: dict[str, Any] | None = None,
    teacher_store: str | Path | None = None,
    any_teacher_fingerprint: bool = False,
    chat_template: str = AUTO,
    traces: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    batch_size: int = 16,
    client: ChatClient | None = None,
    logprobs: Any | None = None,
    probe: bool = True,
    plots: bool = True,
    on_start: Callable[[AnalysisRun], None] | None = None,
    on_result: Callable[[Outcome, AnalysisRun], None] | None = None,
) -> AnalysisRun:
    """Analyse the rewards of `methods` on the pool into `out_dir`; see the module doc.

    `judge` scores for ropd and tjudge (default: the embedded model); `teacher` is the model
    whose log-probabilities `teacher_logprob` reads (default: the judge's endpoint and model).
    `settings` are `JudgeSettings` fields every scorer shares (e.g. `strip_think`,
    `prompts_dir`). Tests pass `client` (a `ChatClient` for the judge roles) and `logprobs`
    (anything with `continuation_logprobs(prefix, text, book)`).
    """
    pool, out_dir = Path(pool), Path(out_dir)
    if resume and overwrite:
        raise InputError("--resume and --overwrite exclude each other")
    if batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    parsed = parse_methods(methods)
    judge = judge or RoleConfig(name="judge")
    teacher = (teacher or judge).with_name("teacher")
    shared = {"failure_policy": "nan", **(settings or {})}
    configs = {m.name: _config(m, judge, shared) for m in parsed}  # every switch checked now
    template = None
    if any(m.kind == "teacher_logprob" for m in parsed):
        template = resolve_template(chat_template, teacher_is_embedded=teacher.base_url is None)
    groups_path = out_dir / GROUPS_FILE
    traces_path = Path(traces) if traces is not None else out_dir / TRACES_FILE
    store_path = Path(teacher_store) if teacher_store is not None else None
    check_paths(pool, groups_path, traces_path, store_path)
    check_writable(groups_path, "analysis output")
    check_writable(traces_path, "trace database", sidecars=True)
    run = AnalysisRun(out_dir=out_dir, traces=traces_path)
    with hold_locks(
        OutputLock(groups_path, advice="wait for it or use another --output folder"),
        OutputLock(traces_path, advice="wait for it or use another --traces"),
    ):
        items = _read_items(pool, parsed, configs, store_path, any_teacher_fingerprint)
        if groups_path.exists() and groups_path.stat().st_size > 0 and not (resume or overwrite):
            raise InputError(
                f"{groups_path} exists; pass --resume to continue it or --overwrite to start over"
            )
        done_keys, run.dropped_bytes = prepare_resume(groups_path) if resume else (set(), 0)
        previous = _read_outcomes(groups_path) if resume else []
        todo = {
            m.name: [i for i in items if f"{m.name} {i.group.id}" not in done_keys] for m in parsed
        }
        run.total = len(items) * len(parsed)
        run.skipped = run.total - sum(len(t) for t in todo.values())
        if on_start is not None:
            on_start(run)
        fresh: list[Outcome] = []
        judges = Judges(judge, client, limits, teacher, logprobs, template, dict(settings or {}))
        with ResultWriter(groups_path, append=resume) as writer:

            def keep(outcome: Outcome) -> None:
                writer.write(outcome.row())
                fresh.append(outcome)
                run.scored += 1
                run.failed += outcome.error is not None
                if on_result is not None:
                    on_result(outcome, run)

            if any(todo.values()):
                asyncio.run(
                    _score_all(parsed, todo, judges, traces_path, run, keep, batch_size,
                               probe, resume, pool)
                )  # fmt: skip
        _finish(run, pool, items, parsed, configs, previous + fresh, template, plots)
    if run.stopped is not None:
        raise run.stopped  # the finished methods are written; the caller reports this one line
    return run


def _config(method: Method, judge: RoleConfig, shared: dict[str, Any]) -> Any:
    if method.kind == "ropd":
        return ropd_config(method, judge, **shared)
    if method.kind == "tjudge":
        return tjudge_config(method, judge, **shared)
    if method.kind == "ovd":
        return ovd_config(method, judge, **shared)
    if method.kind == "rar":
        return rar_config(method, judge, **shared)
    if method.kind == "gad":
        return gad_checkpoint(method)
    return None


def _read_items(
    pool: Path,
    methods: list[Method],
    configs: dict[str, Any],
    store: Path | None,
    any_fingerprint: bool,
) -> list[PoolItem]:
    """The validated pool, with teacher answers from the store for lines without any (and,
    for rar, a rubric on every line)."""
    ks = [configs[m.name].num_teacher_refs for m in methods if m.kind in ("ropd", "rar")]
    ks = [k for k in ks if k != 0]
    items = read_pool(pool, require_teacher=bool(ks) and store is None)
    if any(m.kind == "rar" for m in methods):
        bare = [
            LineError(str(pool), i.line, "required field is missing (method rar)", "rubric")
            for i in items
            if i.group.rubric is None
        ]
        if bare:
            raise PoolFileError(bare)
    if not ks:
        return items
    if store is not None:
        k = resolve_k(None) if None in ks else max(ks)
        numbered = [(item.line, item.group) for item in items]
        groups = fill_teacher_answers(
            numbered, store, k, str(pool), any_fingerprint=any_fingerprint
        )
        items = [
            PoolItem(group=g, correct=i.correct, line=i.line, task=i.task)
            for i, g in zip(items, groups, strict=True)
        ]
    empty = [
        LineError(str(pool), i.line, NO_TEACHER_ANSWERS, "teacher_responses")
        for i in items
        if not i.group.teacher_responses
    ]
    if empty:
        raise PoolFileError(empty)
    return items


def _read_outcomes(path: Path) -> list[Outcome]:
    """The finished groups of an earlier run (the file was just repaired by prepare_resume)."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as handle:
        return [Outcome.from_row(json.loads(line)) for line in handle if line.strip()]


def _run_id(traces: Path, out_dir: Path, method: str, resume: bool) -> str:
    """On resume, keep recording under the run that scored this method into this folder."""
    if resume and traces.exists():
        try:
            with TraceStore(traces, run_id="lookup") as probe:
                previous = probe.latest_run(output=str(out_dir.resolve()), method=method)
        except TraceStoreError:
            previous = None
        if previous:
            return previous
    return new_run_id("analyze")


async def _score_all(
    methods: list[Method],
    todo: dict[str, list[PoolItem]],
    judges: Judges,
    traces: Path,
    run: AnalysisRun,
    keep: Callable[[Outcome], None],
    window: int,
    probe: bool,
    resume: bool,
    pool: Path,
) -> None:
    """Open the judge (and teacher) once, then score every method's remaining groups."""
    needs_judge = any(todo[m.name] and m.kind not in NO_JUDGE_KINDS for m in methods)
    needs_teacher = any(todo[m.name] and m.kind == "teacher_logprob" for m in methods)
    async with AsyncExitStack() as stack:
        judges = await _open(stack, judges, needs_judge, needs_teacher, probe)
        if needs_teacher:
            first = next(m for m in methods if todo[m.name] and m.kind == "teacher_logprob")
            await check_teacher_logprobs(judges, todo[first.name])
        down: set[str] = set()  # endpoints found unavailable mid-run: "judge", "teacher"
        for method in methods:
            endpoint = {"teacher_logprob": "teacher", "gad": "discriminator"}.get(
                method.kind, "judge"
            )
            if not todo[method.name] or endpoint in down:
                continue
            run_id = _run_id(traces, run.out_dir, method.name, resume)
            info = {
                "command": "analyze",
                "input": str(pool),
                "output": str(run.out_dir.resolve()),
                "method": method.name,
                "judge": {"base_url": judges.judge.base_url, "model": judges.judge.model},
            }
            with TraceStore(traces, run_id=run_id, run_info=info) as store:
                run.run_ids[method.name] = store.run_id
                try:
                    async for outcome in score_method(
                        method, todo[method.name], judges, traces=store, window=window
                    ):
                        keep(outcome)
                except JudgeUnavailable as exc:  # found late: the other methods still run
                    run.stopped = run.stopped or exc
                    down.add(endpoint)


async def check_teacher_logprobs(judges: Judges, items: Sequence[PoolItem]) -> None:
    """One log-probability request before any group is judged: an endpoint without
    `/v1/completions` (or without prompt log-probabilities) raises `NoPromptLogprobs` now.

    Other failures (a response the tokens do not spell out, a transient error) are left to
    the groups, which record them as failed.
    """
    if judges.logprobs is None or judges.template is None:
        return
    item = next((i for i in items if any(i.group.student_responses)), None)
    if item is None:
        return
    text = next(t for t in item.group.student_responses if t)
    try:
        await judges.logprobs.continuation_logprobs(judges.template.prefix(item.group.prompt), text)
    except JudgeUnavailable:
        raise
    except Exception:  # noqa: BLE001 - only "cannot serve log-probabilities" stops the run
        return


async def _open(
    stack: AsyncExitStack, judges: Judges, needs_judge: bool, needs_teacher: bool, probe: bool
) -> Judges:
    """Judges with their endpoints resolved: the embedded server started once for both."""
    judge, teacher, client, logprobs = judges.judge, judges.teacher, judges.client, judges.logprobs
    assert teacher is not None
    roles = ([judge] if needs_judge and client is None else []) + (
        [teacher] if needs_teacher and logprobs is None else []
    )
    if roles:
        from ropd.run_config import RunConfig
        from ropd.session import Session

        run_config = RunConfig(limits=judges.limits or LimitsConfig(), probe=probe)
        session = await stack.enter_async_context(Session.open(run_config, roles=roles))
        opened = session.client
        by_name = {role.name: role for role in session.roles}
        judge, teacher = by_name.get(judge.name, judge), by_name.get("teacher", teacher)
        client = client if client is not None or not needs_judge else opened
    if needs_teacher and logprobs is None:
        from ropd.llm.logprobs import LogprobClient

        logprobs = await stack.enter_async_context(LogprobClient(teacher, judges.limits))
    return Judges(judge, client, judges.limits, teacher, logprobs, judges.template, judges.settings)


def _finish(
    run: AnalysisRun,
    pool: Path,
    items: list[PoolItem],
    methods: list[Method],
    configs: dict[str, Any],
    outcomes: list[Outcome],
    template: ChatTemplate | None,
    plots: bool,
) -> None:
    """analysis.json, rewards.jsonl and the images, from every finished group of the pool."""
    ids = {item.group.id for item in items}
    latest: dict[str, Outcome] = {}
    for outcome in outcomes:  # a repeated key (edited file) counts once, the last one
        if outcome.id in ids:
            latest[outcome.key] = outcome
    order = {item.group.id: n for n, item in enumerate(items)}
    by_method = {
        m.name: sorted(
            (o for o in latest.values() if o.method == m.name), key=lambda o: order[o.id]
        )
        for m in methods
    }
    stats: dict[str, Any] = {}
    for method in methods:
        figures = method_stats(by_method[method.name])
        config = configs[method.name]
        if method.kind in ("ropd", "rar"):
            figures["categories"] = category_pass_rates(by_method[method.name])
            figures["settings"] = config.ablation_settings()
        elif method.kind == "tjudge":
            figures["settings"] = {"num_references": config.num_references}
        elif method.kind == "ovd":
            figures["settings"] = {"per_call": config.per_call, "reject_below": config.reject_below}
        elif template is not None:
            figures["settings"] = {"chat_template": template.name}
        figures["missing_groups"] = len(items) - len(by_method[method.name])
        stats[method.name] = figures
    ropd_methods = [m.name for m in methods if m.kind == "ropd"]
    main = "ropd" if "ropd" in ropd_methods else (ropd_methods[0] if ropd_methods else None)
    run.analysis = {
        "pool": {
            "path": str(pool),
            "groups": len(items),
            "responses": sum(len(i.correct) for i in items),
            "correct": sum(sum(i.correct) for i in items),
        },
        "methods": stats,
        "categories_method": main,
        "categories": stats[main]["categories"] if main else {},
    }
    _write_json(run.out_dir / ANALYSIS_FILE, run.analysis)
    with ResultWriter(run.out_dir / REWARDS_FILE, append=False) as writer:
        for name, group_outcomes in by_method.items():
            for outcome in group_outcomes:
                for index, (ok, reward) in enumerate(
                    zip(outcome.correct, outcome.rewards, strict=True)
                ):
                    writer.write(
                        {
                            "method": name,
                            "group_id": outcome.id,
                            "index": index,
                            "correct": ok,
                            "reward": reward,
                            "failed": outcome.error is not None,
                        }
                    )
    if plots:
        from ropd.analysis.plots import write_plots

        run.images = write_plots(run.out_dir, by_method)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Written whole then renamed: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(redact.scrub(json.dumps(data, indent=2, ensure_ascii=False)) + "\n")
    os.replace(tmp, path)
