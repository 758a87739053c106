"""`ropd bench verl`: ROPD inside verl's own reward loop, on a local CPU Ray cluster.

verl's `RewardLoopManager` starts its reward workers (`RewardLoopWorker`, each loading
`RopdRewardManager` through `pkg://`), then B groups of G rollouts are streamed to random workers
one by one, as verl's agent loop does, finishing spread over `spread_s`; a stub judge answers
every request after `latency_s`. A group can only be judged once its last rollout is there, and
judging takes two judge round trips (Rubricator, then Verifier), so no schedule beats
`critical_path_s` = last rollout + 2 latency; `ratio` = wall / critical path says how close the
adapter comes. `groups_scored_whole` counts groups judged once with all G answers.

The helpers here (`byte_tokenizer`, `compose_verl_config`, `rollout_data`, `stream_rollouts`)
are the harness of the verl tests too. verl, Ray and torch are imported inside functions:
`ropd bench` loads this module without them.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from ropd.errors import InputError
from ropd.testing.stub_server import STUB_MODEL, StubJudgeServer

REWARD_MANAGER_PATH = "pkg://ropd.integrations.verl.reward_manager"
WORDS = ("answer", "because", "check", "units", "steps", "therefore", "42", "proof")


# -- the harness --------------------------------------------------------------------------------


def byte_tokenizer(folder: Path) -> Path:
    """A small byte-level BPE tokenizer saved as a Hugging Face folder (offline, lossless)."""
    if (folder / "tokenizer.json").is_file():
        return folder
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([" ".join(WORDS)] * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", pad_token="<pad>")
    fast.save_pretrained(str(folder))
    return folder


def write_ropd_config(path: Path, base_url: str, *, traces: Path, **scorer: Any) -> Path:
    """A `ropd.yaml` whose judge is the endpoint at `base_url` (e.g. a stub)."""
    judge = {"base_url": base_url, "model": STUB_MODEL, "timeout_s": 60}
    section = {"scorer": {"judge": judge, **scorer}, "traces": str(traces)}
    path.write_text(yaml.safe_dump({"ropd": section}), encoding="utf-8")
    return path


def compose_verl_config(
    tokenizer_dir: Path,
    ropd_config: Path,
    *,
    group_size: int,
    groups_per_step: int,
    workers: int,
    run_dir: Path,
    overrides: Sequence[str] = (),
) -> Any:
    """verl's own `ppo_trainer` config, composed by Hydra, with ROPD as its reward manager."""
    import verl
    from hydra import compose, initialize_config_dir

    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return compose(
            config_name="ppo_trainer",
            overrides=[
                f"actor_rollout_ref.model.path={tokenizer_dir}",
                "algorithm.adv_estimator=grpo",
                f"actor_rollout_ref.rollout.n={group_size}",
                f"data.train_batch_size={groups_per_step}",
                f"reward.num_workers={workers}",
                "reward.reward_manager.source=importlib",
                "reward.reward_manager.name=RopdRewardManager",
                f"reward.reward_manager.module.path={REWARD_MANAGER_PATH}",
                f"+reward.reward_kwargs.ropd_config={ropd_config}",
                f"trainer.default_local_dir={run_dir}",
                *overrides,
            ],
        )


def rollout_data(
    tokenizer: Any,
    *,
    uid: str,
    prompt: list[dict[str, str]],
    completion: str,
    extra_info: dict[str, Any],
    data_source: str = "ropd",
    ground_truth: str = "",
) -> Any:
    """One finished rollout as verl's agent loop hands it to a reward worker (`DataProto`)."""
    import numpy as np
    import torch
    from tensordict import TensorDict
    from verl import DataProto

    prompt_ids = tokenizer.encode(prompt[-1]["content"], add_special_tokens=False)
    response_ids = tokenizer.encode(completion, add_special_tokens=False) + [tokenizer.eos_token_id]
    prompts = torch.tensor([prompt_ids], dtype=torch.int64)
    responses = torch.tensor([response_ids], dtype=torch.int64)
    input_ids = torch.cat([prompts, responses], dim=1)
    batch = TensorDict(
        {
            "prompts": prompts,
            "responses": responses,
            "input_ids": input_ids,
            "attention_mask": torch.ones_like(input_ids),
            "position_ids": torch.arange(input_ids.shape[1])[None],
        },
        batch_size=1,
    )
    row = {  # the dataset columns verl's trainer keeps for the reward (`_get_gen_batch`)
        "uid": uid,
        "raw_prompt": prompt,
        "data_source": data_source,
        "reward_model": {"style": "ropd", "ground_truth": ground_truth},
        "extra_info": extra_info,
        "index": extra_info.get("index", 0),
    }
    non_tensor = {key: np.array([value]) for key, value in row.items()}
    non_tensor["__num_turns__"] = np.array([2])
    non_tensor["tool_extra_fields"] = np.array([{}], dtype=object)
    return DataProto(batch=batch, non_tensor_batch=non_tensor)


@dataclass
class Streamed:
    """Each rollout's answer (in the order given), and when the last was sent and answered."""

    results: list[dict[str, Any]]
    last_rollout_s: float
    wall_s: float


async def stream_rollouts(
    handles: Sequence[Any], timed: Sequence[tuple[float, Any]], *, seed: int = 0
) -> Streamed:
    """Send each `(at_s, data)` to a random reward worker at `at_s`, as verl's agent loop does."""
    rng = random.Random(seed)
    chosen = [rng.choice(handles) for _ in timed]
    start = time.monotonic()
    sent: list[float] = []

    async def send(worker: Any, at_s: float, data: Any) -> dict[str, Any]:
        await asyncio.sleep(max(0.0, at_s - (time.monotonic() - start)))
        sent.append(time.monotonic() - start)
        return await worker.compute_score.remote(data)

    results = await asyncio.gather(
        *(send(worker, at, data) for worker, (at, data) in zip(chosen, timed, strict=True))
    )
    return Streamed(list(results), max(sent), time.monotonic() - start)


def bench_rollouts(
    tokenizer: Any, *, groups: int, group_size: int, spread_s: float, seed: int = 0
) -> list[tuple[float, Any, int]]:
    """`(finish time, rollout, group index)` of B groups of G, finish times uniform in the spread."""
    rng = random.Random(seed)
    out = []
    for g in range(groups):
        prompt = [{"role": "user", "content": f"Question {g}: what is 6 x 7? Explain."}]
        extra = {"index": g, "id": f"q{g}", "split": "train",
                 "teacher_responses": ["42 because 6 x 7 = 42", "the answer is 42"]}  # fmt: skip
        for i in range(group_size):
            words = rng.sample(WORDS, rng.randint(1, 4))
            data = rollout_data(
                tokenizer,
                uid=f"uid-{g}",
                prompt=prompt,
                completion=f"{' '.join(words)} (rollout {i})",
                extra_info=extra,
            )
            out.append((rng.uniform(0.0, spread_s), data, g))
    out.sort(key=lambda item: item[0])
    if out:  # the spread is exact: the last rollout finishes at spread_s
        out[-1] = (spread_s, *out[-1][1:])
    return out


# -- the benchmark ------------------------------------------------------------------------------


def run_bench(
    *, workers: int, groups: int, group_size: int, spread_s: float, latency_s: float, seed: int = 0
) -> dict[str, Any]:
    import ray
    from verl.experimental.reward_loop.reward_loop import RewardLoopManager
    from verl.utils import hf_tokenizer

    with (
        tempfile.TemporaryDirectory(prefix="ropd-bench-verl-") as tmp,
        StubJudgeServer(latency_s=latency_s) as stub,
    ):
        root = Path(tmp)
        tokenizer_dir = byte_tokenizer(root / "tokenizer")
        traces = root / "traces.db"
        ropd_config = write_ropd_config(
            root / "ropd.yaml", stub.base_url, traces=traces, num_teacher_refs=2
        )
        config = compose_verl_config(
            tokenizer_dir,
            ropd_config,
            group_size=group_size,
            groups_per_step=groups,
            workers=workers,
            run_dir=root / "run",
        )
        ray.init(
            num_cpus=workers + 2,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"TOKENIZERS_PARALLELISM": "false"}},
        )
        try:
            manager = RewardLoopManager(config)
            handles = manager.reward_loop_worker_handles
            ray.get([h.__ray_ready__.remote() for h in handles])  # worker start-up is not timed
            rollouts = bench_rollouts(
                hf_tokenizer(str(tokenizer_dir)),
                groups=groups,
                group_size=group_size,
                spread_s=spread_s,
                seed=seed,
            )
            streamed = asyncio.run(
                stream_rollouts(handles, [(at, data) for at, data, _ in rollouts], seed=seed)
            )
        finally:
            ray.shutdown()
        whole = _groups_scored_whole(streamed.results, [g for *_, g in rollouts], group_size)
    critical = streamed.last_rollout_s + 2 * latency_s
    return {
        "wall_s": round(streamed.wall_s, 3),
        "last_rollout_s": round(streamed.last_rollout_s, 3),
        "critical_path_s": round(critical, 3),
        "ratio": round(streamed.wall_s / critical, 3),
        "groups": groups,
        "groups_scored_whole": whole,
        "calls": stub.requests,
        "workers": workers,
        "group_size": group_size,
        "latency_s": latency_s,
    }


def _groups_scored_whole(results: list[dict[str, Any]], group_of: list[int], size: int) -> int:
    """Groups whose every rollout was judged, unflagged, in a group of all `size` answers."""
    ok: dict[int, bool] = {}
    for result, group in zip(results, group_of, strict=True):
        info = result["reward_extra_info"]
        whole = info["ropd_group_size"] == size and not info["ropd_failed"]
        ok[group] = ok.get(group, True) and whole and not info["ropd_partial"]
    return sum(ok.values())


def verl(
    workers: Annotated[
        int,
        typer.Option(
            min=1, help="reward.num_workers (1: the worker's collector; more: the named actor)."
        ),
    ] = 1,
    groups: Annotated[int, typer.Option(min=1, help="B: groups (prompts).")] = 32,
    group_size: Annotated[int, typer.Option(min=1, help="G: rollouts per group.")] = 8,
    spread: Annotated[
        float, typer.Option(min=0.0, help="Seconds over which rollouts finish.")
    ] = 10.0,
    latency: Annotated[float, typer.Option(min=0.0, help="Stub judge latency per request.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Finish times, answers and worker choice.")] = 0,
) -> None:
    """Stream rollouts through verl's RewardLoopManager (local CPU Ray) and time the reward."""
    if importlib.util.find_spec("verl") is None:
        raise InputError(
            "ropd bench verl needs verl: pip install 'ropd[verl]' in a venv of its own "
            "(in this repository: make verl, then .venv-verl/bin/ropd bench verl)"
        )
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    result = run_bench(
        workers=workers,
        groups=groups,
        group_size=group_size,
        spread_s=spread,
        latency_s=latency,
        seed=seed,
    )
    typer.echo(json.dumps(result))


def register(bench_app: typer.Typer) -> None:
    bench_app.command("verl")(verl)
