"""Fixtures shared by every test folder.

`local_server` is the real embedded llama.cpp server with SmolLM2-135M-Instruct (started once per
test session); tests that use it are marked `slow`. `tiny_student` / `tiny_teacher` are tiny
random transformers models for real training steps in seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def local_server() -> Iterator[object]:
    from ropd.llm.local_server import LocalServer

    with LocalServer() as server:
        yield server


@pytest.fixture(scope="session")
def tiny_student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ropd.integrations.trl.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "student", seed=0)


@pytest.fixture(scope="session")
def tiny_teacher(tiny_student: Path) -> Path:
    from ropd.integrations.trl.tiny import build_tiny_model

    return build_tiny_model(tiny_student.parent / "teacher", seed=1)
