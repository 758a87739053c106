"""`RopdReward` in TRL's async GRPO rollout loop, on CPU.

The real `_AsyncRolloutLoop` (TRL's serial scoring) and `ConcurrentScoreLoop` run exactly as in
the trainer's child process (`run()` on their own event loop, in a thread here); only the part
that talks to vLLM, `_generate_loop`, is replaced by one that queues ready-made groups.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import pickle
import queue
import sqlite3
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from accelerate import PartialState
from transformers import AutoTokenizer, TrainerControl
from trl.experimental.async_grpo.async_rollout_worker import (
    AsyncRolloutWorker,
    RolloutGroup,
    TrainingSequence,
    _AsyncRolloutLoop,
)

import ropd
from ropd.integrations.trl import RopdReward
from ropd.integrations.trl.async_grpo import (
    GATE_METRIC,
    ConcurrentScoreLoop,
    StopOnGateMetric,
    concurrent_scoring,
)
from ropd.reward.gate import GateConfig
from ropd.testing import ScriptedChatClient, make_client, rubric_reply, scripted_judge

G = 4
RUBRIC = rubric_reply([("42", 5), ("because", 2), ("check", 1), ("units", 2)])
ANSWERS = ["42 because check units", "42 because", "42", "no idea"]
EXPECTED = [1.0, 0.7, 0.5, 0.0]


class FakeVllm:
    """Stands in for generation: queues `groups`, then waits for the stop like TRL's loop."""

    groups: list[RolloutGroup]

    async def _generate_loop(self, stop_event: asyncio.Event) -> None:
        for group in self.groups:
            group.queued_at = time.monotonic()
            await self._groups_to_score.put(group)  # type: ignore[attr-defined]
        await stop_event.wait()
        self._groups_to_score.put_nowait(None)  # type: ignore[attr-defined]


class SerialHarness(FakeVllm, _AsyncRolloutLoop):
    """TRL's own loop: one group scored at a time."""


class ConcurrentHarness(FakeVllm, ConcurrentScoreLoop):
    pass


@pytest.fixture
def tokenizer(tiny_student: Path) -> Any:
    tok = AutoTokenizer.from_pretrained(str(tiny_student))
    tok.response_template = {}  # tool-call parsing is not used here
    return tok


def make_group(n: int, version: int = 3) -> RolloutGroup:
    prompt = [{"role": "user", "content": f"question {n}: what is 6 x 7?"}]
    return RolloutGroup(
        prompts=[prompt] * G,
        reward_kwargs={"ropd_id": [f"q{n}"] * G, "teacher_responses": [["42 because"]] * G},
        completions=[[{"role": "assistant", "content": a}] for a in ANSWERS],
        completions_ids=[[1, 2]] * G,
        completions_sequences=[
            [TrainingSequence([7, 1, 2], [0, 1, 1], [0.0, -0.5, -0.5], f"r{n}-{i}")]
            for i in range(G)
        ],
        tool_call_counts=[0] * G,
        tool_failure_counts=[0] * G,
        model_version=version,
        group_id=n,
        env_rewards=[None] * G,
        rollout_rewards=[None] * G,
    )


def run_loop(
    cls: type, tokenizer: Any, reward: Any, groups: list[RolloutGroup], **kwargs: Any
) -> tuple[float, list[Any], list[dict[str, Any]]]:
    """Run the loop as the child does; seconds until every sample is out, samples, metrics."""
    PartialState()  # as `_child_main` does: TRL's loop logs through accelerate
    buffer: queue.Queue = queue.Queue()
    metrics: queue.Queue = queue.Queue()
    loop = cls(
        model_name="tiny", dataset=[], reward_funcs=[reward], processing_class=tokenizer,
        eos_token_ids=[tokenizer.eos_token_id], rollout_buffer=buffer,
        model_version_value=mp.Value("i", 0), heartbeat_value=mp.Value("d", 0.0),
        failed_event=mp.Event(), exception_info_queue=queue.Queue(), metrics_queue=metrics,
        num_generations=G, **kwargs,
    )  # fmt: skip
    loop.groups = groups
    started = time.monotonic()
    thread = threading.Thread(target=loop.run)
    thread.start()
    samples = []
    try:
        while len(samples) < G * len(groups):
            samples.append(buffer.get(timeout=60))
        elapsed = time.monotonic() - started
    finally:
        loop._loop.call_soon_threadsafe(loop._stop_event.set)
        thread.join(timeout=30)
    assert not thread.is_alive() and not loop._failed_event.is_set()
    pushed = []
    while not metrics.empty():
        pushed.append(metrics.get_nowait())
    return elapsed, samples, pushed


def rewards_by_group(samples: list[Any]) -> dict[int, list[float]]:
    by_group: dict[int, dict[str, float]] = {}
    for s in samples:
        by_group.setdefault(s.group_id, {})[s.completion[0]["content"]] = s.metrics["reward"]
    return {g: [answers[a] for a in ANSWERS] for g, answers in by_group.items()}


def test_groups_are_scored_concurrently_with_the_right_rewards(
    tokenizer: Any, tmp_path: Path
) -> None:
    n = 4
    config = ropd.ScorerConfig(num_teacher_refs=1)

    serial_judge = make_client(RUBRIC, latency_s=0.2)
    serial_reward = RopdReward(config, client=serial_judge, num_generations=G)
    _, serial_samples, _ = run_loop(
        SerialHarness, tokenizer, serial_reward, [make_group(i) for i in range(n)]
    )

    judge = make_client(RUBRIC, latency_s=0.2)
    reward = RopdReward(config, client=judge, num_generations=G, traces=tmp_path / "t.db")
    _, samples, pushed = run_loop(
        ConcurrentHarness, tokenizer, reward, [make_group(i) for i in range(n)],
        max_concurrent_groups=n,
    )  # fmt: skip

    # TRL's loop scores one group at a time (two judge latencies per group); the concurrent one
    # has every group's judge call in flight at once (two latencies in all): counted, not timed
    assert serial_judge.max_in_flight == 1
    assert len(serial_judge.calls) == 2 * n
    assert judge.max_in_flight == n
    # one ROPD scoring per group, every completion gets its own reward
    assert len(judge.calls_for("rubricator")) == n and len(judge.calls_for("verifier")) == n
    expected = {i: EXPECTED for i in range(n)}
    assert rewards_by_group(samples) == rewards_by_group(serial_samples) == expected
    # the trainer's log gets the reward's metrics, one push per group
    ropd_pushes = [m for m in pushed if "ropd/reward_mean" in m]
    assert len(ropd_pushes) == n
    assert all(
        m["ropd/groups"] == 1 and m["ropd/reward_mean"] == pytest.approx(0.55) for m in ropd_pushes
    )
    assert not any(GATE_METRIC in m for m in pushed)
    # traced at the generating policy version + 1; the loop closed the store at the end
    with sqlite3.connect(tmp_path / "t.db") as db:
        steps = db.execute("SELECT step, group_id FROM groups ORDER BY group_id").fetchall()
    assert steps == [(4, f"q{i}") for i in range(n)]
    assert reward.batch_scorer._stack is None


def test_reward_pickles_before_use_and_scores_after(tokenizer: Any, tmp_path: Path) -> None:
    reward = RopdReward(
        ropd.ScorerConfig(num_teacher_refs=1), client=scripted_judge(latency_s=0.05),
        num_generations=G, traces=tmp_path / "t.db", gate=GateConfig(window=8),
    )  # fmt: skip
    # what AsyncRolloutWorker.start() does with the loop's keyword arguments
    sent = pickle.loads(pickle.dumps({"reward_funcs": [reward]}))["reward_funcs"][0]
    assert sent is not reward and sent.batch_scorer.scorer is None

    _, samples, _ = run_loop(
        ConcurrentHarness, tokenizer, sent, [make_group(i) for i in range(3)],
        max_concurrent_groups=2,
    )  # fmt: skip
    assert len(samples) == 3 * G
    assert all(0.0 <= s.metrics["reward"] <= 1.0 for s in samples)
    assert len(sent.client.calls_for("rubricator")) == 3
    assert reward.client.calls == []  # the original was never used

    async def use_once() -> None:
        await reward(prompts=["q"] * 2, completions=["a", "b"], teacher_responses=[["t"]] * 2)

    asyncio.run(use_once())
    with pytest.raises(TypeError, match="before its first use"):
        pickle.dumps(reward)


async def test_overlapping_first_calls_open_the_judge_once() -> None:
    opened = 0
    reward = RopdReward(ropd.ScorerConfig(num_teacher_refs=1), client=scripted_judge(0.05))
    real_open = reward._open

    async def counting_open(stack: Any) -> Any:
        nonlocal opened
        opened += 1
        await asyncio.sleep(0.05)  # opening takes time: the others must wait, not open again
        return await real_open(stack)

    reward.batch_scorer._opener = counting_open
    calls = [
        reward(prompts=[f"q{i}"] * 2, completions=["a", "b"], teacher_responses=[["t"]] * 2)
        for i in range(5)
    ]
    results = await asyncio.gather(*calls)
    await reward.aclose()
    assert opened == 1
    assert all(len(r) == 2 and None not in r for r in results)


def test_a_tripped_gate_reaches_the_trainer_and_stops_it(tokenizer: Any) -> None:
    def down(messages: Any, schema: Any) -> str:
        raise ropd.JudgeError("judge endpoint unreachable")

    client = ScriptedChatClient({"rubricator": down, "verifier": down})
    reward = RopdReward(
        ropd.ScorerConfig(num_teacher_refs=1), client=client, num_generations=G,
        gate=GateConfig(window=4, threshold=0.4, min_groups=2),
    )  # fmt: skip
    _, samples, pushed = run_loop(
        ConcurrentHarness, tokenizer, reward, [make_group(i) for i in range(3)]
    )
    assert all(s.advantage == 0.0 for s in samples)  # unscorable: masked, never a silent 0
    assert any(m.get(GATE_METRIC) == 1.0 for m in pushed)

    control = TrainerControl()
    StopOnGateMetric().on_log(None, None, control, logs={"loss": 0.1})
    assert not control.should_training_stop
    StopOnGateMetric().on_log(None, None, control, logs={GATE_METRIC: 0.25})
    assert control.should_training_stop and control.should_save


def test_concurrent_scoring_swaps_the_loop_the_worker_spawns() -> None:
    worker = AsyncRolloutWorker.__new__(AsyncRolloutWorker)  # no vLLM here; only its fields
    worker._loop_kwargs = {"num_generations": G}
    trainer = SimpleNamespace(rollout_worker=worker)
    assert concurrent_scoring(trainer, max_concurrent_groups=8) is trainer
    assert worker._loop_cls is ConcurrentScoreLoop
    assert worker._loop_kwargs == {"num_generations": G, "max_concurrent_groups": 8}
    assert AsyncRolloutWorker._loop_cls is _AsyncRolloutLoop  # other workers untouched
    pickle.dumps((worker._loop_cls, worker._loop_kwargs))  # what spawning the child sends

    other_rank = SimpleNamespace(rollout_worker=None)
    assert concurrent_scoring(other_rank) is other_rank
    with pytest.raises(TypeError, match="AsyncRolloutWorker"):
        concurrent_scoring(SimpleNamespace(rollout_worker=object()))
