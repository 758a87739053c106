"""verl's own `RewardLoopManager` and `RewardLoopWorker`s on a local CPU Ray cluster.

Rollouts are streamed one by one to random reward workers, as verl's agent loop does, against
the HTTP stub judge (verdicts follow answer content, so each reward is known). With one worker
the collector lives in it; with three, every worker forwards to the one named actor.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("verl")

import asyncio

import ray
from ropd_dev.bench.verl import (
    byte_tokenizer,
    compose_verl_config,
    rollout_data,
    stream_rollouts,
    write_ropd_config,
)
from tests.verl.conftest import RUBRIC, TEACHER, group_answers, prompt_of, traced_groups
from verl.experimental.reward_loop.reward_loop import RewardLoopManager
from verl.utils import hf_tokenizer

from ropd.integrations.verl.actor import ACTOR_PREFIX
from ropd.testing import StubJudgeServer, content_policy

pytestmark = pytest.mark.slow
G = 4
GROUPS = 3


@pytest.fixture
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def stub() -> Iterator[StubJudgeServer]:
    with StubJudgeServer(latency_s=0.05, policy=content_policy(RUBRIC)) as server:
        yield server


@pytest.mark.parametrize("workers", [1, 3])
def test_rollouts_streamed_to_random_workers_are_scored_as_whole_groups(
    workers: int, tmp_path: Path, local_ray: None, stub: StubJudgeServer
) -> None:
    tokenizer_dir = byte_tokenizer(tmp_path / "tokenizer")
    traces = tmp_path / "traces.db"
    ropd_yaml = write_ropd_config(tmp_path / "ropd.yaml", stub.base_url, traces=traces,
                                  num_teacher_refs=1)  # fmt: skip
    cfg = compose_verl_config(tokenizer_dir, ropd_yaml, group_size=G, groups_per_step=GROUPS,
                              workers=workers, run_dir=tmp_path / "run")  # fmt: skip
    manager = RewardLoopManager(cfg)
    handles = manager.reward_loop_worker_handles
    assert len(handles) == workers
    ray.get([h.__ray_ready__.remote() for h in handles])

    tokenizer = hf_tokenizer(str(tokenizer_dir))
    rng = random.Random(7)
    expected, timed = [], []
    for g in range(GROUPS):
        extra = {"index": g, "id": f"q{g}", "split": "train", "teacher_responses": TEACHER}
        for text, reward in group_answers(g, G):
            data = rollout_data(tokenizer, uid=f"uid-{g}", prompt=prompt_of(g), completion=text,
                                extra_info=extra)  # fmt: skip
            timed.append((rng.uniform(0, 1.0), data))
            expected.append(reward)
    streamed = asyncio.run(stream_rollouts(handles, timed, seed=workers))

    assert [r["reward_score"] for r in streamed.results] == pytest.approx(expected)
    for result in streamed.results:
        info = result["reward_extra_info"]
        assert (info["ropd_group_size"], info["ropd_failed"], info["ropd_step"]) == (G, 0.0, 1)
    assert stub.requests == 2 * GROUPS  # one Rubricator and one Verifier call per group
    traced = traced_groups(traces)
    assert sorted(traced) == [(f"q{g}", 1, G, None) for g in range(GROUPS)]
    named = [a for a in ray.util.list_named_actors() if a.startswith(ACTOR_PREFIX)]
    assert len(named) == (0 if workers == 1 else 1)
