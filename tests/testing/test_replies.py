"""The reply policies of the fake judges, called directly (no client, no HTTP)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ropd.llm.types import JsonSchema
from ropd.reward.induction import validate_rubric
from ropd.reward.schemas import rubric_schema, scalar_schema, verdicts_schema
from ropd.rubric import Rubric
from ropd.testing import (
    answers_in,
    content_policy,
    content_verifier,
    rubric_reply,
    schema_reply,
)
from ropd.testing.replies import sample

WORDS = [("42", 5), ("because", 2), ("check", 1)]
MESSAGES = [{"role": "user", "content": "What is 6 * 7?"}]


def conforms(value: Any, schema: dict[str, Any]) -> bool:
    """Enough of JSON Schema for ropd's own schemas (no new dependency for one test)."""
    if "enum" in schema and value not in schema["enum"]:
        return False
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        return (
            isinstance(value, dict)
            and all(key in value for key in schema.get("required", []))
            and not (schema.get("additionalProperties") is False and set(value) - set(properties))
            and all(conforms(v, properties[k]) for k, v in value.items() if k in properties)
        )
    if kind == "array":
        return (
            isinstance(value, list)
            and schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value))
            and all(conforms(item, schema.get("items", {})) for item in value)
        )
    if kind == "string":
        return isinstance(value, str) and len(value) <= schema.get("maxLength", len(value))
    if kind == "integer":
        return (
            isinstance(value, int)
            and not isinstance(value, bool)
            and schema.get("minimum", value) <= value <= schema.get("maximum", value)
        )
    if kind == "boolean":
        return isinstance(value, bool)
    return True


# -- schema_reply ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "count"), [(4, 12, 4), (2, 3, 3), (6, 8, 6), (1, 1, 1), (1, 3, 3)]
)
def test_rubric_replies_fit_their_schema(low: int, high: int, count: int):
    schema = rubric_schema(low, high)
    reply = json.loads(schema_reply(MESSAGES, schema))
    assert conforms(reply, schema.schema)
    assert len(reply["criteria"]) == count
    assert isinstance(validate_rubric(reply, low, high), Rubric)  # and the scorer accepts it


def test_verdict_replies_fit_their_schema_and_vary():
    schema = verdicts_schema(7, ["C1", "C2", "C3"])
    reply = json.loads(schema_reply(MESSAGES, schema))
    assert conforms(reply, schema.schema)
    assert list(reply) == [f"answer_{n}" for n in range(1, 8)]
    values = [v for verdicts in reply.values() for v in verdicts.values()]
    assert True in values and False in values  # rewards differ inside a group


def test_scalar_replies_fit_their_schema():
    schema = scalar_schema()
    for question in range(20):
        messages = [{"role": "user", "content": f"question {question}"}]
        assert conforms(json.loads(schema_reply(messages, schema)), schema.schema)


def test_replies_are_reproducible_from_the_request():
    schema = verdicts_schema(5, ["C1", "C2"])
    assert schema_reply(MESSAGES, schema) == schema_reply([dict(m) for m in MESSAGES], schema)
    replies = {schema_reply([{"role": "user", "content": f"q{i}"}], schema) for i in range(8)}
    assert len(replies) > 1  # but differ from request to request


def test_schema_replies_ignore_the_sample_but_plain_text_is_sampled():
    schema = rubric_schema(4, 6)
    with sample(0, None):
        first, text0 = schema_reply(MESSAGES, schema), schema_reply(MESSAGES, None)
    with sample(1, None):
        second, text1 = schema_reply(MESSAGES, schema), schema_reply(MESSAGES, None)
    with sample(1, None):
        again = schema_reply(MESSAGES, None)
    assert first == second  # the n choices of a rubric request agree
    assert text0 != text1 and text1 == again  # a teacher's K answers differ, reproducibly
    assert "The answer is" in text0


def test_unknown_json_schemas_get_a_json_object():
    reply = schema_reply(MESSAGES, JsonSchema(name="something_else", schema={}))
    assert json.loads(reply) == {"result": "ok"}


# -- the content policy ------------------------------------------------------------------------


def test_rubric_reply_lists_mention_criteria():
    reply = json.loads(rubric_reply(WORDS, category="math"))
    assert [c["criterion"] for c in reply["criteria"]] == [f"answer mentions {w}" for w, _ in WORDS]
    assert [c["points"] for c in reply["criteria"]] == [5, 2, 1]
    assert {c["category"] for c in reply["criteria"]} == {"math"}


def test_content_verifier_follows_answer_content(verifier_messages):
    answers = ["42 because 6*7", "It is 41", "check: 42"]
    messages = verifier_messages(answers, rubric_reply(WORDS))
    assert answers_in(messages) == {1: answers[0], 2: answers[1], 3: answers[2]}
    reply = json.loads(content_verifier(messages, verdicts_schema(3, ["C1", "C2", "C3"])))
    assert reply == {
        "answer_1": {"C1": True, "C2": True, "C3": False},
        "answer_2": {"C1": False, "C2": False, "C3": False},
        "answer_3": {"C1": True, "C2": False, "C3": True},
    }


def test_content_policy_answers_by_schema_name(verifier_messages):
    rubric = rubric_reply(WORDS)
    policy = content_policy(rubric)
    assert policy(MESSAGES, rubric_schema(1, 12)) == rubric
    messages = verifier_messages(["42", "nothing"], rubric)
    verdicts = json.loads(policy(messages, verdicts_schema(2, ["C1", "C2", "C3"])))
    assert verdicts["answer_1"]["C1"] is True and verdicts["answer_2"]["C1"] is False
    scalar = json.loads(policy(MESSAGES, scalar_schema()))  # anything else: schema_reply
    assert 0 <= scalar["score"] <= 10
    assert policy(MESSAGES, None) == schema_reply(MESSAGES, None)
