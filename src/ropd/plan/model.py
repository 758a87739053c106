"""The numbers of a run plan: judge tokens, cost, throughput, judge GPUs, teacher build.

Plain pydantic models, so `ropd plan --json` is `Plan.model_dump_json()` and the run folder's
`plan.json` can be read back by the report to compare what was planned with what was spent.
Every figure that rests on an assumption says which one in `Plan.assumptions`.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

PLAN_FILE = "plan.json"
# stated defaults of what the config cannot say (`ropd plan` flags)
DEFAULT_LATENCY_S = 30.0  # one judge call
DEFAULT_PREFILL_TPS = 8000.0  # prompt tokens a second one judge GPU reads
DEFAULT_DECODE_TPS = 1500.0  # tokens a second one judge GPU writes, batched


class Load(BaseModel):
    """Judge calls and tokens of one role over some amount of work (a group, a step, a run)."""

    calls: float = 0.0
    input_tokens: float = 0.0
    output_expected: float = Field(
        default=0.0, description="Output tokens expected (see the plan's assumptions)."
    )
    output_bound: float = Field(default=0.0, description="Output tokens at max_tokens per call.")

    def __add__(self, other: Load) -> Load:
        return Load(
            calls=self.calls + other.calls,
            input_tokens=self.input_tokens + other.input_tokens,
            output_expected=self.output_expected + other.output_expected,
            output_bound=self.output_bound + other.output_bound,
        )

    def scaled(self, factor: float) -> Load:
        return Load(
            calls=self.calls * factor,
            input_tokens=self.input_tokens * factor,
            output_expected=self.output_expected * factor,
            output_bound=self.output_bound * factor,
        )

    @property
    def tokens_expected(self) -> float:
        return self.input_tokens + self.output_expected


class Cost(BaseModel):
    """Cost of some work at a role's price: with the expected output, and at the output bound."""

    expected: float
    bound: float


class RolePlan(BaseModel):
    """One judge role (Rubricator, Verifier, a check, or a scalar judge): its model, counting,
    window, load and cost."""

    role: str
    model: str
    counting: str = Field(description="How prompt tokens are counted (tokenizer or estimate).")
    window: int | None = Field(description="Context window used to split prompts (None: unknown).")
    max_tokens: int
    price_set: bool
    per_group: Load
    per_step: Load
    per_run: Load | None = None
    cost_per_group: Cost | None = None
    cost_per_step: Cost | None = None
    cost_per_run: Cost | None = None


class Throughput(BaseModel):
    """What the judge endpoint must sustain for one reward call to finish in `window_s`.

    All groups of a reward call are judged concurrently. For ROPD, per group the Rubricator call
    comes first, then the Verifier calls: two phases, two judge latencies at best. The scalar
    judges (T-Judge, OVD) send all their calls at once: one phase, one judge latency.
    """

    groups: int = Field(description="Groups scored concurrently per reward call.")
    latency_s: float
    phases: int = Field(default=2, description="Rounds of judge calls, one after the other.")
    window_s: float = Field(description="One judge latency per phase.")
    requests: float
    tokens: float = Field(description="Input plus expected output tokens of the reward call.")
    requests_per_minute: float
    tokens_per_minute: float
    in_flight: float = Field(description="Requests in flight at once at the busiest phase.")
    limit_requests_per_minute: float | None
    limit_tokens_per_minute: float | None
    limit_max_in_flight: int
    judge_seconds_at_limits: float = Field(
        description="Least time the reward call's judge work takes under the configured limits."
    )
    limited_by: list[str] = Field(default_factory=list)


class SelfHosted(BaseModel):
    """Judge GPUs needed for a reward call's judge tokens within its judge latencies (one per
    phase of calls, `Throughput.phases`)."""

    prefill_tps: float
    decode_tps: float
    gpu_seconds: float = Field(description="GPU-seconds of prefill and decode per reward call.")
    gpus: int


class TeacherBuild(BaseModel):
    """What filling the teacher store before training costs."""

    store: str | None
    store_exists: bool
    answers_per_prompt: int
    prompts: int | None
    prompts_missing: int | None
    answers_missing: int | None
    input_tokens: float | None
    output_tokens: float | None
    answer_tokens: int
    answer_tokens_source: str
    price_set: bool
    cost: float | None = None


class Shape(BaseModel):
    """How much work a step is and where each size comes from."""

    method: str
    num_generations: int = Field(description="G: student answers per group.")
    k: int = Field(description="K: teacher answers per group.")
    pool: int = Field(
        description="Answers one judge reads per group (per rubric); scalar judges: student "
        "answers scored per call (T-Judge's K references besides)."
    )
    rubric_mode: str = Field(description="`shared`, `per_pair`, or `none` (scalar judges).")
    rubrics_per_group: int
    per_call: str | None = Field(default=None, description="OVD: `one` or `group`.")
    prompts_per_step: float
    groups_per_reward_call: float
    num_processes: int
    steps: int | None
    steps_source: str
    dataset_prompts: int | None
    groups_planned: int = Field(description="Groups rendered to count the prompts (a sample).")
    answer_tokens: int
    answer_tokens_source: str
    teacher_tokens: float
    teacher_tokens_source: str
    criteria: int = Field(description="Criteria assumed per rubric (0: no rubric).")
    induced_criteria: int = Field(
        default=0, description="RaR with mix_induced: induced criteria assumed per group."
    )
    dataset_criteria: float | None = Field(
        default=None, description="RaR: mean criteria of the sampled rows' own rubrics."
    )


class Plan(BaseModel):
    """What a run will cost before anything is paid for (no endpoint is contacted)."""

    source: str
    shape: Shape
    judge: list[RolePlan] = Field(default_factory=list)
    throughput: Throughput | None = None
    self_hosted: SelfHosted | None = None
    teacher_build: TeacherBuild | None = None
    assumptions: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
