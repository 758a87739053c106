"""Rubrics, criteria, verdicts and the reward formula.

The score is always recomputed here from the verifier's booleans; a judge's own arithmetic is
never trusted (a self-reported total can leave [0, 1] and poison training).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

EPSILON = 1e-6
"""Total points at or below this count as none: such a rubric scores 0.0 (nothing to earn)."""


class Criterion(BaseModel):
    """One true/false check that can be judged from a single answer alone."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=64)
    category: str = Field(default="general", max_length=64)
    criterion: str = Field(min_length=3, max_length=2000)
    points: StrictInt = Field(ge=1, le=5)  # `true` is not 1 point

    @field_validator("id", mode="before")
    @classmethod
    def _id_to_str(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value


class Rubric(BaseModel):
    """The weighted criteria shared by every answer of one group."""

    model_config = ConfigDict(extra="ignore")

    criteria: list[Criterion]

    @model_validator(mode="after")
    def _unique_ids(self) -> Rubric:
        ids = [c.id for c in self.criteria]
        if len(set(ids)) != len(ids):
            raise ValueError(f"criterion ids must be unique, got {ids}")
        return self

    def check_size(self, min_criteria: int, max_criteria: int) -> None:
        """Raise ValueError when the rubric has too few or too many criteria."""
        n = len(self.criteria)
        if not min_criteria <= n <= max_criteria:
            raise ValueError(
                f"rubric has {n} criteria; expected between {min_criteria} and {max_criteria}"
            )

    @property
    def points(self) -> list[int]:
        return [c.points for c in self.criteria]

    @property
    def total_points(self) -> int:
        return sum(self.points)


def weighted_score(
    points: Sequence[int], verdicts: Sequence[bool], epsilon: float = EPSILON
) -> float:
    """s = sum(w * v) / sum(w): the weighted pass rate, in [0, 1].

    Exactly 1.0 when every criterion worth points passed and exactly 0.0 when none did, so a
    perfect answer is told apart from a nearly perfect one. `epsilon` only guards a rubric
    without points (empty, or all weights 0), which scores 0.0 instead of dividing by zero.
    """
    if len(points) != len(verdicts):
        raise ValueError(f"{len(verdicts)} verdicts for {len(points)} criteria")
    if any(p < 0 for p in points):
        raise ValueError("criterion points must be non-negative")
    total = sum(points)
    if total <= epsilon:
        return 0.0
    earned = sum(p for p, v in zip(points, verdicts) if v)
    return earned / total
