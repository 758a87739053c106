"""The ROPD group scorer: rubric induction, then blind verification, then the reward formula."""

from __future__ import annotations

from collections.abc import Sequence

from ropd.llm.types import ChatClient, UsageBook
from ropd.reward.config import ScorerConfig
from ropd.reward.types import Group, GroupResult


class GroupScorer:
    """Scores whole groups; all groups of a batch run concurrently under the client's limits."""

    def __init__(self, config: ScorerConfig, client: ChatClient, traces: object | None = None):
        self.config = config
        self.client = client
        self.traces = traces
        self.usage = UsageBook()

    async def score_group(self, group: Group, *, step: int | None = None) -> GroupResult:
        raise NotImplementedError

    async def score_groups(
        self, groups: Sequence[Group], *, step: int | None = None
    ) -> list[GroupResult]:
        raise NotImplementedError
