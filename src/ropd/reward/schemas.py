"""JSON schemas requested from judges (OpenAI `response_format`), one builder per reply kind.

Names are stable (`ropd_rubric`, `ropd_verdicts`, `ropd_scalar_score`): the latency stub
endpoint recognises a request by them.
"""

from __future__ import annotations

from ropd.llm.types import JsonSchema

RUBRIC_SCHEMA_NAME = "ropd_rubric"
VERDICTS_SCHEMA_NAME = "ropd_verdicts"
SCALAR_SCHEMA_NAME = "ropd_scalar_score"


def rubric_schema(min_criteria: int, max_criteria: int) -> JsonSchema:
    item = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "category": {"type": "string"},
            "criterion": {"type": "string"},
            "points": {"type": "integer", "minimum": 1, "maximum": 5},
        },
        "required": ["id", "category", "criterion", "points"],
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


def verdicts_schema(num_answers: int, criterion_ids: list[str]) -> JsonSchema:
    """One entry per answer (by its 1-based label number), one boolean per criterion id."""
    verdicts = {
        "type": "object",
        "properties": {cid: {"type": "boolean"} for cid in criterion_ids},
        "required": list(criterion_ids),
        "additionalProperties": False,
    }
    item = {
        "type": "object",
        "properties": {
            "answer": {"type": "integer", "minimum": 1, "maximum": num_answers},
            "verdicts": verdicts,
        },
        "required": ["answer", "verdicts"],
        "additionalProperties": False,
    }
    schema = {
        "type": "object",
        "properties": {
            "answers": {
                "type": "array",
                "items": item,
                "minItems": num_answers,
                "maxItems": num_answers,
            }
        },
        "required": ["answers"],
        "additionalProperties": False,
    }
    return JsonSchema(name=VERDICTS_SCHEMA_NAME, schema=schema)


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
