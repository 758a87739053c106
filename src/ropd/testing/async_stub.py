"""The stub judge served from one asyncio event loop (aiohttp), for load benchmarks.

`StubJudgeServer` spends a thread per request: at a thousand requests in flight its process
spends about 2 ms of CPU per request on threads alone, so on a small machine the stub, not the
client under test, sets the pace. This server answers with the very same logic (the stub's
request handling, policy and usage figures) and waits out the latency with `asyncio.sleep`, at a
fraction of the CPU. Run it in its own process:

    python -m ropd.testing.async_stub --port 8000 --latency 1.0

It serves `GET /v1/models` and `POST /v1/chat/completions`, and `GET /stats` (requests, the most
served at once, CPU seconds of the process) for the benchmark to read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from aiohttp import web

from ropd.testing.stub_server import STUB_MODEL, StubJudgeServer


class AsyncStub:
    """The request logic of a `StubJudgeServer` (never started) behind an aiohttp app."""

    def __init__(self, latency_s: float, model: str = STUB_MODEL) -> None:
        self.latency_s = latency_s
        self.logic = StubJudgeServer(latency_s=0.0, models=[model])
        self.logic.bodies = _Discard()  # a load test keeps no request bodies
        self.logic.headers = _Discard()
        self.logic.arrivals = _Discard()
        self.served = 0
        self.concurrent = 0
        self.max_concurrent = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/v1/models", self.models)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/stats", self.stats)
        return app

    async def models(self, request: web.Request) -> web.Response:
        data = [{"id": name, "object": "model"} for name in self.logic.models or []]
        return web.json_response({"object": "list", "data": data})

    async def chat(self, request: web.Request) -> web.Response:
        self.concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            body = json.loads(await request.read())
            if self.latency_s > 0:
                await asyncio.sleep(self.latency_s)
            status, reply, headers = self.logic._handle(body, dict(request.headers))
            self.served += 1
            return web.json_response(reply, status=status, headers=headers)
        finally:
            self.concurrent -= 1

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": self.served,
                "max_concurrent": self.max_concurrent,
                "cpu_s": time.process_time(),
            }
        )


class _Discard(list):  # type: ignore[type-arg]
    """A list that keeps nothing (the stub's per-request records, unwanted under load)."""

    def append(self, item: Any) -> None:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--model", default=STUB_MODEL)
    args = parser.parse_args(argv)
    stub = AsyncStub(args.latency, args.model)
    web.run_app(stub.app(), host="127.0.0.1", port=args.port, backlog=4096, print=None)


if __name__ == "__main__":
    main()
