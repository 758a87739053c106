"""Where a run's teacher answers are stored, and who writes the missing ones."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ropd.llm.config import RoleConfig
from ropd.reward.config import DEFAULT_K


class TeacherConfig(BaseModel):
    """The offline teacher answers: where they are stored and who writes missing ones."""

    model_config = ConfigDict(extra="forbid")

    store: Path | None = Field(default=None, description="teacher store (SQLite) path")
    role: RoleConfig = Field(
        default_factory=lambda: RoleConfig(name="teacher", temperature=1.0, max_tokens=512)
    )
    num_answers: int = Field(
        default=DEFAULT_K, ge=1, description="answers per prompt to build (and K when K is null)"
    )
    build_missing: bool = Field(
        default=False, description="generate and store missing teacher answers before training"
    )
    fingerprint: str | None = Field(
        default=None,
        description="hash of the stored teacher fingerprint to use (`ropd teacher stats` lists "
        "them); needed only when the store holds answers of several teachers",
    )
    accept_any_fingerprint: bool = False

    @model_validator(mode="after")
    def _name(self) -> TeacherConfig:
        self.role = self.role.with_name("teacher")
        return self
