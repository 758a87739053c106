"""A judge endpoint that misbehaves on purpose: `StubJudgeServer` plus a seeded mix of faults.

Every request is, with probability `fault_rate`, answered by one fault drawn from a weighted mix,
otherwise by the reply policy, exactly as `StubJudgeServer` answers. The draw is reproducible: it
depends on the seed, a hash of the request body and how many times that same body was seen
before (a retry of a request is the same body seen once more), never on arrival order, so a batch
of concurrent distinct requests meets the same faults on every run.

The faults and what each simulates:

Transport (the client must retry, then fail the request with a `JudgeError`):
- `http_500`, `http_502`, `http_503`: a crashing server, a proxy whose upstream died, an
  overloaded server (OpenAI-style error body).
- `http_429_retry_after`: rate limited, with a short `Retry-After` header (`retry_after_s`).
- `http_429`: rate limited without any hint of when to come back.
- `hang`: a server that stalls: the reply comes `hang_s` seconds late, past the client's timeout.
- `reset`: a crashed worker or a killed proxy connection: the connection is reset without a reply.

Envelope (HTTP 200, but no chat completion in it; the client must treat it as a failed attempt):
- `html_200`: a captive portal or a misrouted proxy answering with an HTML page (text/html).
- `truncated_json_200`: a completion body cut in half (a proxy or worker dying mid-write).
- `invalid_json_200`: a body that is not JSON though it says so (a Python repr: single quotes).
- `no_choices_200`: a JSON object without `choices` (an error object sent with status 200).

Content (a well-formed completion; the engine, not the client, must catch these):
- `wrong_shape`: content is a JSON object that fits no ropd schema: `{"verdict": "yes"}`.
- `finish_length`: the policy's reply cut in half, `finish_reason` "length" (max_tokens hit).
- `empty_content`: content "" or null (a model that stopped at once, or only "reasoned").
- `self_reported_totals`: the policy's JSON reply with the judge's own arithmetic added at the
  top level (`score`, `total`, `reward`, where the reply does not have them already), which the
  engine must ignore or reject; a reply that is not a JSON object is left unchanged.

Boundary (not in the default mix; name them in `faults`, as `ropd bench faults` does):
- `http_401`, `http_403`: a key that worked is refused once (a flaky gateway, a firewall).
  Only sent once the endpoint has answered cleanly at least once, so the key has been accepted
  (the one exception to "never on arrival order").
- `http_429_retry_after_long`: rate limited with a `Retry-After` of `long_retry_after_s` (600 s
  by default), far longer than any call's time budget.
- `redirect_other_origin`: a 307 to another origin (`trap_url`, a second server on 127.0.0.1
  that counts what reaches it in `trap_requests` and `trap_authorized`); prompts and keys must
  never be sent there.

Stats (thread-safe, besides the stub's own): `faults` injected per kind, `clean` replies,
`outcomes` (the kind, or "clean", of every request in arrival order). The stub's `statuses`
count what was really sent (a reset sends no status).
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ropd.testing.replies import ReplyPolicy, schema_reply
from ropd.testing.stub_server import StubJudgeServer

HTTP_500 = "http_500"
HTTP_502 = "http_502"
HTTP_503 = "http_503"
HTTP_429_RETRY_AFTER = "http_429_retry_after"
HTTP_429 = "http_429"
HANG = "hang"
RESET = "reset"
HTML_200 = "html_200"
TRUNCATED_JSON_200 = "truncated_json_200"
INVALID_JSON_200 = "invalid_json_200"
NO_CHOICES_200 = "no_choices_200"
WRONG_SHAPE = "wrong_shape"
FINISH_LENGTH = "finish_length"
EMPTY_CONTENT = "empty_content"
SELF_REPORTED_TOTALS = "self_reported_totals"

HTTP_401 = "http_401"
HTTP_403 = "http_403"
HTTP_429_RETRY_AFTER_LONG = "http_429_retry_after_long"
REDIRECT_OTHER_ORIGIN = "redirect_other_origin"

TRANSPORT_FAULTS = (HTTP_500, HTTP_502, HTTP_503, HTTP_429_RETRY_AFTER, HTTP_429, HANG, RESET)
ENVELOPE_FAULTS = (HTML_200, TRUNCATED_JSON_200, INVALID_JSON_200, NO_CHOICES_200)
CONTENT_FAULTS = (WRONG_SHAPE, FINISH_LENGTH, EMPTY_CONTENT, SELF_REPORTED_TOTALS)
ALL_FAULTS = TRANSPORT_FAULTS + ENVELOPE_FAULTS + CONTENT_FAULTS  # the default mix
BOUNDARY_FAULTS = (HTTP_401, HTTP_403, HTTP_429_RETRY_AFTER_LONG, REDIRECT_OTHER_ORIGIN)
KNOWN_FAULTS = ALL_FAULTS + BOUNDARY_FAULTS
_AUTH_FAULTS = frozenset({HTTP_401, HTTP_403})
CLEAN = "clean"

_STATUS_FAULTS = {
    HTTP_500: 500,
    HTTP_502: 502,
    HTTP_503: 503,
    HTTP_429_RETRY_AFTER: 429,
    HTTP_429: 429,
    HTTP_401: 401,
    HTTP_403: 403,
    HTTP_429_RETRY_AFTER_LONG: 429,
}
_ERROR_TYPES = {
    401: "invalid_api_key",
    403: "permission_denied",
    429: "rate_limit_exceeded",
    503: "server_overloaded",
}
_RAW_FAULTS = frozenset({RESET, HTML_200, TRUNCATED_JSON_200, INVALID_JSON_200})
WRONG_SHAPE_REPLY = {"verdict": "yes"}
SELF_REPORTED = {"score": 1.0, "total": 99, "reward": 1.0}
HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Service Unavailable</title></head>\n"
    "<body><h1>Service Unavailable</h1><p>The upstream server is not answering. "
    "Please try again later.</p><hr><address>nginx</address></body></html>\n"
)


def _weights(faults: Mapping[str, float] | Sequence[str] | None) -> dict[str, float]:
    if faults is None:
        return dict.fromkeys(ALL_FAULTS, 1.0)
    if isinstance(faults, str):
        raise TypeError("faults must be a sequence or mapping of fault kinds, not a string")
    weights = dict(faults) if isinstance(faults, Mapping) else dict.fromkeys(faults, 1.0)
    unknown = sorted(set(weights) - set(KNOWN_FAULTS))
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; known: {list(KNOWN_FAULTS)}")
    if any(w < 0 for w in weights.values()) or not any(w > 0 for w in weights.values()):
        raise ValueError("fault weights must be >= 0 with at least one > 0")
    return {kind: float(w) for kind, w in weights.items() if w > 0}


def body_key(request: dict[str, Any]) -> str:
    """The hash of a request body the draw depends on (independent of key order)."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class FaultJudgeServer(StubJudgeServer):
    """An OpenAI-compatible endpoint on 127.0.0.1 answering a share of requests with faults.

    `fault_rate` is the probability that a request gets a fault; `faults` the mix, as kind ->
    weight or a sequence of kinds (equal weights; default: every kind, equally). `seed` drives
    the fault draw only (the policy's replies are the plain stub's). `hang_s` is how late a
    `hang` answers, `retry_after_s` the header of `http_429_retry_after` (and of scripted
    statuses). `script` gives the first requests' outcomes in arrival order (a fault kind, or
    None for a clean reply) before the draw takes over. Other keyword options go to
    `StubJudgeServer` (`status_script`, `reject_formats`, `ignore_n`, `error_message`, ...).
    """

    def __init__(
        self,
        fault_rate: float = 0.55,
        seed: int = 0,
        policy: ReplyPolicy = schema_reply,
        latency_s: float = 0.0,
        hang_s: float = 3.0,
        faults: Mapping[str, float] | Sequence[str] | None = None,
        port: int | None = None,
        *,
        retry_after_s: float = 0.05,
        long_retry_after_s: float = 600.0,
        script: Sequence[str | None] = (),
        **options: Any,
    ) -> None:
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be in [0, 1], got {fault_rate}")
        super().__init__(
            latency_s, port=port, policy=policy, retry_after_s=retry_after_s, **options
        )
        self.fault_rate = fault_rate
        self.fault_seed = seed
        self.hang_s = hang_s
        self.long_retry_after_s = long_retry_after_s
        self.weights = _weights(faults)
        self.trap = _Trap()
        self.script: list[str | None] = list(script)
        unknown = sorted({k for k in self.script if k is not None} - set(KNOWN_FAULTS))
        if unknown:
            raise ValueError(f"unknown fault kinds in script {unknown}")
        self.faults: Counter[str] = Counter()
        self.clean = 0
        self.outcomes: list[str] = []
        self._seen: Counter[str] = Counter()  # draw state: not cleared by reset_stats
        self._local = threading.local()  # the fault of the request this thread is answering

    # -- the draw ------------------------------------------------------------------------------

    def draw(self, request: dict[str, Any], occurrence: int = 0) -> str | None:
        """The fault (or None) of the `occurrence`-th arrival of this request body (pure)."""
        digest = hashlib.sha256(
            f"{self.fault_seed}:{body_key(request)}:{occurrence}".encode()
        ).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        if rng.random() >= self.fault_rate:
            return None
        kinds = list(self.weights)
        return rng.choices(kinds, weights=[self.weights[k] for k in kinds])[0]

    # -- lifecycle and stats -------------------------------------------------------------------

    def start(self) -> FaultJudgeServer:
        self.trap.start()
        super().start()
        return self

    def stop(self) -> None:
        super().stop()
        self.trap.stop()

    @property
    def trap_url(self) -> str:
        """Where `redirect_other_origin` sends the client: another origin on 127.0.0.1."""
        return f"http://127.0.0.1:{self.trap.port}/v1/chat/completions"

    @property
    def trap_requests(self) -> int:
        """Requests that reached the other origin (must stay 0)."""
        return self.trap.requests

    @property
    def trap_authorized(self) -> int:
        """Requests that reached the other origin with an Authorization header."""
        return self.trap.authorized

    def _handler_class(self, base: type[BaseHTTPRequestHandler]) -> type[BaseHTTPRequestHandler]:
        # The stub's handler, with its reply step able to send raw bodies or none at all.
        return _fault_handler(base, self)

    def reset_stats(self) -> None:
        super().reset_stats()
        with self._lock:
            self.faults.clear()
            self.clean = 0
            self.outcomes.clear()

    def stats(self) -> dict[str, Any]:
        out = super().stats()
        with self._lock:
            out["faults"] = dict(self.faults)
            out["clean"] = self.clean
        out["trap_requests"] = self.trap.requests
        return out

    # -- request handling (runs in the request's thread) ---------------------------------------

    def _handle(
        self, request: dict[str, Any], headers_in: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        key = body_key(request)
        with self._lock:
            occurrence = self._seen[key]
            self._seen[key] += 1
            scripted = bool(self.script)
            kind = self.script.pop(0) if scripted else None
        if not scripted:
            kind = self.draw(request, occurrence)
        with self._lock:
            if kind in _AUTH_FAULTS and not self.clean:  # no key accepted yet: not "flaky"
                kind = None
            self.outcomes.append(kind or CLEAN)
            if kind is None:
                self.clean += 1
            else:
                self.faults[kind] += 1
        self._local.kind = kind
        status, body, headers = super()._handle(request, headers_in)
        if kind is None:
            return status, body, headers
        if kind in _STATUS_FAULTS:
            code = _STATUS_FAULTS[kind]
            self._recount(status, code)
            retry_after = {
                HTTP_429_RETRY_AFTER: self.retry_after_s,
                HTTP_429_RETRY_AFTER_LONG: self.long_retry_after_s,
            }.get(kind)
            headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
            error = self._error(f"injected fault {kind}", _ERROR_TYPES.get(code, "server_error"))
            return code, error, headers
        if kind == REDIRECT_OTHER_ORIGIN:
            self._recount(status, 307)
            return 307, self._error("moved", "redirect"), {"Location": self.trap_url}
        if kind == RESET:  # the handler sends nothing
            self._recount(status, None)
            return status, body, headers
        if kind == HANG:
            time.sleep(self.hang_s)
            return status, body, headers
        if status != 200:  # the policy failed the request: nothing to alter
            self._local.kind = None
            return status, body, headers
        if kind == NO_CHOICES_200:
            body = {k: v for k, v in body.items() if k != "choices"}
        elif kind in CONTENT_FAULTS:
            rng = random.Random(f"{self.fault_seed}:{key}:{occurrence}:{kind}")
            body = {**body, "choices": [_alter(c, kind, rng) for c in body["choices"]]}
        return status, body, headers

    def _recount(self, counted: int, sent: int | None) -> None:
        """The stub counted the policy's status; count the one really sent instead."""
        with self._lock:
            self.statuses[counted] -= 1
            if not self.statuses[counted]:
                del self.statuses[counted]
            if sent is not None:
                self.statuses[sent] += 1

    def _take_fault(self) -> str | None:
        kind = getattr(self._local, "kind", None)
        self._local.kind = None
        return kind


class _Trap:
    """A second origin on 127.0.0.1 that only counts what reaches it (and answers 200 "{}")."""

    def __init__(self) -> None:
        self.port = 0
        self.requests = 0
        self.authorized = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        trap = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with trap._lock:
                    trap.requests += 1
                    trap.authorized += "authorization" in {k.lower() for k in self.headers}
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _alter(choice: dict[str, Any], kind: str, rng: random.Random) -> dict[str, Any]:
    """One choice of a clean completion with a content fault applied."""
    message = dict(choice.get("message") or {})
    text = message.get("content") or ""
    finish = choice.get("finish_reason")
    if kind == WRONG_SHAPE:
        message["content"] = json.dumps(WRONG_SHAPE_REPLY)
    elif kind == FINISH_LENGTH:
        message["content"], finish = text[: len(text) // 2], "length"
    elif kind == EMPTY_CONTENT:
        message["content"] = rng.choice(["", None])
    elif kind == SELF_REPORTED_TOTALS:
        try:
            reply = json.loads(text)
        except json.JSONDecodeError:
            reply = None
        if isinstance(reply, dict):
            extra = {k: v for k, v in SELF_REPORTED.items() if k not in reply}
            message["content"] = json.dumps({**reply, **extra})
    return {**choice, "message": message, "finish_reason": finish}


def _raw_body(kind: str, body: dict[str, Any]) -> tuple[bytes, str]:
    """The bytes and content type a raw-body fault sends instead of `body`."""
    if kind == HTML_200:
        return HTML_PAGE.encode(), "text/html; charset=utf-8"
    if kind == TRUNCATED_JSON_200:
        data = json.dumps(body).encode()
        return data[: len(data) // 2], "application/json"
    return repr(body).encode(), "application/json"  # INVALID_JSON_200: single quotes, True, None


def _fault_handler(base: type, server: FaultJudgeServer) -> type:
    """A subclass of the stub's handler whose reply step can misbehave."""

    class FaultHandler(base):  # type: ignore[valid-type, misc]
        def _reply(
            self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            kind = server._take_fault()
            try:
                if kind == RESET:
                    self._reset()
                elif kind in _RAW_FAULTS and status == 200:
                    self._send_raw(status, *_raw_body(kind, body))
                else:
                    super()._reply(status, body, headers)
            except OSError:  # the client left (e.g. timed out during a hang)
                self.close_connection = True

        def _send_raw(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _reset(self) -> None:
            """Close the connection with a TCP reset (linger 0), no status line sent."""
            self.close_connection = True
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()  # really closed once the handler drops its file objects

    return FaultHandler


__all__ = [
    "ALL_FAULTS",
    "BOUNDARY_FAULTS",
    "CLEAN",
    "CONTENT_FAULTS",
    "EMPTY_CONTENT",
    "ENVELOPE_FAULTS",
    "FINISH_LENGTH",
    "HANG",
    "HTML_200",
    "HTTP_401",
    "HTTP_403",
    "HTTP_429",
    "HTTP_429_RETRY_AFTER",
    "HTTP_429_RETRY_AFTER_LONG",
    "HTTP_500",
    "HTTP_502",
    "HTTP_503",
    "INVALID_JSON_200",
    "KNOWN_FAULTS",
    "NO_CHOICES_200",
    "REDIRECT_OTHER_ORIGIN",
    "RESET",
    "SELF_REPORTED_TOTALS",
    "TRANSPORT_FAULTS",
    "TRUNCATED_JSON_200",
    "WRONG_SHAPE",
    "FaultJudgeServer",
    "body_key",
]
