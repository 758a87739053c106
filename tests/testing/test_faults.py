"""The fault-injecting judge: each fault over raw HTTP, the seeded draw, and the client through it."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections import Counter
from typing import Any

import pytest
from ropd_dev.faults import (
    ALL_FAULTS,
    CONTENT_FAULTS,
    EMPTY_CONTENT,
    ENVELOPE_FAULTS,
    FINISH_LENGTH,
    HANG,
    HTML_200,
    HTTP_429,
    HTTP_429_RETRY_AFTER,
    HTTP_500,
    HTTP_502,
    HTTP_503,
    INVALID_JSON_200,
    NO_CHOICES_200,
    RESET,
    SELF_REPORTED_TOTALS,
    TRANSPORT_FAULTS,
    TRUNCATED_JSON_200,
    WRONG_SHAPE,
    FaultJudgeServer,
)

from ropd.llm.client import OpenAIChatClient
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.reward.induction import validate_rubric
from ropd.reward.schemas import rubric_schema
from ropd.testing import schema_reply
from ropd.testing.replies import sample
from ropd.testing.wire import read_request

SCHEMA = rubric_schema(4, 6)


def request_body(text: str = "x", *, schema: bool = True, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "stub", "messages": [{"role": "user", "content": text}]}
    if schema:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": SCHEMA.name, "schema": SCHEMA.schema},
        }
    return {**body, **extra}


def exchange(
    server: FaultJudgeServer, body: dict[str, Any], timeout: float = 5.0
) -> tuple[int, dict[str, str], bytes]:
    """One POST on a fresh connection: status, headers (lower-cased), raw body."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        connection.request("POST", "/v1/chat/completions", body=data, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, raw
    finally:
        connection.close()


def clean_text(body: dict[str, Any]) -> str:
    """What the policy answers to `body` (the reply a content fault starts from)."""
    wire = read_request(body)
    with sample(0, body.get("seed")):  # choice 0, as the stub samples it
        return schema_reply(wire.messages, wire.json_schema)


def content(raw: bytes) -> tuple[str | None, str | None]:
    choice = json.loads(raw)["choices"][0]
    return choice["message"]["content"], choice["finish_reason"]


def only(kind: str, **options: Any) -> FaultJudgeServer:
    return FaultJudgeServer(fault_rate=1.0, faults=[kind], **options)


# -- each fault does what it promises ---------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status"), [(HTTP_500, 500), (HTTP_502, 502), (HTTP_503, 503), (HTTP_429, 429)]
)
def test_status_faults(kind: str, status: int):
    with only(kind) as server:
        got, headers, raw = exchange(server, request_body())
        assert server.stats()["statuses"] == {str(status): 1}
    assert got == status and "retry-after" not in headers
    assert json.loads(raw)["error"]["message"] == f"injected fault {kind}"


def test_429_with_retry_after():
    with only(HTTP_429_RETRY_AFTER) as server:
        status, headers, _ = exchange(server, request_body())
    assert status == 429 and headers["retry-after"] == "0.05"


def test_hang_answers_after_the_client_gave_up():
    with only(HANG, hang_s=0.6) as server:
        with pytest.raises(TimeoutError):
            exchange(server, request_body(), timeout=0.2)
        status, _, raw = exchange(server, request_body("y"), timeout=2.0)  # a patient client
    assert status == 200 and content(raw)[0] == clean_text(request_body("y"))


def test_reset_sends_nothing():
    with only(RESET) as server:
        with pytest.raises(ConnectionError):
            exchange(server, request_body())
        assert server.stats()["statuses"] == {} and server.requests == 1


def test_html_200():
    with only(HTML_200) as server:
        status, headers, raw = exchange(server, request_body())
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert raw.startswith(b"<!DOCTYPE html>")


@pytest.mark.parametrize("kind", [TRUNCATED_JSON_200, INVALID_JSON_200])
def test_json_that_does_not_parse(kind: str):
    with only(kind) as server:
        status, headers, raw = exchange(server, request_body())
    assert status == 200 and headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(raw)
    if kind == TRUNCATED_JSON_200:
        assert raw.startswith(b'{"id": "chatcmpl-stub-')


def test_no_choices_200():
    with only(NO_CHOICES_200) as server:
        status, _, raw = exchange(server, request_body())
    body = json.loads(raw)
    assert status == 200 and "choices" not in body and body["usage"]["completion_tokens"] > 0


def test_wrong_shape():
    with only(WRONG_SHAPE) as server:
        _, _, raw = exchange(server, request_body(n=2))
    replies = json.loads(raw)["choices"]
    assert [json.loads(c["message"]["content"]) for c in replies] == [{"verdict": "yes"}] * 2


def test_finish_length():
    with only(FINISH_LENGTH) as server:
        _, _, raw = exchange(server, request_body())
    text, finish = content(raw)
    full = clean_text(request_body())
    assert finish == "length" and text == full[: len(full) // 2]


def test_empty_content():
    with only(EMPTY_CONTENT) as server:
        seen = {content(exchange(server, request_body(str(i)))[2])[0] for i in range(12)}
    assert seen == {"", None}  # both forms occur


def test_self_reported_totals():
    with only(SELF_REPORTED_TOTALS) as server:
        _, _, raw = exchange(server, request_body())
        _, _, plain = exchange(server, request_body(schema=False))
    reply = json.loads(content(raw)[0] or "")
    assert reply == {
        **json.loads(clean_text(request_body())),
        "score": 1.0,
        "total": 99,
        "reward": 1.0,
    }
    assert content(plain)[0] == clean_text(request_body(schema=False))  # not JSON: unchanged


def test_kinds_and_stats():
    assert len(set(ALL_FAULTS)) == 15
    assert set(ALL_FAULTS) == {*TRANSPORT_FAULTS, *ENVELOPE_FAULTS, *CONTENT_FAULTS}
    with pytest.raises(ValueError, match="unknown fault kinds"):
        FaultJudgeServer(faults=["http_418"])
    with pytest.raises(ValueError, match="fault_rate"):
        FaultJudgeServer(fault_rate=1.5)
    with FaultJudgeServer(fault_rate=0.0, script=[HTTP_500, None, HTML_200]) as server:
        for i in range(4):
            exchange(server, request_body(str(i)))
        stats = server.stats()
        assert stats["faults"] == {HTTP_500: 1, HTML_200: 1} and stats["clean"] == 2
        assert stats["requests"] == 4 and server.outcomes == [HTTP_500, "clean", HTML_200, "clean"]
        server.reset_stats()
        assert server.stats()["faults"] == {} and server.clean == 0 and server.outcomes == []


# -- the draw ---------------------------------------------------------------------------------


def test_draw_is_reproducible_and_independent_of_arrival_order():
    bodies = [request_body(f"prompt {i}") for i in range(30)]
    outcomes = {}
    for name, order in (("forward", bodies), ("backward", bodies[::-1])):
        with FaultJudgeServer(seed=7, faults=[HTTP_500, HTML_200, WRONG_SHAPE]) as server:
            for body in order:
                exchange(server, body)
            exchange(server, order[0])  # the same body again: its second draw
            drawn = dict(zip((b["messages"][0]["content"] for b in order), server.outcomes))
            outcomes[name] = drawn
            assert server.outcomes[-1] == (server.draw(order[0], 1) or "clean")
    assert outcomes["forward"] == outcomes["backward"]
    assert set(outcomes["forward"].values()) == {"clean", HTTP_500, HTML_200, WRONG_SHAPE}
    same = FaultJudgeServer(seed=7, faults=[HTTP_500, HTML_200, WRONG_SHAPE])
    other = FaultJudgeServer(seed=8, faults=[HTTP_500, HTML_200, WRONG_SHAPE])
    assert [same.draw(b) or "clean" for b in bodies] == list(outcomes["forward"].values())
    assert [other.draw(b) for b in bodies] != [same.draw(b) for b in bodies]
    assert [same.draw(bodies[0], k) for k in range(20)] != [same.draw(bodies[0])] * 20


def test_fault_share_over_http_and_in_the_long_run():
    fast = [k for k in ALL_FAULTS if k not in (HANG, RESET)]
    with FaultJudgeServer(seed=3, faults=fast) as server:
        for i in range(200):
            exchange(server, request_body(f"q{i}"))
        stats = server.stats()
    injected = sum(stats["faults"].values())
    assert stats["requests"] == 200 and injected + stats["clean"] == 200
    assert 0.45 <= injected / 200 <= 0.65
    default = FaultJudgeServer(seed=3)
    draws = Counter(default.draw(request_body(f"q{i}")) for i in range(4000))
    assert 0.53 <= 1 - draws[None] / 4000 <= 0.57
    assert set(draws) == {None, *ALL_FAULTS}  # every kind is in the default mix
    assert all(100 <= draws[k] <= 200 for k in ALL_FAULTS)  # equal weights: ~147 each


# -- the client through the mix ---------------------------------------------------------------


async def test_client_with_retries_gets_valid_replies_through_the_mix():
    failing = [*TRANSPORT_FAULTS, *ENVELOPE_FAULTS]  # what the client itself must get through
    with FaultJudgeServer(0.55, seed=0, faults=failing, hang_s=0.8) as server:
        role = RoleConfig(name="verifier", base_url=server.base_url, model="stub", timeout_s=0.4)
        limits = LimitsConfig(max_retries=12, backoff_base_s=0.01, backoff_max_s=0.05)
        async with OpenAIChatClient(limits) as client:
            prompts = [[{"role": "user", "content": f"Grade answer {i}."}] for i in range(24)]
            results = await asyncio.gather(
                *(client.chat(role, p, json_schema=SCHEMA) for p in prompts)
            )
        stats = server.stats()
    for out in results:
        validate_rubric(json.loads(out[0].text), 4, 6)
        assert out[0].structured
    injected = sum(stats["faults"].values())
    assert injected >= 10 and len(stats["faults"]) >= 6  # seed 0 meets all 11 kinds today
    assert client.retries == {"verifier": injected}  # every fault cost exactly one retry
    assert stats["clean"] == 24 and client.in_flight == 0
    assert client.usage.roles["verifier"].calls == 24


async def test_content_faults_reach_the_caller_as_replies():
    with FaultJudgeServer(1.0, seed=2, faults=CONTENT_FAULTS) as server:
        role = RoleConfig(name="verifier", base_url=server.base_url, model="stub")
        async with OpenAIChatClient(LimitsConfig(max_retries=0)) as client:
            prompts = [[{"role": "user", "content": f"Grade answer {i}."}] for i in range(16)]
            results = await asyncio.gather(
                *(client.chat(role, p, json_schema=SCHEMA) for p in prompts)
            )
    assert len(results) == 16 and client.retries == {}
    assert {c[0].finish_reason for c in results} == {"stop", "length"}
