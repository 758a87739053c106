"""The latency stub endpoint itself, over raw HTTP (no SDK in between)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from ropd.llm.stub_server import StubJudgeServer
from ropd.reward.schemas import rubric_schema, scalar_schema, verdicts_schema
from ropd.rubric import Rubric


def post(stub: StubJudgeServer, body: dict) -> tuple[int, dict, dict]:
    request = urllib.request.Request(
        f"{stub.base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), dict(error.headers)


def schema_request(schema, **extra) -> dict:
    rf = {"type": "json_schema", "json_schema": {"name": schema.name, "schema": schema.schema}}
    return {
        "model": "stub",
        "messages": [{"role": "user", "content": "x"}],
        "response_format": rf,
        **extra,
    }


def test_models_and_schema_replies():
    with StubJudgeServer(0.0) as stub:
        with urllib.request.urlopen(f"{stub.base_url}/models") as response:
            assert json.loads(response.read())["data"][0]["id"] == "stub"

        status, body, _ = post(stub, schema_request(rubric_schema(4, 12)))
        assert status == 200
        rubric = json.loads(body["choices"][0]["message"]["content"])
        assert 4 <= len(rubric["criteria"]) <= 12
        Rubric.model_validate(rubric)  # valid for the project's own rubric model
        assert body["usage"]["prompt_tokens"] >= 1 and body["usage"]["completion_tokens"] > 10

        status, body, _ = post(stub, schema_request(rubric_schema(2, 3)))
        assert len(json.loads(body["choices"][0]["message"]["content"])["criteria"]) == 3

        ids = ["c1", "c2", "c3"]
        status, body, _ = post(stub, schema_request(verdicts_schema(7, ids)))
        reply = json.loads(body["choices"][0]["message"]["content"])
        assert list(reply) == [f"answer_{n}" for n in range(1, 8)]
        assert all(set(v) == set(ids) for v in reply.values())
        values = [v for verdicts in reply.values() for v in verdicts.values()]
        assert True in values and False in values

        status, body, _ = post(stub, schema_request(scalar_schema()))
        assert 0 <= json.loads(body["choices"][0]["message"]["content"])["score"] <= 10

        status, body, _ = post(
            stub, {"model": "stub", "messages": [{"role": "user", "content": "q"}], "n": 3}
        )
        texts = [c["message"]["content"] for c in body["choices"]]
        assert len(texts) == 3 and len(set(texts)) == 3 and "answer" in texts[0]

        assert stub.stats()["calls"] == {
            "ropd_rubric": 2,
            "ropd_verdicts": 1,
            "ropd_scalar_score": 1,
            "text": 1,
        }


def test_verdicts_are_reproducible_for_the_same_request():
    with StubJudgeServer(0.0) as stub:
        request = schema_request(verdicts_schema(5, ["a", "b"]))
        first = post(stub, request)[1]["choices"][0]["message"]["content"]
        second = post(stub, request)[1]["choices"][0]["message"]["content"]
    assert first == second


def test_status_script_and_retry_after_header():
    with StubJudgeServer(0.0, status_script=[429, 503], retry_after_s=2) as stub:
        first = post(stub, schema_request(rubric_schema(4, 6)))
        second = post(stub, schema_request(rubric_schema(4, 6)))
        third = post(stub, schema_request(rubric_schema(4, 6)))
    assert (first[0], second[0], third[0]) == (429, 503, 200)
    assert first[2]["Retry-After"] == "2" and "error" in first[1]


def test_rejects_json_schema_but_answers_json_object():
    with StubJudgeServer(0.0, reject_json_schema=True) as stub:
        status, body, _ = post(stub, schema_request(rubric_schema(4, 6)))
        assert status == 400 and body["error"]["param"] == "response_format"
        request = {
            "model": "stub",
            "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_object"},
        }
        status, body, _ = post(stub, request)
        assert status == 200
        assert isinstance(json.loads(body["choices"][0]["message"]["content"]), dict)


@pytest.mark.parametrize("count", [320])
def test_hundreds_of_concurrent_requests_each_sleep_the_latency(count: int):
    latency = 1.0
    with StubJudgeServer(latency) as stub:
        with ThreadPoolExecutor(max_workers=count) as pool:
            started = time.perf_counter()
            statuses = list(
                pool.map(lambda _: post(stub, schema_request(rubric_schema(4, 6)))[0], range(count))
            )
            wall = time.perf_counter() - started
        assert statuses == [200] * count
        assert stub.max_concurrent >= count * 0.9
    assert wall < 3 * latency  # concurrent, not one after another
