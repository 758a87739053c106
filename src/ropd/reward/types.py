"""Inputs and outputs of group scoring."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ropd.rubric import Rubric

Prompt = str | list[dict[str, Any]]
Source = Literal["student", "teacher"]


class Group(BaseModel):
    """One prompt with the student's G answers and the teacher's K reference answers."""

    model_config = ConfigDict(extra="forbid")

    id: str
    prompt: Prompt
    student_responses: list[str] = Field(min_length=1)
    teacher_responses: list[str] = Field(default_factory=list)

    @field_validator("id", mode="before")
    @classmethod
    def _id_to_str(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value

    @field_validator("prompt")
    @classmethod
    def _check_prompt(cls, value: Prompt) -> Prompt:
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("prompt is empty")
            return value
        if not value:
            raise ValueError("prompt has no messages")
        for i, message in enumerate(value):
            if not isinstance(message, dict) or "role" not in message or "content" not in message:
                raise ValueError(f"message {i} needs 'role' and 'content'")
        return value


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
