"""JSON schemas requested from judges (OpenAI `response_format`), one builder per reply kind.

Names are stable (`ropd_rubric`, `ropd_verdicts`, `ropd_scalar_score`): the latency stub
endpoint recognises a request by them.
"""

from __future__ import annotations

from ropd.llm.types import JsonSchema

RUBRIC_SCHEMA_NAME = "ropd_rubric"
VERDICTS_SCHEMA_NAME = "ropd_verdicts"
SCALAR_SCHEMA_NAME = "ropd_scalar_score"
# Bounded strings keep a grammar-constrained small judge from looping inside a string until
# max_tokens cuts the reply; they match the limits of `ropd.rubric.Criterion`.
CATEGORY_MAX_CHARS = 40
CRITERION_MAX_CHARS = 400


def rubric_schema(min_criteria: int, max_criteria: int) -> JsonSchema:
    # No id field: ids are assigned by the scorer (C1..Cn), which saves tokens and a failure mode.
    # Points as an enum, not minimum/maximum: grammar-based decoders (llama.cpp) enforce enums;
    # they also enforce the string length bounds.
    item = {
        "type": "object",
        "properties": {
            "category": {"type": "string", "maxLength": CATEGORY_MAX_CHARS},
            # the same bounds as `rubric.Criterion`: a grammar-constrained judge cannot write a
            # criterion the check refuses (a weak model's "1." failed whole groups)
            "criterion": {"type": "string", "minLength": 3, "maxLength": CRITERION_MAX_CHARS},
            "points": {"type": "integer", "enum": [1, 2, 3, 4, 5]},
        },
        "required": ["category", "criterion", "points"],
        "additionalProperties": False,
    }
    schema = {
        "type": "object",
        "properties": {
            "criteria": {
                "type": "array",
                "items": item,
                "minItems": min_criteria,
                "maxItems": max_criteria,
            }
        },
        "required": ["criteria"],
        "additionalProperties": False,
    }
    return JsonSchema(name=RUBRIC_SCHEMA_NAME, schema=schema)


def answer_key(number: int) -> str:
    """The verdicts object's key for answer `number` (1-based, as labelled in the prompt)."""
    return f"answer_{number}"


def verdicts_schema(num_answers: int, criterion_ids: list[str]) -> JsonSchema:
    """One required key per answer (`answer_1`..`answer_M`), one boolean per criterion id.

    Keys rather than a list of `{answer, verdicts}` entries: a grammar-constrained decoder then
    has to produce every answer exactly once, in order, so small judges cannot skip or repeat one.
    """
    verdicts = {
        "type": "object",
        "properties": {cid: {"type": "boolean"} for cid in criterion_ids},
        "required": list(criterion_ids),
        "additionalProperties": False,
    }
    keys = [answer_key(n) for n in range(1, num_answers + 1)]
    schema = {
        "type": "object",
        "properties": {key: verdicts for key in keys},
        "required": keys,
        "additionalProperties": False,
    }
    return JsonSchema(name=VERDICTS_SCHEMA_NAME, schema=schema)


def verdicts_schema_shape(schema: dict[str, object]) -> tuple[int, list[str]]:
    """(number of answers, criterion ids) that a verdicts schema asks for (for stub judges)."""
    keys = list(schema.get("required") or [])  # type: ignore[arg-type]
    first = (schema.get("properties") or {}).get(keys[0], {}) if keys else {}  # type: ignore[union-attr]
    return len(keys), list(first.get("required") or [])


def scalar_schema() -> JsonSchema:
    """The T-Judge baseline: one score from 0 to 10 for one answer."""
    schema = {
        "type": "object",
        "properties": {
            "reasoning": {"type": "string"},
            "score": {"type": "integer", "minimum": 0, "maximum": 10},
        },
        "required": ["reasoning", "score"],
        "additionalProperties": False,
    }
    return JsonSchema(name=SCALAR_SCHEMA_NAME, schema=schema)


OVD_SCHEMA_NAME = "ropd_ovd_score"


def ovd_schema(num_answers: int | None = None, max_score: int = 9) -> JsonSchema:
    """OVD: `{"score": 0..9}` for one trajectory, or, with `num_answers`, one such score per
    trajectory under `answer_1`..`answer_G` (every one required, in order, as in verdicts)."""
    score = {"type": "integer", "minimum": 0, "maximum": max_score}
    if num_answers is None:
        properties: dict[str, object] = {"score": score}
    else:
        properties = {answer_key(n): score for n in range(1, num_answers + 1)}
    schema = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    return JsonSchema(name=OVD_SCHEMA_NAME, schema=schema)
