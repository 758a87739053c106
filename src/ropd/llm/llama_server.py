"""Entry point of the embedded server process: llama-cpp-python's server with safe CPU settings.

`python -m ropd.llm.llama_server [--weight_repack] [--watch_parent PID] <llama_cpp.server args>`

By default llama.cpp repacks weights into CPU "extra buffer types" (AMX / interleaved layouts).
On CPUs with AMX this crashed llama-cpp-python 0.3.36 with a segmentation fault on the first
decode of SmolLM2's Q4_1 weights, so repacking is switched off unless `--weight_repack` is given.
With `--watch_parent PID` the server ends itself when that process is gone (killed with
SIGKILL, say, so that its exit handlers never ran): no orphaned server keeps a port and 300 MB.
The server's own command line is otherwise passed through unchanged.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
import threading
import time

REPACK_FLAG = "--weight_repack"
WATCH_FLAG = "--watch_parent"


def _disable_weight_repack() -> None:
    import llama_cpp.llama_cpp as bindings

    default_params = bindings.llama_model_default_params

    def without_repack():  # type: ignore[no-untyped-def]
        params = default_params()
        if hasattr(params, "use_extra_bufts"):
            params.use_extra_bufts = False
        return params

    bindings.llama_model_default_params = without_repack


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
    sys.argv[0] = "llama_cpp.server"
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
