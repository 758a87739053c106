"""One evaluation run: load tasks, generate what is missing, score, summarise.

Generation and scoring are separate phases over `samples.jsonl`: a sample is written as soon as
it is generated and again once scored, so an interrupted run (or a grader outage) is resumed
without regenerating anything that was already written.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

import ropd
from ropd.eval.generate import Generation, Generator, Request, with_system_prompt
from ropd.eval.items import load_items
from ropd.eval.scoring.ifeval import check_available, score_ifeval
from ropd.eval.scoring.math import score_math
from ropd.eval.scoring.mcq import score_mcq
from ropd.eval.scoring.rubric import score_rubric
from ropd.eval.store import SampleStore
from ropd.eval.summary import summarize_task, write_summary
from ropd.eval.tasks import TaskSpec
from ropd.eval.types import (
    EvalError,
    EvalItem,
    GenerationSettings,
    SampleScore,
    SamplesFailedError,
)
from ropd.llm.config import RoleConfig
from ropd.llm.types import ChatClient

SAMPLES_FILE = "samples.jsonl"


@dataclass
class Grader:
    """The LLM that grades rubric tasks (HealthBench), through the project's chat client."""

    client: ChatClient
    role: RoleConfig


@dataclass
class RunResult:
    """What one run did; `summary` is what `summary.json` says about every task."""

    out_dir: Path
    summary: dict[str, Any]
    generated: int = 0
    reused: int = 0
    scored: int = 0
    failed: list[str] = field(default_factory=list)  # one message per failed request
    tasks: list[str] = field(default_factory=list)  # this run's (the summary may keep older ones)

    def totals(self) -> dict[str, int]:
        """Samples wanted, and how many failed to generate or to be graded, over this run."""
        by_name = self.summary.get("tasks", {})
        tasks = [by_name[name] for name in self.tasks if name in by_name]
        return {
            "expected": sum(t["n"] * t["items"] for t in tasks),
            "failed": sum(t["failed"] for t in tasks),
            "failed_generation": sum(t["failed_generation"] for t in tasks),
            "failed_grading": sum(t["failed_grading"] for t in tasks),
        }

    def check(self) -> None:
        """Raise `SamplesFailedError` when any sample has no score: the numbers are partial."""
        totals = self.totals()
        if not totals["failed"]:
            return
        causes = (
            f"{totals['failed_generation']} could not be generated, "
            f"{totals['failed_grading']} could not be graded"
        )
        first = f"; first error: {self.failed[0]}" if self.failed else ""
        if totals["failed"] == totals["expected"]:
            raise SamplesFailedError(
                f"all {totals['expected']} samples failed ({causes}){first}; nothing was "
                "scored, so there is no result: fix the endpoint or model and run again"
            )
        raise SamplesFailedError(
            f"{totals['failed']} of {totals['expected']} samples failed ({causes}){first}; "
            "pass@1 covers only the scored ones. Re-run the same command to retry them; "
            "finished samples are kept"
        )


def prepare(
    specs: list[TaskSpec], *, limit: int | None = None, seed: int = 0
) -> list[tuple[TaskSpec, list[EvalItem]]]:
    """Load and validate every task before any model time is spent."""
    if any(s.family == "ifeval" for s in specs):
        check_available()
    return [(spec, load_items(spec, limit=limit, seed=seed)) for spec in specs]


@contextmanager
def _progress(console: Console | None) -> Iterator[Progress]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console or Console(stderr=True),
        transient=False,
    )
    with progress:
        yield progress


async def run_eval(
    tasks: list[tuple[TaskSpec, list[EvalItem]]],
    generator: Generator,
    settings: GenerationSettings,
    out_dir: Path,
    *,
    grader: Grader | None = None,
    console: Console | None = None,
    limit: int | None = None,
) -> RunResult:
    """Generate, score and summarise `tasks` into `out_dir`; re-use finished samples.

    `limit` is only recorded (the items were already cut by `prepare`), so that a summary of a
    quick look is never mistaken for a full run. Failed samples are counted in the summary,
    not raised: call `RunResult.check()` to turn them into an error.
    """
    if any(spec.family == "rubric" for spec, _ in tasks) and grader is None:
        raise EvalError("rubric tasks need a grader model (--grader-model / --grader-base-url)")
    out_dir.mkdir(parents=True, exist_ok=True)
    gen_key = settings.key(generator.fingerprint)
    store = SampleStore(out_dir / SAMPLES_FILE)
    result = RunResult(out_dir=out_dir, summary={}, tasks=[spec.name for spec, _ in tasks])
    items_by_key = {
        (spec.name, item.item_id): (spec, item) for spec, items in tasks for item in items
    }
    try:
        requests, result.reused = _missing(tasks, settings, gen_key, store)
        with _progress(console) as progress:
            total = sum(r.count for r in requests)
            short = Path(generator.model).name or generator.model
            bar = progress.add_task(f"generating ({short})", total=total)

            def on_result(request: Request, outcome: list[Generation] | Exception) -> None:
                task_name, item_id, first = _parse_request_key(request.key)
                if isinstance(outcome, Exception):
                    result.failed.append(f"{task_name}/{item_id}: {outcome}")
                else:
                    for offset, generation in enumerate(outcome):
                        store.put(
                            _sample_record(
                                items_by_key[(task_name, item_id)],
                                first + offset,
                                gen_key,
                                generator,
                                generation,
                                settings,
                            )
                        )
                    result.generated += len(outcome)
                progress.advance(bar, request.count)

            if requests:
                await generator.generate(requests, settings, on_result)
            result.scored = await _score_pending(
                store, items_by_key, gen_key, settings.n, grader, progress
            )
        _add_prompt_and_gold(store, items_by_key, gen_key, settings)
        result.summary = _summary(tasks, store, gen_key, generator, settings, grader, limit)
        write_summary(out_dir, result.summary)
    finally:
        store.compact()
    return result


def _request_key(task: str, item_id: str, first: int) -> str:
    return f"{task}\x1f{item_id}\x1f{first}"


def _parse_request_key(key: str) -> tuple[str, str, int]:
    task, item_id, first = key.split("\x1f")
    return task, item_id, int(first)


def _missing(
    tasks: list[tuple[TaskSpec, list[EvalItem]]],
    settings: GenerationSettings,
    gen_key: str,
    store: SampleStore,
) -> tuple[list[Request], int]:
    """One request per item for the sample indices not generated yet (contiguous tail)."""
    requests: list[Request] = []
    reused = 0
    for spec, items in tasks:
        for item in items:
            done = {
                i
                for i in range(settings.n)
                if store.get((spec.name, item.item_id, i, gen_key)) is not None
            }
            reused += len(done)
            todo = [i for i in range(settings.n) if i not in done]
            # Group the missing indices into runs so each request fills consecutive slots.
            start = 0
            while start < len(todo):
                end = start
                while end + 1 < len(todo) and todo[end + 1] == todo[end] + 1:
                    end += 1
                requests.append(
                    Request(
                        _request_key(spec.name, item.item_id, todo[start]),
                        item.messages,
                        end - start + 1,
                    )
                )
                start = end + 1
    return requests, reused


def gold(family: str, item: EvalItem) -> Any:
    """What the scorer compares a completion with: the answer, the letter, the checks, the rubric."""
    target = item.target
    if family == "math":
        return target["answer"]
    if family == "mcq":
        return target["correct"]
    if family == "ifeval":
        return {"instruction_id_list": target["instruction_id_list"], "kwargs": target["kwargs"]}
    return target["rubrics"]


def _prompt_and_gold(
    spec: TaskSpec, item: EvalItem, settings: GenerationSettings
) -> dict[str, Any]:
    # The messages as sent (system prompt included), so a sample can be checked by eye.
    return {
        "prompt": with_system_prompt(item.messages, settings.system_prompt),
        "gold": gold(spec.family, item),
    }


def _sample_record(
    task_item: tuple[TaskSpec, EvalItem],
    index: int,
    gen_key: str,
    generator: Generator,
    gen: Generation,
    settings: GenerationSettings,
) -> dict[str, Any]:
    spec, item = task_item
    return {
        "task": spec.name,
        "item_id": item.item_id,
        "sample_index": index,
        "gen_key": gen_key,
        "model": generator.model,
        **_prompt_and_gold(spec, item, settings),
        "completion": gen.text,
        "finish_reason": gen.finish_reason,
        "completion_tokens": gen.completion_tokens,
        "score": None,
        "details": {},
        "error": None,
        "created_at": _now(),
    }


def _add_prompt_and_gold(
    store: SampleStore,
    items_by_key: dict[tuple[str, str], tuple[TaskSpec, EvalItem]],
    gen_key: str,
    settings: GenerationSettings,
) -> None:
    """Give samples written by older versions their prompt and gold (in memory; compacted)."""
    for record in store.records.values():
        task_item = items_by_key.get((record["task"], record["item_id"]))
        if record["gen_key"] == gen_key and task_item is not None and "gold" not in record:
            record.update(_prompt_and_gold(*task_item, settings))


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def score_sync(family: str, item: EvalItem, completion: str) -> SampleScore:
    """Score one completion with a programmatic scorer (math, mcq, ifeval)."""
    target = item.target
    if family == "math":
        return score_math(completion, target["answer"])
    if family == "mcq":
        return score_mcq(completion, target["correct"], target["letters"])
    if family == "ifeval":
        return score_ifeval(completion, target)
    raise ValueError(f"no programmatic scorer for family {family!r}")


async def _score_pending(
    store: SampleStore,
    items_by_key: dict[tuple[str, str], tuple[TaskSpec, EvalItem]],
    gen_key: str,
    n: int,
    grader: Grader | None,
    progress: Progress,
) -> int:
    """Score every generated sample of this run that has no score yet."""
    pending = [
        (record, *items_by_key[(record["task"], record["item_id"])])
        for record in list(store.records.values())
        if record["gen_key"] == gen_key
        and record.get("score") is None
        and (record["task"], record["item_id"]) in items_by_key
        and record["sample_index"] < n
    ]
    if not pending:
        return 0
    bar = progress.add_task("scoring", total=len(pending))
    rubric = []
    for record, spec, item in pending:
        if spec.family == "rubric":
            rubric.append((record, item))
            continue
        # Programmatic scorers run here, in the main thread (math-verify's timeout needs it).
        _store_score(store, record, score_sync(spec.family, item, record["completion"]))
        progress.advance(bar)

    async def grade(record: dict[str, Any], item: EvalItem) -> None:
        assert grader is not None
        outcome = await score_rubric(
            grader.client, grader.role, item.messages, record["completion"], item.target["rubrics"]
        )
        _store_score(store, record, outcome)
        progress.advance(bar)

    if rubric:
        await asyncio.gather(*(grade(record, item) for record, item in rubric))
    return len(pending)


def _store_score(store: SampleStore, record: dict[str, Any], outcome: SampleScore) -> None:
    store.put(
        {
            **record,
            "score": outcome.score,
            "details": outcome.details,
            "error": outcome.error,
            "scored_at": _now(),
        }
    )


def _summary(
    tasks: list[tuple[TaskSpec, list[EvalItem]]],
    store: SampleStore,
    gen_key: str,
    generator: Generator,
    settings: GenerationSettings,
    grader: Grader | None,
    limit: int | None,
) -> dict[str, Any]:
    per_task: dict[str, Any] = {}
    for spec, items in tasks:
        records = [
            r
            for item in items
            for i in range(settings.n)
            if (r := store.get((spec.name, item.item_id, i, gen_key))) is not None
        ]
        per_task[spec.name] = summarize_task(
            spec.name, spec.family, spec.source, records, settings.n, len(items), limit=limit
        )
    uses_grader = grader is not None and any(s.family == "rubric" for s, _ in tasks)
    grader_model = grader.role.model if uses_grader and grader else None
    return {
        "model": generator.model,
        "model_fingerprint": generator.fingerprint,
        "backend": generator.backend,
        # Every setting that shapes the numbers, under the flags' names: `compare` checks them.
        "settings": {
            "model": generator.model,
            "backend": generator.backend,
            **generator.describe(),
            **settings.record(),
            "limit": limit,
            "grader": grader_model,
            "grader_max_tokens": grader.role.max_tokens if grader_model and grader else None,
        },
        "generation": settings.model_dump(),  # the same, as GenerationSettings (older readers)
        "generation_key": gen_key,
        "grader": grader_model,
        "ropd_version": ropd.__version__,
        "created_at": _now(),
        "tasks": per_task,
    }
