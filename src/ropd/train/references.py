"""Teacher answers for training: looked up in the teacher store, built beforehand if asked."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from ropd.llm.config import LimitsConfig
from ropd.reward.types import Prompt
from ropd.train.config import TeacherConfig
from ropd.train.data import TrainPrompt

log = logging.getLogger(__name__)


class StoreReferences:
    """The K teacher answers of a prompt, from the store (reasoning stripped per setting)."""

    def __init__(self, store: Any, teacher: TeacherConfig, k: int, *, strip_think: bool = True):
        self.store = store
        self.teacher = teacher
        self.k = k
        self.strip_think = strip_think

    async def references(self, prompt: Prompt) -> list[str]:
        if self.k < 1:
            return []
        return lookup(self.store, self.teacher, prompt, self.k, strip_think=self.strip_think)


def open_store(path: Path) -> Any:
    from ropd.teacher.store import TeacherStore

    return TeacherStore(path)


def lookup(
    store: Any, teacher: TeacherConfig, prompt: Prompt, k: int, *, strip_think: bool = True
) -> list[str]:
    """Up to `k` usable answers ([] when there are none); a fingerprint mismatch raises."""
    from ropd.teacher.store import MissingReferences

    fingerprint = store.fingerprint(teacher.fingerprint) if teacher.fingerprint else None
    try:
        return list(
            store.lookup(
                prompt,
                k=k,
                fingerprint=fingerprint,
                accept_any_fingerprint=teacher.accept_any_fingerprint,
                strip_think=strip_think,
                allow_fewer=True,
            )
        )
    except MissingReferences:
        return []


def coverage(store: Any, teacher: TeacherConfig, prompts: list[TrainPrompt], k: int) -> int:
    """How many prompts have fewer than `k` usable teacher answers."""
    if k < 1:
        return 0
    return sum(len(lookup(store, teacher, p.messages, k)) < k for p in prompts)


def build_missing(
    teacher: TeacherConfig,
    prompts: list[TrainPrompt],
    limits: LimitsConfig,
    k: int,
    *,
    system_prompt: str | None = None,
    client_factory: Any = None,
) -> Any:
    """Generate and store the missing teacher answers (resumable: the builder tops up)."""
    from ropd.teacher.builder import PromptItem, build_references
    from ropd.teacher.fingerprint import prompt_key

    if client_factory is None:
        from ropd.llm.client import open_chat_client as client_factory
    items = [PromptItem(prompt_key(p.messages), p.messages, p.id) for p in prompts]

    async def go() -> Any:
        async with client_factory([teacher.role], limits) as (client, roles):
            with open_store(Path(teacher.store)) as store:  # type: ignore[arg-type]
                return await build_references(
                    items, store, roles[0], client, k, system_prompt=system_prompt, progress=True
                )

    report = asyncio.run(go())
    log.info("teacher answers built: %s", report.as_dict())
    return report
