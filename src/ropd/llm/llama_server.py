"""Entry point of the embedded server process: llama-cpp-python's server with safe CPU settings.

`python -m ropd.llm.llama_server [--weight_repack] [--watch_parent PID] <llama_cpp.server args>`

By default llama.cpp repacks weights into CPU "extra buffer types" (AMX / interleaved layouts).
On CPUs with AMX this crashed llama-cpp-python 0.3.36 with a segmentation fault on the first
decode of SmolLM2's Q4_1 weights, so repacking is switched off unless `--weight_repack` is given.
With `--watch_parent PID` the server ends itself when that process is gone (killed with
SIGKILL, say, so that its exit handlers never ran): no orphaned server keeps a port and 300 MB.

A request whose client goes away stops generating. llama-cpp-python 0.3.36 only notices a gone
client of a non-streaming request before generation starts (a request that timed out while
queued is skipped); once started, `create_chat_completion` runs in a worker thread to max_tokens
for nobody, holding the model lock, and the client's retry waits behind it: on a slow machine
every retry then times out behind the generations abandoned before it. Here an ASGI middleware
(`ClientWatch`) watches each completion request's connection once its body is read, and a
stopping criterion added to every `Llama.create_completion` (the chat handlers go through it)
ends that request's generation at its next token when the client is gone; the server log says
`ropd: client gone ...` with the tokens it stopped at. Prompt evaluation itself is not
interrupted (1,500 prompt tokens took 10-26 s on 2 loaded cores): the client's timeouts leave
room for it (`LocalServer.request_timeout_s`). Measured: a 1,000-token request abandoned after
3 s kept the server busy 42 s more before; now it stops within a token and the next request is
answered in 0.4 s.

The server's own command line is otherwise passed through unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import runpy
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from typing import Any

REPACK_FLAG = "--weight_repack"
WATCH_FLAG = "--watch_parent"
GENERATING_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The "client went away" flag of the request being served, seen by the worker thread that
# generates for it (anyio runs `run_in_threadpool` calls in a copy of the request's context).
CLIENT_GONE: ContextVar[threading.Event | None] = ContextVar("ropd_client_gone", default=None)


def _disable_weight_repack() -> None:
    import llama_cpp.llama_cpp as bindings

    default_params = bindings.llama_model_default_params

    def without_repack():  # type: ignore[no-untyped-def]
        params = default_params()
        if hasattr(params, "use_extra_bufts"):
            params.use_extra_bufts = False
        return params

    bindings.llama_model_default_params = without_repack


class ClientWatch:
    """ASGI middleware: flags a completion request whose client disconnected.

    Once the request body is read nobody reads the connection while the model generates, so
    a disconnect goes unseen; a task here waits for it and sets the request's `CLIENT_GONE`
    event. The app's own later `receive` calls (`Request.is_disconnected`) are answered from
    that task, never by a second reader of the connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("path") not in GENERATING_PATHS:
            await self.app(scope, receive, send)
            return
        gone = threading.Event()
        disconnected = asyncio.Event()
        watcher: asyncio.Task[None] | None = None

        def mark_gone() -> None:
            gone.set()
            disconnected.set()

        async def watch() -> None:
            while (await receive()).get("type") != "http.disconnect":
                pass
            mark_gone()

        async def watched_receive() -> Message:
            nonlocal watcher
            if watcher is not None:  # the body is read: only a disconnect can come now
                await disconnected.wait()
                return {"type": "http.disconnect"}
            message = await receive()
            if message.get("type") == "http.disconnect":
                mark_gone()
            elif not message.get("more_body", False):
                watcher = asyncio.create_task(watch())
            return message

        token = CLIENT_GONE.set(gone)
        try:
            await self.app(scope, watched_receive, send)
        finally:
            CLIENT_GONE.reset(token)
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher


class StopWhenGone:
    """Stopping criterion: true once the request's client is gone (says so once, in the log)."""

    def __init__(self, gone: threading.Event, max_tokens: object) -> None:
        self.gone = gone
        self.max_tokens = max_tokens
        self.tokens = 0
        self.said = False

    def __call__(self, input_ids: Any, logits: Any) -> bool:
        self.tokens += 1
        if not self.gone.is_set():
            return False
        if not self.said:
            self.said = True
            print(
                f"ropd: client gone; generation stopped after {self.tokens} tokens "
                f"(max_tokens {self.max_tokens})",
                file=sys.stderr,
                flush=True,
            )
        return True


def _stop_generation_when_client_gone() -> None:
    """Every `Llama.create_completion` of a watched request stops once its client is gone."""
    import llama_cpp

    create = llama_cpp.Llama.create_completion

    def create_completion(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        gone = CLIENT_GONE.get()
        if gone is not None:
            stop = StopWhenGone(gone, kwargs.get("max_tokens"))
            given = list(kwargs.get("stopping_criteria") or [])
            kwargs["stopping_criteria"] = llama_cpp.StoppingCriteriaList([*given, stop])
        return create(self, *args, **kwargs)

    llama_cpp.Llama.create_completion = create_completion


def _watch_clients() -> None:
    """The server's app gets `ClientWatch`; generations stop when their client is gone."""
    import llama_cpp.server.app as server_app

    create_app = server_app.create_app

    def create_watched_app(*args, **kwargs):  # type: ignore[no-untyped-def]
        app = create_app(*args, **kwargs)
        app.add_middleware(ClientWatch)
        return app

    server_app.create_app = create_watched_app  # `llama_cpp.server.__main__` imports it after
    _stop_generation_when_client_gone()


def _watch_parent(pid: int, interval_s: float = 1.0) -> None:
    """End this process once `pid` is no longer its parent (the parent died)."""

    def watch() -> None:
        while os.getppid() == pid:
            time.sleep(interval_s)
        os.kill(os.getpid(), signal.SIGTERM)  # graceful first (uvicorn shuts down)
        time.sleep(10)
        os._exit(1)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def main() -> None:
    if WATCH_FLAG in sys.argv:
        at = sys.argv.index(WATCH_FLAG)
        pid = int(sys.argv[at + 1])
        del sys.argv[at : at + 2]
        _watch_parent(pid)
    if REPACK_FLAG in sys.argv:
        sys.argv.remove(REPACK_FLAG)
    else:
        _disable_weight_repack()
    _watch_clients()
    sys.argv[0] = "llama_cpp.server"
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
