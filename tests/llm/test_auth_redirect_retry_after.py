"""The judge boundary's three audit findings, each against real HTTP servers on 127.0.0.1.

1. A 401/403 stops the run only for a key the endpoint never accepted, or after
   `auth_refusals_to_stop` refusals in a row; otherwise it is a failed attempt, retried.
2. Redirects are followed only within the endpoint's origin, on both transports; the other
   host receives nothing (no prompt, no key).
3. A server's Retry-After is capped at the role's `timeout_s`, counted while it is slept.

No test waits on a real Retry-After: sleeps are recorded by an injected `sleep`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from tests.llm.local_http import LocalHTTPServer, QuietHandler
from tests.llm.test_client import Sleeps

from ropd.errors import JudgeError, JudgeUnavailable
from ropd.llm.client import OpenAIChatClient
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.llm.connect import open_chat_client
from ropd.llm.logprobs import LogprobClient
from ropd.llm.probe import ProbeFailed, probe_endpoints
from ropd.reward.config import ScorerConfig
from ropd.reward.group_scorer import GroupScorer
from ropd.reward.types import Group
from ropd.testing import StubJudgeServer

MESSAGES = [{"role": "user", "content": "Grade this."}]
TRANSPORTS = ["aiohttp", "openai"]
KEY_VARIABLE = "ROPD_BOUNDARY_KEY"
KEY = "boundary-key-8123"


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_VARIABLE, KEY)
    return KEY


def role_for(stub: StubJudgeServer, **update: object) -> RoleConfig:
    role = RoleConfig(
        name="verifier", base_url=stub.base_url, model="stub", api_key_env=KEY_VARIABLE
    )
    return role.model_copy(update=update)


def limits(transport: str, **update: object) -> LimitsConfig:
    return LimitsConfig(http_transport=transport, **update)  # type: ignore[arg-type]


def question(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"question {i}"}]


# -- 1. 401/403: a key that worked is retried, a key never accepted stops the run ---------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_single_403_after_successes_is_retried_and_the_call_succeeds(transport: str):
    sleeps = Sleeps()
    with StubJudgeServer(0.0, status_at={3: 403}, error_message="blocked by firewall") as stub:
        async with OpenAIChatClient(limits(transport), sleep=sleeps) as client:
            for i in range(4):
                out = await client.chat(role_for(stub), question(i))
                assert out[0].text
        assert stub.requests == 5 and stub.statuses == {200: 4, 403: 1}
    assert client.retries == {"verifier": 1} and len(sleeps.calls) == 1
    assert client.usage.roles["verifier"].failed_calls == 0


async def test_a_403_after_24_answered_requests_fails_no_group():
    """The audit's `ropd score`: 0 lines written after one 403; now every group is scored."""
    groups = [
        Group(
            id=f"g{i}",
            prompt=f"What is {i} * 7?",
            student_responses=[f"{7 * i} because", "no idea"],
            teacher_responses=[f"{7 * i} because {i}*7"],
        )
        for i in range(15)
    ]
    with StubJudgeServer(0.0, status_at={24: 403}) as stub:
        config = ScorerConfig(judge=role_for(stub, name="judge"))
        # one request at a time: the 403 comes after 24 answered requests, as in the audit
        slow = LimitsConfig(max_in_flight=1, backoff_base_s=0.01)
        async with GroupScorer.open(config, limits=slow, probe=False) as scorer:
            results = await scorer.score_groups(groups)
        assert stub.statuses[403] == 1 and stub.statuses[200] == 30
    assert [r.error for r in results] == [None] * 15
    assert all(None not in r.rewards for r in results)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_five_percent_flaky_401s_never_stop_the_run(transport: str):
    """Every 20th request refused, the very first included: the probe's accepted listing
    counts, so even a refusal before any chat reply is retried."""
    refused = {i: 401 for i in range(0, 200, 20)}
    with StubJudgeServer(0.0, status_at=refused) as stub:
        role = role_for(stub)
        lim = limits(transport, backoff_base_s=0.0)
        async with open_chat_client([role], lim) as (client, roles):
            replies = await asyncio.gather(
                *(client.chat(roles[0], question(i)) for i in range(200))
            )
        assert stub.models_requests == 1
        assert stub.statuses == {200: 200, 401: 10}
    assert all(r[0].text for r in replies)
    assert client.retries == {"verifier": 10}
    assert client.usage.roles["verifier"].failed_calls == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("status", [401, 403])
async def test_a_refusal_of_a_key_never_accepted_stops_at_once(transport: str, status: int):
    sleeps = Sleeps()
    with StubJudgeServer(0.0, status_at={0: status}, error_message="invalid key") as stub:
        async with OpenAIChatClient(limits(transport, max_retries=5), sleep=sleeps) as client:
            with pytest.raises(JudgeUnavailable) as info:
                await client.chat(role_for(stub), MESSAGES)
        assert stub.requests == 1
    assert sleeps.calls == [] and client.retries == {}
    message = str(info.value)
    assert f"rejected the API key (HTTP {status}): invalid key" in message
    assert f"check the variable {KEY_VARIABLE}" in message and KEY not in message


async def test_a_rotated_key_is_a_new_key(monkeypatch: pytest.MonkeyPatch):
    """Acceptance is per key value: a key set to a wrong value mid-run stops at its first 401."""
    with StubJudgeServer(0.0, require_key=KEY) as stub:
        async with OpenAIChatClient(LimitsConfig(max_retries=5), sleep=Sleeps()) as client:
            await client.chat(role_for(stub), MESSAGES)
            monkeypatch.setenv(KEY_VARIABLE, "a-wrong-key-5555")
            with pytest.raises(JudgeUnavailable, match="HTTP 401"):
                await client.chat(role_for(stub), MESSAGES)
        assert stub.requests == 2


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_refusals_in_a_row_stop_the_run(transport: str):
    sleeps = Sleeps()
    lim = limits(transport, max_retries=10, auth_refusals_to_stop=3)
    with StubJudgeServer(0.0, status_at={1: 401, 2: 403, 3: 401}) as stub:
        async with OpenAIChatClient(lim, sleep=sleeps) as client:
            await client.chat(role_for(stub), question(0))
            with pytest.raises(JudgeUnavailable) as info:
                await client.chat(role_for(stub), question(1))
        assert stub.requests == 4
    assert "rejected the API key (HTTP 401)" in str(info.value)
    assert "(3 refusals in a row)" in str(info.value)
    assert len(sleeps.calls) == 2 and client.retries == {"verifier": 2}


async def test_a_success_resets_the_refusals_in_a_row():
    lim = LimitsConfig(max_retries=10, auth_refusals_to_stop=3)
    with StubJudgeServer(0.0, status_at={1: 401, 2: 401, 4: 401, 5: 401}) as stub:
        async with OpenAIChatClient(lim, sleep=Sleeps()) as client:
            for i in range(3):
                await client.chat(role_for(stub), question(i))
        assert stub.statuses == {200: 3, 401: 4}
    assert client.retries == {"verifier": 4}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_call_refused_until_its_retries_run_out_fails_alone(transport: str):
    """Out of retries before the streak limit: a plain JudgeError (the group fails with it)."""
    lim = limits(transport, max_retries=1, auth_refusals_to_stop=10)
    with StubJudgeServer(0.0, status_at={1: 403, 2: 403}, error_message="forbidden") as stub:
        async with OpenAIChatClient(lim, sleep=Sleeps()) as client:
            await client.chat(role_for(stub), question(0))
            with pytest.raises(JudgeError) as info:
                await client.chat(role_for(stub), question(1))
            assert type(info.value) is JudgeError
            assert (await client.chat(role_for(stub), question(2)))[0].text  # the run goes on
    message = str(info.value)
    assert "HTTP 403 after 2 attempts: forbidden" in message
    assert "accepted by this endpoint before" in message
    assert client.usage.roles["verifier"].failed_calls == 1


async def test_one_refusal_to_stop_restores_the_old_rule():
    lim = LimitsConfig(max_retries=5, auth_refusals_to_stop=1)
    with StubJudgeServer(0.0, status_at={1: 401}) as stub:
        async with OpenAIChatClient(lim, sleep=Sleeps()) as client:
            await client.chat(role_for(stub), question(0))
            with pytest.raises(JudgeUnavailable):
                await client.chat(role_for(stub), question(1))
        assert stub.requests == 2


# -- 2. redirects: within the origin only ---------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_redirect_to_another_origin_is_refused_and_nothing_reaches_it(transport: str):
    with StubJudgeServer(0.0) as other:
        target = f"{other.base_url}/chat/completions"
        redirects = {"/v1/chat/completions": target}
        with StubJudgeServer(0.0, redirects=redirects) as stub:
            sleeps = Sleeps()
            async with OpenAIChatClient(limits(transport, max_retries=3), sleep=sleeps) as client:
                with pytest.raises(JudgeError) as info:
                    await client.chat(role_for(stub), MESSAGES)
            assert stub.redirected == 1  # refused at once, not retried
        assert other.requests == 0 and other.headers == [] and other.models_requests == 0
    assert type(info.value) is JudgeError and sleeps.calls == []
    message = str(info.value)
    assert "redirect refused" in message and "HTTP 307" in message
    assert f"http://127.0.0.1:{stub.port}" in message
    assert f"http://127.0.0.1:{other.port}" in message
    assert KEY not in message


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("absolute", [False, True])
async def test_a_redirect_within_the_origin_is_followed(transport: str, absolute: bool):
    with StubJudgeServer(0.0) as stub:
        location = "/v1/chat/completions"
        if absolute:
            location = f"http://127.0.0.1:{stub.port}{location}"
        stub.redirects = {"/old/v1/chat/completions": location}
        role = role_for(stub, base_url=f"http://127.0.0.1:{stub.port}/old/v1")
        async with OpenAIChatClient(limits(transport)) as client:
            out = await client.chat(role, MESSAGES)
        assert out[0].text
        assert stub.redirected == 1 and stub.requests == 1
        assert stub.headers[0]["authorization"] == f"Bearer {KEY}"
        assert stub.bodies[0]["messages"] == MESSAGES  # the body went along (307)


async def test_the_probe_refuses_a_redirect_to_another_origin():
    with StubJudgeServer(0.0) as other:
        redirects = {"/v1/models": f"{other.base_url}/models"}
        with StubJudgeServer(0.0, redirects=redirects) as stub, pytest.raises(ProbeFailed) as info:
            await probe_endpoints([role_for(stub)])
        assert other.models_requests == 0 and other.requests == 0
    message = str(info.value)
    assert f"to another origin, http://127.0.0.1:{other.port}" in message
    assert "point --base-url / base_url at the endpoint itself" in message


# -- 3. Retry-After: capped at the call's own budget, counted while slept ------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_retry_after_is_capped_at_the_role_timeout(transport: str, caplog):
    caplog.set_level(logging.WARNING, logger="ropd.llm")
    sleeps = Sleeps()
    lim = limits(transport, max_retries=4)
    with StubJudgeServer(0.0, status_script=[429, 429, 429], retry_after_s=600) as stub:
        async with OpenAIChatClient(lim, sleep=sleeps, clock=sleeps.clock) as client:
            out = await client.chat(role_for(stub, timeout_s=2.0), MESSAGES)
        assert out[0].text and stub.requests == 4
    assert sleeps.calls == [2.0, 2.0, 2.0]
    assert client.retry_after_s == 6.0 and client.waiting_retry_after == 0
    capped = [r.getMessage() for r in caplog.records if "Retry-After" in r.getMessage()]
    assert len(capped) == 1  # said once, with both numbers
    assert "wait 600s" in capped[0] and "2s at most" in capped[0]


async def test_retry_after_under_the_cap_is_honoured_exactly():
    sleeps = Sleeps()
    with StubJudgeServer(0.0, status_script=[503], retry_after_s=1.5) as stub:
        async with OpenAIChatClient(sleep=sleeps, clock=sleeps.clock) as client:
            await client.chat(role_for(stub, timeout_s=2.0), MESSAGES)
    assert sleeps.calls == [1.5] and client.retry_after_s == 1.5


async def test_backoff_without_retry_after_is_not_counted_as_retry_after():
    sleeps = Sleeps()
    with StubJudgeServer(0.0, status_script=[503, 500]) as stub:
        async with OpenAIChatClient(sleep=sleeps, clock=sleeps.clock) as client:
            await client.chat(role_for(stub), MESSAGES)
    assert len(sleeps.calls) == 2 and client.retry_after_s == 0.0


async def test_calls_waiting_on_retry_after_are_counted_also_when_cancelled():
    now = [0.0]
    started = asyncio.Event()
    seen: list[int] = []
    client: OpenAIChatClient

    async def blocking_sleep(seconds: float) -> None:
        seen.append(client.waiting_retry_after)
        started.set()
        await asyncio.Event().wait()  # until cancelled

    with StubJudgeServer(0.0, status_script=[429], retry_after_s=30) as stub:
        client = OpenAIChatClient(sleep=blocking_sleep, clock=lambda: now[0])
        async with client:
            task = asyncio.create_task(client.chat(role_for(stub, timeout_s=10.0), MESSAGES))
            await asyncio.wait_for(started.wait(), 5)
            assert client.waiting_retry_after == 1
            now[0] += 4.0  # four seconds slept when the call is cancelled
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    assert seen == [1]
    assert client.waiting_retry_after == 0
    assert client.retry_after_s == 4.0
    assert client.in_flight == 0


# -- the same 401/403 rule in the log-probability client ------------------------------------------


class CompletionsServer(LocalHTTPServer):
    """A /v1/completions endpoint answering echo requests, with scripted statuses per request."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses, self.requests = list(statuses), 0
        outer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                body = json.loads(self.body())
                status = outer.statuses.pop(0) if outer.statuses else 200
                outer.requests += 1
                reply: dict[str, Any] = {"error": {"message": "refused by gateway"}}
                if status == 200:
                    prompt = body["prompt"]
                    reply = {
                        "choices": [
                            {
                                "text": prompt,
                                "logprobs": {"tokens": list(prompt), "token_logprobs": [None]
                                             + [-1.0] * (len(prompt) - 1)},
                            }
                        ],
                        "usage": {"prompt_tokens": len(prompt), "completion_tokens": 0},
                    }  # fmt: skip
                self.send(status, json.dumps(reply).encode())

        super().__init__(Handler)


def logprob_role(server: CompletionsServer) -> RoleConfig:
    return RoleConfig(name="scorer", base_url=server.base_url, model="m", api_key_env=KEY_VARIABLE)


async def test_logprobs_retry_a_403_for_a_key_that_worked():
    with CompletionsServer([200, 403]) as server:
        lim = LimitsConfig(backoff_base_s=0.0)
        async with LogprobClient(logprob_role(server), lim) as client:
            assert await client.continuation_logprobs("ab", "cd") == [-1.0, -1.0]
            assert await client.continuation_logprobs("ab", "ef") == [-1.0, -1.0]
        assert server.requests == 3


async def test_logprobs_stop_at_a_refusal_of_a_key_never_accepted():
    with CompletionsServer([401]) as server:
        async with LogprobClient(logprob_role(server), LimitsConfig(max_retries=5)) as client:
            with pytest.raises(JudgeUnavailable, match=r"rejected the API key \(HTTP 401\)"):
                await client.continuation_logprobs("ab", "cd")
        assert server.requests == 1


async def test_logprobs_stop_after_refusals_in_a_row():
    lim = LimitsConfig(backoff_base_s=0.0, max_retries=10, auth_refusals_to_stop=2)
    with CompletionsServer([200, 401, 401]) as server:
        async with LogprobClient(logprob_role(server), lim) as client:
            await client.continuation_logprobs("ab", "cd")
            with pytest.raises(JudgeUnavailable, match=r"\(2 refusals in a row\)"):
                await client.continuation_logprobs("ab", "ef")
        assert server.requests == 3
