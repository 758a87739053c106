"""`ropd bench judge --context W --answer-tokens T`: long answers against a judge's context window.

A stub endpoint refuses, with vLLM's HTTP 400, every prompt (plus `max_tokens`) over W tokens.
B groups of G student and K teacher answers of about T tokens each (as the stub counts them)
go through the real chat client and the real group scorer twice: with the window declared on
the roles (prompts sized before sending: no context error expected) and undeclared, with the
window not listed at `/models` either (ropd learns it from the first refusals and sends less).
Every group should be scored both times.
"""

from __future__ import annotations

import time
from typing import Any

from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.reward.config import ScorerConfig
from ropd.reward.group_scorer import GroupScorer
from ropd.reward.types import Group, GroupResult
from ropd.testing.stub_server import STUB_MODEL, StubJudgeServer

STUB_CHARS_PER_TOKEN = 4  # how the stub counts prompt tokens


def long_answer(label: str, final: str, tokens: int) -> str:
    """About `tokens` tokens (as the stub counts) of distinct working, the final answer last."""
    line = f"{label}: step by step, the partial product is checked once more. "
    body = (line * (tokens * STUB_CHARS_PER_TOKEN // len(line) + 1))[
        : tokens * STUB_CHARS_PER_TOKEN - len(final) - 1
    ]
    return f"{body}\n{final}"


def long_groups(count: int, group_size: int, teacher_refs: int, answer_tokens: int) -> list[Group]:
    """Distinct groups of distinct long answers (so nothing is deduplicated away)."""
    groups = []
    for g in range(count):
        a, b = 17 + g, 23 + 2 * g
        groups.append(
            Group(
                id=f"long-{g}",
                prompt=f"What is {a} * {b}? Show all your work and give the final answer.",
                student_responses=[
                    long_answer(
                        f"attempt {g}.{i}", f"The answer is {a * b + i % 3}.", answer_tokens
                    )
                    for i in range(group_size)
                ],
                teacher_responses=[
                    long_answer(f"reference {g}.{j}", f"The answer is {a * b}.", answer_tokens)
                    for j in range(teacher_refs)
                ],
            )
        )
    return groups


def _figures(results: list[GroupResult], stub: StubJudgeServer, wall_s: float) -> dict[str, Any]:
    contexts = [r.settings.get("context") or {} for r in results]
    verifier = [c.get("verifier") or {} for c in contexts]
    rubricator = [c.get("rubricator") or {} for c in contexts]
    chunks = [size for v in verifier for size in v.get("chunks") or []]
    stats = stub.stats()
    return {
        "groups": len(results),
        "scored": sum(1 for r in results if not r.failed),
        "failed": sum(1 for r in results if r.failed),
        "context_errors": stats["context_errors"],
        "resplits": sum(c.get("resplits", 0) for c in contexts),
        "verifier_calls": stats["calls"].get("ropd_verdicts", 0),
        "rubricator_calls": stats["calls"].get("ropd_rubric", 0),
        "answers_per_verifier_call": round(sum(chunks) / len(chunks), 2) if chunks else None,
        "rubricator_clipped_answers": sum(r.get("clipped_answers", 0) for r in rubricator),
        "verifier_clipped_answers": sum(v.get("clipped_answers", 0) for v in verifier),
        "window_sources": sorted({str(v.get("source")) for v in verifier}),
        "first_error": next((r.error for r in results if r.failed), None),
        "wall_s": round(wall_s, 3),
    }


async def run_context_bench(
    context: int = 32768,
    answer_tokens: int = 8192,
    groups: int = 32,
    group_size: int = 8,
    teacher_refs: int = 4,
    latency_s: float = 1.0,
    max_in_flight: int = 256,
) -> dict[str, Any]:
    """Score the batch with the window declared, then undeclared; return both runs' figures."""
    batch = long_groups(groups, group_size, teacher_refs, answer_tokens)
    runs = {}
    for name, declared in (("declared", context), ("undeclared", None)):
        with StubJudgeServer(latency_s, context_window=context, list_context_window=False) as stub:
            role = RoleConfig(base_url=stub.base_url, model=STUB_MODEL, context_window=declared)
            config = ScorerConfig(
                rubricator=role,
                verifier=role,
                num_teacher_refs=teacher_refs,
                max_answer_chars=(answer_tokens + 64) * STUB_CHARS_PER_TOKEN,  # no early clip
            )
            limits = LimitsConfig(max_in_flight=max_in_flight)
            async with GroupScorer.open(config, limits=limits) as scorer:
                started = time.perf_counter()
                results = await scorer.score_groups(batch)
                wall = time.perf_counter() - started
            runs[name] = _figures(results, stub, wall)
    return {
        "context": context,
        "answer_tokens": answer_tokens,
        "groups": groups,
        "group_size": group_size,
        "teacher_refs": teacher_refs,
        "latency_s": latency_s,
        "runs": runs,
    }
