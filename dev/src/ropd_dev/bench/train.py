"""`ropd bench train`: what the ROPD reward costs a training step, on a tiny random model.

Each arm runs in its own subprocess (so peak RSS is per arm) with the identical harness: the same
model, data, TRL settings and imports; only the reward function differs — a constant reward, the
ROPD reward against a zero-latency stub judge over real HTTP, and the ROPD reward against a stub
with 1 s latency. The stub runs in this (parent) process, as a remote judge would. Step times are
first quartiles after warm-up steps (the machine's other load only ever adds time, so the lower
quartile estimates the uncontended step; the median ratio is printed too), and the constant and
zero-latency arms alternate over repeats so drift hits both alike.

The latency arms run the 1 s judge and the constant reward at each `steps_per_generation`
(one generation, so one reward call, feeding that many optimizer steps). Only the first step of
a generation waits for the judge, so their step time is taken over whole generations after a
warm-up generation (the first quartile of the generations' mean step times), and
`latency_ratio_spg<N>` is that step time over the constant arm's at the same setting.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

ARM_MODULE = "ropd_dev.bench.train"
# What every timed bench run sets alike: 32-token answers, no reporting, no checkpoints, a log
# line per step, no activation checkpointing, one seed (bench white_box uses them too).
QUIET_TRAINING: dict[str, Any] = {
    "max_completion_length": 32,
    "report_to": "none",
    "save_strategy": "no",
    "logging_steps": 1,
    "activation_checkpointing": False,
    "seed": 0,
}


def _overrides(
    work: Path, out: str, model: Path, judge_url: str | None, steps: int, spg: int = 1
) -> dict[str, Any]:
    judge = {"base_url": judge_url, "model": "stub"} if judge_url else {}
    return {
        "output_dir": str(work / out),
        "max_steps": steps,
        "steps_per_generation": spg,
        "per_device_train_batch_size": 8,
        "num_generations": 4,
        **QUIET_TRAINING,
        "ropd.student": str(model),
        "ropd.data.limit": 40,
        "ropd.teacher.store": str(work / "teacher.sqlite"),
        "ropd.teacher.num_answers": 2,
        "ropd.teacher.role": judge,
        "ropd.scorer.num_teacher_refs": 2,
        "ropd.scorer.rubricator": judge,
        "ropd.scorer.verifier": judge,
    }


def _arm(args: argparse.Namespace) -> None:
    """One measured arm (runs in a subprocess); prints one JSON line."""
    from ropd.train.config import load_config
    from ropd.train.data import load_prompts
    from ropd.train.runner import build_trainer, prepare_teacher

    work = Path(args.work)
    out = f"{args.arm}-{os.getpid()}"
    overrides = _overrides(work, out, Path(args.model), args.judge_url, args.steps, args.spg)
    config = load_config(None, overrides)
    prompts = load_prompts(config.ropd.data)
    store = prepare_teacher(config, prompts)
    trainer, reward = build_trainer(config, prompts, store, run_id=f"bench-{args.arm}")
    if args.arm == "constant":

        def constant(prompts: list[Any], completions: list[Any], **_: Any) -> list[float]:
            return [0.5] * len(completions)

        trainer.reward_funcs = [constant]
        trainer.reward_func_names = ["constant"]

    times, peak_mb = timed_training(trainer, reward)
    print(json.dumps({"arm": args.arm, "step_s": times, "peak_rss_mb": peak_mb}))


def timed_training(trainer: Any, reward: Any) -> tuple[list[float], float]:
    """Train to the end, closing the reward: each step's wall time, and the process's peak
    resident memory in MB (an arm runs in its own process, so the peak is the arm's)."""
    from transformers import TrainerCallback

    from ropd.integrations.trl.trainer import close_reward

    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            self.start = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            times.append(time.perf_counter() - self.start)

    trainer.add_callback(Timer())
    trainer.train()
    close_reward(trainer, reward)
    return times, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_arm(
    arm: str, work: Path, model: Path, judge_url: str | None, steps: int, spg: int = 1
) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", ARM_MODULE, "--arm", arm, "--work", str(work),
        "--model", str(model), "--steps", str(steps), "--spg", str(spg),
    ]  # fmt: skip
    if judge_url:
        cmd += ["--judge-url", judge_url]
    env = {**os.environ, "TQDM_DISABLE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bench arm {arm!r} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _lower_quartile(values: list[float]) -> float:
    """First quartile of the step times: robust to bursts of load from other processes."""
    return statistics.quantiles(values, n=4)[0] if len(values) > 1 else values[0]


def build_teacher(work: Path, model: Path, judge_url: str) -> None:
    """The teacher answers every arm looks up, into `work`/teacher.sqlite (from the stub)."""
    from ropd.teacher.builder import build_missing
    from ropd.train.config import load_config
    from ropd.train.data import load_prompts

    config = load_config(None, _overrides(work, "build", model, judge_url, 1), check_paths=False)
    prompts = [(p.id, p.messages) for p in load_prompts(config.ropd.data)]
    build_missing(config.ropd.teacher, prompts, config.ropd.limits, 2)


def generation_step_s(times: list[float], spg: int, warmup_generations: int = 1) -> float:
    """Step time of whole generations (the judge waits in one step of each) after the warm-up.

    Each generation's mean step time, then their first quartile (inclusive: with few
    generations it stays between the smallest two instead of extrapolating below them).
    """
    measured = times[warmup_generations * spg :]
    per_generation = [
        statistics.fmean(measured[i : i + spg]) for i in range(0, len(measured) - spg + 1, spg)
    ]
    if not per_generation:
        raise ValueError(f"no whole generation of {spg} steps after the warm-up in {len(times)}")
    if len(per_generation) == 1:
        return per_generation[0]
    return statistics.quantiles(per_generation, n=4, method="inclusive")[0]


def measure_latency(
    work: Path, model: Path, latency_s: float, spgs: Sequence[int], steps: int
) -> dict[str, float]:
    """Per `steps_per_generation`: step time with a `latency_s` judge / with a constant reward.

    Each run has one warm-up generation, then `steps` optimizer steps, at least 3 generations
    (rounded up to whole generations).
    """
    from ropd.testing import StubJudgeServer

    figures: dict[str, float] = {}
    with StubJudgeServer(latency_s=latency_s) as slow:
        for spg in spgs:
            total = spg * (1 + max(3, -(-steps // spg)))
            step_s = {
                arm: generation_step_s(
                    _run_arm(arm, work, model, slow.base_url, total, spg)["step_s"], spg
                )
                for arm in ("constant", "ropd")
            }
            figures[f"step_s_constant_spg{spg}"] = round(step_s["constant"], 4)
            figures[f"step_s_latency_spg{spg}"] = round(step_s["ropd"], 4)
            figures[f"latency_ratio_spg{spg}"] = round(step_s["ropd"] / step_s["constant"], 4)
    return figures


def measure(
    steps: int = 8,
    warmup: int = 2,
    repeats: int = 3,
    latency_s: float = 1.0,
    spgs: Sequence[int] = (1, 4),
) -> dict:
    """Run the arms and compute the ratios (see the module docstring)."""

    from ropd.integrations.trl.tiny import build_tiny_model
    from ropd.testing import StubJudgeServer

    with tempfile.TemporaryDirectory(prefix="ropd-bench-train-") as tmp:
        work = Path(tmp)
        model = build_tiny_model(work / "model")
        samples: dict[str, list[float]] = {"constant": [], "ropd": []}
        rss: dict[str, float] = {"constant": 0.0, "ropd": 0.0}
        with StubJudgeServer(latency_s=0.0) as fast:
            build_teacher(work, model, fast.base_url)
            for _ in range(repeats):
                for arm in ("constant", "ropd"):
                    url = fast.base_url if arm == "ropd" else None
                    out = _run_arm(arm, work, model, url, steps)
                    samples[arm] += out["step_s"][warmup:]
                    rss[arm] = max(rss[arm], out["peak_rss_mb"])
            judged = fast.stats()["calls"]
        latency = measure_latency(work, model, latency_s, spgs, steps) if spgs else {}
        if "step_s_latency_spg1" in latency:
            slow_s = latency["step_s_latency_spg1"]
        else:
            with StubJudgeServer(latency_s=latency_s) as slow:
                slow_out = _run_arm("ropd", work, model, slow.base_url, steps)
            slow_s = _lower_quartile(slow_out["step_s"][warmup:])
    const_s = _lower_quartile(samples["constant"])
    ropd_s = _lower_quartile(samples["ropd"])
    median_ratio = statistics.median(samples["ropd"]) / statistics.median(samples["constant"])
    return {
        "overhead_ratio": round(ropd_s / const_s, 4),
        "rss_ratio": round(rss["ropd"] / rss["constant"], 4),
        "step_s_latency_1s": round(slow_s, 4),
        "step_s_constant": round(const_s, 4),
        "step_s_ropd_stub0": round(ropd_s, 4),
        "overhead_ratio_median": round(median_ratio, 4),
        "peak_rss_mb_constant": round(rss["constant"], 1),
        "peak_rss_mb_ropd": round(rss["ropd"], 1),
        "judge_latency_s": latency_s,
        "steps_measured_per_arm": len(samples["ropd"]),
        "completions_per_step": 8,
        "judge_calls_stub0": judged,
        **latency,
    }


def bench_train(
    steps: Annotated[int, typer.Option(help="training steps per arm run")] = 8,
    warmup: Annotated[int, typer.Option(help="first steps of each run left out")] = 2,
    repeats: Annotated[int, typer.Option(help="alternating runs of the two main arms")] = 3,
    latency: Annotated[
        float,
        typer.Option(
            "--judge-latency", "--latency", help="stub judge latency (s) of the latency arms"
        ),
    ] = 1.0,
    steps_per_generation: Annotated[
        str,
        typer.Option(
            help="comma-separated steps_per_generation values for latency_ratio_spg<N> "
            "('' skips those arms)"
        ),
    ] = "1,4",
) -> None:
    """Step time and peak memory of ROPD vs a constant reward (tiny model); one JSON line."""
    if warmup >= steps:
        raise typer.BadParameter("--warmup must be smaller than --steps")
    try:
        spgs = [int(v) for v in steps_per_generation.split(",") if v.strip()]
    except ValueError:
        spgs = [0]
    if any(v < 1 for v in spgs):
        raise typer.BadParameter("--steps-per-generation takes positive integers, e.g. 1,4")
    typer.echo(json.dumps(measure(steps, warmup, repeats, latency, spgs)))


def register(bench_app: typer.Typer) -> None:
    """Add `ropd bench train`."""
    bench_app.command("train")(bench_train)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--arm", choices=["constant", "ropd"], required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--judge-url", default=None)
    parser.add_argument("--spg", type=int, default=1)
    _arm(parser.parse_args())
