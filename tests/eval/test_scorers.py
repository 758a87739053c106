"""Each scorer on hand-made cases, including the ones that trip naive scorers."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading

import pytest

from ropd.eval.scoring.ifeval import score_ifeval
from ropd.eval.scoring.math import score_math
from ropd.eval.scoring.mcq import extract_letter, score_mcq
from ropd.eval.scoring.rubric import GRADE_SCHEMA, rubric_score, score_rubric
from ropd.eval.types import EvalError
from ropd.llm.config import RoleConfig
from ropd.testing import ScriptedChatClient

# -- math ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "answer", "expected"),
    [
        ("Adding up, we get \\boxed{204}.", "204", 1.0),
        ("So the final answer is 204", "204", 1.0),  # plain, not boxed
        ("We get \\boxed{\\frac{2}{4}}", "\\frac{1}{2}", 1.0),  # equivalent fraction
        ("The answer is 0.5", "\\frac{1}{2}", 1.0),  # decimal vs fraction
        ("\\boxed{\\sqrt{18}}", "3\\sqrt{2}", 1.0),  # equivalent radical
        ("\\boxed{33}", "033", 1.0),  # AIME zero padding
        ("\\boxed{0.33}", "\\frac{1}{3}", 0.0),  # wrong but close
        ("\\boxed{204.5}", "204", 0.0),  # wrong but close
        ("I first thought 204, but the final answer is \\boxed{205}", "204", 0.0),
        ("\\boxed{204} ... no wait, \\boxed{17}", "204", 0.0),  # the last boxed answer counts
        ("I cannot solve this.", "204", 0.0),
        ("<think>maybe \\boxed{204}</think> The answer is \\boxed{7}.", "204", 0.0),
    ],
)
def test_math_cases(completion: str, answer: str, expected: float) -> None:
    assert score_math(completion, answer).score == expected


def test_math_records_what_it_extracted() -> None:
    result = score_math("thus \\boxed{\\frac{6}{8}}", "\\frac{3}{4}")
    assert result.score == 1.0
    assert result.details["extracted"] == "\\frac{6}{8}"
    assert score_math("no number", "5").details["extracted"] is None


def test_math_works_outside_the_main_thread() -> None:
    """math-verify's signal timeout raises in threads; the scorer must still give real verdicts."""
    results: list[float | None] = []

    def work() -> None:
        results.append(score_math("\\boxed{\\frac{2}{4}}", "\\frac{1}{2}").score)
        results.append(score_math("\\boxed{3}", "\\frac{1}{2}").score)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert results == [1.0, 0.0]


# -- multiple choice ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("completion", "letter"),
    [
        ("Answer: C", "C"),
        ("The answer is (B).", "B"),
        ("A and B look plausible. Option B is wrong though.\n\nAnswer: **D**", "D"),
        ("Let me weigh A against C.\n\\boxed{C}", "C"),
        ("Final answer: A) 42", "A"),
        ("A is wrong, B fits.\n(B)", "B"),
        ("D) Mercury", "D"),  # the option quoted as the whole answer
        ("The correct option is D, not A.", "D"),
        ("Answer: B\nWait, I misread. The answer is C", "C"),  # last explicit statement wins
        ("the answer is a tricky one, I am not sure", None),  # lower-case prose
        ("A careful reading suggests nothing definite.", None),  # article "A"
        ("Answer: E", None),  # not an option here
        ("<think>Answer: A</think>After checking, Answer: B", "B"),
    ],
)
def test_letter_extraction(completion: str, letter: str | None) -> None:
    assert extract_letter(completion, "ABCD") == letter


def test_mcq_score() -> None:
    assert score_mcq("Reasoning...\nAnswer: B", "B", "ABCD").score == 1.0
    assert score_mcq("Reasoning...\nAnswer: A", "B", "ABCD").score == 0.0
    assert score_mcq("no commitment", "B", "ABCD").details["extracted"] is None


# -- IFEval -------------------------------------------------------------------------------------

needs_lm_eval = pytest.mark.skipif(
    importlib.util.find_spec("lm_eval") is None, reason="the ifeval extra (lm-eval) is missing"
)

LOWERCASE_NO_COMMA = {
    "key": 1,
    "prompt": "Describe a cat in lowercase letters without commas.",
    "instruction_id_list": ["change_case:english_lowercase", "punctuation:no_comma"],
    "kwargs": [{}, {}],
}


@needs_lm_eval
def test_ifeval_strict_pass_and_fail() -> None:
    good = score_ifeval("a cat is a small furry animal that purrs", LOWERCASE_NO_COMMA)
    assert good.score == 1.0 and good.details["inst_strict"] == [True, True]
    bad = score_ifeval("A cat, a small animal", LOWERCASE_NO_COMMA)
    assert bad.score == 0.0 and bad.details["inst_strict"] == [False, False]


@needs_lm_eval
def test_ifeval_loose_forgives_a_preamble_line() -> None:
    result = score_ifeval("Sure! Here it is:\na cat is a small furry animal", LOWERCASE_NO_COMMA)
    assert result.details["prompt_strict"] is False
    assert result.details["prompt_loose"] is True
    assert result.score == 0.0  # the score is strict accuracy


@needs_lm_eval
def test_ifeval_keyword_kwargs_with_nulls_as_in_the_dataset() -> None:
    target = {
        "key": 2,
        "prompt": "Mention a river and end with 'Any other questions?'",
        "instruction_id_list": ["keywords:existence", "startend:end_checker"],
        "kwargs": [
            {"keywords": ["river"], "end_phrase": None},
            {"end_phrase": "Any other questions?", "keywords": None},
        ],
    }
    assert score_ifeval("The river was calm. Any other questions?", target).score == 1.0
    partial = score_ifeval("The river was calm.", target)
    assert partial.score == 0.0 and partial.details["inst_strict"] == [True, False]


@needs_lm_eval
def test_ifeval_unknown_instruction_is_a_clear_error() -> None:
    target = {**LOWERCASE_NO_COMMA, "instruction_id_list": ["made:up"], "kwargs": [{}]}
    with pytest.raises(EvalError, match="made:up"):
        score_ifeval("text", target)


def test_ifeval_without_lm_eval_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from ropd.eval.scoring import ifeval

    monkeypatch.setitem(sys.modules, "lm_eval.tasks.ifeval", None)  # makes the import fail
    ifeval._checkers.cache_clear()
    try:
        with pytest.raises(EvalError, match=r"pip install 'ropd\[ifeval\]'"):
            ifeval.check_available()
    finally:
        ifeval._checkers.cache_clear()


# -- rubric grading -----------------------------------------------------------------------------


def test_rubric_score_formula() -> None:
    assert rubric_score([5, 3, -4], [True, True, False]) == 1.0
    assert rubric_score([5, 3, -4], [True, False, False]) == pytest.approx(5 / 8)
    assert rubric_score([5, 3, -4], [True, False, True]) == pytest.approx(1 / 8)
    assert rubric_score([5, 3, -4], [False, False, True]) == 0.0  # clipped, not negative
    with pytest.raises(ValueError):
        rubric_score([-1], [True])


def _grader(verdicts: dict[str, bool]) -> ScriptedChatClient:
    """A grader that answers by looking up the criterion text in the request."""

    def handle(messages, schema):
        assert schema is GRADE_SCHEMA
        user = messages[-1]["content"]
        for criterion, met in verdicts.items():
            if criterion in user:
                return json.dumps({"explanation": "checked", "criteria_met": met})
        raise AssertionError("criterion not in the grader prompt")

    return ScriptedChatClient({"grader": handle})


RUBRICS = [
    {"criterion": "Advises pressure on the wound.", "points": 5},
    {"criterion": "Suggests seeing a doctor if bleeding persists.", "points": 3},
    {"criterion": "Recommends butter on the wound.", "points": -4},
]


async def test_rubric_negative_item_subtracts() -> None:
    client = _grader({"pressure": True, "doctor": True, "butter": True})
    messages = [{"role": "user", "content": "I cut my finger."}]
    result = await score_rubric(client, RoleConfig(name="grader"), messages, "answer", RUBRICS)
    assert result.score == pytest.approx(4 / 8)
    assert result.details["met"] == [True, True, True]
    assert len(client.calls_for("grader")) == 3  # one call per rubric item
    # The grader sees the conversation, the response and the points of its item.
    prompt = client.calls_for("grader")[2].messages[-1]["content"]
    assert "I cut my finger." in prompt and 'points="-4"' in prompt


async def test_rubric_all_bad_clips_to_zero() -> None:
    client = _grader({"pressure": False, "doctor": False, "butter": True})
    result = await score_rubric(
        client, RoleConfig(name="grader"), [{"role": "user", "content": "q"}], "answer", RUBRICS
    )
    assert result.score == 0.0


async def test_rubric_grader_garbage_is_retried_then_reported() -> None:
    replies = iter(["not json", json.dumps({"criteria_met": True, "explanation": "ok"})])
    client = ScriptedChatClient({"grader": lambda m, s: next(replies)})
    result = await score_rubric(
        client, RoleConfig(name="grader"), [{"role": "user", "content": "q"}], "a", RUBRICS[:1]
    )
    assert result.score == 1.0 and len(client.calls) == 2

    broken = ScriptedChatClient({"grader": lambda m, s: "still not json"})
    failed = await score_rubric(
        broken, RoleConfig(name="grader"), [{"role": "user", "content": "q"}], "a", RUBRICS[:1]
    )
    assert failed.score is None and "grader" in (failed.error or "")
