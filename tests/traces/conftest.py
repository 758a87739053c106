"""Fixtures of the trace, io and `ropd score` tests: a scripted judge behind `ropd score`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import pytest

from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.llm.scripted import ScriptedChatClient
from ropd.testing import make_client, rubric_reply

RUBRIC = rubric_reply(
    [("391", 5), ("because", 2), ("check", 1), ("units", 2)], category="correctness"
)


class ScriptedFactory:
    """A `client_factory` for `ropd.cli.score` that hands out one scripted client."""

    def __init__(self, client: ScriptedChatClient | None = None):
        self.client = client or make_client(RUBRIC)
        self.opened: list[tuple[list[RoleConfig], LimitsConfig]] = []

    @contextlib.asynccontextmanager
    async def __call__(
        self, roles: Sequence[RoleConfig], limits: LimitsConfig
    ) -> AsyncIterator[tuple[ScriptedChatClient, list[RoleConfig]]]:
        self.opened.append((list(roles), limits))
        yield self.client, list(roles)


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> ScriptedFactory:
    """`ropd score` judged by a scripted client whose verdicts follow answer content."""
    import ropd.cli.score

    factory = ScriptedFactory()
    monkeypatch.setattr(ropd.cli.score, "client_factory", factory)
    return factory
