"""Long answers and the judge's context window: the Verifier's split, the Rubricator's even clip,
re-splits after a context-length error, and what the trace records.

Unit tests go through the scripted judge (content verdicts: criterion "answer mentions W" passes
iff W is in the text the Verifier was shown); the end-to-end ones through the real OpenAI
client against the HTTP stub that refuses prompts over its window with vLLM's 400.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from ropd.errors import ContextOverflow
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.llm.tokens import ContextWindows, TokenCounter
from ropd.reward.config import ScorerConfig
from ropd.reward.group_scorer import GroupScorer
from ropd.reward.types import Group
from ropd.rubric import weighted_score
from ropd.testing import (
    ScriptedChatClient,
    StubJudgeServer,
    content_policy,
    content_verifier,
    make_client,
    rubric_reply,
)
from ropd.testing.replies import ANSWER_BLOCK
from ropd.testing.stub_server import STUB_MODEL
from ropd.text import CONTEXT_CUT, clip_middle, clip_to_fit

WORDS = [("alpha", 3), ("beta", 2), ("gamma", 1), ("delta", 1)]
RUBRIC = rubric_reply(WORDS)
FILLER = "lorem ipsum dolor sit amet, consectetur adipiscing elit. "
NOTE = re.compile(r"\[\.\.\. (\d+) characters cut to fit the judge's context window \.\.\.\]")


def answer(chars: int, tail: str, head: str = "") -> str:
    """`chars` characters of filler between `head` and `tail` (the words a criterion checks)."""
    return f"{head} {(FILLER * (chars // len(FILLER) + 1))[:chars]} final: {tail}"


def expected(text: str) -> float:
    return weighted_score([p for _, p in WORDS], [w in text for w, _ in WORDS])


def group(chars: int = 6000) -> Group:
    return Group(
        id="g1",
        prompt="Explain the four steps of the proof.",
        student_responses=[
            answer(chars, "alpha beta"),
            answer(chars, "gamma"),
            answer(chars, "alpha delta"),
            answer(chars // 2, "nothing"),
        ],
        teacher_responses=[answer(chars, "alpha beta gamma delta"), answer(chars, "alpha")],
    )


def config(window: int | None, **extra: Any) -> ScorerConfig:
    role = RoleConfig(context_window=window, max_tokens=512)
    settings = {"max_answer_chars": 200_000, "num_teacher_refs": 2, **extra}
    return ScorerConfig(rubricator=role, verifier=role, **settings)


def verifier_calls(client: ScriptedChatClient) -> list[list[dict[str, Any]]]:
    return [call.messages for call in client.calls_for("verifier")]


# -- clipping -------------------------------------------------------------------------------------


def test_clip_to_fit_keeps_head_and_tail_and_says_so():
    text = "HEAD " + "x" * 10_000 + " TAIL"
    clipped = clip_to_fit(text, 500, TokenCounter().text)
    assert TokenCounter().text(clipped) <= 500
    assert clipped.startswith("HEAD ") and clipped.endswith(" TAIL")
    cut = int(NOTE.search(clipped).group(1))
    assert len(clipped) - len(NOTE.search(clipped).group(0)) - 2 + cut == len(text)
    assert clip_to_fit(text, 10_000, TokenCounter().text) == text  # fits: untouched
    assert clip_middle("abcdef", 1, why=CONTEXT_CUT).endswith("\n")  # no tail, not all of it


# -- the Verifier's split ---------------------------------------------------------------------------


async def test_verifier_calls_fit_the_budget_and_carry_task_and_whole_rubric():
    client = make_client(RUBRIC)
    scorer = GroupScorer(config(8192), client)
    result = await scorer.score_group(group())
    assert not result.failed, result.error
    budget = ContextWindows().prompt_budget(scorer.config.verifier)
    calls = verifier_calls(client)
    assert len(calls) >= 3  # 6 answers of ~2,000 tokens: not all in one call
    shown = []
    for messages in calls:
        assert TokenCounter().messages(messages) <= budget
        user = messages[-1]["content"]
        assert "Explain the four steps of the proof." in user
        assert all(
            f"CRITERION C{n}>>>\nanswer mentions {w}" in user for n, (w, _) in enumerate(WORDS, 1)
        )
        shown += [text for _, _, text in ANSWER_BLOCK.findall(user)]
    assert len(shown) == 6 and not any(NOTE.search(t) for t in shown)  # nothing clipped
    g = group()
    assert result.rewards == pytest.approx([expected(t) for t in g.student_responses])
    assert result.teacher_scores == pytest.approx([expected(t) for t in g.teacher_responses])
    context = result.settings["context"]
    assert context["verifier"]["window"] == 8192 and context["verifier"]["source"] == "declared"
    assert context["verifier"]["tokens"] == "estimate"
    assert sorted(context["verifier"]["chunks"]) == sorted(
        len(ANSWER_BLOCK.findall(c[-1]["content"])) for c in calls
    )
    assert sum(context["verifier"]["chunks"]) == 6 and context["resplits"] == 0


async def test_max_answers_per_verifier_call_still_caps_each_call():
    client = make_client(RUBRIC)
    scorer = GroupScorer(config(200_000, max_answers_per_verifier_call=2), client)
    result = await scorer.score_group(group(chars=300))
    assert result.settings["context"]["verifier"]["chunks"] == [2, 2, 2]


async def test_an_answer_too_long_even_alone_is_clipped_head_and_tail():
    g = Group(
        id="long",
        prompt="Prove it.",
        student_responses=[answer(60_000, "alpha", head="beta"), answer(100, "gamma")],
        teacher_responses=[answer(100, "alpha delta")],
    )
    client = make_client(RUBRIC)
    scorer = GroupScorer(config(8192, num_teacher_refs=1), client)
    result = await scorer.score_group(g)
    assert not result.failed, result.error
    long_shown = [
        text
        for messages in verifier_calls(client)
        for _, _, text in ANSWER_BLOCK.findall(messages[-1]["content"])
        if text.startswith("beta")
    ]
    assert len(long_shown) == 1 and NOTE.search(long_shown[0]) and long_shown[0].endswith("alpha")
    assert result.rewards[0] == pytest.approx(expected("alpha beta"))  # head and tail judged
    assert result.settings["context"]["verifier"]["clipped_answers"] == 1


async def test_task_and_rubric_that_leave_no_room_fail_the_group_clearly():
    g = Group(
        id="huge", prompt="p " * 20_000, student_responses=["alpha"], teacher_responses=["beta"]
    )
    result = await GroupScorer(config(8192, num_teacher_refs=1), make_client(RUBRIC)).score_group(g)
    assert result.failed and "ContextOverflow" in result.error
    assert "8192-token context window (declared)" in result.error


# -- the Rubricator's even clip ----------------------------------------------------------------------


async def test_rubricator_clips_every_long_answer_to_an_equal_share():
    g = group(chars=12_000)
    g = g.model_copy(update={"student_responses": [*g.student_responses[:3], "alpha, briefly"]})
    client = make_client(RUBRIC)
    scorer = GroupScorer(config(8192), client)
    result = await scorer.score_group(g)
    assert not result.failed, result.error
    (call,) = client.calls_for("rubricator")
    assert TokenCounter().messages(call.messages) <= ContextWindows().prompt_budget(
        scorer.config.rubricator
    )
    user = call.messages[-1]["content"]
    blocks = re.findall(
        r"<<<ROPD-[0-9A-F]+ (?:STUDENT|REFERENCE) \d+>>>\n(.*?)\n<<<ROPD", user, re.DOTALL
    )
    assert len(blocks) == 6
    clipped = [b for b in blocks if NOTE.search(b)]
    assert len(clipped) == 5 and "alpha, briefly" in blocks  # the short one is kept whole
    lengths = [len(b) for b in clipped]
    assert max(lengths) - min(lengths) <= 40  # equal shares (notes differ by a digit or so)
    for text in clipped:
        assert text.startswith("lorem ipsum") and "final: " in text[-40:]  # head and tail
    assert result.settings["context"]["rubricator"]["clipped_answers"] == 5


async def test_without_a_known_window_nothing_is_clipped_or_split():
    client = make_client(RUBRIC)
    result = await GroupScorer(config(None), client).score_group(group())
    assert [len(c) for c in verifier_calls(client)] == [2]  # one call with all six
    context = result.settings["context"]
    assert context["verifier"] == {
        "window": None,
        "source": None,
        "tokens": "estimate",
        "chunks": [6],
        "clipped_answers": 0,
    }
    assert context["rubricator"]["clipped_answers"] == 0 and context["resplits"] == 0


# -- re-splits after a context-length error ---------------------------------------------------------


def refusing_verifier(max_answers: int, max_chars: int = 10**9):
    """A Verifier that refuses (no window named) more than `max_answers` answers or any answer
    longer than `max_chars`, as an endpoint whose window ropd does not know."""

    def policy(messages, schema):
        shown = ANSWER_BLOCK.findall(messages[-1]["content"])
        if len(shown) > max_answers or any(len(text) > max_chars for _, _, text in shown):
            raise ContextOverflow("the request exceeds the available context size")
        return content_verifier(messages, schema)

    return policy


async def test_a_refused_verifier_call_is_halved_until_it_fits():
    client = make_client(RUBRIC, verifier=refusing_verifier(max_answers=2))
    result = await GroupScorer(config(None), client).score_group(group(chars=300))
    assert not result.failed, result.error
    g = group(chars=300)
    assert result.rewards == pytest.approx([expected(t) for t in g.student_responses])
    context = result.settings["context"]
    assert sorted(context["verifier"]["chunks"]) == [1, 1, 2, 2]  # 6 -> 3 + 3 -> 1 + 2 each
    assert context["resplits"] == 3


async def test_a_refused_lone_answer_is_clipped_harder():
    g = Group(
        id="lone",
        prompt="Prove it.",
        student_responses=[answer(40_000, "alpha", head="beta")],
        teacher_responses=[],
    )
    client = make_client(RUBRIC, verifier=refusing_verifier(max_answers=9, max_chars=12_000))
    scorer = GroupScorer(config(None, num_teacher_refs=0, teacher_in_pool=False), client)
    result = await scorer.score_group(g)
    assert not result.failed, result.error
    assert result.rewards == [pytest.approx(expected("alpha beta"))]
    context = result.settings["context"]
    assert context["resplits"] == 2  # 40,000 -> ~20,000 -> ~10,000 characters
    assert context["verifier"]["clipped_answers"] == 1


async def test_re_splits_are_bounded_then_the_group_fails():
    client = make_client(RUBRIC, verifier=refusing_verifier(max_answers=0))
    result = await GroupScorer(config(None), client).score_group(group(chars=300))
    assert result.failed and "ContextOverflow" in result.error
    assert result.settings["context"]["resplits"] > 0  # recorded for a failed group too
    assert len(client.calls_for("verifier")) < 200


async def test_a_refused_rubricator_call_clips_harder():
    def rubricator(messages, schema):
        if len(messages[-1]["content"]) > 20_000:
            raise ContextOverflow("prompt is too long")
        return RUBRIC

    client = ScriptedChatClient({"rubricator": rubricator, "verifier": content_verifier})
    result = await GroupScorer(config(None), client).score_group(group(chars=6000))
    assert not result.failed, result.error
    assert result.settings["context"]["rubricator"]["clipped_answers"] == 6
    assert result.settings["context"]["resplits"] == 1


# -- end to end: the real client against the stub's context window -------------------------------


def http_config(url: str, window: int | None, **extra: Any) -> ScorerConfig:
    role = RoleConfig(base_url=url, model=STUB_MODEL, context_window=window, max_tokens=512)
    return ScorerConfig(
        rubricator=extra.pop("rubricator", role),
        verifier=role,
        max_answer_chars=200_000,
        num_teacher_refs=2,
        **extra,
    )


def groups(count: int = 3) -> list[Group]:
    return [group().model_copy(update={"id": f"g{i}"}) for i in range(count)]


def check_rewards(results) -> None:
    g = group()
    for result in results:
        assert not result.failed, result.error
        assert result.rewards == pytest.approx([expected(t) for t in g.student_responses])
        assert result.teacher_scores == pytest.approx([expected(t) for t in g.teacher_responses])


@pytest.mark.parametrize("listed", [False, True])
async def test_http_a_known_window_sends_nothing_too_long(listed):
    policy = content_policy(RUBRIC)
    with StubJudgeServer(
        0.0, policy=policy, context_window=8192, list_context_window=listed
    ) as stub:
        config = http_config(stub.base_url, None if listed else 8192)
        async with GroupScorer.open(config, limits=LimitsConfig()) as scorer:  # probes /models
            results = await scorer.score_groups(groups())
        assert stub.context_errors == 0
    check_rewards(results)
    source = "max_model_len" if listed else "declared"
    for result in results:
        context = result.settings["context"]
        assert context["verifier"]["source"] == context["rubricator"]["source"] == source
        assert len(context["verifier"]["chunks"]) >= 3 and context["resplits"] == 0


async def test_http_an_unknown_window_is_learned_from_the_400_and_every_group_scored():
    policy = content_policy(RUBRIC)
    with StubJudgeServer(
        0.0, policy=policy, context_window=8192, list_context_window=False
    ) as stub:
        async with GroupScorer.open(http_config(stub.base_url, None)) as scorer:
            results = await scorer.score_groups(groups())
        assert stub.context_errors > 0
    check_rewards(results)
    assert sum(r.settings["context"]["resplits"] for r in results) == stub.context_errors
    assert {r.settings["context"]["verifier"]["source"] for r in results} == {"context_error"}


async def test_http_the_verifier_re_splits_on_its_own_endpoints_400():
    policy = content_policy(RUBRIC)
    with (
        StubJudgeServer(0.0, policy=policy) as roomy,
        StubJudgeServer(
            0.0, policy=policy, context_window=8192, list_context_window=False
        ) as tight,
    ):
        rubricator = RoleConfig(base_url=roomy.base_url, model=STUB_MODEL, max_tokens=512)
        config = http_config(tight.base_url, None, rubricator=rubricator)
        async with GroupScorer.open(config) as scorer:
            results = await scorer.score_groups(groups(1))
        assert roomy.context_errors == 0 and tight.context_errors >= 1
    check_rewards(results)
    context = results[0].settings["context"]
    assert context["resplits"] == tight.context_errors
    assert context["verifier"]["window"] == 8192 and sum(context["verifier"]["chunks"]) == 6
