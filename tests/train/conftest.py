"""Fixtures for training tests: tiny random models and a scripted judge factory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def scripted_client() -> Any:
    """One in-memory judge answering every role (teacher, rubricator, verifier, tjudge)."""
    from ropd.testing import scripted_judge

    return scripted_judge()


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
