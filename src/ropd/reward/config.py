"""Settings of the group scorer: the judge roles, the rubric bounds and every paper ablation."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ropd.llm.config import RoleConfig

FailurePolicy = Literal["nan", "constant", "raise"]
RubricMode = Literal["shared", "per_pair"]


class ScorerConfig(BaseModel):
    """How groups are scored. Defaults follow the paper (K = 4, 4-12 criteria, blind, shared)."""

    model_config = ConfigDict(extra="forbid")

    rubricator: RoleConfig = Field(default_factory=lambda: RoleConfig(name="rubricator"))
    verifier: RoleConfig = Field(default_factory=lambda: RoleConfig(name="verifier"))

    num_teacher_refs: int | None = Field(
        default=4, ge=0, description="K: teacher answers used per group (None = all given)"
    )
    min_criteria: int = Field(default=4, ge=1)
    max_criteria: int = Field(default=12, ge=1)

    rubric_mode: RubricMode = "shared"
    blind: bool = True
    teacher_in_pool: bool = True

    strip_think: bool = True
    dedupe: bool = True
    max_answers_per_verifier_call: int | None = Field(default=None, ge=1)
    max_answer_chars: int = Field(default=24000, ge=100)

    parse_retries: int = Field(default=2, ge=0)
    failure_policy: FailurePolicy = "nan"
    constant_reward: float = Field(default=0.0, ge=0.0, le=1.0)
    seed: int = 0
    prompts_dir: Path | None = None

    @model_validator(mode="after")
    def _check(self) -> ScorerConfig:
        if self.min_criteria > self.max_criteria:
            raise ValueError(
                f"min_criteria ({self.min_criteria}) > max_criteria ({self.max_criteria})"
            )
        self.rubricator = self.rubricator.with_name("rubricator")
        self.verifier = self.verifier.with_name("verifier")
        return self

    def ablation_settings(self) -> dict[str, object]:
        """The switches that change rewards, recorded with every traced group."""
        return {
            "num_teacher_refs": self.num_teacher_refs,
            "rubric_mode": self.rubric_mode,
            "blind": self.blind,
            "teacher_in_pool": self.teacher_in_pool,
            "min_criteria": self.min_criteria,
            "max_criteria": self.max_criteria,
            "rubricator_model": self.rubricator.model,
            "verifier_model": self.verifier.model,
            "seed": self.seed,
        }
