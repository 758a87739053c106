"""Turn dataset rows into `EvalItem`s: validate each family's fields, then build the prompt.

Hub rows are first mapped onto the same fields as local files, so both go through one
validation path and every error names the file (or dataset row), the line and the field.
"""

from __future__ import annotations

import random
import string
from typing import Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ropd.data.records import DataError, Record, load_records, to_prompt_messages
from ropd.eval.tasks import TaskSpec
from ropd.eval.types import EvalError, EvalItem

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
MCQ_INSTRUCTION = (
    "Think it through, then finish with a last line of the form 'Answer: X', "
    "where X is the letter of the correct option."
)

_Id = str | int | None


class _Row(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=False)

    id: _Id = None


class MathRow(_Row):
    # `prompt` is accepted too, so training sets such as ropd's bundled sample evaluate as they are
    problem: str = Field(min_length=1, validation_alias=AliasChoices("problem", "prompt"))
    answer: str = Field(min_length=1)

    @field_validator("answer", mode="before")
    @classmethod
    def _number_to_text(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return value


class McqRow(_Row):
    question: str = Field(min_length=1)
    choices: list[str] = Field(min_length=2, max_length=26)
    answer: str | int

    @field_validator("answer")
    @classmethod
    def _answer_names_a_choice(cls, value: str | int, info: ValidationInfo) -> str | int:
        choices = info.data.get("choices")
        if choices is not None:
            correct_index(value, choices)
        return value

    def correct_index(self) -> int:
        return correct_index(self.answer, self.choices)


def correct_index(answer: str | int, choices: list[str]) -> int:
    """The answer as a 0-based index: a letter, an index, or the text of a choice."""
    count = len(choices)
    if isinstance(answer, int) and not isinstance(answer, bool):
        if 0 <= answer < count:
            return answer
        raise ValueError(f"index {answer} is outside 0..{count - 1}")
    text = str(answer).strip()
    if len(text) == 1 and text.upper() in string.ascii_uppercase[:count]:
        return string.ascii_uppercase.index(text.upper())
    if text in choices:
        return choices.index(text)
    raise ValueError(
        f"{text!r} is neither a letter A-{string.ascii_uppercase[count - 1]}, "
        "an index, nor the text of one of the choices"
    )


class RubricItemRow(BaseModel):
    model_config = ConfigDict(extra="ignore")

    criterion: str = Field(min_length=1)
    points: float

    @field_validator("points")
    @classmethod
    def _non_zero(cls, value: float) -> float:
        if value == 0:
            raise ValueError("points must be non-zero (positive for wanted, negative for unwanted)")
        return value


class RubricRow(_Row):
    prompt: str | list[dict[str, Any]]
    rubrics: list[RubricItemRow] = Field(min_length=1)

    @field_validator("rubrics")
    @classmethod
    def _some_positive(cls, value: list[RubricItemRow]) -> list[RubricItemRow]:
        if not any(item.points > 0 for item in value):
            raise ValueError("at least one rubric item needs positive points")
        return value


class IfevalRow(BaseModel):
    model_config = ConfigDict(extra="ignore")

    key: str | int
    prompt: str = Field(min_length=1)
    instruction_id_list: list[str] = Field(min_length=1)
    kwargs: list[dict[str, Any]]

    @model_validator(mode="after")
    def _one_kwargs_per_instruction(self) -> IfevalRow:
        if len(self.kwargs) != len(self.instruction_id_list):
            raise ValueError(
                f"kwargs has {len(self.kwargs)} entries for "
                f"{len(self.instruction_id_list)} instructions"
            )
        return self


FIELDS = {
    "math": "problem, answer",
    "mcq": "question, choices, answer",
    "rubric": "prompt, rubrics (criterion, points)",
    "ifeval": "key, prompt, instruction_id_list, kwargs",
}

_ROW_MODELS: dict[str, type[BaseModel]] = {
    "math": MathRow,
    "mcq": McqRow,
    "rubric": RubricRow,
    "ifeval": IfevalRow,
}


def _validate(model: type[BaseModel], data: dict[str, Any], location: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "(record)"
        message = error["msg"].removeprefix("Value error, ")
        raise EvalError(f"{location}: field {field!r}: {message}") from None


def load_items(spec: TaskSpec, *, limit: int | None = None, seed: int = 0) -> list[EvalItem]:
    """Read a task's rows (local file or hub) and return validated, prompt-ready items."""
    records = _read(spec, limit)
    items: list[EvalItem] = []
    seen: dict[str, str] = {}
    for index, record in enumerate(records):
        data = record.data
        if spec.convert is not None:
            try:
                data = spec.convert(data)
            except KeyError as exc:
                raise EvalError(f"{record.location}: field {exc}: missing") from None
            except (TypeError, AttributeError) as exc:
                raise EvalError(f"{record.location}: malformed row ({exc})") from None
        row = _validate(_ROW_MODELS[spec.family], data, record.location)
        item = _build(spec, row, Record(data, record.location), index, seed)
        if item.item_id in seen:
            raise EvalError(
                f"{record.location}: field 'id': {item.item_id!r} repeats "
                f"{seen[item.item_id]}; ids must be unique"
            )
        seen[item.item_id] = record.location
        items.append(item)
    if not items:
        raise EvalError(f"task {spec.name}: {spec.source} has no rows")
    return items


def _read(spec: TaskSpec, limit: int | None) -> list[Record]:
    try:
        if spec.path is not None:
            return load_records(spec.path, limit=limit)
        if spec.hub_data_files is None:
            return load_records(
                spec.hub_id, name=spec.hub_config, split=spec.hub_split, limit=limit
            )
        return _read_hub_files(spec, limit)
    except DataError as exc:
        hint = (
            ""
            if spec.path
            else (
                f" For this task, pass --tasks {spec.name}=PATH with the hub's own fields, or "
                f"{spec.family}=PATH with the fields {FIELDS[spec.family]}."
            )
        )
        raise EvalError(f"task {spec.name}: {exc}{hint}") from None


def _read_hub_files(spec: TaskSpec, limit: int | None) -> list[Record]:
    """Hub datasets whose files differ in schema (HealthBench) are read one file at a time."""
    try:
        import datasets
    except ImportError as exc:
        raise EvalError(
            "loading Hugging Face datasets needs `datasets` (pip install 'ropd[eval]')"
        ) from exc
    try:
        dataset = datasets.load_dataset(
            spec.hub_id, data_files=spec.hub_data_files, split=spec.hub_split
        )
    except Exception as exc:
        raise EvalError(
            f"task {spec.name}: could not load {spec.source} from the Hugging Face Hub "
            f"({type(exc).__name__}: {exc}). The hub may be unreachable from this machine: "
            f"download the file elsewhere and pass it as {spec.name}=PATH.jsonl"
        ) from exc
    rows = dataset if limit is None else dataset.select(range(min(limit, len(dataset))))
    return [Record(dict(row), f"{spec.source}[{i}]") for i, row in enumerate(rows)]


def _build(spec: TaskSpec, row: Any, record: Record, index: int, seed: int) -> EvalItem:
    item_id = str(
        row.key if isinstance(row, IfevalRow) else row.id if row.id is not None else index
    )
    common = {"task": spec.name, "item_id": item_id, "location": record.location}
    if isinstance(row, MathRow):
        content = f"{row.problem.strip()}\n\n{MATH_INSTRUCTION}"
        return EvalItem(
            messages=[{"role": "user", "content": content}], target={"answer": row.answer}, **common
        )
    if isinstance(row, McqRow):
        return _mcq_item(row, spec.name, item_id, seed, common)
    if isinstance(row, IfevalRow):
        return EvalItem(
            messages=[{"role": "user", "content": row.prompt}],
            target={
                "key": row.key,
                "prompt": row.prompt,
                "instruction_id_list": row.instruction_id_list,
                "kwargs": row.kwargs,
            },
            **common,
        )
    try:
        messages = to_prompt_messages(record)
    except DataError as exc:
        raise EvalError(str(exc)) from None
    rubrics = [{"criterion": r.criterion, "points": r.points} for r in row.rubrics]
    return EvalItem(messages=messages, target={"rubrics": rubrics}, **common)


def shuffled_order(count: int, seed: int, task: str, item_id: str) -> list[int]:
    """A permutation of the choices that depends only on the seed, the task and the item."""
    order = list(range(count))
    random.Random(f"{seed}:{task}:{item_id}").shuffle(order)
    return order


def _mcq_item(row: McqRow, task: str, item_id: str, seed: int, common: dict) -> EvalItem:
    order = shuffled_order(len(row.choices), seed, task, item_id)
    letters = string.ascii_uppercase[: len(row.choices)]
    lines = [f"{letters[pos]}) {row.choices[src].strip()}" for pos, src in enumerate(order)]
    correct = letters[order.index(row.correct_index())]
    content = f"{row.question.strip()}\n\n" + "\n".join(lines) + f"\n\n{MCQ_INSTRUCTION}"
    return EvalItem(
        messages=[{"role": "user", "content": content}],
        target={"correct": correct, "letters": letters, "order": order},
        **common,
    )
