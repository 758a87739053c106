"""Rubrics that come with the data (RaR; Gunjal et al., 2025, arXiv 2507.17746).

A row of RaR-Science / RaR-Medicine (`anisha2102/RaR-Science-20k`, `anisha2102/RaR-Medicine-20k`,
also published as `ScaleAI/RaR-Science` / `ScaleAI/RaR-Medicine`) carries `question`,
`reference_answer`, `question_source`, `rubric`, `rubric_list` and `rubric_count`. Its `rubric`
is a list of items `{"title", "description", "weight"}`; the description starts with the item's
label ("Essential Criteria: ...", "Important Criteria: ...", "Optional Criteria: ...",
"Pitfall Criteria: ...") and pitfalls have negative weights.

`parse_rubric` turns such a value into a ropd `Rubric`: ids C1..Cn in the data's order, the
description as the criterion text (label included, so the Verifier reads what the authors
wrote), the weight as points (an integer from -5 to 5, not 0; negative is a pitfall, see
`ropd.rubric.weighted_score`), the category from the label (`essential`, `important`,
`optional`, `pitfall`), else from the item's `category`/`label`/`title`. ropd's own form
(`{"criterion", "points", "category"}` items, or `{"criteria": [...]}`) and a JSON string of
either are accepted too, so a rubric written back by ropd reads the same.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from ropd.data.records import DataError, Record
from ropd.rubric import Criterion, Rubric

RUBRIC_FIELD = "rubric"  # RaR's column
# "Essential Criteria: ..." -> essential; what RaR's descriptions start with
_LABEL = re.compile(
    r"^\s*(essential|important|optional|pitfall)\s+criteri(?:a|on)\s*:", re.IGNORECASE
)


class _DataItem(BaseModel):
    """One rubric item as datasets write it: RaR's `title`/`description`/`weight`, or ropd's
    `criterion`/`points`/`category` (strict types: `"5"` or `true` is no weight)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    description: StrictStr | None = None
    criterion: StrictStr | None = None
    weight: StrictInt | None = None
    points: StrictInt | None = None
    title: StrictStr | None = None
    category: StrictStr | None = Field(default=None, max_length=64)
    label: StrictStr | None = None


def _category(item: _DataItem, text: str) -> str:
    match = _LABEL.match(text)
    if match:
        return match.group(1).lower()
    for name in (item.category, item.label, item.title):
        if name and name.strip():
            return name.strip()[:64]
    return "general"


def _criterion(n: int, raw: Any) -> Criterion:
    """Item `n` (1-based) as a criterion; ValueError naming the item and the field."""
    if not isinstance(raw, dict):
        raise ValueError(f"item {n}: must be an object with description and weight")  # noqa: TRY004 - pydantic validators need ValueError
    try:
        item = _DataItem.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ValueError(f"item {n}: field {field!r}: {first['msg']}") from None
    text = item.description if item.description is not None else item.criterion
    if text is None or not text.strip():
        raise ValueError(f"item {n}: field 'description': missing or empty")
    points = item.weight if item.weight is not None else item.points
    if points is None:
        raise ValueError(f"item {n}: field 'weight': missing")
    if points == 0 or not -5 <= points <= 5:
        raise ValueError(
            f"item {n}: field 'weight': {points} is not an integer from 1 to 5, or -1 to -5 for "
            "a pitfall"
        )
    if len(text.strip()) > 2000:
        raise ValueError(f"item {n}: field 'description': longer than 2000 characters")
    return Criterion(
        id=f"C{n}", category=_category(item, text), criterion=text.strip(), points=points
    )


def parse_rubric(value: Any) -> Rubric:
    """A dataset's rubric value as a `Rubric` (see the module doc); ValueError says what is
    wrong and where inside the value (item number, field)."""
    if isinstance(value, Rubric):
        return value
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("not a list of rubric items (a string that is not JSON)") from None
    if isinstance(value, dict) and "criteria" in value:
        value = value["criteria"]
    if not isinstance(value, list | tuple):
        raise ValueError(f"must be a list of rubric items, got {type(value).__name__}")  # noqa: TRY004 - pydantic validators need ValueError
    if not value:
        raise ValueError("has no items")
    criteria = [_criterion(n, item) for n, item in enumerate(value, start=1)]
    if not any(c.points > 0 for c in criteria):
        raise ValueError("has only pitfalls (no item with a positive weight to earn)")
    return Rubric(criteria=criteria)


def record_rubric(record: Record, field: str = RUBRIC_FIELD) -> Rubric:
    """The rubric of one data row; a DataError names the file, the line and the field."""
    value = record.require(field)
    try:
        return parse_rubric(value)
    except ValueError as exc:
        raise DataError(f"{record.location}: field {field!r}: {exc}") from None


__all__ = ["RUBRIC_FIELD", "parse_rubric", "record_rubric"]
