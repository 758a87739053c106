"""Shared pieces of the verl adapter tests.

The collector and settings tests need no verl; the reward-manager and Ray tests skip themselves
(`pytest.importorskip("verl")`) where verl is not installed: it lives in `.venv-verl`
(`make verl`), because it caps transformers below the main venv's TRL stack.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ropd.testing import rubric_reply

# "answer mentions W" criteria: a completion's reward follows from the words it contains
RUBRIC = rubric_reply([("42", 5), ("because", 2), ("check", 1), ("units", 2)])
ANSWERS = {
    "42 because check units": 1.0,
    "42 because": 0.7,
    "42": 0.5,
    "because units": 0.4,
    "no idea": 0.0,
}
TEACHER = ["42 because 6 x 7 = 42"]


def group_answers(g: int, size: int) -> list[tuple[str, float]]:
    """`size` answers of group `g` with their expected rewards (the group number is noise)."""
    texts = list(ANSWERS)
    chosen = [texts[(g + i) % len(texts)] for i in range(size)]
    return [(f"{text} [g{g}.{i}]", ANSWERS[text]) for i, text in enumerate(chosen)]


def prompt_of(g: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Question {g}: what is 6 x 7?"}]


def shuffled(items: list, seed: int = 0) -> list:
    items = list(items)
    random.Random(seed).shuffle(items)
    return items


def traced_groups(path: Path) -> list[tuple[str, int | None, int, str | None]]:
    """(group id, step, student answers, error) of every traced group."""
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT group_id, step, num_student, error FROM groups ORDER BY pk"
        ).fetchall()


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An offline byte-level tokenizer (verl tests only: imported when a test asks for it)."""
    from ropd_dev.bench.verl import byte_tokenizer

    return byte_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir: Path) -> Any:
    from verl.utils import hf_tokenizer

    return hf_tokenizer(str(tokenizer_dir))


async def run_all(manager: Any, rows: list[Any]) -> list[dict[str, Any]]:
    """`run_single` on every row, arrivals a little apart as rollouts finish, then close."""

    async def one(i: int, row: Any) -> dict[str, Any]:
        await asyncio.sleep(0.002 * i)
        return await manager.run_single(row)

    try:
        return list(await asyncio.gather(*(one(i, row) for i, row in enumerate(rows))))
    finally:
        await manager.aclose()
