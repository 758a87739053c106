"""Re-induction: a rubric that fails its anchors is asked for once more, and the second is used.

The scripted Rubricator answers a first request with one rubric and a re-asked one (its message
says why) with another; the Verifier judges by content ("answer mentions W"), so every score
below is counted by hand from which words each answer contains.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.inprocess import ropd_in_process

from ropd.reward.config import ScorerConfig
from ropd.reward.group_scorer import GroupScorer
from ropd.reward.health_checks import CHECK_ROLE
from ropd.reward.induction import REASONS
from ropd.reward.traces import TraceStore
from ropd.reward.types import Group
from ropd.testing import (
    ScriptedChatClient,
    StubJudgeServer,
    content_policy,
    content_verifier,
    rubric_reply,
)
from ropd.testing.stub_server import STUB_MODEL

STUDENTS = ["42 because 6*7", "41", "42", "forty"]
TEACHERS = ["It is 42 because 6*7=42", "42"]
# 10 points: teachers 0.8 and 0.5; students 0.8, 0, 0.5, 0 -- a sound rubric
GOOD = rubric_reply([("42", 5), ("because", 3), ("check", 1), ("units", 1)])
# teachers 0 and 0 (no teacher says 41 or forty); students 0, 0.5, 0, 0.2 -- fails its anchors
BAD_ANCHOR = rubric_reply([("41", 5), ("forty", 2), ("zebra", 1), ("yak", 2)])
# teachers 0.7 and 0; every student 0 -- separates nobody
NO_SPREAD = rubric_reply([("It", 5), ("is", 2), ("zebra", 1), ("yak", 2)])
# everyone 0: both reasons
NOTHING = rubric_reply([("zebra", 5), ("yak", 2), ("emu", 1), ("gnu", 2)])
RETRY_HEADING = "# Why you are asked again"


def group(students: list[str] = STUDENTS, gid: str = "g1") -> Group:
    return Group(
        id=gid, prompt="What is 6 * 7?", student_responses=students, teacher_responses=TEACHERS
    )


def rubricator(first: str, again: str = GOOD):
    """`first` for a first request, `again` for a re-asked one."""

    def reply(messages, schema) -> str:
        return again if RETRY_HEADING in messages[-1]["content"] else first

    return reply


def client(first: str, again: str = GOOD) -> ScriptedChatClient:
    return ScriptedChatClient(
        {
            "rubricator": rubricator(first, again),
            "verifier": content_verifier,
            CHECK_ROLE: content_verifier,
        }
    )


def unbound(text: str) -> str:
    return re.sub(r"ROPD-[0-9A-F]+", "ROPD-X", text)


def words(result) -> list[str]:
    return [c.criterion.removeprefix("answer mentions ") for c in result.rubric.criteria]


ON = ScorerConfig(reinduce_on_bad_anchor=True)


async def test_a_rubric_the_teachers_fail_is_replaced_by_the_second_one():
    fake = client(BAD_ANCHOR)
    result = await GroupScorer(ON, fake).score_group(group())
    assert result.error is None
    assert words(result) == ["42", "because", "check", "units"]  # the second rubric
    assert result.rewards == pytest.approx([0.8, 0.0, 0.5, 0.0])
    assert result.teacher_scores == pytest.approx([0.8, 0.5])
    # exactly one more call of each role, under the ordinary roles
    assert [c.role for c in fake.calls] == ["rubricator", "verifier"] * 2
    assert result.usage["rubricator"]["calls"] == 2 and result.usage["verifier"]["calls"] == 2
    assert result.checks == {"reinduced": 1.0}
    assert result.settings["reinduced"] == "teacher_fail"
    first, again = (c.messages[-1]["content"] for c in fake.calls_for("rubricator"))
    assert RETRY_HEADING not in first
    assert REASONS["teacher_fail"] in again and REASONS["no_spread"] not in again
    # same task and answers (each call draws its own block boundary), the reason added after
    assert unbound(again).startswith(unbound(first))
    # the second Verifier call judged against the second rubric
    assert "answer mentions because" in fake.calls_for("verifier")[1].messages[-1]["content"]
    assert "rubricator_retry" in result.settings["templates"]


async def test_off_by_default_the_failing_rubric_stands():
    assert ScorerConfig().reinduce_on_bad_anchor is False
    fake = client(BAD_ANCHOR)
    result = await GroupScorer(ScorerConfig(), fake).score_group(group())
    assert result.rewards == pytest.approx([0.0, 0.5, 0.0, 0.2])
    assert result.teacher_scores == [0.0, 0.0]
    assert [c.role for c in fake.calls] == ["rubricator", "verifier"]
    assert result.checks == {} and "reinduced" not in result.settings
    assert "rubricator_retry" not in result.settings["templates"]


async def test_a_sound_rubric_is_kept_and_the_record_says_so():
    fake = client(GOOD, again=BAD_ANCHOR)
    result = await GroupScorer(ON, fake).score_group(group())
    assert result.rewards == pytest.approx([0.8, 0.0, 0.5, 0.0])
    assert [c.role for c in fake.calls] == ["rubricator", "verifier"]
    assert result.checks == {}
    assert "reinduced" in result.settings and result.settings["reinduced"] is None


async def test_a_second_bad_rubric_is_kept_without_a_third_try():
    fake = client(BAD_ANCHOR, again=NOTHING)
    result = await GroupScorer(ON, fake).score_group(group())
    assert words(result) == ["zebra", "yak", "emu", "gnu"]
    assert result.rewards == [0.0, 0.0, 0.0, 0.0] and result.teacher_scores == [0.0, 0.0]
    assert [c.role for c in fake.calls] == ["rubricator", "verifier"] * 2
    assert result.settings["reinduced"] == "teacher_fail" and result.checks == {"reinduced": 1.0}


async def test_a_rubric_that_separates_nobody_is_induced_again():
    fake = client(NO_SPREAD)
    result = await GroupScorer(ON, fake).score_group(group())
    assert result.settings["reinduced"] == "no_spread"  # the teachers' best, 0.7, is fine
    assert result.rewards == pytest.approx([0.8, 0.0, 0.5, 0.0])
    again = fake.calls_for("rubricator")[1].messages[-1]["content"]
    assert REASONS["no_spread"] in again and REASONS["teacher_fail"] not in again


async def test_both_reasons_are_given_together():
    fake = client(NOTHING)
    result = await GroupScorer(ON, fake).score_group(group())
    assert result.settings["reinduced"] == "teacher_fail+no_spread"
    again = fake.calls_for("rubricator")[1].messages[-1]["content"]
    assert REASONS["no_spread"] in again and REASONS["teacher_fail"] in again


async def test_equal_rewards_of_one_repeated_answer_are_no_reason():
    fake = client(NO_SPREAD)
    for config in (ON, ON.model_copy(update={"dedupe": False})):
        result = await GroupScorer(config, fake).score_group(group(["forty", "forty"]))
        assert result.settings["reinduced"] is None and result.rewards == [0.0, 0.0]
    assert len(fake.calls_for("rubricator")) == 2  # one per group, none re-asked


async def test_the_teacher_threshold_is_configurable():
    config = ScorerConfig(reinduce_on_bad_anchor=True, reinduce_teacher_below=0.9)
    fake = client(GOOD, again=NO_SPREAD)  # GOOD's best teacher scores 0.8 < 0.9
    result = await GroupScorer(config, fake).score_group(group())
    assert result.settings["reinduced"] == "teacher_fail"
    assert result.teacher_scores == pytest.approx([0.7, 0.0])  # NO_SPREAD, kept as it is


def test_per_pair_mode_is_refused_with_a_clear_error():
    with pytest.raises(ValidationError, match="reinduce_on_bad_anchor needs rubric_mode: shared"):
        ScorerConfig(reinduce_on_bad_anchor=True, rubric_mode="per_pair")
    with pytest.raises(ValidationError):
        ScorerConfig(reinduce_teacher_below=1.5)


async def test_a_sampled_check_compares_the_rubric_that_gave_the_rewards():
    fake = client(BAD_ANCHOR)
    config = ScorerConfig(reinduce_on_bad_anchor=True, stability_check_share=1.0)
    result = await GroupScorer(config, fake).score_group(group())
    # the first rubric's check is dropped; the second's: 6 answers x 4 criteria, none flipped
    assert result.checks == {
        "stability_verdicts": 24.0,
        "stability_flips": 0.0,
        "stability_answers": 4.0,
        "stability_reward_abs_change_sum": 0.0,
        "reinduced": 1.0,
    }
    checks = fake.calls_for(CHECK_ROLE)
    assert len(checks) == 2  # both passes were checked; the cost shows under verifier_check
    assert "answer mentions because" in checks[1].messages[-1]["content"]


async def test_a_failing_second_pass_fails_the_group_and_names_the_reason():
    def verifier(messages, schema) -> str:
        if "answer mentions because" in messages[-1]["content"]:
            return "not json"
        return content_verifier(messages, schema)

    fake = ScriptedChatClient({"rubricator": rubricator(BAD_ANCHOR), "verifier": verifier})
    config = ScorerConfig(reinduce_on_bad_anchor=True, parse_retries=0)
    result = await GroupScorer(config, fake).score_group(group())
    assert result.failed and result.rewards == [None] * 4
    assert result.settings["reinduced"] == "teacher_fail"


async def test_reinduction_round_trips_through_the_trace_store(tmp_path: Path):
    with TraceStore(tmp_path / "t.db") as store:
        scorer = GroupScorer(ON, client(BAD_ANCHOR), store)
        again = await scorer.score_group(group(gid="a"), step=3)
        kept = await GroupScorer(ON, client(GOOD), store).score_group(group(gid="b"), step=3)
    with TraceStore(tmp_path / "t.db") as store:
        back = {r.id: r for s in store.steps() for r in s.results}
    assert back["a"].checks == again.checks == {"reinduced": 1.0}
    assert back["a"].settings["reinduced"] == "teacher_fail"
    assert back["a"].rewards == pytest.approx([0.8, 0.0, 0.5, 0.0])
    assert [c.criterion for c in back["a"].rubrics[0].criteria] == [
        c.criterion for c in again.rubrics[0].criteria
    ]
    assert back["a"].usage["rubricator"]["calls"] == 2
    assert back["b"].checks == {} and back["b"].settings["reinduced"] is None
    assert kept.usage["rubricator"]["calls"] == 1


def test_ropd_score_reinduces_from_its_flag(tmp_path: Path):
    groups = tmp_path / "groups.jsonl"
    groups.write_text(json.dumps(group().model_dump()) + "\n", encoding="utf-8")
    with StubJudgeServer(latency_s=0.0, policy=content_policy(BAD_ANCHOR)) as stub:
        done = ropd_in_process(
            ["score", groups, "-o", tmp_path / "s.jsonl", "--base-url", stub.base_url,
             "--model", STUB_MODEL, "--reinduce-on-bad-anchor"]
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    (line,) = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    # the stub writes the same rubric again: it is kept, after exactly one more try
    assert line["usage"]["rubricator"]["calls"] == 2 and line["usage"]["verifier"]["calls"] == 2
    assert line["settings"]["reinduced"] == "teacher_fail" and line["checks"] == {"reinduced": 1}


async def test_a_rejected_group_after_a_reinduced_one_records_no_reason():
    scorer = GroupScorer(ON, client(BAD_ANCHOR))
    assert (await scorer.score_group(group())).settings["reinduced"] == "teacher_fail"
    rejected = await scorer.reject({"id": "bad", "prompt": "p"}, "no answers")
    assert rejected.failed and rejected.settings["reinduced"] is None
    assert "context" not in rejected.settings  # nor the scored group's context record
