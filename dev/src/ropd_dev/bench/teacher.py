"""`ropd bench teacher`: builder throughput under a requests-per-minute limit, and SIGKILL safety.

Phase 1 builds P prompts x K answers through the real client and store against the fixed-latency
stub endpoint, under an RPM limit. The client paces requests 60/rpm seconds apart (bursts of at
most one second's worth) inside a sliding 60-second window, so `rpm_fraction` is simply the
achieved rate over the whole build divided by the limit (1.0 = the quota is used fully), and
`max_requests_in_60s` shows the limit was never exceeded in any 60-second window.

Phase 2 runs `ropd teacher build` in a subprocess, SIGKILLs it once half the answers are stored,
runs it again, and counts answers lost (prompts short of K, or rows that vanished) and duplicated
(rows beyond K per prompt, or a repeated sample index).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ropd.data.records import load_records
from ropd.llm.config import LimitsConfig, RoleConfig


def write_prompts(path: Path, count: int) -> Path:
    """Distinct short prompts (the sample has only a few dozen)."""
    lines = [
        json.dumps({"id": f"b{i:04d}", "prompt": f"What is {i} + {i % 7 + 2}? Answer briefly."})
        for i in range(count)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def max_in_window(done_at: list[float], window_s: float = 60.0) -> int:
    """The most requests that arrived within any `window_s` seconds."""
    times = sorted(done_at)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


async def _rate_phase(
    data: Path, store_path: Path, stub: Any, k: int, rpm: float, max_in_flight: int
) -> dict[str, Any]:
    from ropd.llm.client import OpenAIChatClient
    from ropd.teacher.builder import build_references
    from ropd.teacher.store import TeacherStore

    role = RoleConfig(name="teacher", base_url=stub.base_url, model="stub", temperature=1.0)
    limits = LimitsConfig(max_in_flight=max_in_flight, requests_per_minute=rpm)
    async with OpenAIChatClient(limits) as client:
        with TeacherStore(store_path) as store:
            report = await build_references(load_records(data), store, role, client, k)
    rate = report.requests / report.wall_s * 60 if report.wall_s else None
    return {
        "requests": report.requests,
        "failed_requests": report.failed_requests,
        "answers": report.answers_stored,
        "wall_s": round(report.wall_s, 2),
        "achieved_rpm": round(rate, 1) if rate is not None else None,
        "max_requests_in_60s": max_in_window(stub.arrivals),
        "rpm_fraction": round(rate / rpm, 3) if rate is not None else None,
    }


def _rows(db: Path) -> list[tuple[str, str, int, str]]:
    try:
        with sqlite3.connect(db, timeout=10) as conn:
            return conn.execute(
                "SELECT prompt_key, fingerprint, sample_index, status FROM answers"
            ).fetchall()
    except sqlite3.OperationalError:
        return []


def _kill_phase(
    data: Path, db: Path, base_url: str, prompts: int, k: int, max_in_flight: int
) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "ropd", "teacher", "build", str(data), "--store", str(db),
        "-k", str(k), "--base-url", base_url, "--model", "stub",
        "--max-in-flight", str(max_in_flight), "--no-progress", "--json",
    ]  # fmt: skip
    started = time.monotonic()
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    target = prompts * k // 2
    while len(_rows(db)) < target:
        if process.poll() is not None:
            raise RuntimeError(f"build ended before the kill: {process.stderr.read().decode()}")  # type: ignore[union-attr]
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = _rows(db)
    resumed = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if resumed.returncode != 0:
        raise RuntimeError(f"resumed build failed: {resumed.stderr[-2000:]}")
    after = _rows(db)
    report = json.loads(resumed.stdout)
    ok: dict[str, int] = {}
    total: dict[str, int] = {}
    for key, _fp, _index, status in after:
        total[key] = total.get(key, 0) + 1
        ok[key] = ok.get(key, 0) + (status == "ok")
    slots = {(key, fp, index) for key, fp, index, _ in after}
    missing = sum(max(0, k - ok.get(key, 0)) for key in total) + k * (prompts - len(total))
    vanished = len({r[:3] for r in before} - slots)
    surplus = sum(max(0, n - k) for n in total.values())
    return {
        "killed_with_answers": len(before),
        "resume_requests": report["requests"],
        "final_answers": len(after),
        "lost": missing + vanished,
        "duplicated": surplus + (len(after) - len(slots)),
        "kill_resume_wall_s": round(time.monotonic() - started, 2),
    }


def run_bench(
    prompts: int, k: int, latency_s: float, rpm: float, max_in_flight: int
) -> dict[str, Any]:
    from ropd.testing import StubJudgeServer

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ropd-bench-teacher-") as tmp:
        folder = Path(tmp)
        data = write_prompts(folder / "prompts.jsonl", prompts)
        with StubJudgeServer(latency_s=latency_s) as stub:
            rate = asyncio.run(_rate_phase(data, folder / "rate.db", stub, k, rpm, max_in_flight))
            kill = _kill_phase(data, folder / "kill.db", stub.base_url, prompts, k, 8)
    return {
        "bench": "teacher",
        "prompts": prompts,
        "k": k,
        "latency_s": latency_s,
        "rpm_limit": rpm,
        **rate,
        **kill,
        "total_wall_s": round(time.monotonic() - started, 2),
    }


def register(bench_app: typer.Typer) -> None:
    """Add `ropd bench teacher`."""

    @bench_app.command("teacher")
    def bench_teacher(
        prompts: Annotated[int, typer.Option(help="Prompts to build answers for.")] = 256,
        k: Annotated[int, typer.Option("-k", help="Answers per prompt.")] = 4,
        latency: Annotated[float, typer.Option(help="Stub endpoint latency in seconds.")] = 0.2,
        rpm: Annotated[
            float, typer.Option(help="Requests-per-minute limit (below --prompts).")
        ] = 240,
        max_in_flight: Annotated[int, typer.Option(help="Requests in flight at once.")] = 32,
    ) -> None:
        """Builder rate under an RPM limit, then SIGKILL halfway and resume; one JSON line."""
        if rpm >= prompts:
            raise typer.BadParameter("--rpm must be below --prompts (one request per prompt)")
        print(json.dumps(run_bench(prompts, k, latency, rpm, max_in_flight)))
