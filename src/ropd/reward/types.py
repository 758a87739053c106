"""Inputs and outputs of group scoring.

`Group` validates itself completely on construction; the rules are in `input_checks`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator

from ropd.data.gold import gold_text
from ropd.data.rubrics import parse_rubric
from ropd.llm.tokens import Window
from ropd.redact import scrub
from ropd.reward.input_checks import GroupFieldError, Text, check_id, check_prompt
from ropd.rubric import Rubric

Prompt = str | list[dict[str, Any]]
Source = Literal["student", "teacher"]


class Group(BaseModel):
    """One prompt with the student's G answers and the teacher's K reference answers.

    Validated completely on construction (see the module doc for the rules).
    `student_correct` is each student answer checked against the row's gold answer (None: not
    checkable); no judge sees it, the trace store keeps it for the reward-health numbers.
    `rubric` is the row's own rubric (RaR, `method: rar`): a `Rubric`, or the data's form
    (`ropd.data.rubrics.parse_rubric`); other methods ignore it. `gold` is the row's checkable
    answer, read by OVD's outcome reward only (no judge sees it).
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    prompt: Prompt
    student_responses: list[Text] = Field(min_length=1)
    teacher_responses: list[Text] = Field(default_factory=list)
    student_correct: list[StrictBool | None] | None = None
    rubric: Rubric | None = None
    gold: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _check_id(cls, value: object) -> object:
        return check_id(value)

    @field_validator("gold", mode="before")
    @classmethod
    def _gold_as_text(cls, value: object) -> str | None:
        """Numbers as text (`"gold": 42` in a groups file); other values are no gold answer."""
        return gold_text(value)

    @field_validator("prompt", mode="before")
    @classmethod
    def _check_prompt(cls, value: object) -> object:
        return check_prompt(value)

    @field_validator("rubric", mode="before")
    @classmethod
    def _parse_rubric(cls, value: object) -> object:
        if value is None or isinstance(value, Rubric):
            return value
        try:
            return parse_rubric(value)
        except ValueError as exc:
            raise GroupFieldError("rubric", str(exc)) from None

    @model_validator(mode="after")
    def _one_check_per_answer(self) -> Group:
        if self.student_correct is not None and len(self.student_correct) != len(
            self.student_responses
        ):
            raise GroupFieldError(
                "student_correct",
                f"{len(self.student_correct)} entries for {len(self.student_responses)} student "
                "answers (one true, false or null per answer)",
            )
        return self


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
    # Sampled reward-health checks run on this group (sums, so groups add up; empty when the
    # group was not sampled): stability_verdicts, stability_flips, stability_answers,
    # stability_reward_abs_change_sum; audit_verdicts, audit_disagreements, audit_answers,
    # audit_reward_abs_diff_sum; reinduced (1 when the rubric was asked for again,
    # `ScorerConfig.reinduce_on_bad_anchor`). `reward/health.py` turns them into `ropd/health/*`.
    checks: dict[str, float] = Field(default_factory=dict)

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


@dataclass
class ContextRecord:
    """How one group's judge prompts were fitted into the judges' context windows, and what
    was repaired in the Rubricator's reply (repeated criteria merged).

    Filled by the Rubricator and Verifier steps, recorded as `settings["context"]` of the
    group's result (so traces keep it without a schema change).
    """

    windows: dict[str, Window] = field(default_factory=dict)  # role name -> last window used
    verifier_chunks: list[int] = field(default_factory=list)  # answers per Verifier call
    verifier_clipped_answers: int = 0
    rubricator_clipped_answers: int = 0
    resplits: int = 0  # context-length errors answered by sending less
    # repeated checks the Rubricator wrote, kept once (`induction.CriteriaMerge.as_dict`)
    merged_criteria: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        def role(name: str, **more: Any) -> dict[str, Any]:
            window = self.windows.get(name)
            return {
                "window": window.tokens if window else None,
                "source": window.source if window else None,
                "tokens": window.counting if window else None,
                **more,
            }

        return {
            "rubricator": role(
                "rubricator",
                clipped_answers=self.rubricator_clipped_answers,
                merged_criteria=[dict(merge) for merge in self.merged_criteria],
            ),
            "verifier": role(
                "verifier",
                chunks=list(self.verifier_chunks),
                clipped_answers=self.verifier_clipped_answers,
            ),
            "resplits": self.resplits,
        }
