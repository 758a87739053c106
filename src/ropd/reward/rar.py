"""RaR: the dataset's own rubric as the reward (Rubrics as Rewards; Gunjal et al., 2025,
arXiv 2507.17746).

Each row carries a weighted checklist (`ropd.data.rubrics`). The group's pool (the G student
answers, and teacher answers when K > 0 and `teacher_in_pool`) is verified against it by the
same blind Verifier as ROPD, and every answer's reward is `rubric.weighted_score` of its
booleans: the paper's explicit aggregation (sum of the weights met over the sum of the
weights), with a met pitfall (negative weight) taking its points off, clipped to [0, 1].

This is `GroupScorer` with the Rubricator's step replaced; everything else (cleaning, dedupe,
the blind shuffled pool, chunked Verifier calls, sampled checks, failure policy, traces) is
the ROPD scorer's own code. With `mix_induced` the Rubricator is still asked, and the Verifier
checks the union: the dataset's criteria first, then the induced ones that do not repeat one
(ids renumbered C1..Cn, points as given). A group without a rubric fails with that cause (its
failure policy applies); `ropd train` refuses such data before training instead.
"""

from __future__ import annotations

from typing import Any

from ropd.llm.types import UsageBook
from ropd.reward.base import GroupInputError
from ropd.reward.config import RaRConfig
from ropd.reward.group_scorer import GroupScorer
from ropd.reward.induction import comparable_text
from ropd.reward.types import ContextRecord, Group, GroupResult
from ropd.rubric import Rubric

NO_RUBRIC = (
    "the group has no rubric of its own (method rar needs one per row: a `rubric` column or "
    "group field)"
)


def union(data: Rubric, induced: Rubric) -> Rubric:
    """The dataset's criteria, then the induced ones that do not repeat one of them (up to
    case and punctuation), renumbered C1..Cn; texts, categories and points as given."""
    seen = {comparable_text(c.criterion) for c in data.criteria}
    extra = [c for c in induced.criteria if comparable_text(c.criterion) not in seen]
    criteria = [
        c.model_copy(update={"id": f"C{n}"})
        for n, c in enumerate([*data.criteria, *extra], start=1)
    ]
    return Rubric(criteria=criteria)


class RaRScorer(GroupScorer):
    """Scores groups against their own rubric (`Group.rubric`); see `RaRConfig`."""

    kind = "rar"
    method = "rar"
    config: RaRConfig

    def __init__(self, config: RaRConfig, client: Any, traces: Any | None = None, **kw: Any):
        if not isinstance(config, RaRConfig):
            raise TypeError(f"RaRScorer needs a RaRConfig, got {type(config).__name__}")
        super().__init__(config, client, traces, **kw)

    @property
    def template_versions(self) -> dict[str, str]:
        templates = [self.verifier.system, self.verifier.user]
        if self.config.mix_induced:
            templates = [self.inducer.system, self.inducer.user, *templates]
        return {t.name: t.version for t in templates}

    def settings(self, group: Group) -> dict[str, Any]:
        data = group.rubric
        return {
            "scorer": "rar",
            **super().settings(group),
            "dataset_criteria": None if data is None else len(data.criteria),
        }

    async def _score(self, group: Group, book: UsageBook) -> GroupResult:
        if group.rubric is None:
            raise GroupInputError(NO_RUBRIC)
        return await super()._score(group, book)

    async def _rubric(
        self,
        group: Group,
        prompt_text: str,
        references: list[str],
        students: list[str],
        book: UsageBook,
        record: ContextRecord,
        reasons: tuple[str, ...],
    ) -> Rubric:
        """The group's own rubric, or its union with the induced criteria (`mix_induced`)."""
        if group.rubric is None:  # pragma: no cover - `_score` checked it
            raise GroupInputError(NO_RUBRIC)
        if not self.config.mix_induced:
            return group.rubric
        induced = await self.inducer.induce(
            self.client, prompt_text, references, students, book, record, reasons
        )
        return union(group.rubric, induced)


__all__ = ["NO_RUBRIC", "RaRConfig", "RaRScorer", "union"]
