"""A fixed-latency OpenAI-compatible endpoint on 127.0.0.1, for benchmarks and client tests.

It speaks real HTTP (stdlib `ThreadingHTTPServer`, one thread per request, so hundreds of
requests can sleep their latency at once) and recognises judge requests by the JSON-schema name
they ask for: `ropd_rubric` gets a valid rubric, `ropd_verdicts` one boolean per criterion for
every answer, `ropd_scalar_score` a score; a request without a schema gets plain answer text.
`status_script` makes the first requests fail with given HTTP statuses (retry tests);
`reject_json_schema` (or `reject_formats`) makes it refuse forms of `response_format` the way
servers without structured-output support do; `ignore_n` answers one choice whatever `n` asks,
as llama.cpp's Python server does.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Collection, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from typing_extensions import Self

from ropd.reward.schemas import (
    RUBRIC_SCHEMA_NAME,
    SCALAR_SCHEMA_NAME,
    VERDICTS_SCHEMA_NAME,
    answer_key,
    verdicts_schema_shape,
)

STUB_MODEL = "stub"
_CATEGORIES = ("correctness", "reasoning", "completeness", "clarity", "format")


def approx_tokens(text: str) -> int:
    return max(1, len(text) // 4)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # a burst of hundreds of connections must not overflow the backlog


class StubJudgeServer:
    """Serve `/v1/models` and `/v1/chat/completions` after `latency_s` seconds each.

    Stats (thread-safe): `calls` per reply kind (schema name, "json_object" or "text"),
    `requests` in total, `max_concurrent` requests being served at once, `bodies` and
    `headers` (lower-cased names) of every request, for assertions on what the client sent.
    """

    def __init__(
        self,
        latency_s: float = 1.0,
        *,
        port: int | None = None,
        status_script: Sequence[int] | None = None,
        retry_after_s: float | None = None,
        reject_json_schema: bool = False,
        reject_formats: Collection[str] = (),
        ignore_n: bool = False,
        error_message: str = "stub error",
        seed: int = 0,
    ) -> None:
        self.latency_s = latency_s
        self.port = port or 0
        self.status_script = list(status_script or [])
        self.retry_after_s = retry_after_s
        self.reject_formats = set(reject_formats) | (
            {"json_schema"} if reject_json_schema else set()
        )
        self.ignore_n = ignore_n
        self.error_message = error_message
        self.seed = seed
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.requests = 0
        self.concurrent = 0
        self.max_concurrent = 0
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.arrivals: list[float] = []  # time.monotonic() of each request's arrival
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> StubJudgeServer:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in separate writes; without TCP_NODELAY every reply waits
            # for a delayed ACK (~40 ms), a cost real judge servers do not have
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test and benchmark output clean

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    body = {"object": "list", "data": [{"id": STUB_MODEL, "object": "model"}]}
                    self._reply(200, body)
                else:
                    self._reply(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._reply(404, {"error": {"message": f"no route {self.path}"}})
                    return
                try:
                    request = json.loads(raw)
                except json.JSONDecodeError:
                    self._reply(400, {"error": {"message": "body is not JSON"}})
                    return
                status, body, headers = stub._handle(
                    request, {k.lower(): v for k, v in self.headers.items()}
                )
                self._reply(status, body, headers)

            def _reply(
                self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def reset_stats(self) -> None:
        """Forget the counters (e.g. after a warm-up); requests in flight keep counting."""
        with self._lock:
            self.calls.clear()
            self.statuses.clear()
            self.requests = 0
            self.max_concurrent = self.concurrent
            self.bodies.clear()
            self.headers.clear()
            self.arrivals.clear()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "calls": dict(self.calls),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "max_concurrent": self.max_concurrent,
            }

    # -- request handling (runs in the request's thread) ---------------------------------------

    def _handle(
        self, request: dict[str, Any], headers_in: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.requests += 1
            self.arrivals.append(time.monotonic())
            self.bodies.append(request)
            self.headers.append(headers_in)
            scripted = self.status_script.pop(0) if self.status_script else None
            self.concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            if scripted is not None and scripted != 200:
                with self._lock:
                    self.statuses[scripted] += 1
                headers = {}
                if self.retry_after_s is not None:
                    headers["Retry-After"] = f"{self.retry_after_s:g}"
                return scripted, self._error(self.error_message, "stub_scripted"), headers
            response_format = request.get("response_format") or {}
            form = _format_form(response_format)
            if form in self.reject_formats:
                with self._lock:
                    self.statuses[400] += 1
                message = f"response_format {form} is not supported by this server"
                return 400, self._error(message, "invalid_request_error", "response_format"), {}
            if self.latency_s > 0:
                time.sleep(self.latency_s)
            texts, label = self._answer(request, response_format)
            with self._lock:
                self.calls[label] += 1
                self.statuses[200] += 1
            return 200, self._completion(request, texts), {}
        finally:
            with self._lock:
                self.concurrent -= 1

    @staticmethod
    def _error(message: str, kind: str, param: str | None = None) -> dict[str, Any]:
        return {"error": {"message": message, "type": kind, "param": param, "code": None}}

    def _rng(self, request: dict[str, Any], choice: int) -> random.Random:
        digest = hashlib.sha256(
            json.dumps(
                [self.seed, request.get("seed"), request.get("messages"), choice],
                sort_keys=True,
                default=str,
            ).encode()
        ).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def _answer(
        self, request: dict[str, Any], response_format: dict[str, Any]
    ) -> tuple[list[str], str]:
        n = 1 if self.ignore_n else max(1, int(request.get("n") or 1))
        kind = response_format.get("type")
        if kind == "json_schema":
            spec = response_format.get("json_schema") or {}
            name = str(spec.get("name", ""))
            schema = spec.get("schema") or {}
            rng = self._rng(request, 0)
            if name == RUBRIC_SCHEMA_NAME:
                return [json.dumps(_rubric(schema, rng))] * n, name
            if name == VERDICTS_SCHEMA_NAME:
                return [json.dumps(_verdicts(schema, rng))] * n, name
            if name == SCALAR_SCHEMA_NAME:
                reply = {"reasoning": "Checked the answer.", "score": rng.randint(0, 10)}
                return [json.dumps(reply)] * n, name
            return [json.dumps({"result": "ok"})] * n, name or "json_schema"
        if kind == "json_object":
            schema = response_format.get("schema")
            if isinstance(schema, dict):
                return [json.dumps({"result": "ok"})] * n, "json_object_schema"
            return [json.dumps({"result": "ok"})] * n, "json_object"
        return [_teacher_text(self._rng(request, i)) for i in range(n)], "text"

    def _completion(self, request: dict[str, Any], texts: list[str]) -> dict[str, Any]:
        prompt_chars = sum(len(str(m.get("content", ""))) for m in request.get("messages") or [])
        completion_tokens = sum(approx_tokens(t) for t in texts)
        return {
            "id": f"chatcmpl-stub-{self.requests}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", STUB_MODEL),
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
                for i, text in enumerate(texts)
            ],
            "usage": {
                "prompt_tokens": max(1, prompt_chars // 4),
                "completion_tokens": completion_tokens,
                "total_tokens": max(1, prompt_chars // 4) + completion_tokens,
            },
        }


def _format_form(response_format: dict[str, Any]) -> str | None:
    """json_schema, json_object_schema (llama-cpp-python's form), json_object, or None."""
    kind = response_format.get("type")
    if kind == "json_object" and isinstance(response_format.get("schema"), dict):
        return "json_object_schema"
    return kind if kind in ("json_schema", "json_object") else None


def _rubric(schema: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    array = (schema.get("properties") or {}).get("criteria") or {}
    low = int(array.get("minItems", 1))
    high = int(array.get("maxItems", max(low, 6)))
    count = min(max(low, 5), high)
    criteria = []
    for i in range(1, count + 1):
        category = _CATEGORIES[(i - 1) % len(_CATEGORIES)]
        criteria.append(
            {
                "id": f"c{i}",
                "category": category,
                "criterion": f"The response satisfies check {i} on {category}.",
                "points": 5 if i == 1 else rng.choice([1, 2, 4]),
            }
        )
    return {"criteria": criteria}


def _verdicts(schema: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    count, ids = verdicts_schema_shape(schema)
    return {answer_key(i): {cid: rng.random() < 0.6 for cid in ids} for i in range(1, count + 1)}


def _teacher_text(rng: random.Random) -> str:
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    return (
        f"We need {a} + {b}. Adding the tens and then the units gives {a + b}. "
        f"Checking by subtraction: {a + b} - {b} = {a}. The answer is {a + b}."
    )
