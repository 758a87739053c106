"""Requests to the embedded judge: one at a time, timeouts sized to max_tokens, and a request
whose client gave up stops generating (instead of keeping the one-request server busy)."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import anyio.to_thread
import pytest

from ropd.llm import llama_server
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.llm.connect import LOCAL_SERVER_IN_FLIGHT, open_chat_client
from ropd.llm.llama_server import CLIENT_GONE, ClientWatch, StopWhenGone
from ropd.llm.local_server import (
    MIN_GENERATED_TOKENS_PER_S,
    MIN_PROMPT_TOKENS_PER_S,
    LocalServer,
)
from ropd.testing import StubJudgeServer

needs_llama = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason='needs `pip install "ropd[local]"`'
)
GONE_LINE = re.compile(
    r"ropd: client gone; generation stopped after (\d+) tokens \(max_tokens (\d+)\)"
)


# -- timeouts and the in-flight cap ---------------------------------------------------------------


def test_a_request_timeout_covers_its_prompt_and_max_tokens_at_the_floor_speeds():
    server = LocalServer(n_ctx=4096)
    short, long = server.request_timeout_s(64), server.request_timeout_s(2048)
    assert long > short
    # the longest prompt that fits beside max_tokens, then every token, at the floor speeds
    assert long >= (4096 - 2048) / MIN_PROMPT_TOKENS_PER_S + 2048 / MIN_GENERATED_TOKENS_PER_S
    assert server.request_timeout_s(64, at_least_s=900) == 900  # never below the role's own
    assert server.request_timeout_s(10**6) == server.request_timeout_s(4096)  # n_ctx bounds it


class FakeLocalServer:
    """Stands in for `LocalServer`: "starts" by pointing at a stub judge."""

    stub: StubJudgeServer

    def __init__(self) -> None:
        self.base_url = self.stub.base_url
        self.model = "stub"
        self.stopped = False

    def start(self) -> FakeLocalServer:
        return self

    def stop(self) -> None:
        self.stopped = True

    def request_timeout_s(self, max_tokens: int, at_least_s: float = 0.0) -> float:
        return LocalServer(n_ctx=4096).request_timeout_s(max_tokens, at_least_s)


@pytest.fixture
def fake_local(monkeypatch):
    with StubJudgeServer(latency_s=0.2) as stub:
        FakeLocalServer.stub = stub
        monkeypatch.setattr("ropd.llm.connect.LocalServer", FakeLocalServer)
        yield stub


async def test_embedded_roles_get_sized_timeouts_and_remote_ones_keep_theirs(fake_local):
    roles = [
        RoleConfig(name="rubricator", max_tokens=384, timeout_s=60),
        RoleConfig(name="verifier", max_tokens=2048),
        RoleConfig(name="remote", base_url=fake_local.base_url, model="stub", timeout_s=5),
    ]
    async with open_chat_client(roles, LimitsConfig(), probe=False) as (client, resolved):
        assert [r.base_url for r in resolved[:2]] == [fake_local.base_url] * 2
        sizing = LocalServer(n_ctx=4096)
        assert resolved[0].timeout_s == sizing.request_timeout_s(384) > 60
        assert resolved[1].timeout_s == sizing.request_timeout_s(2048) > 120
        assert resolved[2].timeout_s == 5  # an endpoint of the user's is left as configured
        assert client.router.state(fake_local.base_url).cap == LOCAL_SERVER_IN_FLIGHT == 1
    assert roles[0].timeout_s == 60  # the caller's roles are left alone


async def test_requests_to_the_embedded_server_go_one_at_a_time(fake_local):
    roles = [RoleConfig(name="judge", max_tokens=16)]
    async with open_chat_client(roles, LimitsConfig(max_in_flight=64), probe=False) as (
        client,
        (role,),
    ):
        messages = [{"role": "user", "content": "Say hi."}]
        await asyncio.gather(*(client.chat(role, messages) for _ in range(6)))
    # queued in the client, where no timeout runs, never in the server's queue
    assert fake_local.requests == 6 and fake_local.max_concurrent == 1
    assert client.max_in_flight_seen == 1


# -- a gone client stops its generation ---------------------------------------------------------


def test_the_stopping_criterion_stops_once_the_client_is_gone(capsys):
    import threading

    gone = threading.Event()
    stop = StopWhenGone(gone, max_tokens=512)
    assert [stop(None, None) for _ in range(3)] == [False] * 3
    gone.set()
    assert stop(None, None) and stop(None, None)
    said = GONE_LINE.findall(capsys.readouterr().err)
    assert said == [("4", "512")]  # said once, with the tokens it stopped at


def asgi_receive(*messages: dict, then_wait: asyncio.Event):
    """An ASGI `receive` giving `messages`, then a disconnect once `then_wait` is set."""
    queue = list(messages)

    async def receive() -> dict:
        if queue:
            return queue.pop(0)
        await then_wait.wait()
        return {"type": "http.disconnect"}

    return receive


async def test_client_watch_flags_a_disconnect_seen_by_the_generating_thread():
    hang_up = asyncio.Event()
    seen: list[object] = []

    async def app(scope, receive, send):
        body = await receive()
        seen.append(body["body"])
        gone = CLIENT_GONE.get()
        # the model generates in a worker thread (starlette's run_in_threadpool is anyio's)
        seen.append(await anyio.to_thread.run_sync(lambda: CLIENT_GONE.get() is gone))
        hang_up.set()  # the client times out while the model generates
        seen.append(await anyio.to_thread.run_sync(lambda: gone.wait(10)))
        seen.append((await receive())["type"])  # Request.is_disconnected, answered here

    receive = asgi_receive(
        {"type": "http.request", "body": b"{}", "more_body": False}, then_wait=hang_up
    )
    scope = {"type": "http", "path": "/v1/chat/completions"}
    await ClientWatch(app)(scope, receive, None)
    assert seen == [b"{}", True, True, "http.disconnect"]
    assert CLIENT_GONE.get() is None  # reset after the request


async def test_client_watch_leaves_other_paths_and_finished_requests_alone():
    seen: list[object] = []

    async def app(scope, receive, send):
        seen.append(CLIENT_GONE.get())
        await receive()

    never = asyncio.Event()
    message = {"type": "http.request", "body": b"", "more_body": False}
    await ClientWatch(app)(
        {"type": "http", "path": "/v1/models"}, asgi_receive(message, then_wait=never), None
    )
    assert seen == [None]

    async def answers(scope, receive, send):
        await receive()
        seen.append(CLIENT_GONE.get())

    await ClientWatch(answers)(
        {"type": "http", "path": "/v1/chat/completions"},
        asgi_receive(message, then_wait=never),
        None,
    )
    assert not seen[-1].is_set()  # answered before any disconnect: nothing was stopped


@needs_llama
def test_every_completion_of_a_watched_request_gets_the_stopping_criterion(monkeypatch):
    import threading

    import llama_cpp

    calls: list[dict] = []
    monkeypatch.setattr(
        llama_cpp.Llama, "create_completion", lambda self, *a, **kw: calls.append(kw)
    )
    llama_server._stop_generation_when_client_gone()  # wraps the stand-in (undone by monkeypatch)
    llama_cpp.Llama.create_completion(None, "hi", max_tokens=5)
    assert "stopping_criteria" not in calls[-1]  # not a watched request: unchanged
    own = lambda ids, logits: False  # a criterion of the chat handler's own
    token = CLIENT_GONE.set(threading.Event())
    try:
        llama_cpp.Llama.create_completion(
            None, "hi", max_tokens=5, stopping_criteria=llama_cpp.StoppingCriteriaList([own])
        )
    finally:
        CLIENT_GONE.reset(token)
    criteria = list(calls[-1]["stopping_criteria"])
    assert criteria[0] is own and isinstance(criteria[1], StopWhenGone)
    assert criteria[1].max_tokens == 5


# -- the real server ------------------------------------------------------------------------------

LONG = {
    "messages": [{"role": "user", "content": "Count from 1 to 1000, one number a line."}],
    "max_tokens": 1000,
    "min_tokens": 1000,  # no early stop: without the watch it would run all 1,000
    "temperature": 0,
}
SHORT = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4}


async def _post(session, url: str, body: dict, timeout_s: float) -> dict | str:
    import aiohttp

    try:
        async with session.post(
            url, json=body, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as r:
            return await r.json()
    except TimeoutError:
        return "timed out"


@pytest.mark.slow
@needs_llama
async def test_a_request_whose_client_timed_out_stops_generating(tmp_path: Path):
    import aiohttp

    log = tmp_path / "server.log"
    with LocalServer(log_path=log) as server:
        url = f"{server.base_url}/chat/completions"
        async with aiohttp.ClientSession() as session:
            assert await _post(session, url, LONG, 2.0) == "timed out"
            after = await _post(session, url, SHORT, 600)  # served once the first one stopped
    assert after["usage"]["completion_tokens"] > 0
    stopped = GONE_LINE.findall(log.read_text(errors="replace"))
    assert len(stopped) == 1, log.read_text(errors="replace")[-2000:]
    tokens, max_tokens = map(int, stopped[0])
    assert max_tokens == 1000 and tokens < 1000


@pytest.mark.slow
@needs_llama
def test_score_with_the_embedded_judge_loses_no_group_to_a_timeout(tmp_path: Path):
    """The README's first command: every group is scored, none failed by a timeout (counts)."""
    examples = Path(__file__).resolve().parents[2] / "examples" / "groups.jsonl"
    out = tmp_path / "scores.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "ropd", "score", str(examples), "-o", str(out)],
        check=False, capture_output=True, text=True, timeout=1800,
        env={**os.environ, "ROPD_PROGRESS_EVERY": "5"},
    )  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == ["apples", "train"], proc.stderr[-3000:]
    for row in rows:
        cause = row["error"] or ""
        assert "timed out" not in cause and "no response" not in cause, cause
    timeouts = [line for line in proc.stderr.splitlines() if "timed out" in line]
    assert timeouts == [], proc.stderr[-3000:]  # not even a retried one
    assert "in flight" in proc.stderr  # the progress line shows the judge at work
