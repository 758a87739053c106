"""The sampled checks' draw includes the training step: later steps check other prompts, and a
resumed run (the same step again) checks the same ones."""

from __future__ import annotations

from ropd.reward.config import ScorerConfig
from ropd.reward.group_scorer import GroupScorer
from ropd.reward.health_checks import CHECK_ROLE, sampled
from ropd.reward.types import Group
from ropd.testing import ScriptedChatClient, content_verifier, rubric_reply

RUBRIC = rubric_reply([("42", 5), ("because", 2), ("check", 1), ("units", 2)])
IDS = [f"prompt-{n}" for n in range(2000)]


def test_each_step_draws_its_own_sample_of_the_same_share():
    def chosen(step: int | None, share: float = 0.1) -> set[str]:
        return {g for g in IDS if sampled("stability", g, 0, share, step)}

    one, two = chosen(1), chosen(2)
    assert one != two and one != chosen(None)
    assert len(one & two) < 60  # independent draws of 10 %: about 20 in common
    assert 150 <= len(one) <= 250 and 150 <= len(two) <= 250
    assert chosen(1) == one  # deterministic: a resumed run draws the same
    assert chosen(1, 0.05) < one  # a smaller share, a subset within the step
    assert all(sampled("stability", g, 0, 1.0, 7) for g in IDS[:50])
    assert not any(sampled("stability", g, 0, 0.0, 7) for g in IDS[:50])


async def test_the_scorer_samples_by_the_step_it_is_given():
    groups = [
        Group(id=f"g{n}", prompt="What is 6 * 7?", student_responses=["42", "41"],
              teacher_responses=["42 because 6*7"])
        for n in range(40)
    ]  # fmt: skip
    config = ScorerConfig(stability_check_share=0.25)

    async def checked(step: int | None) -> list[str]:
        handlers = {"rubricator": lambda m, s: RUBRIC, "verifier": content_verifier}
        fake = ScriptedChatClient({**handlers, CHECK_ROLE: content_verifier})
        results = await GroupScorer(config, fake).score_groups(groups, step=step)
        assert len(fake.calls_for(CHECK_ROLE)) == sum(bool(r.checks) for r in results)
        return [r.id for r in results if r.checks]

    at_3 = await checked(3)
    assert at_3 == [g.id for g in groups if sampled("stability", g.id, 0, 0.25, 3)]
    assert await checked(3) == at_3  # resumed at the same step: the same groups
    assert await checked(4) != at_3
    assert await checked(None) == [g.id for g in groups if sampled("stability", g.id, 0, 0.25)]
