"""Teacher answers for scoring and training: looked up in the store, built beforehand if asked."""

from __future__ import annotations

from collections.abc import Sequence

from ropd import redact
from ropd.reward.types import Prompt
from ropd.teacher.config import TeacherConfig
from ropd.teacher.store import MissingReferences, TeacherStore

log = redact.logger(__name__)


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
