"""The part of the `ropd:` config section that a training engine's reward reads.

`ropd train` (TRL, `train/config.py` `RopdSection`) and verl's reward manager
(`integrations/verl/settings.py` `VerlSection`) read the same file: both extend this model, so
the judge roles, limits, teacher store, K, rubric bounds, ablations, failure policy, quality gate
and trace store are one definition with one set of checks.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from ropd.llm.config import LimitsConfig
from ropd.reward.config import ScorerConfig
from ropd.reward.gate import GateConfig
from ropd.reward.tjudge import TJudgeConfig
from ropd.teacher.config import TeacherConfig


class ScoringSection(BaseModel):
    """Judge, teacher answers, limits, quality gate and traces of the `ropd:` section."""

    model_config = ConfigDict(extra="forbid")

    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    scorer: ScorerConfig = Field(default_factory=ScorerConfig)
    tjudge: TJudgeConfig = Field(default_factory=TJudgeConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    traces: Path | None = Field(default=None, description="trace store; default in the run folder")
    run_id: str | None = None


__all__ = ["ScoringSection"]
