"""Teacher answers for scoring and training: looked up in the store, built beforehand if asked."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ropd import redact
from ropd.llm.config import LimitsConfig
from ropd.reward.types import Prompt
from ropd.teacher.config import TeacherConfig
from ropd.teacher.store import MissingReferences, TeacherStore

log = redact.logger(__name__)
DEFAULT_ANSWERS = 4  # answers per prompt when K is "all given" but they come from a store


class StoreReferences:
    """The K teacher answers of a prompt, from the store (reasoning stripped per setting)."""

    def __init__(
        self,
        store: TeacherStore,
        k: int,
        *,
        fingerprint: str | None = None,
        accept_any_fingerprint: bool = False,
        strip_think: bool = True,
    ):
        self.store = store
        self.k = k
        self.fingerprint = fingerprint
        self.accept_any_fingerprint = accept_any_fingerprint
        self.strip_think = strip_think

    @classmethod
    def from_config(
        cls, store: TeacherStore, teacher: TeacherConfig, k: int, *, strip_think: bool = True
    ) -> StoreReferences:
        return cls(
            store,
            k,
            fingerprint=teacher.fingerprint,
            accept_any_fingerprint=teacher.accept_any_fingerprint,
            strip_think=strip_think,
        )

    async def references(self, prompt: Prompt) -> list[str]:
        return self.lookup(prompt)

    def lookup(self, prompt: Prompt, k: int | None = None) -> list[str]:
        """Up to `k` usable answers ([] when there are none); a fingerprint mismatch raises."""
        k = self.k if k is None else k
        if k < 1:
            return []
        fingerprint = self.store.fingerprint(self.fingerprint) if self.fingerprint else None
        try:
            return list(
                self.store.lookup(
                    prompt,
                    k=k,
                    fingerprint=fingerprint,
                    accept_any_fingerprint=self.accept_any_fingerprint,
                    strip_think=self.strip_think,
                    allow_fewer=True,
                )
            )
        except MissingReferences:
            return []

    def coverage(self, prompts: Sequence[Prompt], k: int | None = None) -> int:
        """How many prompts have fewer than `k` usable teacher answers."""
        k = self.k if k is None else k
        if k < 1:
            return 0
        return sum(len(self.lookup(p, k)) < k for p in prompts)


def build_missing(
    teacher: TeacherConfig,
    prompts: Sequence[tuple[str, Prompt]],
    limits: LimitsConfig,
    k: int,
    *,
    system_prompt: str | None = None,
    client: Any = None,
) -> Any:
    """Generate and store the missing teacher answers of `(id, prompt)` pairs (resumable).

    `client` scores through another `ChatClient` (tests); by default the teacher's endpoint (or
    the embedded model) is opened and closed here. The store is locked for the build, as by
    `ropd teacher build`: a second build of the same store refuses at once, naming the holder.
    """
    from ropd.io.lock import OutputLock
    from ropd.teacher.builder import PromptItem, build_store
    from ropd.teacher.fingerprint import prompt_key

    items = [PromptItem(prompt_key(messages), messages, pid) for pid, messages in prompts]
    store = Path(teacher.store)  # type: ignore[arg-type]
    with OutputLock(store, advice="wait for it or set another ropd.teacher.store"):
        report = build_store(
            items,
            store,
            teacher.role,
            k,
            limits=limits,
            client=client,
            system_prompt=system_prompt,
            progress=True,
        )
    log.info("teacher answers built: %s", report.as_dict())
    note = report.truncation_note()
    if note:
        log.warning("%s", note)
    return report
