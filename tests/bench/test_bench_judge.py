"""`ropd bench judge` on a tiny batch: the real client and scorer against the stub endpoint."""

from __future__ import annotations

import json

from ropd_dev.bench.judge import run_judge_bench, synthetic_groups
from typer.testing import CliRunner

from ropd.cli import app

KEYS = {
    "wall_s",
    "critical_path_s",
    "ratio",
    "calls",
    "tokens",
    "max_in_flight",
    "client_cpu_ms_per_group",
    "stub_cpu_ms_per_request",
}


async def test_bench_function_scores_every_group_concurrently():
    figures = await run_judge_bench(
        latency_s=0.2, groups=4, group_size=3, teacher_refs=2, max_in_flight=64
    )
    assert KEYS <= set(figures)
    assert figures["failed_groups"] == 0
    assert figures["calls"] == {"rubricator": 4, "verifier": 4}
    assert figures["critical_path_s"] == 0.4
    # at least the two latencies, and nowhere near the 4 x 2 of one group at a time
    assert 1.0 <= figures["ratio"] < 3.0
    assert figures["max_in_flight"] == 4 and figures["server_max_concurrent"] == 4
    assert figures["tokens"] > 0


def test_bench_command_prints_one_json_line():
    result = CliRunner().invoke(
        app, ["bench", "judge", "--latency", "0.05", "--groups", "3", "--group-size", "2"]
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1
    figures = json.loads(lines[0])
    assert KEYS <= set(figures)
    assert figures["calls"]["rubricator"] == 3 and figures["ratio"] >= 1.0


def test_transports_and_sizes_side_by_side_one_line_each():
    args = ["bench", "judge", "--latency", "0.05", "--groups", "2,3", "--group-size", "2"]
    result = CliRunner().invoke(app, [*args, "--transport", "aiohttp,openai", "--no-baseline"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines() if line.strip()]
    assert [(r["groups"], r["transport"]) for r in rows] == [
        (2, "aiohttp"),
        (2, "openai"),
        (3, "aiohttp"),
        (3, "openai"),
    ]
    assert all(r["failed_groups"] == 0 and r["client_cpu_ms_per_group"] > 0 for r in rows)
    assert all(r["calls"] == {"rubricator": r["groups"], "verifier": r["groups"]} for r in rows)


def test_synthetic_groups_have_distinct_answers():
    groups = synthetic_groups(5, 8, 4)
    assert len({g.id for g in groups}) == 5
    for group in groups:
        assert len(set(group.student_responses)) == 8
        assert len(group.teacher_responses) == 4
