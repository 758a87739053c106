"""Fixtures for training tests: tiny random models and a scripted judge factory."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def tiny_student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ropd.train.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "student", seed=0)


@pytest.fixture(scope="session")
def tiny_teacher(tiny_student: Path) -> Path:
    from ropd.train.tiny import build_tiny_model

    return build_tiny_model(tiny_student.parent / "teacher", seed=1)


@pytest.fixture
def scripted_factory() -> Callable[..., Any]:
    """A client factory with the runner's signature, answering from the request schema."""
    from ropd.train.scripted_judge import scripted_judge

    calls: list[Any] = []

    @asynccontextmanager
    async def factory(roles, limits):
        client = scripted_judge()
        calls.append(client)
        yield client, list(roles)

    factory.clients = calls  # type: ignore[attr-defined]
    return factory


@pytest.fixture
def tiny_overrides(tiny_student: Path, tmp_path: Path) -> dict[str, Any]:
    """A two-step GRPO run on the tiny model: 2 prompts x G = 2 per step."""
    return {
        "output_dir": str(tmp_path / "out"),
        "max_steps": 2,
        "per_device_train_batch_size": 4,
        "num_generations": 2,
        "max_completion_length": 12,
        "save_steps": 1,
        "report_to": "none",
        "activation_checkpointing": False,
        "ropd.student": str(tiny_student),
        "ropd.data.limit": 8,
        "ropd.teacher.store": str(tmp_path / "teacher.sqlite"),
        "ropd.teacher.build_missing": True,
        "ropd.teacher.num_answers": 2,
        "ropd.scorer.num_teacher_refs": 2,
    }
