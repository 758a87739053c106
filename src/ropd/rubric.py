"""Rubrics, criteria, verdicts and the reward formula.

The score is always recomputed here from the verifier's booleans; a judge's own arithmetic is
never trusted (a self-reported total can leave [0, 1] and poison training).

Points are 1-5 for a criterion the Rubricator writes. A rubric that comes with the data (RaR,
`ropd.data.rubrics`) may also hold a *pitfall*: a criterion with negative points (-1 to -5) that
describes a mistake. Met, it takes its points off the answer's earned points; the total it is
divided by is the sum of the positive points only, and the score is clipped to [0, 1]
(`weighted_score`).
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
    # `true` is not 1 point; negative: a pitfall (only dataset rubrics have them), never 0
    points: StrictInt = Field(ge=-5, le=5)

    @field_validator("id", mode="before")
    @classmethod
    def _id_to_str(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value

    @field_validator("points")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("points must be 1 to 5, or -1 to -5 for a pitfall; not 0")
        return value

    @property
    def pitfall(self) -> bool:
        """A mistake worth avoiding: met, its points are taken off (`weighted_score`)."""
        return self.points < 0


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
        """The points an answer can earn (pitfalls only take points off)."""
        return sum(p for p in self.points if p > 0)


def weighted_score(
    points: Sequence[int], verdicts: Sequence[bool], epsilon: float = EPSILON
) -> float:
    """s = sum(w * v) / sum(w): the weighted pass rate, in [0, 1].

    Exactly 1.0 when every criterion worth points passed and exactly 0.0 when none did, so a
    perfect answer is told apart from a nearly perfect one. `epsilon` only guards a rubric
    without points (empty, or all weights 0), which scores 0.0 instead of dividing by zero.

    A negative weight is a pitfall: met (`True`), its points are subtracted. The total is the
    sum of the positive weights alone (a pitfall avoided earns nothing) and the result is
    clipped to [0, 1]: s = clip((sum_{w>0} w v - sum_{w<0} |w| v) / sum_{w>0} w, 0, 1). Without
    negative weights this is the plain weighted pass rate above.
    """
    if len(points) != len(verdicts):
        raise ValueError(f"{len(verdicts)} verdicts for {len(points)} criteria")
    total = sum(p for p in points if p > 0)
    if total <= epsilon:
        return 0.0
    earned = sum(p for p, v in zip(points, verdicts) if v)
    if earned <= 0:
        return 0.0
    return min(earned / total, 1.0)
