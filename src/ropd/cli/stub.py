"""`ropd stub-judge`: a fake judge on 127.0.0.1, to try every command offline and at once.

It serves `ropd.testing.StubJudgeServer` with the `schema_reply` policy: a valid rubric for every
Rubricator request, one boolean per criterion and answer for every Verifier request, plain text
otherwise. The rewards mean nothing; what it shows is that the pipeline, flags, trace store and
`ropd inspect` work, without a model download or an API bill. It runs until Ctrl-C (or SIGTERM)
and exits 0 then.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from ropd.errors import InputError
from ropd.testing.stub_server import STUB_MODEL, StubJudgeServer

KEY_VARIABLE = "STUB_KEY"  # any value works: the stub checks no key


def example_command(base_url: str, model: str) -> str:
    """A `ropd score` line that runs as pasted against this stub."""
    groups = "examples/groups.jsonl" if Path("examples/groups.jsonl").is_file() else "groups.jsonl"
    return (
        f"{KEY_VARIABLE}=any ropd score {groups} -o stub-scores.jsonl "
        f"--base-url {base_url} --model {model} --api-key-env {KEY_VARIABLE}"
    )


def stub_judge(
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port on 127.0.0.1 (0: any free port).")
    ] = 8000,
    latency: Annotated[
        float, typer.Option(min=0.0, help="Seconds each chat request waits before its reply.")
    ] = 0.0,
    model: Annotated[
        str, typer.Option(help="Model name the stub lists at /v1/models and answers as.")
    ] = STUB_MODEL,
) -> None:
    """Serve a fake OpenAI-compatible judge on 127.0.0.1 for trying ropd offline (Ctrl-C stops)."""
    server = StubJudgeServer(latency_s=latency, port=port, models=[model])
    try:
        server.start()
    except OSError as error:
        raise InputError(
            f"cannot serve on 127.0.0.1:{port} ({error.strerror or error}); "
            "choose another port with --port (0 picks a free one)"
        ) from None
    stop = threading.Event()
    # Ctrl-C and SIGTERM both just end the wait below, so the stop is always the same clean one
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda _signum, _frame: stop.set())
    try:
        print(f"stub judge serving at {server.base_url}  (model {model}; Ctrl-C stops)", flush=True)
        print("try, in another terminal:", flush=True)
        print(f"  {example_command(server.base_url, model)}", flush=True)
        print("  ropd inspect --list", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        server.stop()
    print(f"stopped after {server.requests} requests", flush=True)


def register(app: typer.Typer) -> None:
    """Add this module's command to the top-level app."""
    app.command("stub-judge")(stub_judge)
