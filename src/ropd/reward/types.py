"""Inputs and outputs of group scoring.

`Group` validates itself completely on construction; the rules are in `input_checks`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ropd.redact import scrub
from ropd.reward.input_checks import Text, check_id, check_prompt
from ropd.rubric import Rubric

Prompt = str | list[dict[str, Any]]
Source = Literal["student", "teacher"]


class Group(BaseModel):
    """One prompt with the student's G answers and the teacher's K reference answers.

    Validated completely on construction (see the module doc for the rules).
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    prompt: Prompt
    student_responses: list[Text] = Field(min_length=1)
    teacher_responses: list[Text] = Field(default_factory=list)

    @field_validator("id", mode="before")
    @classmethod
    def _check_id(cls, value: object) -> object:
        return check_id(value)

    @field_validator("prompt", mode="before")
    @classmethod
    def _check_prompt(cls, value: object) -> object:
        return check_prompt(value)


class AnswerVerdicts(BaseModel):
    """The verifier's booleans for one answer, mapped back to where the answer came from."""

    source: Source
    index: int
    verdicts: dict[str, bool]
    score: float
    rubric_index: int = 0
    label: int | None = None
    duplicate_of: int | None = None
    # Why the answer was not shown to the verifier, e.g. "empty after removing reasoning".
    note: str | None = None


class GroupResult(BaseModel):
    """Everything that produced the rewards of one group (what the trace store keeps)."""

    id: str
    rewards: list[float | None]
    teacher_scores: list[float | None] = Field(default_factory=list)
    rubrics: list[Rubric] = Field(default_factory=list)
    verdicts: list[AnswerVerdicts] = Field(default_factory=list)
    usage: dict[str, dict[str, int | float]] = Field(default_factory=dict)
    error: str | None = None
    failure_policy: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.error is not None

    def scrubbed(self) -> GroupResult:
        """This result with secrets removed from the texts a judge wrote (error, criteria)."""
        rubrics = [
            rubric.model_copy(
                update={
                    "criteria": [
                        c.model_copy(
                            update={"criterion": scrub(c.criterion), "category": scrub(c.category)}
                        )
                        for c in rubric.criteria
                    ]
                }
            )
            for rubric in self.rubrics
        ]
        error = scrub(self.error) if self.error is not None else None
        return self.model_copy(update={"rubrics": rubrics, "error": error})

    @property
    def rubric(self) -> Rubric | None:
        """The shared rubric (the first one in per-pair mode)."""
        return self.rubrics[0] if self.rubrics else None

    def to_output_row(self) -> dict[str, Any]:
        """The JSON line `ropd score` writes."""
        row = self.model_dump(mode="json")
        row["rubric"] = row["rubrics"][0] if len(row["rubrics"]) == 1 else row["rubrics"] or None
        del row["rubrics"]
        return row
