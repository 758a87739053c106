"""`ropd bench judge`: how close a batch of groups gets to two judge latencies.

A stub endpoint answers every Rubricator and Verifier request after a fixed latency L. B groups
(G student + K teacher answers each) go through the real chat client and the real group scorer.
With enough allowed concurrency the batch needs one round of Rubricator calls and one round of
Verifier calls, so the critical path is 2·L; `ratio` = wall time / critical path.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import typer

from ropd.llm.client import OpenAIChatClient
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.reward.config import ScorerConfig
from ropd.reward.group_scorer import GroupScorer
from ropd.reward.types import Group
from ropd.testing.stub_server import STUB_MODEL, StubJudgeServer


def synthetic_groups(count: int, group_size: int, teacher_refs: int) -> list[Group]:
    """Distinct groups of distinct answers (so nothing is deduplicated away)."""
    groups = []
    for g in range(count):
        a, b = 17 + g, 23 + 2 * g
        groups.append(
            Group(
                id=f"bench-{g}",
                prompt=f"What is {a} * {b}? Show your work and give the final answer.",
                student_responses=[
                    f"Attempt {i}: {a} * {b} = {a * b + (i % 3) * (i - 1)}. "
                    f"I multiplied {a} by {b} step by step (variant {i})."
                    for i in range(group_size)
                ],
                teacher_responses=[
                    f"Reference {j}: {a} * {b} = {a} * {b - 3} + {a} * 3 = {a * b}. "
                    f"The answer is {a * b}."
                    for j in range(teacher_refs)
                ],
            )
        )
    return groups


async def run_judge_bench(
    latency_s: float = 1.0,
    groups: int = 32,
    group_size: int = 8,
    teacher_refs: int = 4,
    max_in_flight: int = 256,
    warmup: bool = True,
    baseline: bool = True,
) -> dict[str, Any]:
    """Score `groups` synthetic groups against the stub endpoint; return the figures."""
    batch = synthetic_groups(groups, group_size, teacher_refs)
    with StubJudgeServer(latency_s) as stub:
        role = RoleConfig(base_url=stub.base_url, model=STUB_MODEL)
        config = ScorerConfig(rubricator=role, verifier=role, num_teacher_refs=teacher_refs)
        if warmup:
            # Pay one-off costs (imports, first-use type caches) outside the timed batch: a
            # training run scores many batches, only the first one would pay them.
            stub.latency_s = 0.0
            async with OpenAIChatClient(LimitsConfig(max_in_flight=max_in_flight)) as client:
                await GroupScorer(config, client).score_groups(batch[:1])
            stub.latency_s = latency_s
            stub.reset_stats()
        async with OpenAIChatClient(LimitsConfig(max_in_flight=max_in_flight)) as client:
            scorer = GroupScorer(config, client)
            started = time.perf_counter()
            results = await scorer.score_groups(batch)
            wall = time.perf_counter() - started
        server = stub.stats()
        baseline_wall = None
        if baseline:
            # The same batch scheduled as the public reference implementation does: 4 groups at
            # a time, each waiting for its Rubricator and then its Verifier call.
            async with OpenAIChatClient(LimitsConfig(max_in_flight=max_in_flight)) as other:
                four = GroupScorer(config, other)
                started = time.perf_counter()
                for start in range(0, len(batch), 4):
                    await four.score_groups(batch[start : start + 4])
                baseline_wall = time.perf_counter() - started
    critical = 2 * latency_s
    usage = client.usage
    return {
        "wall_s": round(wall, 3),
        "critical_path_s": round(critical, 3),
        "ratio": round(wall / critical, 3) if critical > 0 else None,
        "calls": {name: totals.calls for name, totals in sorted(usage.roles.items())},
        "tokens": usage.total_tokens,
        "tokens_by_role": {
            name: {"prompt": t.prompt_tokens, "completion": t.completion_tokens}
            for name, t in sorted(usage.roles.items())
        },
        "max_in_flight": client.max_in_flight_seen,
        "server_max_concurrent": server["max_concurrent"],
        "retries": sum(client.retries.values()),
        "groups": groups,
        "failed_groups": sum(1 for r in results if r.failed),
        "group_size": group_size,
        "teacher_refs": teacher_refs,
        "latency_s": latency_s,
        "max_in_flight_limit": max_in_flight,
        "warmup": warmup,
        "four_groups_at_a_time_wall_s": round(baseline_wall, 3) if baseline_wall else None,
        "speedup_vs_four_at_a_time": round(baseline_wall / wall, 2) if baseline_wall else None,
    }


def register(bench_app: typer.Typer) -> None:
    """Add `ropd bench judge`."""

    @bench_app.command("judge")
    def bench_judge(
        latency: float = typer.Option(1.0, "--latency", min=0.0, help="stub latency L (s)"),
        groups: int = typer.Option(32, "--groups", min=1, help="groups in the batch (B)"),
        group_size: int = typer.Option(8, "--group-size", min=1, help="student answers (G)"),
        teacher_refs: int = typer.Option(4, "--teacher-refs", min=0, help="teacher answers (K)"),
        max_in_flight: int = typer.Option(256, "--max-in-flight", min=1),
        warmup: bool = typer.Option(
            True, "--warmup/--no-warmup", help="score one group at zero latency first"
        ),
        baseline: bool = typer.Option(
            True,
            "--baseline/--no-baseline",
            help="also time the batch scored 4 groups at a time (the reference's scheduling)",
        ),
    ) -> None:
        """Score B groups against a fixed-latency stub judge; print one JSON line."""
        figures = asyncio.run(
            run_judge_bench(
                latency, groups, group_size, teacher_refs, max_in_flight, warmup, baseline
            )
        )
        typer.echo(json.dumps(figures))
