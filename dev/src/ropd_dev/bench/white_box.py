"""Step time and peak memory of ROPD, LOPD, ExOPD and GAD on the tiny random model.

`python -m ropd_dev.bench.white_box [--steps 12] [--warmup 2] [--arms ropd,gad]` prints one JSON
line per arm and a summary. Each arm runs in its own subprocess (peak RSS is per arm: model loading included)
with the same student, data, sampling length and completions per step (8 of up to 32 tokens):
ROPD as GRPO (2 prompts x G=4) scored by the in-memory scripted judge at zero latency (so the
figure is the trainer's own cost, not a judge's), LOPD as TRL's DistillationTrainer (8 prompts,
reverse KL over the full vocabulary) and ExOPD as its subclass (three sampled-token
log-probabilities: student, teacher and the frozen initial student as reference), and GAD as
GRPO like ROPD (2 prompts x G=4) on its discriminator's scores (a LoRA copy of the student with
a scalar head, one Bradley-Terry step per training step on 2 teacher answers a prompt; no
discriminator-only warm-up steps, so every step is the adversarial one). Step times
are first quartiles after the warm-up (other load only ever adds time).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ropd_dev.bench.train import QUIET_TRAINING

ARMS = ("ropd", "lopd", "exopd", "gad")
GRPO_ARMS = ("ropd", "gad")


def _overrides(work: Path, arm: str, steps: int) -> dict[str, Any]:
    grpo = arm in GRPO_ARMS
    values: dict[str, Any] = {
        "output_dir": str(work / f"{arm}-{os.getpid()}"),
        "max_steps": steps,
        "per_device_train_batch_size": 8,
        **QUIET_TRAINING,
        "ropd.method": arm,
        "ropd.student": str(work / "student"),
        "ropd.data.limit": 8 * steps if not grpo else 2 * steps,
        "ropd.teacher.store": str(work / "teacher.sqlite"),
        "ropd.teacher.build_missing": True,
        "ropd.teacher.num_answers": 2,
        "ropd.scorer.num_teacher_refs": 2,
    }
    if grpo:
        values["num_generations"] = 4
        if arm == "gad":
            values["ropd.gad.warmup_discriminator_steps"] = 0
    else:
        values[f"ropd.{arm}.teacher_model"] = str(work / "teacher")
    return values


def _arm(arm: str, work: Path, steps: int) -> None:
    """One measured arm (in a subprocess); prints one JSON line."""
    from ropd.testing import scripted_judge
    from ropd.train.config import load_config
    from ropd.train.data import load_prompts
    from ropd.train.runner import build_trainer, prepare_teacher
    from ropd_dev.bench.train import timed_training

    client = scripted_judge()
    config = load_config(None, _overrides(work, arm, steps))
    prompts = load_prompts(config.ropd.data)
    store = prepare_teacher(config, prompts, client) if arm in GRPO_ARMS else None
    trainer, reward = build_trainer(config, prompts, store, f"bench-{arm}", client)
    times, peak_mb = timed_training(trainer, reward)
    print(json.dumps({"arm": arm, "step_s": times, "peak_rss_mb": round(peak_mb, 1)}))


def _run(arm: str, work: Path, steps: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", __spec__.name if __spec__ else "ropd_dev.bench.white_box",
           "--arm", arm, "--work", str(work), "--steps", str(steps)]  # fmt: skip
    env = {**os.environ, "TQDM_DISABLE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"arm {arm!r} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(steps: int, warmup: int, arms: tuple[str, ...] = ARMS) -> None:
    from ropd.integrations.trl.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        build_tiny_model(work / "student", seed=0)
        build_tiny_model(work / "teacher", seed=1)
        summary = {}
        for arm in arms:
            result = _run(arm, work, steps)
            measured = result["step_s"][warmup:]
            q1 = statistics.quantiles(measured, n=4)[0] if len(measured) > 1 else measured[0]
            summary[arm] = {"step_s_q1": round(q1, 4), "peak_rss_mb": result["peak_rss_mb"]}
            print(json.dumps(result))
        print(json.dumps({"steps": steps, "warmup": warmup, **summary}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--arm", choices=ARMS)
    parser.add_argument("--work")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--arms", default=",".join(ARMS), help="comma-separated arms to measure")
    args = parser.parse_args()
    if args.arm:
        _arm(args.arm, Path(args.work), args.steps)
    else:
        chosen = tuple(a for a in args.arms.split(",") if a)
        unknown = set(chosen) - set(ARMS)
        if unknown:
            parser.error(f"--arms: unknown {sorted(unknown)}; choose from {ARMS}")
        main(args.steps, args.warmup, chosen)
