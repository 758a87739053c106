"""GAD with two processes (gloo on the CPU): each process scores its own slice, yet both make
the discriminator update of the whole batch, so their replicas stay equal to a single-process
update on the same batch."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp

PROMPTS = [
    [{"role": "user", "content": "What is 2 + 2?"}],
    [{"role": "user", "content": "Name a colour."}],
]
TEACHER = {"What is 2 + 2?": "It is 4.", "Name a colour.": "Blue."}
# the batch TRL would hand out: each prompt twice (G = 2), split over two processes
BATCH = [(PROMPTS[0], "five"), (PROMPTS[0], "4"), (PROMPTS[1], "seven"), (PROMPTS[1], "red")]


def _discriminator(model: str) -> Any:
    from ropd.integrations.trl.gad import Discriminator

    torch.manual_seed(0)
    return Discriminator.build(model, lora={"r": 4, "lora_alpha": 8}, learning_rate=1e-2)


def _reward(model: str) -> Any:
    from ropd.integrations.trl.gad import GadReward

    return GadReward(_discriminator(model), lambda prompt: [TEACHER[prompt[-1]["content"]]])


def _weights(d: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in d.model.named_parameters() if v.requires_grad}


def _worker(rank: int, model: str, port: int, out: str) -> None:
    os.environ.update({
        "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
    })  # fmt: skip
    from accelerate import PartialState

    state = PartialState(cpu=True, backend="gloo")
    assert state.num_processes == 2
    reward = _reward(model)
    mine = BATCH[rank * 2 : rank * 2 + 2]  # process 0 holds prompt 0, process 1 prompt 1
    metrics = reward.update([p for p, _ in mine], [a for _, a in mine])
    torch.save({"weights": _weights(reward.discriminator), "metrics": metrics}, f"{out}/{rank}.pt")
    state.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_processes_make_the_whole_batch_update(tiny_student: Path, tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tiny_student), _free_port(), str(tmp_path)), nprocs=2, join=True)
    zero, one = (torch.load(tmp_path / f"{r}.pt") for r in (0, 1))
    alone = _reward(str(tiny_student))
    before = _weights(alone.discriminator)
    metrics = alone.update([p for p, _ in BATCH], [a for _, a in BATCH])
    after = _weights(alone.discriminator)
    assert any(not torch.equal(before[k], after[k]) for k in after)  # the step moved it
    for rank in (zero, one):
        assert rank["metrics"] == metrics  # both processes saw all 4 pairs
        for name, value in after.items():
            assert torch.allclose(rank["weights"][name], value, atol=1e-6), name
