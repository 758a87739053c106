"""The judge on verl's reward-model servers (`base_url: verl`), through verl's own router.

verl's `NaiveRouter` (the one its `RewardModelManager` starts) runs here in front of a stub
OpenAI-compatible server standing in for the vLLM replicas; the reward manager is loaded by
verl's `load_reward_manager` with the router address, as verl's reward loop hands it over.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("verl")
pytest.importorskip("uvicorn")

import numpy as np
from ropd_dev.bench.verl import compose_verl_config, rollout_data
from tests.verl.conftest import RUBRIC, TEACHER, group_answers, prompt_of, run_all, shuffled
from verl.trainer.ppo.reward import load_reward_manager

from ropd.errors import ConfigError
from ropd.integrations.verl.judge_servers import CUSTOM_FUNCTION_PATH, JudgeServers
from ropd.integrations.verl.reward_manager import RopdRewardManager
from ropd.testing import StubJudgeServer, content_policy

G = 4
SERVED = "/models/judge-30b"  # vLLM names the model by its local path
REWARD_MODEL_ON = [
    "reward.reward_model.enable=true",
    "reward.reward_model.model_path=Qwen/Qwen3-30B-A3B-Instruct-2507",
    "reward.reward_model.rollout.name=vllm",
    "reward.reward_model.rollout.tensor_model_parallel_size=2",
    "trainer.n_gpus_per_node=8",
]
CUSTOM_FUNCTION = [f"reward.custom_reward_function.path={CUSTOM_FUNCTION_PATH}"]


@pytest.fixture
def servers() -> Iterator[StubJudgeServer]:
    with StubJudgeServer(0.0, policy=content_policy(RUBRIC), models=[SERVED]) as stub:
        yield stub


@pytest.fixture
def router(servers: StubJudgeServer) -> Iterator[str]:
    """verl's router in front of the stub, on its own thread; its `host:port`."""
    import uvicorn
    from verl.experimental.reward_loop.router.naive_router import NaiveRouter

    app = NaiveRouter(worker_urls=[f"http://127.0.0.1:{servers.port}"]).app
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "router did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def ropd_yaml(tmp_path: Path, judge: str) -> Path:
    path = tmp_path / "ropd.yaml"
    path.write_text(
        "ropd:\n"
        "  scorer:\n"
        "    num_teacher_refs: 1\n"
        f"    judge: {judge}\n"
        f"  traces: {tmp_path / 'traces.db'}\n",
        encoding="utf-8",
    )
    return path


def verl_config(tmp_path: Path, tokenizer_dir: Path, judge: str, *overrides: str) -> Any:
    return compose_verl_config(
        tokenizer_dir, ropd_yaml(tmp_path, judge), group_size=G, groups_per_step=2, workers=1,
        run_dir=tmp_path / "run", overrides=list(overrides),
    )  # fmt: skip


def row(tokenizer: Any, g: int, text: str) -> Any:
    extra = {"index": g, "id": f"q{g}", "split": "train", "teacher_responses": np.array(TEACHER)}
    return rollout_data(tokenizer, uid=f"uid-{g}", prompt=prompt_of(g), completion=text,
                        extra_info=extra)  # fmt: skip


async def test_every_judge_call_goes_through_verls_router(
    tmp_path: Path, tokenizer_dir: Path, tokenizer: Any, servers: StubJudgeServer, router: str
) -> None:
    cfg = verl_config(
        tmp_path, tokenizer_dir, "{base_url: verl}", *REWARD_MODEL_ON, *CUSTOM_FUNCTION
    )
    manager = load_reward_manager(cfg, tokenizer, reward_router_address=router)
    assert isinstance(manager, RopdRewardManager)
    expected = {(g, t): r for g in range(2) for t, r in group_answers(g, G)}
    keys = shuffled(list(expected), seed=1)
    outputs = await run_all(manager, [row(tokenizer, g, t) for g, t in keys])

    for key, out in zip(keys, outputs, strict=True):
        assert out["reward_score"] == pytest.approx(expected[key]), key
    chat = [b for b in servers.bodies if "messages" in b]
    assert len(chat) == 4  # one rubric and one verdict request per group, nothing dropped
    assert {b["model"] for b in chat} == {SERVED}  # the model the servers list
    # every request reached the servers through the router: it forwards the client's Host
    assert {h["host"] for h in servers.headers} == {router}
    assert servers.models_requests >= 1  # the model was asked of the router, not guessed


async def test_a_named_model_is_used_as_named(
    tmp_path: Path, tokenizer_dir: Path, tokenizer: Any, servers: StubJudgeServer, router: str
) -> None:
    servers.models = [SERVED, "other"]
    judge = f"{{base_url: verl, model: {SERVED}}}"
    cfg = verl_config(tmp_path, tokenizer_dir, judge, *REWARD_MODEL_ON, *CUSTOM_FUNCTION)
    manager = load_reward_manager(cfg, tokenizer, reward_router_address=router)
    await run_all(manager, [row(tokenizer, 0, t) for t, _ in group_answers(0, G)])
    assert {b["model"] for b in servers.bodies if "messages" in b} == {SERVED}


async def test_two_served_models_and_no_named_one_is_refused(
    tmp_path: Path, tokenizer_dir: Path, tokenizer: Any, servers: StubJudgeServer, router: str
) -> None:
    servers.models = [SERVED, "other"]
    cfg = verl_config(
        tmp_path, tokenizer_dir, "{base_url: verl}", *REWARD_MODEL_ON, *CUSTOM_FUNCTION
    )
    manager = load_reward_manager(cfg, tokenizer, reward_router_address=router)
    with pytest.raises(ConfigError, match="list 2 models .*name the role's model"):
        await run_all(manager, [row(tokenizer, 0, t) for t, _ in group_answers(0, G)])
    assert not [b for b in servers.bodies if "messages" in b]


def test_reward_models_that_would_bypass_ropd_are_refused(
    tmp_path: Path, tokenizer_dir: Path, tokenizer: Any
) -> None:
    cfg = verl_config(tmp_path, tokenizer_dir, "{base_url: verl}", *REWARD_MODEL_ON)
    with pytest.raises(ConfigError) as caught:
        load_reward_manager(cfg, tokenizer, reward_router_address="127.0.0.1:1")
    message = str(caught.value)
    assert "/classify" in message and "never call ropd" in message
    assert f"+reward.custom_reward_function.path={CUSTOM_FUNCTION_PATH}" in message


def test_a_role_on_verl_without_reward_models_is_refused(
    tmp_path: Path, tokenizer_dir: Path, tokenizer: Any
) -> None:
    cfg = verl_config(tmp_path, tokenizer_dir, "{base_url: verl}")
    with pytest.raises(ConfigError, match="launches no reward-model servers.*enable=true"):
        load_reward_manager(cfg, tokenizer)


def test_the_custom_function_scores_other_rows_with_verls_default(
    tmp_path: Path, tokenizer_dir: Path, tokenizer: Any
) -> None:
    from ropd.integrations.verl.reward_manager import compute_score

    assert compute_score("openai/gsm8k", "#### 42", "42") == 1.0
    assert compute_score("openai/gsm8k", "#### 41", "42") == 0.0


def test_in_flight_limit_follows_the_routers_connections(
    tmp_path: Path, tokenizer_dir: Path
) -> None:
    # 8 training GPUs, tensor parallel 2: 4 colocated replicas, 256 connections each, 1024 cap
    cfg = verl_config(tmp_path, tokenizer_dir, "{base_url: verl}", *REWARD_MODEL_ON)
    colocated = JudgeServers.from_verl_config(cfg, "h:1")
    assert colocated is not None and colocated.replicas == 4
    assert colocated.max_in_flight == 1024
    pool = [
        "reward.reward_model.enable_resource_pool=true",
        "reward.reward_model.n_gpus_per_node=2",
        "reward.reward_model.nnodes=1",
    ]
    cfg = verl_config(tmp_path, tokenizer_dir, "{base_url: verl}", *REWARD_MODEL_ON, *pool)
    own = JudgeServers.from_verl_config(cfg, "h:1")
    assert own is not None and (own.replicas, own.max_in_flight) == (1, 256)
    assert own.base_url == "http://h:1/v1"


async def test_resolve_lowers_the_in_flight_limit_and_keeps_other_roles(
    tmp_path: Path, tokenizer_dir: Path, servers: StubJudgeServer, router: str
) -> None:
    from ropd.integrations.verl.judge_servers import resolve
    from ropd.run_config import RunConfig

    section = RunConfig.model_validate(
        {
            "scorer": {
                "rubricator": {"base_url": "verl"},
                "verifier": {"base_url": "http://api.example/v1", "model": "m"},
            },
            "limits": {"max_in_flight": 2000},
        }
    )
    run = await resolve(section, JudgeServers("judge", replicas=1, router_address=router))
    assert run.scorer.rubricator.base_url == f"http://{router}/v1"
    assert run.scorer.rubricator.model == SERVED
    assert run.scorer.verifier == section.scorer.verifier
    assert run.limits.max_in_flight == 256
