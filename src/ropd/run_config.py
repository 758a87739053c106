"""The run configuration: what every command and every training engine's config extends.

One `RunConfig` holds what a run needs to reach its judges and its data: the judge roles
(`scorer`, `tjudge`, `ovd`, `rar`), endpoint limits, the teacher store and K, the trace store, the quality
gate, the reward-health alarms, the run id and whether endpoints are probed. It is the `ropd:` section of `ropd.yaml`:
`ropd train` extends it with the student, data and baselines (`train/config.py` `RopdSection`),
verl's reward manager with what verl decides (`integrations/verl/settings.py` `VerlSection`),
and every command reads it with `-c ropd.yaml --set key=value` (`cli/run_options.py`).
`Session.open(config)` (`session.py`) is what turns it into open connections and stores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ropd.config_file import load_section
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.reward.config import DEFAULT_K, OVDConfig, RaRConfig, ScorerConfig, TJudgeConfig
from ropd.reward.gate import GateConfig
from ropd.reward.health import HealthConfig
from ropd.teacher.config import TeacherConfig

JudgeMethod = Literal["ropd", "tjudge", "ovd", "rar"]
# The `RunConfig` field holding each judge method's settings.
JUDGE_FIELDS = {"ropd": "scorer", "tjudge": "tjudge", "ovd": "ovd", "rar": "rar"}
JudgeConfig = ScorerConfig | TJudgeConfig | OVDConfig | RaRConfig
# Keys of the `ropd:` section only `ropd train` reads (`train/config.py` `RopdSection`): a
# command reading the same file with `-c` leaves them alone.
TRAIN_ONLY_KEYS = ("student", "data", "lopd", "exopd", "gad", "lora", "trl_overrides")


class RunConfig(BaseModel):
    """Judge, teacher answers, limits, quality gate, health alarms, traces and run id of a run."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field(
        default="ropd", description="How answers are rewarded: ropd, tjudge, ovd or rar."
    )
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    scorer: ScorerConfig = Field(default_factory=ScorerConfig)
    tjudge: TJudgeConfig = Field(default_factory=TJudgeConfig)
    ovd: OVDConfig = Field(default_factory=OVDConfig)
    rar: RaRConfig = Field(default_factory=RaRConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    traces: Path | None = Field(default=None, description="trace store; default in the run folder")
    run_id: str | None = Field(default=None, description="Run id of the traces (default: new).")
    probe: bool = Field(
        default=True,
        description="Probe each endpoint once before the first request (reachable, key "
        "accepted, model listed at /models).",
    )

    @property
    def judge_config(self) -> JudgeConfig:
        """The judge settings the method scores with."""
        return getattr(self, judge_field(self.method))  # type: ignore[no-any-return]

    def judge_roles(self) -> list[RoleConfig]:
        """The roles the method's judge calls, in a fixed order."""
        return self.judge_config.roles()

    @property
    def k(self) -> int:
        """K: the teacher answers each group is judged with, answered here and nowhere else.

        T-Judge: its `num_references`. OVD: none. RaR: `rar.num_teacher_refs` (0 unless
        `rar.mix_induced`). ROPD: `scorer.num_teacher_refs`; unset (null, "all"),
        the number of answers the store is built with (`teacher.num_answers`, default 4).
        SFT trains on every stored answer: `teacher.num_answers`.
        """
        if self.method == "tjudge":
            return self.tjudge.num_references
        if self.method == "ovd":
            return 0  # the teacher judges the trajectory from its text alone (docs/training.md)
        if self.method == "rar":
            return resolve_k(self.rar.num_teacher_refs, self.teacher.num_answers)
        if self.method == "ropd":
            return resolve_k(self.scorer.num_teacher_refs, self.teacher.num_answers)
        return self.teacher.num_answers

    @classmethod
    def load(cls, path: str | Path | None, overrides: dict[str, Any] | None = None) -> RunConfig:
        """The `ropd:` section of `path` with `--set` overrides (dotted keys inside it)."""
        return load_section(cls, path, overrides, ignore=TRAIN_ONLY_KEYS)


def judge_field(method: str) -> str:
    """The field holding `method`'s judge settings (`scorer` for ropd and the methods without
    a judge, whose `judge_config` is never called for scoring)."""
    return JUDGE_FIELDS.get(method, "scorer")


def method_of(config: JudgeConfig) -> str:
    """The judge method whose settings `config` is."""
    if isinstance(config, TJudgeConfig):
        return "tjudge"
    if isinstance(config, RaRConfig):  # before ScorerConfig: RaR's settings extend ROPD's
        return "rar"
    return "ovd" if isinstance(config, OVDConfig) else "ropd"


def resolve_k(num_teacher_refs: int | None, store_answers: int | None = None) -> int:
    """K from a scorer's `num_teacher_refs` where the answers come from a store: unset means
    every answer the store is built with (`store_answers`, else `DEFAULT_K`)."""
    if num_teacher_refs is not None:
        return num_teacher_refs
    return store_answers if store_answers is not None else DEFAULT_K


__all__ = [
    "JUDGE_FIELDS",
    "TRAIN_ONLY_KEYS",
    "JudgeConfig",
    "JudgeMethod",
    "RunConfig",
    "judge_field",
    "method_of",
    "resolve_k",
]
