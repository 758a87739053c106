"""Two CPU processes (gloo): every group is scored whole exactly once, each rank gets its slice."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch.multiprocessing as mp

P = {i: [{"role": "user", "content": f"What is {i} + {i}?"}] for i in range(3)}
# 3 groups of G = 2 over 2 ranks: the middle group is split between the ranks.
SLICES = [
    [("g0", 0, "a"), ("g0", 0, "b"), ("g1", 1, "c")],
    [("g1", 1, "d"), ("g2", 2, "e"), ("g2", 2, "f")],
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out_dir: str, as_if_nccl: bool = False) -> None:
    import asyncio
    import threading

    import torch.distributed as dist

    from ropd import ScorerConfig
    from ropd.integrations.trl import RopdReward
    from ropd.testing import scripted_judge

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    client = scripted_judge()

    reward = RopdReward(ScorerConfig(num_teacher_refs=2), client=client, num_generations=2)
    if as_if_nccl:  # the training backend as on GPUs: the reward must bring its own gloo group
        backend = dist.get_backend
        dist.get_backend = lambda group=None: "nccl" if group is None else backend(group)
    mine = SLICES[rank]
    logged: dict[str, float] = {}
    results: list[list[float | None]] = []

    def on_background_loop() -> None:  # as TRL calls reward functions
        results.append(
            asyncio.run(
                reward(
                    prompts=[P[i] for _, i, _ in mine],
                    completions=[[{"role": "assistant", "content": t}] for *_, t in mine],
                    ropd_id=[g for g, _, _ in mine],
                    teacher_responses=[["ref one", "ref two"] for _ in mine],  # a dataset column
                    log_metric=logged.__setitem__,
                )
            )
        )

    thread = threading.Thread(target=on_background_loop)
    thread.start()
    thread.join()
    rewards = results[0]
    verifier_sizes = [len(c.json_schema.schema["required"]) for c in client.calls_for("verifier")]
    from ropd.integrations.trl import reward as reward_module

    side = reward_module._OBJECT_GROUPS.get("gloo")
    result = {
        "side_group": None if side is None else dist.get_backend(side),
        "rewards": rewards,
        "rubricator_calls": len(client.calls_for("rubricator")),
        "verifier_sizes": verifier_sizes,
        "groups_metric": logged.get("ropd/groups"),
    }
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


@pytest.mark.parametrize("as_if_nccl", [False, True], ids=["gloo", "nccl-training"])
def test_two_processes_gather_score_once_and_scatter(tmp_path: Path, as_if_nccl: bool) -> None:
    """On TRL's background thread; with an NCCL training backend (simulated: these machines
    have no GPU) the objects travel over the reward's own gloo group."""
    mp.start_processes(
        _worker,
        args=(_free_port(), str(tmp_path), as_if_nccl),
        nprocs=2,
        join=True,
        start_method="spawn",
    )
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["side_group"] == r1["side_group"] == ("gloo" if as_if_nccl else None)
    assert r0["rubricator_calls"] == 3  # three whole groups, each scored once, all on rank 0
    assert r1["rubricator_calls"] == 0
    assert r0["verifier_sizes"] == [4, 4, 4]  # every group's G = 2 answers + K = 2 together
    assert len(r0["rewards"]) == 3 and len(r1["rewards"]) == 3
    assert all(r is not None and 0 <= r <= 1 for r in r0["rewards"] + r1["rewards"])
    assert r0["groups_metric"] == r1["groups_metric"] == 3  # same step metrics on every rank


@pytest.mark.slow
def test_torchrun_two_processes_end_to_end(tmp_path: Path, tiny_student: Path) -> None:
    """`torchrun --nproc_per_node 2 -m ropd train` (CPU, gloo) against a real HTTP stub judge.

    3 completions per process with G = 2: the middle prompt's group is split between processes.
    """
    from ropd.testing import StubJudgeServer

    with StubJudgeServer(latency_s=0.0) as stub:
        judge = f"{{base_url: '{stub.base_url}', model: stub}}"
        args = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "-m",
            "ropd",
            "train",
            "--output-dir",
            str(tmp_path / "out"),
            "--max-steps",
            "2",
            "--set",
            "per_device_train_batch_size=3",
            "--set",
            "num_generations=2",
            "--set",
            "max_completion_length=8",
            "--set",
            "report_to=none",
            "--set",
            "save_steps=2",
            "--set",
            "activation_checkpointing=false",
            "--set",
            f"ropd.student={tiny_student}",
            "--set",
            "ropd.data.limit=8",
            "--set",
            f"ropd.teacher.store={tmp_path / 'teacher.sqlite'}",
            "--set",
            "ropd.teacher.build_missing=true",
            "--set",
            "ropd.teacher.num_answers=2",
            "--set",
            f"ropd.teacher.role={judge}",
            "--set",
            "ropd.scorer.num_teacher_refs=2",
            "--set",
            f"ropd.scorer.rubricator={judge}",
            "--set",
            f"ropd.scorer.verifier={judge}",
        ]
        done = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        calls = stub.stats()["calls"]
    # 2 steps x (2 processes x 3 completions / G = 2) = 6 groups, each judged once
    assert calls.get("ropd_rubric") == 6, calls
    import sqlite3

    with sqlite3.connect(tmp_path / "out" / "traces.db") as db:
        rows = db.execute("SELECT step, num_student FROM groups").fetchall()
    assert sorted(rows) == [(1, 2)] * 3 + [(2, 2)] * 3  # whole groups of G = 2
    assert (tmp_path / "out" / "checkpoint-2").is_dir()
