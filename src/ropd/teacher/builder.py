"""Build the offline teacher store: K answers per prompt, resumable and loss-free.

Every answer is committed the moment its request returns, so a killed build (even SIGKILL) loses
at most the requests in flight; running the same build again asks only for what is missing
(prompts with fewer than K usable answers are topped up). Concurrency is bounded by a fixed number
of prompts in progress, so memory stays flat however large the dataset; the chat client enforces
the in-flight and rate limits.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ropd.data.records import Record, record_id, to_prompt_messages
from ropd.errors import InputError, JudgeError, JudgeUnavailable
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.llm.types import ChatClient, Completion
from ropd.teacher.fingerprint import TEMPLATE_VERSION, TeacherFingerprint, prompt_key
from ropd.teacher.status import USABLE_DEFAULT, classify
from ropd.teacher.store import TeacherStore

MAX_ERRORS_KEPT = 20


class BuildAborted(JudgeError):
    """Too many requests failed in a row (endpoint down, bad key...); finished work is kept."""


@dataclass(frozen=True)
class PromptItem:
    key: str
    messages: list[dict[str, Any]]
    record_id: str


@dataclass
class BuildReport:
    """What one build run did (answers already in the store before the run are not counted)."""

    prompts: int = 0
    complete_before: int = 0
    answers_needed: int = 0
    requests: int = 0
    failed_requests: int = 0
    answers_stored: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    incomplete: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    request_done_at: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompts": self.prompts,
            "complete_before": self.complete_before,
            "answers_needed": self.answers_needed,
            "requests": self.requests,
            "failed_requests": self.failed_requests,
            "answers_stored": self.answers_stored,
            "by_status": dict(self.by_status),
            "incomplete": len(self.incomplete),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "wall_s": round(self.wall_s, 3),
            "errors": self.errors[:5],
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


class _Progress:
    """A rich progress bar over answers still needed (with ETA); silent when disabled."""

    def __init__(self, enabled: bool, total: int) -> None:
        self._bar = None
        if enabled and total:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("teacher answers"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                transient=False,
            )
            self._task = self._bar.add_task("build", total=total, info="")
            self._bar.start()

    def advance(self, usable: int, report: BuildReport) -> None:
        if self._bar is not None:
            info = f"requests {report.requests} failed {report.failed_requests}"
            self._bar.update(self._task, advance=usable, info=info)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


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
        progress: _Progress,
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
        self.progress = progress
        self.failures_in_a_row = 0

    async def _request(self, item: PromptItem, n: int) -> int | None:
        """One chat request; its answers are committed before returning. Usable count or None."""
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
        usable = 0
        for completion in completions:
            status = classify(completion.text, completion.finish_reason)
            self.report.by_status[status] += 1
            self.report.prompt_tokens += completion.prompt_tokens
            self.report.completion_tokens += completion.completion_tokens
            usable += status in self.usable
        self.report.answers_stored += len(completions)
        self.progress.advance(min(usable, self.k), self.report)
        return usable

    async def fill(self, item: PromptItem, have: int) -> None:
        """Ask for the missing answers; top up rounds replace unusable ones."""
        need = self.k - have
        for _ in range(self.max_rounds):
            sizes = [need] if self.use_n else [1] * need
            results = await asyncio.gather(*(self._request(item, n) for n in sizes))
            need -= sum(r for r in results if r is not None)
            if need <= 0 or any(r is None for r in results):
                break
        if need > 0:
            self.report.incomplete.append(item.record_id)


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
) -> BuildReport:
    """Make sure every prompt has `k` usable teacher answers in `store`.

    `use_n` asks for all missing answers of a prompt in one request (`n`); without it, one
    request per answer (each committed as it arrives). A prompt whose answers come back empty,
    truncated or refused is asked again, up to `max_rounds` rounds per run. `role` must be the
    resolved role (real model name): its sampling settings and `system_prompt` make the
    fingerprint the answers are stored under.
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
    counts = store.usable_counts([i.key for i in items], fingerprint, usable_set)
    todo = [(item, counts[item.key]) for item in items if counts[item.key] < k]
    report = BuildReport(prompts=len(items), complete_before=len(items) - len(todo))
    report.answers_needed = sum(k - have for _, have in todo)
    bar = _Progress(progress, report.answers_needed)
    builder = _Builder(
        store, role, client, fingerprint, k, usable_set, use_n, max_rounds,
        abort_after_failures, report, bar,
    )  # fmt: skip
    queue = iter(todo)

    async def worker() -> None:
        for item, have in queue:  # a shared iterator: each prompt goes to exactly one worker
            await builder.fill(item, have)

    try:
        workers = [asyncio.create_task(worker()) for _ in range(min(max_pending, len(todo)))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
    finally:
        bar.close()
        report.wall_s = time.monotonic() - started
    return report


def build_store(
    items: Sequence[PromptItem],
    store_path: str | Path,
    role: RoleConfig,
    k: int,
    *,
    limits: LimitsConfig | None = None,
    client: ChatClient | None = None,
    **options: Any,
) -> BuildReport:
    """`build_references` into the store at `store_path`, opening the teacher here.

    The role's endpoint (or the embedded model when it has no `base_url`) is opened and closed
    around the build; `client` builds through another `ChatClient` instead (tests). Unset key
    variables fail before any request. `options` are `build_references`' keyword options.
    """
    role.check_api_key()

    async def run() -> BuildReport:
        async with AsyncExitStack() as stack:
            chat, resolved = client, role
            if chat is None:
                from ropd.llm.client import open_chat_client

                chat, roles = await stack.enter_async_context(open_chat_client([role], limits))
                resolved = roles[0]
            store = stack.enter_context(TeacherStore(store_path))
            return await build_references(items, store, resolved, chat, k, **options)

    return asyncio.run(run())
