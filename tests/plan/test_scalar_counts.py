"""The scalar judges' planned calls and tokens against what the HTTP stub judge received for the
same groups (scored for real by `TJudgeScorer` and `OVDScorer` over the OpenAI client)."""

from __future__ import annotations

import pytest
from tests.plan.test_counts import StubCounter, groups

from ropd import Group, RoleConfig
from ropd.llm.connect import open_chat_client
from ropd.plan.scalar import scalar_load
from ropd.reward.config import OVDConfig, TJudgeConfig
from ropd.reward.ovd import OVDScorer
from ropd.reward.tjudge import TJudgeScorer
from ropd.testing import StubJudgeServer

ScalarScorerType = type[TJudgeScorer] | type[OVDScorer]


async def scored_and_planned(
    cls: ScalarScorerType, config: TJudgeConfig | OVDConfig, batch: list[Group]
) -> None:
    """Score `batch` against the stub, then plan it: calls equal, input within 10 %."""
    with StubJudgeServer(0.0) as stub:
        role = config.judge.model_copy(update={"base_url": stub.base_url, "model": "stub"})
        config = config.model_copy(update={"judge": role})
        async with open_chat_client([role], probe=False) as (client, _):
            results = await cls(config, client).score_groups(batch)
    planner = cls(config, client=None)
    for group, result in zip(batch, results, strict=True):
        assert result.error is None
        used = result.usage[role.name]
        planned = scalar_load(
            planner,
            group.id,
            group.prompt,
            group.teacher_responses,
            group.student_responses,
            counter=StubCounter(),
        )
        assert planned.judge.calls == used["calls"]
        assert planned.judge.input_tokens == pytest.approx(used["prompt_tokens"], rel=0.10)


async def test_tjudge_with_references_counts_what_the_stub_received() -> None:
    judge = RoleConfig(name="tjudge", max_tokens=300)
    await scored_and_planned(TJudgeScorer, TJudgeConfig(judge=judge, num_references=2), groups())


@pytest.mark.parametrize("per_call", ["one", "group"])
async def test_ovd_counts_what_the_stub_received(per_call: str) -> None:
    batch = groups()
    # an empty trajectory is scored 0 without a call: the plan must not count one either
    batch[0] = batch[0].model_copy(
        update={"student_responses": [*batch[0].student_responses[:3], ""]}
    )
    judge = RoleConfig(name="ovd", max_tokens=300)
    await scored_and_planned(OVDScorer, OVDConfig(judge=judge, per_call=per_call), batch)
