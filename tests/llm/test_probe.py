"""The endpoint probe against real HTTP stubs: unreachable, key refused, model not served.

Every case runs the real OpenAI SDK against `StubJudgeServer` (or a port where nothing, or
something silent, listens) and checks the message a user would read.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from openai import AsyncOpenAI

from ropd.errors import ConfigError, JudgeUnavailable
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.llm.connect import open_chat_client
from ropd.llm.local_server import free_port
from ropd.llm.probe import PROBE_RETRIES, ProbeFailed, endpoint_problems, probe_endpoints
from ropd.reward.config import ScorerConfig
from ropd.reward.group_scorer import GroupScorer
from ropd.testing import ScriptedChatClient, StubJudgeServer
from ropd.testing.stub_server import STUB_MODEL

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def stub() -> Iterator[StubJudgeServer]:
    with StubJudgeServer(latency_s=0.0) as server:
        yield server


def role(url: str, model: str = STUB_MODEL, name: str = "judge", **extra: object) -> RoleConfig:
    return RoleConfig(name=name, base_url=url, model=model, **extra)  # type: ignore[arg-type]


async def test_a_served_model_passes_with_one_request(stub):
    roles = [role(stub.base_url, name="rubricator"), role(stub.base_url, name="verifier")]
    await probe_endpoints(roles)
    assert stub.models_requests == 1  # one probe per endpoint, not per role
    assert stub.requests == 0  # no chat request: nothing is paid for


async def test_nothing_listening_names_role_model_host_and_key():
    port = free_port()
    with pytest.raises(ProbeFailed) as info:
        await probe_endpoints([role(f"http://127.0.0.1:{port}/v1", "m", "teacher")])
    message = str(info.value)
    assert f"nothing answers at 127.0.0.1:{port}" in message
    assert message.startswith(f"role teacher (model m at 127.0.0.1:{port}, no API key sent)")
    assert isinstance(info.value, JudgeUnavailable)


async def test_every_replica_of_a_role_is_probed(stub):
    port = free_port()
    with StubJudgeServer(latency_s=0.0) as other:
        replicas = role([stub.base_url, other.base_url])
        await probe_endpoints([replicas])
        assert stub.models_requests == other.models_requests == 1
    with pytest.raises(ProbeFailed, match=f"nothing answers at 127.0.0.1:{port}"):
        await probe_endpoints([role([stub.base_url, f"http://127.0.0.1:{port}/v1"])])


async def test_a_silent_server_times_out_quickly(monkeypatch):
    held: list[socket.socket] = []  # connections accepted and never answered
    timeouts: list[float] = []  # what the probe's SDK client was told to wait

    def sdk(**kwargs: Any) -> AsyncOpenAI:
        timeouts.append(kwargs["timeout"])
        return AsyncOpenAI(**kwargs)

    monkeypatch.setattr("ropd.llm.probe.AsyncOpenAI", sdk)

    def accept(listener: socket.socket) -> None:
        with contextlib.suppress(OSError):  # closed at the end of the test
            while True:
                held.append(listener.accept()[0])

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        acceptor = threading.Thread(target=accept, args=(listener,), daemon=True)
        acceptor.start()
        problems = await endpoint_problems([role(f"http://127.0.0.1:{port}/v1")], timeout_s=0.3)
        listener.shutdown(socket.SHUT_RDWR)
    acceptor.join(timeout=10)
    for conn in held:
        conn.close()
    # the probe gave up on the caller's timeout, not a default (checked, not timed): one try and
    # the SDK's retries, each ended by the client since the server never answers
    assert timeouts == [0.3]
    assert len(held) == PROBE_RETRIES + 1
    assert len(problems) == 1 and "did not answer within 0.3 s" in problems[0]


async def test_a_rejected_key_names_the_variable(monkeypatch):
    monkeypatch.setenv("ROPD_PROBE_KEY", "wrong-key-1234")
    with StubJudgeServer(latency_s=0.0, require_key="right-key-5678") as stub:
        judge = role(stub.base_url, api_key_env="ROPD_PROBE_KEY")
        with pytest.raises(ProbeFailed) as info:
            await probe_endpoints([judge])
        assert stub.models_headers[0]["authorization"] == "Bearer wrong-key-1234"
        message = str(info.value)
        assert "the API key was rejected (HTTP 401: Incorrect API key provided)" in message
        assert (
            "key from ROPD_PROBE_KEY" in message and "check the variable ROPD_PROBE_KEY" in message
        )
        assert "wrong-key-1234" not in message
        monkeypatch.setenv("ROPD_PROBE_KEY", "right-key-5678")
        await probe_endpoints([judge])  # the same endpoint with the right key passes


async def test_the_stub_refuses_chat_requests_without_its_key_too(monkeypatch):
    monkeypatch.setenv("ROPD_PROBE_KEY", "wrong-key-1234")
    with StubJudgeServer(latency_s=0.0, require_key="right-key-5678") as stub:
        judge = role(stub.base_url, api_key_env="ROPD_PROBE_KEY")
        async with open_chat_client([judge], probe=False) as (client, roles):
            with pytest.raises(JudgeUnavailable, match="check the variable ROPD_PROBE_KEY"):
                await client.chat(roles[0], MESSAGES)
        assert stub.statuses[401] == 1 and stub.models_requests == 0


def test_probe_failed_survives_pickling():
    import pickle

    error = pickle.loads(pickle.dumps(ProbeFailed(["a", "b"])))
    assert error.problems == ["a", "b"] and str(error) == "2 endpoint problems:\na\nb"


async def test_a_key_wanted_but_none_named_says_how_to_name_it(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-for-this-endpoint-000")
    with StubJudgeServer(latency_s=0.0, require_key="right-key-5678") as stub:
        with pytest.raises(ProbeFailed, match="no key was sent: name the variable") as info:
            await probe_endpoints([role(stub.base_url)])
        assert stub.models_headers[0]["authorization"] == "Bearer EMPTY"
    assert "--api-key-env" in str(info.value)


async def test_a_model_that_is_not_served_lists_what_is(stub):
    stub.models = [f"model-{i}" for i in range(11)]
    roles = [
        role(stub.base_url, "gpt-4o", "rubricator"),
        role(stub.base_url, "model-3", "verifier"),
    ]
    with pytest.raises(ProbeFailed) as info:
        await probe_endpoints(roles)
    host = f"127.0.0.1:{stub.port}"
    expected = (
        f"role rubricator (model gpt-4o at {host}, no API key sent): model gpt-4o is not served "
        f"at {host} (it serves: model-0, model-1, model-2, model-3, model-4, model-5, model-6, "
        "model-7 … and 3 more); fix --model / model (skip this check with --no-probe)"
    )
    assert info.value.problems == [
        expected
    ]  # the verifier's model is listed: only the rubricator is reported


async def test_no_models_route_or_an_empty_listing_skips_the_model_check():
    with StubJudgeServer(latency_s=0.0, models=None) as stub:
        assert await endpoint_problems([role(stub.base_url, "anything")]) == []
    with StubJudgeServer(latency_s=0.0, models=[]) as stub:
        assert await endpoint_problems([role(stub.base_url, "anything")]) == []
        assert stub.models_requests == 1


async def test_ollama_latest_tag_counts_as_served():
    with StubJudgeServer(latency_s=0.0, models=["llama3:latest"]) as stub:
        assert await endpoint_problems([role(stub.base_url, "llama3")]) == []


async def test_each_key_variable_is_its_own_endpoint(stub, monkeypatch):
    monkeypatch.setenv("ROPD_PROBE_A", "key-aaaa")
    monkeypatch.setenv("ROPD_PROBE_B", "key-bbbb")
    await probe_endpoints(
        [
            role(stub.base_url, api_key_env="ROPD_PROBE_A"),
            role(stub.base_url, api_key_env="ROPD_PROBE_B"),
        ]
    )
    assert sorted(h["authorization"] for h in stub.models_headers) == [
        "Bearer key-aaaa",
        "Bearer key-bbbb",
    ]


async def test_an_unset_key_variable_is_a_config_error(stub, monkeypatch):
    monkeypatch.delenv("ROPD_PROBE_UNSET", raising=False)
    with pytest.raises(ConfigError, match="ROPD_PROBE_UNSET is not set"):
        await probe_endpoints([role(stub.base_url, api_key_env="ROPD_PROBE_UNSET")])
    assert stub.models_requests == 0


async def test_embedded_roles_are_not_probed():
    await probe_endpoints([RoleConfig(), RoleConfig(base_url="local", model="local")])


async def test_open_chat_client_probes_before_the_block(stub):
    stub.models = ["other"]
    with pytest.raises(JudgeUnavailable, match="model stub is not served"):
        async with open_chat_client([role(stub.base_url)], LimitsConfig()):
            pytest.fail("the block must not run")
    assert stub.requests == 0
    async with open_chat_client([role(stub.base_url)], probe=False) as (client, roles):
        await client.chat(roles[0], MESSAGES)
    assert stub.models_requests == 1 and stub.requests == 1


async def test_scorer_open_probes_unless_a_client_is_given(stub):
    stub.models = ["other"]
    config = ScorerConfig(judge=role(stub.base_url))
    with pytest.raises(JudgeUnavailable, match="not served"):
        async with GroupScorer.open(config):
            pytest.fail("no scorer without a usable judge")
    async with GroupScorer.open(config, probe=False):
        pass
    async with GroupScorer.open(config, client=ScriptedChatClient({})):
        pass
    assert stub.models_requests == 1 and stub.requests == 0


# -- which key goes where -----------------------------------------------------------------------


async def test_openai_api_key_is_not_sent_to_other_endpoints(stub, monkeypatch):
    secret = "sk-openai-only-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    async with open_chat_client([role(stub.base_url)]) as (client, roles):
        await client.chat(roles[0], MESSAGES)
    sent = [h["authorization"] for h in [*stub.models_headers, *stub.headers]]
    assert sent == ["Bearer EMPTY", "Bearer EMPTY"]
    named = role(stub.base_url, api_key_env="OPENAI_API_KEY")  # named on purpose: sent
    async with open_chat_client([named]) as (client, roles):
        await client.chat(roles[0], MESSAGES)
    assert stub.headers[-1]["authorization"] == f"Bearer {secret}"


def test_openai_api_key_is_the_default_for_openai_only(monkeypatch):
    openai = RoleConfig(name="judge", base_url="https://api.openai.com/v1", model="gpt-4o")
    assert openai.key_variable == "OPENAI_API_KEY"
    assert RoleConfig(base_url="https://api.openai.com.evil.example/v1").key_variable is None
    assert RoleConfig(base_url="http://127.0.0.1:8000/v1").key_variable is None
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY is not set .the key for api.openai.com"):
        openai.check_api_key()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-real-key-for-openai-000")
    assert openai.api_key() == "sk-real-key-for-openai-000"
    assert RoleConfig(base_url="http://127.0.0.1:8000/v1").api_key() == "EMPTY"


def test_base_url_local_is_the_embedded_model():
    assert RoleConfig(base_url="local").base_url is None
    assert RoleConfig(base_url=" LOCAL ").base_url is None
