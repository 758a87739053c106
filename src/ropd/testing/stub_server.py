"""A fixed-latency OpenAI-compatible endpoint on 127.0.0.1, for benchmarks and client tests.

It speaks real HTTP (stdlib `ThreadingHTTPServer`, one thread per request, so hundreds of
requests can sleep their latency at once) and answers through a reply policy (`schema_reply` by
default: a valid rubric for `ropd_rubric`, one boolean per criterion and answer for
`ropd_verdicts`, a score for `ropd_scalar_score`, plain answer text without a schema), the same
policies the in-memory `ScriptedChatClient` uses. A policy raising `ReplyError` fails its request
with that HTTP status. `status_script` makes the first requests fail with given HTTP statuses
(retry tests); `reject_json_schema` (or `reject_formats`) makes it refuse forms of
`response_format` the way servers without structured-output support do; `ignore_n` answers one
choice whatever `n` asks, as llama.cpp's Python server does. `models` are the names
`/v1/models` lists (None: that route answers 404, as on servers without it); `require_key`
makes every route answer 401 unless the request carries `Authorization: Bearer <require_key>`.
`context_window` makes it refuse, as vLLM does (HTTP 400, vLLM's error body), a request whose
prompt (counted as its usage is, 4 characters a token) plus `max_tokens` is over the window; the
window is listed as `max_model_len` in `/v1/models` unless `list_context_window=False` (servers
that enforce a window without saying it). `status_at={24: 403}` fails the chat request of that
arrival index (0-based, counted as `requests`) with that status, wherever it falls (a refusal
after successes). `redirects={"/old/v1/chat/completions": "http://host:port/v1/..."}` answers
a request for that exact path with a `redirect_status` (307) to that location (relative or
absolute), counted in `redirected`.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from typing_extensions import Self

from ropd.testing.replies import ReplyError, ReplyPolicy, sample, schema_reply
from ropd.testing.wire import WireRequest, read_request

STUB_MODEL = "stub"


def approx_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def prompt_tokens(request: dict[str, Any]) -> int:
    """The stub's count of a request's prompt tokens (usage and the context window alike)."""
    return approx_tokens("".join(str(m.get("content", "")) for m in request.get("messages") or []))


def context_error(window: int, prompt: int, completion: int) -> dict[str, Any]:
    """vLLM's body for a request over the model's context window (sent with HTTP 400)."""
    message = (
        f"This model's maximum context length is {window} tokens. However, you requested "
        f"{prompt + completion} tokens ({prompt} in the messages, {completion} in the "
        "completion). Please reduce the length of the messages or completion."
    )
    return {
        "object": "error",
        "message": message,
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # a burst of hundreds of connections must not overflow the backlog

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that left (timed out, reset) is normal traffic for a judge, not a traceback
        on stderr; anything else is still printed."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


class StubJudgeServer:
    """Serve `/v1/models` and `/v1/chat/completions` after `latency_s` seconds each.

    Replies come from `policy` (see `ropd.testing.replies`), given the request's messages and
    the `JsonSchema` it asked for, once per choice; `seed` (when not 0) is mixed into the sample
    key, so stubs with different seeds sample different plain-text answers.

    Stats (thread-safe): `calls` per reply kind (schema name, "json_object_schema",
    "json_object" or "text"), `statuses` per HTTP status, `requests` in total,
    `max_concurrent` requests being served at once, `bodies`, `headers` (lower-cased names) and
    `arrivals` of every chat request, for assertions on what the client sent; `models_requests`
    and `models_headers` of the `GET /v1/models` requests (the client's probe).
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
        policy: ReplyPolicy = schema_reply,
        models: Sequence[str] | None = (STUB_MODEL,),
        require_key: str | None = None,
        context_window: int | None = None,
        list_context_window: bool = True,
        status_at: Mapping[int, int] | None = None,
        redirects: Mapping[str, str] | None = None,
        redirect_status: int = 307,
    ) -> None:
        self.latency_s = latency_s
        self.policy = policy  # read per request: a test may swap it between runs
        self.port = port or 0
        self.status_script = list(status_script or [])
        self.retry_after_s = retry_after_s
        self.reject_formats = set(reject_formats) | (
            {"json_schema"} if reject_json_schema else set()
        )
        self.ignore_n = ignore_n
        self.error_message = error_message
        self.seed = seed
        self.models = None if models is None else list(models)
        self.require_key = require_key
        self.context_window = context_window
        self.list_context_window = list_context_window
        self.status_at = dict(status_at or {})
        self.redirects = dict(redirects or {})
        self.redirect_status = redirect_status
        self.redirected = 0  # requests answered with a redirect
        self.context_errors = 0  # requests refused as over the context window
        self.calls: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.requests = 0
        self.concurrent = 0
        self.max_concurrent = 0
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.arrivals: list[float] = []  # time.monotonic() of each request's arrival
        self.models_requests = 0
        self.models_headers: list[dict[str, str]] = []
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
                headers = {k.lower(): v for k, v in self.headers.items()}
                if self._redirected():
                    return
                if self.path.rstrip("/") != "/v1/models" or stub.models is None:
                    self._reply(404, {"error": {"message": f"no route {self.path}"}})
                    return
                with stub._lock:
                    stub.models_requests += 1
                    stub.models_headers.append(headers)
                refused = stub._refuse_key(headers)
                if refused is not None:
                    self._reply(401, refused)
                    return
                data = [stub._model_entry(name) for name in stub.models]
                self._reply(200, {"object": "list", "data": data})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self._redirected():
                    return
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

            def _redirected(self) -> bool:
                """Answer a path listed in `redirects` with a redirect to its location."""
                location = stub.redirects.get(self.path)
                if location is None:
                    return False
                with stub._lock:
                    stub.redirected += 1
                self._reply(stub.redirect_status, {}, {"Location": location})
                return True

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

        self._server = _Server(("127.0.0.1", self.port), self._handler_class(Handler))
        self.port = int(self._server.server_address[1])
        # stop() waits for the next poll: a short one keeps the ~100 stubs of the tests cheap
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def _handler_class(self, base: type[BaseHTTPRequestHandler]) -> type[BaseHTTPRequestHandler]:
        """The request handler to serve with; subclasses may extend `base` (fault injection)."""
        return base

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
            self.context_errors = 0
            self.redirected = 0
            self.bodies.clear()
            self.headers.clear()
            self.arrivals.clear()
            self.models_requests = 0
            self.models_headers.clear()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self.requests,
                "calls": dict(self.calls),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "max_concurrent": self.max_concurrent,
                "context_errors": self.context_errors,
            }

    # -- request handling (runs in the request's thread) ---------------------------------------

    def _handle(
        self, request: dict[str, Any], headers_in: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            index = self.requests
            self.requests += 1
            self.arrivals.append(time.monotonic())
            self.bodies.append(request)
            self.headers.append(headers_in)
            scripted = self.status_script.pop(0) if self.status_script else None
            if scripted is None:
                scripted = self.status_at.get(index)
            self.concurrent += 1
            self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            refused = self._refuse_key(headers_in)
            if refused is not None:
                with self._lock:
                    self.statuses[401] += 1
                return 401, refused, {}
            if scripted is not None and scripted != 200:
                with self._lock:
                    self.statuses[scripted] += 1
                headers = {}
                if self.retry_after_s is not None:
                    headers["Retry-After"] = f"{self.retry_after_s:g}"
                return scripted, self._error(self.error_message, "stub_scripted"), headers
            wire = read_request(request)
            if wire.form in self.reject_formats:
                with self._lock:
                    self.statuses[400] += 1
                message = f"response_format {wire.form} is not supported by this server"
                return 400, self._error(message, "invalid_request_error", "response_format"), {}
            overflow = self._over_window(request)
            if overflow is not None:
                with self._lock:
                    self.statuses[400] += 1
                    self.context_errors += 1
                return 400, overflow, {}
            if self.latency_s > 0:
                time.sleep(self.latency_s)
            try:
                texts = self._answer(request, wire)
            except ReplyError as exc:
                with self._lock:
                    self.statuses[exc.status] += 1
                return exc.status, self._error(str(exc), "stub_policy"), {}
            with self._lock:
                self.calls[wire.label] += 1
                self.statuses[200] += 1
            return 200, self._completion(request, texts), {}
        finally:
            with self._lock:
                self.concurrent -= 1

    def _refuse_key(self, headers: dict[str, str]) -> dict[str, Any] | None:
        """The 401 body when `require_key` is set and the request does not carry it."""
        if self.require_key is None:
            return None
        if headers.get("authorization") == f"Bearer {self.require_key}":
            return None
        return self._error("Incorrect API key provided", "invalid_request_error")

    def _model_entry(self, name: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"id": name, "object": "model"}
        if self.context_window is not None and self.list_context_window:
            entry["max_model_len"] = self.context_window  # as vLLM lists it
        return entry

    def _over_window(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """vLLM's error body when prompt + max_tokens is over `context_window`, else None."""
        if self.context_window is None:
            return None
        prompt = prompt_tokens(request)
        completion = int(request.get("max_tokens") or request.get("max_completion_tokens") or 0)
        if prompt + completion <= self.context_window:
            return None
        return context_error(self.context_window, prompt, completion)

    @staticmethod
    def _error(message: str, kind: str, param: str | None = None) -> dict[str, Any]:
        return {"error": {"message": message, "type": kind, "param": param, "code": None}}

    def _answer(self, request: dict[str, Any], wire: WireRequest) -> list[str]:
        """One policy reply per choice, each marked as its sample (choice, request seed)."""
        n = 1 if self.ignore_n else max(1, int(request.get("n") or 1))
        extra = (self.seed,) if self.seed else ()  # seed 0 samples as the in-memory client does
        texts = []
        for choice in range(n):
            with sample(choice, request.get("seed"), *extra):
                texts.append(self.policy(wire.messages, wire.json_schema))
        return texts

    def _completion(self, request: dict[str, Any], texts: list[str]) -> dict[str, Any]:
        prompt = prompt_tokens(request)
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
                "prompt_tokens": prompt,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt + completion_tokens,
            },
        }
