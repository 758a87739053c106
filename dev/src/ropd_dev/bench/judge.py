"""`ropd bench judge`: how close a batch of groups gets to two judge latencies, and at what CPU.

A stub endpoint in its own process (`testing/async_stub.py`, one event loop, so the stub's own
CPU stays small) answers every Rubricator and Verifier request after a fixed latency L. B groups
(G student + K teacher answers each) go through the real chat client and the real group scorer.
With enough allowed concurrency the batch needs one round of Rubricator calls and one round of
Verifier calls, so the critical path is 2·L; `ratio` = wall time / critical path. What is left
above it is the client's CPU: replies of a round arrive together and are handled one after
another, so wall ≈ 2·L + B · `client_cpu_ms_per_group` on one core.

Before the timed batch the same client scores a batch as large at the same latency, so the
timed one finds its connections open, as every batch of a training run but the first does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import typer

from ropd.llm.client import OpenAIChatClient
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.reward.config import ScorerConfig
from ropd.reward.group_scorer import GroupScorer
from ropd.reward.types import Group
from ropd.testing.stub_server import STUB_MODEL

TRANSPORTS = ("aiohttp", "openai")


def synthetic_groups(count: int, group_size: int, teacher_refs: int, tag: str = "") -> list[Group]:
    """Distinct groups of distinct answers (so nothing is deduplicated away)."""
    groups = []
    for g in range(count):
        a, b = 17 + g, 23 + 2 * g
        groups.append(
            Group(
                id=f"bench{tag}-{g}",
                prompt=f"What is {a} * {b}? Show your work and give the final answer.{tag}",
                student_responses=[
                    f"Attempt {i}: {a} * {b} = {a * b + (i % 3) * (i - 1)}. "
                    f"I multiplied {a} by {b} step by step (variant {i}).{tag}"
                    for i in range(group_size)
                ],
                teacher_responses=[
                    f"Reference {j}: {a} * {b} = {a} * {b - 3} + {a} * 3 = {a * b}. "
                    f"The answer is {a * b}.{tag}"
                    for j in range(teacher_refs)
                ],
            )
        )
    return groups


class StubProcess:
    """`python -m ropd.testing.async_stub` on a free port, stopped on exit; `/stats` read back."""

    def __init__(self, latency_s: float) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        command = [sys.executable, "-m", "ropd.testing.async_stub"]
        command += ["--port", str(self.port), "--latency", str(latency_s)]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.stats()
                return
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the stub judge process did not start") from None
                time.sleep(0.05)

    def stats(self) -> dict[str, float]:
        url = f"http://127.0.0.1:{self.port}/stats"
        with urllib.request.urlopen(url, timeout=5) as reply:
            return dict(json.load(reply))

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()


@contextlib.contextmanager
def stub_process(latency_s: float) -> Iterator[StubProcess]:
    stub = StubProcess(latency_s)
    try:
        yield stub
    finally:
        stub.stop()


async def run_judge_bench(
    latency_s: float = 1.0,
    groups: int = 32,
    group_size: int = 8,
    teacher_refs: int = 4,
    max_in_flight: int | None = None,
    warmup: bool = True,
    baseline: bool | None = None,
    transport: str = "aiohttp",
    stub: StubProcess | None = None,
) -> dict[str, Any]:
    """Score `groups` synthetic groups against the stub endpoint; return the figures.

    `max_in_flight` defaults to `LimitsConfig`'s default (the documented setting); `baseline`
    (scoring 4 groups at a time, as the public reference does) defaults to on up to 64 groups.
    """
    if stub is None:
        with stub_process(latency_s) as own:
            return await run_judge_bench(
                latency_s, groups, group_size, teacher_refs, max_in_flight, warmup, baseline,
                transport, own,
            )  # fmt: skip
    limits = LimitsConfig(http_transport=transport)  # type: ignore[arg-type]
    if max_in_flight is not None:
        limits = limits.model_copy(update={"max_in_flight": max_in_flight})
    batch = synthetic_groups(groups, group_size, teacher_refs)
    role = RoleConfig(base_url=stub.base_url, model=STUB_MODEL)
    config = ScorerConfig(rubricator=role, verifier=role, num_teacher_refs=teacher_refs)
    async with OpenAIChatClient(limits) as client:
        scorer = GroupScorer(config, client)
        if warmup:  # opens the connections and pays one-off costs outside the timed batch
            await scorer.score_groups(synthetic_groups(groups, group_size, teacher_refs, "w"))
            client.usage.roles.clear()
            client.max_in_flight_seen = 0
        before = stub.stats()
        cpu, started = time.process_time(), time.perf_counter()
        results = await scorer.score_groups(batch)
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
        after = stub.stats()
    baseline_wall = None
    if baseline if baseline is not None else groups <= 64:
        async with OpenAIChatClient(limits) as other:
            four = GroupScorer(config, other)
            started = time.perf_counter()
            for start in range(0, len(batch), 4):
                await four.score_groups(batch[start : start + 4])
            baseline_wall = time.perf_counter() - started
    critical = 2 * latency_s
    usage = client.usage
    requests = after["requests"] - before["requests"]
    return {
        "wall_s": round(wall, 3),
        "critical_path_s": round(critical, 3),
        "ratio": round(wall / critical, 3) if critical > 0 else None,
        "client_cpu_ms_per_group": round(1000 * cpu / groups, 3),
        "stub_cpu_ms_per_request": round(1000 * (after["cpu_s"] - before["cpu_s"]) / requests, 3)
        if requests
        else None,
        "calls": {name: totals.calls for name, totals in sorted(usage.roles.items())},
        "tokens": usage.total_tokens,
        "tokens_by_role": {
            name: {"prompt": t.prompt_tokens, "completion": t.completion_tokens}
            for name, t in sorted(usage.roles.items())
        },
        "max_in_flight": client.max_in_flight_seen,
        "server_max_concurrent": after["max_concurrent"],
        "retries": sum(client.retries.values()),
        "groups": groups,
        "failed_groups": sum(1 for r in results if r.failed),
        "group_size": group_size,
        "teacher_refs": teacher_refs,
        "latency_s": latency_s,
        "max_in_flight_limit": limits.max_in_flight,
        "transport": transport,
        "warmup": warmup,
        "four_groups_at_a_time_wall_s": round(baseline_wall, 3) if baseline_wall else None,
        "speedup_vs_four_at_a_time": round(baseline_wall / wall, 2) if baseline_wall else None,
    }


async def compare_transports(
    latency_s: float, sizes: list[int], transports: list[str], **options: Any
) -> list[dict[str, Any]]:
    """Every (size, transport) against one stub process, side by side in one run."""
    rows = []
    with stub_process(latency_s) as stub:
        for groups in sizes:
            for transport in transports:
                rows.append(
                    await run_judge_bench(
                        latency_s, groups, transport=transport, stub=stub, **options
                    )
                )
    return rows


def _csv(value: str, cast: type) -> list[Any]:
    try:
        return [cast(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"a comma-separated list (got {value!r})") from None


def register(bench_app: typer.Typer) -> None:
    """Add `ropd bench judge`."""

    @bench_app.command("judge")
    def bench_judge(
        latency: float = typer.Option(1.0, "--latency", min=0.0, help="stub latency L (s)"),
        groups: str = typer.Option(
            "32", "--groups", help="groups in the batch (B); several, e.g. 32,256,1024"
        ),
        group_size: int = typer.Option(8, "--group-size", min=1, help="student answers (G)"),
        teacher_refs: int = typer.Option(4, "--teacher-refs", min=0, help="teacher answers (K)"),
        max_in_flight: int | None = typer.Option(
            None, "--max-in-flight", min=1, help="in-flight limit (default: ropd's default)"
        ),
        transport: str = typer.Option(
            "aiohttp",
            "--transport",
            help="how requests are sent: aiohttp, openai (the SDK's httpx stack), or both: aiohttp,openai",
        ),
        warmup: bool = typer.Option(
            True, "--warmup/--no-warmup", help="score a batch as large first (opens connections)"
        ),
        baseline: bool | None = typer.Option(
            None,
            "--baseline/--no-baseline",
            help="also time the batch scored 4 groups at a time (the reference's scheduling); "
            "default: up to 64 groups",
        ),
        context_window: int | None = typer.Option(
            None,
            "--context",
            min=256,
            help="stub context window W (tokens): run the long-answer benchmark instead, with "
            "the window declared and then undeclared",
        ),
        answer_tokens: int = typer.Option(
            8192, "--answer-tokens", min=1, help="tokens per answer with --context"
        ),
        health_checks: float | None = typer.Option(
            None,
            "--health-checks",
            min=0.0,
            max=1.0,
            help="run the reward-health checks benchmark instead: the batch with the stability "
            "and audit checks off and at this share, alternately (wall-time ratio of medians)",
        ),
        repeats: int = typer.Option(
            5, "--repeats", min=1, help="repetitions of each arm with --health-checks"
        ),
    ) -> None:
        """Score B groups against a fixed-latency stub judge; one JSON line per run."""
        sizes = _csv(groups, int)
        if health_checks is not None:
            from ropd_dev.bench.health import run_health_bench

            figures = asyncio.run(
                run_health_bench(
                    health_checks, latency, sizes[0], group_size, teacher_refs, repeats,
                    max_in_flight,
                )
            )  # fmt: skip
            typer.echo(json.dumps(figures))
            return
        if context_window is not None:
            from ropd_dev.bench.context import run_context_bench

            figures = asyncio.run(
                run_context_bench(
                    context=context_window,
                    answer_tokens=answer_tokens,
                    groups=sizes[0],
                    group_size=group_size,
                    teacher_refs=teacher_refs,
                    latency_s=latency,
                    max_in_flight=max_in_flight or LimitsConfig().max_in_flight,
                )
            )
            typer.echo(json.dumps(figures))
            return
        transports = _csv(transport, str)
        if unknown := set(transports) - set(TRANSPORTS):
            raise typer.BadParameter(f"--transport: unknown {sorted(unknown)}")
        rows = asyncio.run(
            compare_transports(
                latency, sizes, transports, group_size=group_size, teacher_refs=teacher_refs,
                max_in_flight=max_in_flight, warmup=warmup, baseline=baseline,
            )
        )  # fmt: skip
        for row in rows:
            typer.echo(json.dumps(row))
