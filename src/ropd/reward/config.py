"""Settings of the scorers: the judge roles, the rubric bounds and every paper ablation.

Field descriptions double as the command line's help text (`ropd score --help`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ropd.llm.config import RoleConfig

FailurePolicy = Literal["nan", "constant", "raise"]
RubricMode = Literal["shared", "per_pair"]
ROLE_NAMES = ("rubricator", "verifier")
AUDIT_ROLE = "audit"  # the second judge of the sampled audit check
# K, teacher answers per group, where nothing else says: the paper's choice. Resolved for a run
# in one place, `RunConfig.k` (run_config.py).
DEFAULT_K = 4


class JudgeSettings(BaseModel):
    """What every scorer shares: answer cleaning, malformed replies, failure policy."""

    model_config = ConfigDict(extra="forbid")

    strip_think: bool = Field(default=True, description="Drop <think> blocks before judging.")
    max_answer_chars: int = Field(
        default=24000,
        ge=100,
        description="Longer answers keep their head and tail (the final answer is at the end).",
    )
    parse_retries: int = Field(
        default=2, ge=0, description="Re-asks of a judge whose reply does not validate."
    )
    failure_policy: FailurePolicy = Field(
        default="nan",
        description="A group that cannot be scored: null rewards (masked), a constant, or stop.",
    )
    constant_reward: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Reward of a failed group under `constant`."
    )
    prompts_dir: Path | None = Field(
        default=None, description="Folder overriding the judge prompt templates."
    )


class ScorerConfig(JudgeSettings):
    """How groups are scored. Defaults follow the paper (K = 4, 4-12 criteria, blind, shared).

    `judge` sets both roles at once; `rubricator=` / `verifier=` override it (in YAML a partial
    mapping is merged over `judge`, e.g. `verifier: {max_tokens: 4096}`).
    """

    judge: RoleConfig | None = Field(
        default=None, description="One model for both roles (rubricator/verifier override it)."
    )
    rubricator: RoleConfig = Field(
        default_factory=lambda: RoleConfig(name="rubricator"),
        description="The model that writes the group's rubric.",
    )
    verifier: RoleConfig = Field(
        default_factory=lambda: RoleConfig(name="verifier"),
        description="The model that checks every answer against the rubric.",
    )

    num_teacher_refs: int | None = Field(
        default=DEFAULT_K,
        ge=0,
        description="K: teacher answers used per group (null: all given, or all the teacher "
        "store is built with).",
    )
    min_teacher_refs: int | None = Field(
        default=None,
        ge=0,
        description="Fail a group with fewer teacher answers than this (unset: judge it with "
        "what there is; groups short of K are counted either way).",
    )
    min_criteria: int = Field(default=4, ge=1, description="Fewest rubric criteria accepted.")
    max_criteria: int = Field(default=12, ge=1, description="Most rubric criteria accepted.")

    rubric_mode: RubricMode = Field(
        default="shared",
        description="One rubric per group (shared), or one per student answer (per_pair).",
    )
    blind: bool = Field(default=True, description="Hide who wrote each answer from the Verifier.")
    teacher_in_pool: bool = Field(
        default=True, description="Verify teacher answers alongside the students' as anchors."
    )

    dedupe: bool = Field(default=True, description="Judge identical student answers once.")
    max_answers_per_verifier_call: int | None = Field(
        default=None, ge=1, description="Split the verifier pool into calls of at most this many."
    )
    seed: int = Field(default=0, description="Seed of the answer shuffling.")

    # Sampled reward-health checks (`reward/health_checks.py`): they never change a reward.
    stability_check_share: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of groups verified a second time, pool reshuffled, to measure how "
        "often verdicts flip (0 = off; the same groups are sampled on resume).",
    )
    audit: RoleConfig | None = Field(
        default=None,
        description="A second judge (usually another model family) that verifies a sampled "
        "share of pools against the same rubric, to measure disagreement (role `audit`).",
    )
    audit_share: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of groups the audit judge also verifies (0 = off; needs `audit`).",
    )

    # A second rubric when the first fails its anchors (`GroupScorer`, docs/health.md).
    reinduce_on_bad_anchor: bool = Field(
        default=False,
        description="Ask the Rubricator once more for a group whose rubric fails every teacher "
        "answer (best below reinduce_teacher_below) or gives every student answer the same "
        "reward; the second rubric is used, whatever it gives (shared rubric mode only).",
    )
    reinduce_teacher_below: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="Re-induce when the group's best teacher score is below this.",
    )

    @model_validator(mode="before")
    @classmethod
    def _fill_roles_from_judge(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("judge") is None:
            return data
        data = dict(data)
        judge = data["judge"]
        for name in ROLE_NAMES:
            own = data.get(name)
            if own is None:
                data[name] = judge
            elif isinstance(own, dict):  # a partial override, merged over the judge
                base = judge.model_dump() if isinstance(judge, RoleConfig) else dict(judge)
                if "base_url" in own:  # its own endpoint: not the judge's replicas as well
                    base.pop("base_urls", None)
                data[name] = {**base, **own}
        return data

    @model_validator(mode="after")
    def _check(self) -> ScorerConfig:
        k, least = self.num_teacher_refs, self.min_teacher_refs
        if k is not None and least is not None and least > k:
            raise ValueError(f"min_teacher_refs ({least}) > num_teacher_refs ({k})")
        if self.min_criteria > self.max_criteria:
            raise ValueError(
                f"min_criteria ({self.min_criteria}) > max_criteria ({self.max_criteria})"
            )
        if self.audit_share > 0 and self.audit is None:
            raise ValueError(
                f"audit_share is {self.audit_share} but no audit judge is set (scorer.audit)"
            )
        if self.reinduce_on_bad_anchor and self.rubric_mode != "shared":
            raise ValueError(
                "reinduce_on_bad_anchor needs rubric_mode: shared (a per_pair rubric sees one "
                f"student answer, so it cannot separate the group); rubric_mode is "
                f"{self.rubric_mode!r}"
            )
        self.rubricator = self.rubricator.with_name("rubricator")
        self.verifier = self.verifier.with_name("verifier")
        if self.audit is not None:
            self.audit = self.audit.with_name(AUDIT_ROLE)
        return self

    def roles(self) -> list[RoleConfig]:
        """The roles this scorer calls, in a fixed order (the audit judge when it is used, so
        the session opens and probes it like the others)."""
        roles = [self.rubricator, self.verifier]
        if self.audit is not None and self.audit_share > 0:
            roles.append(self.audit)
        return roles

    def with_roles(self, roles: list[RoleConfig]) -> ScorerConfig:
        """A copy using `roles` (e.g. resolved to the embedded server's URL and model)."""
        by_name = {role.name: role for role in roles}
        update = {"rubricator": by_name["rubricator"], "verifier": by_name["verifier"]}
        if AUDIT_ROLE in by_name:
            update["audit"] = by_name[AUDIT_ROLE]
        return self.model_copy(update=update)

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


MAX_SCORE = 10  # the T-Judge's scale: 0-10, reward = score / 10


class TJudgeConfig(JudgeSettings):
    """Settings of the scalar-judge baseline (`reward/tjudge.py`)."""

    judge: RoleConfig = Field(
        default_factory=lambda: RoleConfig(name="tjudge", max_tokens=512),
        description="The model that scores each answer 0-10.",
    )
    num_references: int = Field(
        default=0, ge=0, description="Teacher answers shown to the judge as references (0 = none)."
    )

    @model_validator(mode="after")
    def _name(self) -> TJudgeConfig:
        self.judge = self.judge.with_name("tjudge")
        return self

    def roles(self) -> list[RoleConfig]:
        """The one role this judge calls."""
        return [self.judge]

    def with_roles(self, roles: list[RoleConfig]) -> TJudgeConfig:
        """A copy using the `tjudge` role of `roles` (e.g. resolved to the embedded server)."""
        by_name = {role.name: role for role in roles}
        return self.model_copy(update={"judge": by_name["tjudge"]})


OVD_MAX_SCORE = 9  # OVD's scale (Xiong et al., 2026): a discrete 0-9 score, reward = score / 9
OVDPerCall = Literal["one", "group"]


class OVDConfig(JudgeSettings):
    """Settings of on-policy verbal distillation (`reward/ovd.py`): the teacher scores each
    student trajectory 0-9 from its text alone; the reward is score / 9."""

    judge: RoleConfig = Field(
        default_factory=lambda: RoleConfig(name="ovd", max_tokens=512),
        description="The teacher model that scores each trajectory 0-9 (role `ovd`).",
    )
    per_call: OVDPerCall = Field(
        default="one",
        description="`one`: a call per trajectory (as the paper describes); `group`: one call "
        "scoring the group's G trajectories together (G times fewer calls, longer prompts).",
    )
    reject_below: int | None = Field(
        default=None,
        ge=0,
        le=OVD_MAX_SCORE,
        description="Trajectories scored below this get reward 0 and are counted as rejected "
        "(the paper replaces them with a teacher demonstration; ropd cannot swap a completion "
        "inside TRL's GRPO batch, see docs/training.md). Unset: no rejection.",
    )
    outcome_weight: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Weight of the outcome reward where a row has a gold answer (math, "
        "checked with math-verify): w * correct + (1 - w) * score / 9. 0: verbal only.",
    )

    @model_validator(mode="after")
    def _name(self) -> OVDConfig:
        self.judge = self.judge.with_name("ovd")
        return self

    def roles(self) -> list[RoleConfig]:
        """The one role this judge calls."""
        return [self.judge]

    def with_roles(self, roles: list[RoleConfig]) -> OVDConfig:
        """A copy using the `ovd` role of `roles` (e.g. resolved to the embedded server)."""
        by_name = {role.name: role for role in roles}
        return self.model_copy(update={"judge": by_name["ovd"]})


class RaRConfig(ScorerConfig):
    """Settings of RaR, the dataset's own rubric as the reward (`reward/rar.py`; Gunjal et al.,
    2025, arXiv 2507.17746).

    The ROPD scorer's settings, read the same way (`judge`, `verifier`, blind pool, limits,
    failure policy, sampled checks), because RaR is ROPD with the Rubricator's step replaced by
    the row's rubric: the same blind Verifier and the same reward formula. `min_criteria` /
    `max_criteria` bound only the induced part (`mix_induced`); a dataset rubric is taken as it
    comes. K (`num_teacher_refs`) is 0 unless `mix_induced`, where it defaults to 4.
    """

    num_teacher_refs: int | None = Field(
        default=0,
        ge=0,
        description="K: teacher answers per group, verified beside the students as anchors "
        "(teacher_in_pool) and, with mix_induced, shown to the Rubricator. Default 0 (RaR needs "
        "none); 4 with mix_induced.",
    )
    mix_induced: bool = Field(
        default=False,
        description="Also ask the Rubricator for criteria from the contrast of the answers and "
        "verify the union: the dataset's criteria first, then the induced ones (ids renumbered "
        "C1..Cn, points as given).",
    )

    @model_validator(mode="after")
    def _check_rar(self) -> RaRConfig:
        if self.reinduce_on_bad_anchor:
            raise ValueError(
                "reinduce_on_bad_anchor does not apply to rar (the rubric is the data's)"
            )
        if self.rubric_mode != "shared":
            raise ValueError(
                f"rar verifies one rubric per group: rubric_mode must be shared, not "
                f"{self.rubric_mode!r}"
            )
        if self.mix_induced and "num_teacher_refs" not in self.model_fields_set:
            self.num_teacher_refs = DEFAULT_K
        return self

    def roles(self) -> list[RoleConfig]:
        """The Verifier; the Rubricator only with `mix_induced`; the audit judge when used."""
        roles = [self.rubricator] if self.mix_induced else []
        roles.append(self.verifier)
        if self.audit is not None and self.audit_share > 0:
            roles.append(self.audit)
        return roles

    def with_roles(self, roles: list[RoleConfig]) -> RaRConfig:
        """A copy using `roles` (those this config calls; the others stay as they are)."""
        by_name = {role.name: role for role in roles}
        update = {name: by_name[name] for name in (*ROLE_NAMES, AUDIT_ROLE) if name in by_name}
        return self.model_copy(update=update)

    def ablation_settings(self) -> dict[str, object]:
        settings = super().ablation_settings()
        settings["mix_induced"] = self.mix_induced
        if not self.mix_induced:
            del settings["rubricator_model"], settings["min_criteria"], settings["max_criteria"]
        return settings
