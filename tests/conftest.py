"""Fixtures shared by every test folder.

`local_server` is the real embedded llama.cpp server with SmolLM2-135M-Instruct (started once per
test session); tests that use it are marked `slow`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def local_server() -> Iterator[object]:
    from ropd.llm.local_server import LocalServer

    with LocalServer() as server:
        yield server
