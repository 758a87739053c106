"""Reward health through the TRL reward function: scripted judges with a known flaw, and the
`ropd/health/*` numbers that reach TRL's `log_metric` checked against values worked out by hand.

Each test calls `RopdReward` the way TRL does (prompts, completions, dataset columns,
`trainer_state`, `log_metric`), with in-memory judges answering by role name.
"""

from __future__ import annotations

import json
import logging
import math
from types import SimpleNamespace
from typing import Any

import pytest

import ropd
from ropd.integrations.trl import RopdReward
from ropd.reward.health import HealthConfig
from ropd.reward.health_checks import CHECK_ROLE
from ropd.reward.schemas import answer_key, verdicts_schema_shape
from ropd.testing import ScriptedChatClient, answers_in, content_verifier, rubric_reply

STUDENTS = ["42 because 6*7", "41", "42", "42 because, check, units"]
TEACHERS = ["It is 42 because 6*7=42, check: 42/7=6, units none", "forty-two"]
STEP = SimpleNamespace(global_step=2)  # TRL's state before the update of step 3


def constant(text: str):
    return lambda messages, schema: text


def position_verifier(messages, schema) -> str:
    """By content, except C1 ("mentions 42", 5 of 10 points): true for Answer 1 only."""
    reply = json.loads(content_verifier(messages, schema))
    for key, verdicts in reply.items():
        verdicts["C1"] = key == answer_key(1)
    return json.dumps(reply)


async def call(reward: RopdReward, prompts: list[str], completions: list[str]) -> dict[str, float]:
    logged: dict[str, float] = {}
    await reward(
        prompts=prompts,
        completions=completions,
        teacher_responses=[TEACHERS] * len(prompts),
        trainer_state=STEP,
        log_metric=logged.__setitem__,
    )
    await reward.aclose()
    return logged


def first_shown(fake: ScriptedChatClient, role: str, task: str) -> str:
    """Answer 1 of `role`'s call for the group whose task is `task`."""
    (match,) = [c for c in fake.calls_for(role) if task in c.messages[-1]["content"]]
    return answers_in(match.messages)[1]


async def test_a_position_biased_judge_shows_in_the_stability_numbers() -> None:
    rubric = rubric_reply([("42", 5), ("because", 2), ("check", 1), ("units", 2)])
    fake = ScriptedChatClient(
        {
            "rubricator": constant(rubric),
            "verifier": position_verifier,
            CHECK_ROLE: position_verifier,
        }
    )
    config = ropd.ScorerConfig(num_teacher_refs=2, seed=1, stability_check_share=1.0)
    reward = RopdReward(config, client=fake, num_generations=4)
    logged = await call(reward, ["What is 6 * 7?"] * 4 + ["What is 7 * 6?"] * 4, STUDENTS * 2)
    # Group "6 * 7": "41" is Answer 1 in both passes, so nothing flips.
    assert first_shown(fake, "verifier", "6 * 7") == first_shown(fake, CHECK_ROLE, "6 * 7") == "41"
    # Group "7 * 6": C1 moves from student 4 to student 1: 2 flips; student 4 loses its 5
    # points (1.0 -> 0.5), student 1 gains them (0.2 -> 0.7): 1.0 of reward change.
    assert first_shown(fake, "verifier", "7 * 6") == "42 because, check, units"
    assert first_shown(fake, CHECK_ROLE, "7 * 6") == "42 because 6*7"
    # 2 flips of 2 groups x 6 answers x 4 criteria; 1.0 change over 8 student answers
    assert logged["ropd/health/verdict_flip_rate"] == pytest.approx(2 / 48)
    assert logged["ropd/health/stability_reward_change"] == pytest.approx(1.0 / 8)
    assert logged["ropd/health/checked_groups"] == 2
    assert logged["ropd/judge/verifier_check/calls"] == 2


def length_verifier(messages: list[dict[str, Any]], schema: Any) -> str:
    """Criterion Ck is met by any answer of at least 10k characters: it pays for length."""
    count, ids = verdicts_schema_shape(schema.schema)
    shown = answers_in(messages)
    return json.dumps(
        {
            answer_key(n): {cid: len(shown[n]) >= 10 * int(cid[1:]) for cid in ids}
            for n in range(1, count + 1)
        }
    )


async def test_a_judge_paying_for_length_raises_the_length_alarm(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rubric = rubric_reply([("a", 1), ("b", 1), ("c", 1), ("d", 1)])
    fake = ScriptedChatClient({"rubricator": constant(rubric), "verifier": length_verifier})
    reward = RopdReward(
        ropd.ScorerConfig(num_teacher_refs=2),
        client=fake,
        num_generations=4,
        health=HealthConfig(alarm="warn", min_groups=1),
    )
    completions = ["a" * 5, "b" * 15, "c" * 25, "d" * 100]  # rewards 0, 1/4, 2/4, 4/4
    with caplog.at_level(logging.WARNING, logger="ropd"):
        logged = await call(reward, ["Write something."] * 4, completions)
    # Pearson by hand: length mean 36.25, deviations -31.25 -21.25 -11.25 63.75; reward mean
    # 0.4375, deviations -0.4375 -0.1875 0.0625 0.5625; sums of products 52.8125, of squares
    # 5618.75 and 0.546875.
    corr = 52.8125 / math.sqrt(5618.75 * 0.546875)
    assert corr == pytest.approx(0.95274, abs=1e-5)
    assert logged["ropd/health/length_reward_corr"] == pytest.approx(corr)
    assert logged["ropd/health/alarms"] == 1
    warned = [r.getMessage() for r in caplog.records if "reward health" in r.getMessage()]
    assert warned == ["reward health: |health/length_reward_corr| 0.953 > 0.6 at step 3"]


BAD_ANCHOR = rubric_reply([("41", 5), ("forty", 2), ("zebra", 1), ("yak", 2)])  # teachers: 0
GOOD = rubric_reply([("42", 5), ("because", 2), ("check", 1), ("units", 2)])


def rubricator(messages, schema) -> str:
    """The "7 * 6" group's first rubric fails both teacher answers; a re-asked one is sound."""
    text = messages[-1]["content"]
    return BAD_ANCHOR if "7 * 6" in text and "Why you are asked again" not in text else GOOD


@pytest.mark.parametrize("on", [True, False])
async def test_reinduction_is_counted_in_the_step(on: bool) -> None:
    fake = ScriptedChatClient({"rubricator": rubricator, "verifier": content_verifier})
    config = ropd.ScorerConfig(num_teacher_refs=2, reinduce_on_bad_anchor=on)
    reward = RopdReward(config, client=fake, num_generations=4)
    logged = await call(reward, ["What is 6 * 7?"] * 4 + ["What is 7 * 6?"] * 4, STUDENTS * 2)
    if on:  # one of two groups got a second rubric: one more call of each role in the step
        assert logged["ropd/health/reinduced_rate"] == 0.5
        assert logged["ropd/health/teacher_fail_rate"] == 0.0
        assert logged["ropd/judge/rubricator/calls"] == 3
        assert logged["ropd/judge/verifier/calls"] == 3
        assert "ropd/health/checked_groups" not in logged  # re-induction is no sampled check
    else:  # the failing rubric stands and shows as a failed anchor; no rate is logged
        assert "ropd/health/reinduced_rate" not in logged
        assert logged["ropd/health/teacher_fail_rate"] == 0.5
        assert logged["ropd/judge/rubricator/calls"] == 2
