"""The plan's token counts against what a judge really received, and its context splitting
against the Verifier's own.

The same groups are scored for real (the HTTP stub judge, or the scripted in-memory client) and
planned with `group_load`, given the rubric the judge wrote (the plan's own rubric is an
assumption of size, checked in test_arithmetic.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from ropd import Group, RoleConfig, ScorerConfig, score_groups
from ropd.plan.groups import group_load
from ropd.reward.group_scorer import GroupScorer
from ropd.testing import StubJudgeServer, scripted_judge
from ropd.testing.stub_server import approx_tokens


class StubCounter:
    """Counts as the stub judge does for its usage: all message contents, 4 characters a token."""

    def text(self, text: str) -> int:
        return approx_tokens(text)

    def messages(self, messages: Any) -> int:
        return approx_tokens("".join(str(m.get("content", "")) for m in messages))


def groups() -> list[Group]:
    words = ["seven", "triangle", "integral", "prime", "matrix", "vector"]
    out = []
    for g in range(3):
        prompt = f"Problem {g}: what is {g + 3} times {g + 11}? Show the steps."
        students = [
            " ".join(words[(g + s + i) % len(words)] for i in range(60 + 25 * s)) for s in range(4)
        ]
        teachers = [f"Teacher {t}: " + "carefully " * (40 + 10 * t) for t in range(2)]
        out.append(
            Group(id=f"g{g}", prompt=prompt, student_responses=students, teacher_responses=teachers)
        )
    return out


def plan_of(group: Group, result: Any, scorer: GroupScorer, counter: Any = None) -> Any:
    """The plan of a scored group, with the rubric its judge wrote."""
    return group_load(
        scorer,
        group.id,
        group.prompt,
        group.teacher_responses,
        group.student_responses,
        criteria=len(result.rubrics[0].criteria),
        counter=counter,
        rubric=result.rubrics[0],
    )


def test_planned_input_tokens_match_what_the_stub_judge_received() -> None:
    with StubJudgeServer(0.0) as stub:
        role = RoleConfig(base_url=stub.base_url, model="stub")
        config = ScorerConfig(judge=role, num_teacher_refs=2)
        results = score_groups(groups(), config)
    scorer = GroupScorer(config, client=None)
    for group, result in zip(groups(), results):
        assert result.error is None
        planned = plan_of(group, result, scorer, StubCounter())
        usage = result.usage
        for role_name, load in (("rubricator", planned.rubricator),
                                ("verifier", planned.verifier)):  # fmt: skip
            received = usage[role_name]["prompt_tokens"]
            assert load.calls == usage[role_name]["calls"]
            assert load.input_tokens == pytest.approx(received, rel=0.10), role_name


def test_a_small_window_splits_the_pool_as_the_verifier_does() -> None:
    verifier = RoleConfig(name="verifier", context_window=2400, max_tokens=200)
    config = ScorerConfig(
        rubricator=RoleConfig(name="rubricator"), verifier=verifier, num_teacher_refs=2
    )
    results = score_groups(groups(), config, client=scripted_judge(), probe=False)
    scorer = GroupScorer(config, client=None)
    for group, result in zip(groups(), results):
        assert result.error is None
        chunks = result.settings["context"]["verifier"]["chunks"]
        planned = plan_of(group, result, scorer)
        assert len(chunks) > 1  # the window really splits this pool
        assert planned.verifier_chunks == chunks
        assert planned.verifier.calls == len(chunks)
