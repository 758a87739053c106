"""Build the offline teacher store: K answers per prompt, resumable and loss-free.

Every answer is committed the moment its request returns, so a killed build (even SIGKILL) loses
at most the requests in flight; running the same build again asks only for what is missing
(prompts with fewer than K usable answers are topped up). Concurrency is bounded by a fixed number
of prompts in progress, so memory stays flat however large the dataset; the chat client enforces
the in-flight and rate limits.

Answers cut off at `max_tokens` are not asked again at the same (or a lower) limit: the model
would mostly run out of tokens again, and every retry is paid for. A prompt short of K only
because of such answers is reported with the limit to raise; it does not fail the build unless
no prompt has any usable answer.

Progress is reported through `on_progress(report)`: once when the answers to ask for are known,
then after every request (see `build_references`). `ReportProgress` shows it on a
`ropd.progress.RunProgress`, as `ropd teacher build` and `progress=True` do.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ropd import redact
from ropd.data.records import Record, record_id, to_prompt_messages
from ropd.errors import InputError, JudgeError, JudgeUnavailable
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.llm.types import ChatClient, Completion
from ropd.reward.types import Prompt
from ropd.teacher.config import TeacherConfig
from ropd.teacher.fingerprint import TEMPLATE_VERSION, TeacherFingerprint, prompt_key
from ropd.teacher.status import USABLE_DEFAULT, classify
from ropd.teacher.store import TeacherStore

log = redact.logger(__name__)

if TYPE_CHECKING:
    from ropd.progress import RunProgress

MAX_ERRORS_KEPT = 20
PROGRESS_LABEL, PROGRESS_UNIT = "teacher build", "usable answers"
TRAIN_MAX_TOKENS_SETTING = "ropd.teacher.role.max_tokens"  # `ropd train`'s name for it


class BuildAborted(JudgeError):
    """Too many requests failed in a row (endpoint down, bad key...); finished work is kept."""


@dataclass(frozen=True)
class PromptItem:
    key: str
    messages: list[dict[str, Any]]
    record_id: str


@dataclass
class BuildReport:
    """What one build run did (answers already in the store before the run are not counted).

    `incomplete` lists every prompt still short of K usable answers after the run;
    `short_by_truncation` is the part of it whose missing answers were cut off at `truncated_at`
    tokens (not asked again at that limit), the rest is worth running again for.
    `answers_done` counts the usable answers among `answers_stored` (progress towards
    `answers_needed`).
    """

    prompts: int = 0
    k: int = 0
    max_tokens: int | None = None
    complete_before: int = 0
    skipped_truncated: int = 0
    answers_needed: int = 0
    requests: int = 0
    failed_requests: int = 0
    answers_stored: int = 0
    answers_done: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    incomplete: list[str] = field(default_factory=list)
    short_by_truncation: list[str] = field(default_factory=list)
    truncated_at: int | None = None
    without_usable: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    request_done_at: list[float] = field(default_factory=list)

    @property
    def to_retry(self) -> list[str]:
        """Prompts short of K for reasons a rerun can fix (failed requests, empty, refused)."""
        cut = set(self.short_by_truncation)
        return [rid for rid in self.incomplete if rid not in cut]

    def truncation_note(self, setting: str = "--max-tokens") -> str | None:
        """What to do about prompts short of K because their answers were cut off (or None).

        `setting` is what the reader changes to raise the limit: `ropd teacher build`'s flag by
        default, `ropd.teacher.role.max_tokens` when the build ran inside `ropd train`.
        """
        if not self.short_by_truncation:
            return None
        n, limit = len(self.short_by_truncation), self.truncated_at
        empty = len(set(self.short_by_truncation) & set(self.without_usable))
        none = f" ({empty} with none)" if empty else ""
        return (
            f"{n} of {self.prompts} prompts {'has' if n == 1 else 'have'} fewer than {self.k} "
            f"usable answers because answers were cut off at max_tokens={limit}{none}, e.g. "
            f"{', '.join(self.short_by_truncation[:3])}; they are not asked again at that limit. "
            f"Raise {setting} above {limit} to retry them (answers at another limit are "
            "another teacher fingerprint, so every prompt is answered again), or accept fewer "
            "answers: scoring and training use the answers there are."
        )

    def shortfall_error(self) -> JudgeError | None:
        """The error a build that did not deliver ends with; None when its store is usable.

        Prompts short of K only because their answers were cut off do not fail the build (the
        store is usable and `truncation_note` says what to do), unless no prompt has any usable
        answer at all. Any other shortfall does: running again may fill it.
        """
        retry = self.to_retry
        if retry:
            return JudgeError(
                f"{len(retry)} prompts still have fewer than {self.k} usable answers "
                f"(e.g. {', '.join(retry[:3])}); run the same command again to top them up"
            )
        if self.prompts and len(self.without_usable) == self.prompts:
            return JudgeError(
                f"no prompt has a usable teacher answer: all {self.prompts} were cut off at "
                f"max_tokens={self.truncated_at}; raise --max-tokens above {self.truncated_at}"
            )
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompts": self.prompts,
            "k": self.k,
            "max_tokens": self.max_tokens,
            "complete_before": self.complete_before,
            "skipped_truncated": self.skipped_truncated,
            "answers_needed": self.answers_needed,
            "requests": self.requests,
            "failed_requests": self.failed_requests,
            "answers_stored": self.answers_stored,
            "answers_done": self.answers_done,
            "by_status": dict(self.by_status),
            "incomplete": len(self.incomplete),
            "short_by_truncation": len(self.short_by_truncation),
            "truncated_at": self.truncated_at,
            "without_usable": len(self.without_usable),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "wall_s": round(self.wall_s, 3),
            "errors": self.errors[:5],
            "note": self.truncation_note(),
        }


def prompt_items(
    records: Iterable[Record],
    *,
    prompt_field: str = "prompt",
    system_prompt: str | None = None,
    system_field: str | None = None,
    id_field: str | None = "id",
) -> list[PromptItem]:
    """Records as teacher prompts, identical prompts merged; bad records raise DataError."""
    items: dict[str, PromptItem] = {}
    for record in records:
        messages = to_prompt_messages(
            record,
            prompt_field=prompt_field,
            system_prompt=system_prompt,
            system_field=system_field,
        )
        key = prompt_key(messages)
        if key not in items:
            items[key] = PromptItem(key, messages, record_id(record, id_field))
    return list(items.values())


ProgressCallback = Callable[[BuildReport], None]


class ReportProgress:
    """An `on_progress` callback that shows a build on a `RunProgress` (and keeps its report).

    The first call starts the display with the answers still needed as its total; every call
    sets the usable answers got so far, the requests sent and the failed ones. `report` is the
    last report seen (None before the build planned anything), e.g. for a Ctrl-C message.
    """

    def __init__(self, display: RunProgress) -> None:
        self.display = display
        self.report: BuildReport | None = None

    def __call__(self, report: BuildReport) -> None:
        self.report = report
        counters = {"requests": report.requests, "failed": report.failed_requests}
        self.display.start(total=report.answers_needed, **counters)  # once; later calls no-op
        self.display.update(done=report.answers_done, **counters)


class _Builder:
    def __init__(
        self,
        store: TeacherStore,
        role: RoleConfig,
        client: ChatClient,
        fingerprint: TeacherFingerprint,
        k: int,
        usable: frozenset[str],
        use_n: bool,
        max_rounds: int,
        abort_after_failures: int,
        report: BuildReport,
        on_progress: ProgressCallback | None,
        retry_truncated: bool = False,
    ) -> None:
        self.store = store
        self.role = role
        self.client = client
        self.fingerprint = fingerprint
        self.k = k
        self.usable = usable
        self.use_n = use_n
        self.max_rounds = max_rounds
        self.abort_after_failures = abort_after_failures
        self.report = report
        self.on_progress = on_progress
        self.failures_in_a_row = 0
        # an answer cut off at this max_tokens settles its slot for this run too, as it does
        # for later runs (`_plan`): asking again at the same limit mostly pays for another cut
        self.cut_settles = not retry_truncated and "truncated" not in usable

    def progressed(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.report)

    async def _request(self, item: PromptItem, n: int) -> int | None:
        """One chat request; its answers are committed before returning. The answers that
        settle a slot (usable ones, and cut-off ones unless they are retried), or None."""
        self.report.requests += 1
        try:
            completions: Sequence[Completion] = await self.client.chat(
                self.role, item.messages, n=n
            )
        except JudgeUnavailable:
            raise  # key rejected or model not served: every request would fail the same way
        except JudgeError as error:
            self.report.failed_requests += 1
            self.failures_in_a_row += 1
            if len(self.report.errors) < MAX_ERRORS_KEPT:
                self.report.errors.append(f"{item.record_id}: {error}")
            self.progressed()
            if self.failures_in_a_row >= self.abort_after_failures:
                raise BuildAborted(
                    f"{self.failures_in_a_row} teacher requests failed in a row; last: {error}"
                ) from None
            return None
        self.failures_in_a_row = 0
        self.report.request_done_at.append(time.monotonic())
        self.store.add_answers(
            item.messages, self.fingerprint, completions, record_id=item.record_id
        )
        usable = cut = 0
        for completion in completions:
            status = classify(completion.text, completion.finish_reason)
            self.report.by_status[status] += 1
            self.report.prompt_tokens += completion.prompt_tokens
            self.report.completion_tokens += completion.completion_tokens
            usable += status in self.usable
            cut += status == "truncated"
        self.report.answers_stored += len(completions)
        self.report.answers_done += usable
        self.progressed()
        return usable + (cut if self.cut_settles else 0)

    async def fill(self, item: PromptItem, need: int) -> None:
        """Ask for `need` answers; top-up rounds (this run only) replace unusable ones."""
        for _ in range(self.max_rounds):
            sizes = [need] if self.use_n else [1] * need
            results = await asyncio.gather(*(self._request(item, n) for n in sizes))
            need -= sum(r for r in results if r is not None)
            if need <= 0 or any(r is None for r in results):
                break


async def build_references(
    records: Iterable[Record] | Sequence[PromptItem],
    store: TeacherStore,
    role: RoleConfig,
    client: ChatClient,
    k: int,
    *,
    prompt_field: str = "prompt",
    system_prompt: str | None = None,
    system_field: str | None = None,
    id_field: str | None = "id",
    usable: Iterable[str] = USABLE_DEFAULT,
    use_n: bool = True,
    max_pending: int = 64,
    max_rounds: int = 3,
    abort_after_failures: int = 20,
    template_version: str = TEMPLATE_VERSION,
    progress: bool = False,
    retry_truncated: bool = False,
    on_progress: ProgressCallback | None = None,
) -> BuildReport:
    """Make sure every prompt has `k` usable teacher answers in `store`.

    `use_n` asks for all missing answers of a prompt in one request (`n`); without it, one
    request per answer (each committed as it arrives). A prompt whose answers come back empty,
    truncated or refused is asked again, up to `max_rounds` rounds per run. Answers already cut
    off at the role's `max_tokens` (or a higher limit, same teacher otherwise) fill their slots:
    a prompt whose usable plus truncated answers reach `k` is not asked again, unless truncated
    answers are `usable` or `retry_truncated` (a sampled model may finish next time, for a
    price). `role` must be the resolved role (real model name): its sampling settings and
    `system_prompt` make the fingerprint the answers are stored under.

    `on_progress(report)` is called once when `report.answers_needed` is known (before any
    request), then after every request, answered or failed (`answers_done`, `requests`,
    `failed_requests` up to date); it runs on the event loop, so it must be quick. `progress`
    shows the same on stderr (`ropd.progress.RunProgress`: a bar on a terminal, plain lines
    otherwise), besides `on_progress`.
    """
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    started = time.monotonic()
    records = list(records)
    if records and all(isinstance(r, PromptItem) for r in records):
        items: list[PromptItem] = records  # type: ignore[assignment]
    else:
        items = prompt_items(
            records,  # type: ignore[arg-type]
            prompt_field=prompt_field,
            system_prompt=system_prompt,
            system_field=system_field,
            id_field=id_field,
        )
    fingerprint = TeacherFingerprint.from_role(
        role, system_prompt=system_prompt, template_version=template_version
    )
    usable_set = frozenset(usable)
    report = BuildReport(prompts=len(items), k=k, max_tokens=fingerprint.max_tokens)
    todo: list[tuple[PromptItem, int]] = []
    for item, have, need in _plan(store, items, fingerprint, k, usable_set, retry_truncated):
        if have >= k:
            report.complete_before += 1
        elif need <= 0:
            report.skipped_truncated += 1
        else:
            todo.append((item, need))
    report.answers_needed = sum(need for _, need in todo)
    display: RunProgress | None = None
    if progress:
        from ropd.progress import RunProgress

        display = RunProgress(PROGRESS_LABEL, PROGRESS_UNIT)
        on_progress = _both(ReportProgress(display), on_progress)
    builder = _Builder(
        store, role, client, fingerprint, k, usable_set, use_n, max_rounds,
        abort_after_failures, report, on_progress, retry_truncated,
    )  # fmt: skip
    queue = iter(todo)

    async def worker() -> None:
        for item, need in queue:  # a shared iterator: each prompt goes to exactly one worker
            await builder.fill(item, need)

    try:
        builder.progressed()
        workers = [asyncio.create_task(worker()) for _ in range(min(max_pending, len(todo)))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
    finally:
        if display is not None:
            display.close()
        report.wall_s = time.monotonic() - started
    _record_shortfalls(report, store, items, fingerprint, usable_set)
    return report


def _both(first: ProgressCallback, second: ProgressCallback | None) -> ProgressCallback:
    if second is None:
        return first

    def both(report: BuildReport) -> None:
        first(report)
        second(report)

    return both


def _plan(
    store: TeacherStore,
    items: Sequence[PromptItem],
    fingerprint: TeacherFingerprint,
    k: int,
    usable: frozenset[str],
    retry_truncated: bool = False,
) -> list[tuple[PromptItem, int, int]]:
    """(item, usable answers it has, answers to ask for) per prompt.

    Answers already cut off at this limit or a higher one fill their slots (asking again would
    mostly pay for the same truncation), unless truncated answers are usable anyway or
    `retry_truncated` asks for them again.
    """
    keys = [i.key for i in items]
    counts = store.usable_counts(keys, fingerprint, usable)
    skip_cut = "truncated" in usable or retry_truncated
    cut = {} if skip_cut else store.truncations(keys, fingerprint)
    plan = []
    for item in items:
        truncated = cut[item.key].count if item.key in cut else 0
        have = counts[item.key]
        plan.append((item, have, max(0, k - have - truncated) if have < k else 0))
    return plan


def answers_needed(
    store: TeacherStore,
    items: Sequence[PromptItem],
    fingerprint: TeacherFingerprint,
    k: int,
    usable: Iterable[str] = USABLE_DEFAULT,
    *,
    retry_truncated: bool = False,
) -> int:
    """How many answers a build with these settings would ask for first (a progress total).

    The same rule the build follows: missing usable answers, less those already cut off at
    this `max_tokens` (or a higher one).
    """
    plan = _plan(store, items, fingerprint, k, frozenset(usable), retry_truncated)
    return sum(need for _, _, need in plan)


def _record_shortfalls(
    report: BuildReport,
    store: TeacherStore,
    items: Sequence[PromptItem],
    fingerprint: TeacherFingerprint,
    usable: frozenset[str],
) -> None:
    """Which prompts are short of K after the run, and which of them only by truncation.

    Read back from the store rather than tallied per request, so answers another writer added
    meanwhile count, and the verdict is the one the next run will act on.
    """
    k = report.k
    keys = [i.key for i in items]
    counts = store.usable_counts(keys, fingerprint, usable)
    short = [i for i in items if counts[i.key] < k]
    cut = {} if "truncated" in usable else store.truncations([i.key for i in short], fingerprint)
    for item in short:
        report.incomplete.append(item.record_id)
        if counts[item.key] == 0:
            report.without_usable.append(item.record_id)
        truncation = cut.get(item.key)
        if truncation is not None and counts[item.key] + truncation.count >= k:
            report.short_by_truncation.append(item.record_id)
            limits = [m for m in (report.truncated_at, truncation.max_tokens) if m is not None]
            report.truncated_at = max(limits) if limits else None


def build_store(
    items: Sequence[PromptItem],
    store_path: str | Path,
    role: RoleConfig,
    k: int,
    *,
    limits: LimitsConfig | None = None,
    client: ChatClient | None = None,
    probe: bool = True,
    on_progress: ProgressCallback | None = None,
    **options: Any,
) -> BuildReport:
    """`build_references` into the store at `store_path`, opening the teacher here.

    The role's endpoint (or the embedded model when it has no `base_url`) is opened and closed
    around the build; with `probe` a remote endpoint is checked once first (unreachable, key
    rejected, model not served fail before any prompt is sent). `client` builds through another
    `ChatClient` instead (tests). Unset key variables fail before any request. `on_progress` and
    `options` are `build_references`' keyword options.
    """
    from ropd.run_config import RunConfig
    from ropd.session import Session

    run_config = RunConfig(
        teacher=TeacherConfig(store=Path(store_path), role=role),
        limits=limits or LimitsConfig(),
        probe=probe and client is None,
    )

    async def run() -> BuildReport:
        # one session: the store locked and opened for writing, the key checked, the teacher's
        # endpoint (or the embedded model) opened and probed
        teacher = run_config.teacher.role  # named `teacher`
        opening = Session.open(run_config, client, roles=[teacher], teacher="write")
        async with opening as session:
            return await build_references(
                items,
                session.teacher_store,
                session.role("teacher"),
                session.client,
                k,
                on_progress=on_progress,
                **options,
            )

    return asyncio.run(run())


def build_missing(
    teacher: TeacherConfig,
    prompts: Sequence[tuple[str, Prompt]],
    limits: LimitsConfig,
    k: int,
    *,
    system_prompt: str | None = None,
    client: Any = None,
) -> Any:
    """Generate and store the missing teacher answers of `(id, prompt)` pairs (resumable).

    `client` scores through another `ChatClient` (tests); by default the teacher's endpoint (or
    the embedded model) is opened and closed here. The store is locked for the build, as by
    `ropd teacher build`: a second build of the same store refuses at once, naming the holder.
    """
    items = [PromptItem(prompt_key(messages), messages, pid) for pid, messages in prompts]
    store = Path(teacher.store)  # type: ignore[arg-type]
    report = build_store(  # locks the store (its session), as `ropd teacher build` does
        items,
        store,
        teacher.role,
        k,
        limits=limits,
        client=client,
        system_prompt=system_prompt,
        progress=True,
    )
    log.info("teacher answers built: %s", report.as_dict())
    note = report.truncation_note(setting=TRAIN_MAX_TOKENS_SETTING)  # a train user's setting
    if note:
        log.warning("%s", note)
    return report
