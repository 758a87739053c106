"""`build_plan`: a training config turned into judge tokens, cost, throughput and judge GPUs.

Nothing here contacts an endpoint. The dataset's real prompts are read (`train/data.py`), the
teacher store is read when it exists (its real answers, and which prompts still need some), and
a sample of groups is rendered with the scorer's own message builders (`plan/groups.py`, and
`plan/scalar.py` for T-Judge and OVD). RaR's Verifier reads each sampled row's own rubric (the
data's `rubric` column), with the assumed induced criteria added under `mix_induced`. Per step and per run figures are the sampled groups'
mean times the groups of a step and of the run.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, Field

from ropd.errors import RopdError
from ropd.llm.config import RoleConfig
from ropd.llm.tokens import ESTIMATE_CHARS_PER_TOKEN, ContextWindows, TokenCounter, counter_for
from ropd.plan.groups import (
    CRITERION_TOKENS,
    RUBRIC_TOKENS_PER_CRITERION,
    VERDICT_TOKENS_PER_CHECK,
    Counter,
    group_load,
    placeholder_rubric,
    text_of_tokens,
)
from ropd.plan.model import (
    DEFAULT_DECODE_TPS,
    DEFAULT_LATENCY_S,
    DEFAULT_PREFILL_TPS,
    Cost,
    Load,
    Plan,
    RolePlan,
    SelfHosted,
    Shape,
    TeacherBuild,
    Throughput,
)
from ropd.plan.scalar import (
    OVD_TOKENS_PER_SCORE,
    TJUDGE_OUTPUT_TOKENS,
    ScalarScorer,
    scalar_load,
)
from ropd.reward.config import ScorerConfig
from ropd.reward.group_scorer import GroupScorer
from ropd.reward.health_checks import CHECK_ROLE
from ropd.reward.ovd import OVDScorer
from ropd.reward.rar import RaRScorer, union
from ropd.reward.tjudge import TJudgeScorer
from ropd.rubric import Rubric
from ropd.train.config import ADVERSARIAL_METHODS, GRPO_METHODS, TrainConfig, trl_class
from ropd.train.data import TrainPrompt, load_prompts

DEFAULT_SAMPLE = 32
ASSUMED_PROMPT_TOKENS = 250  # a prompt's length when the dataset cannot be read here


class PlanOptions(BaseModel):
    """What the plan cannot read from the config (each has a stated default)."""

    answer_tokens: int | None = Field(
        default=None, ge=1, description="Student answer length (default max_completion_length)."
    )
    teacher_tokens: int | None = Field(
        default=None,
        ge=1,
        description="Teacher answer length (default: the store, else "
        "the teacher role's max_tokens).",
    )
    steps: int | None = Field(default=None, ge=1, description="Optimizer steps of the run.")
    latency_s: float = Field(default=DEFAULT_LATENCY_S, gt=0, description="One judge call.")
    prefill_tps: float = Field(default=DEFAULT_PREFILL_TPS, gt=0)
    decode_tps: float = Field(default=DEFAULT_DECODE_TPS, gt=0)
    num_processes: int = Field(default=1, ge=1, description="Training processes (GPUs).")
    sample: int = Field(default=DEFAULT_SAMPLE, ge=1, description="Groups rendered and counted.")


def build_plan(
    config: TrainConfig,
    options: PlanOptions | None = None,
    *,
    prompts: list[TrainPrompt] | None = None,
    counter: Counter | None = None,
) -> Plan:
    """The plan of `config`; `prompts` saves reading the data again, `counter` replaces the
    roles' own prompt counters (tests comparing with an endpoint that counts differently)."""
    options = options or PlanOptions()
    section = config.ropd
    notes: list[str] = []
    trl = _TrlValues(config)
    g = trl.group_size()
    per_step = trl.prompts_per_step(options.num_processes)
    per_call = trl.prompts_per_reward_call(options.num_processes)
    if prompts is None:
        try:
            prompts = load_prompts(section.data, rubrics=section.method == "rar")
        except Exception as error:  # noqa: BLE001 - no network, no file: plan without them
            notes.append(
                f"data {section.data.source}: not read here ({_short(error)}); prompts assumed "
                f"{ASSUMED_PROMPT_TOKENS} tokens, run length needs max_steps or --steps"
            )
    steps, steps_source = _steps(trl, options, prompts, per_step)
    answer_tokens = options.answer_tokens or int(trl.get("max_completion_length") or 256)
    answer_source = (
        "--answer-tokens"
        if options.answer_tokens
        else "max_completion_length: the worst case; typical answers are shorter (--answer-tokens)"
    )
    k = section.k
    store = _Store(config, prompts, k)
    teacher_tokens, teacher_source = store.answer_tokens(options.teacher_tokens)
    shape = Shape(
        method=section.method,
        num_generations=g,
        k=k,
        **_judged_shape(section, g, k),
        prompts_per_step=per_step,
        groups_per_reward_call=per_call,
        num_processes=options.num_processes,
        steps=steps,
        steps_source=steps_source,
        dataset_prompts=len(prompts) if prompts is not None else None,
        groups_planned=0,
        answer_tokens=answer_tokens,
        answer_tokens_source=answer_source,
        teacher_tokens=teacher_tokens,
        teacher_tokens_source=teacher_source,
    )
    plan = Plan(source=config.source, shape=shape, notes=notes)
    if section.needs_teacher_store:
        plan.teacher_build = store.build_plan(teacher_tokens, teacher_source)
    given = _Given(config, options, prompts, store, counter)
    if section.method in RUBRIC_METHODS:
        _judge_plan(plan, given)
    elif section.method in SCALAR_METHODS:
        _scalar_plan(plan, given)
    else:
        plan.notes.append(f"method {section.method}: no judge calls")
    store.close()
    plan.assumptions.extend(_assumptions(plan, options, section.judge_config.max_answer_chars))
    return plan


SCALAR_METHODS = ("tjudge", "ovd")
RUBRIC_METHODS = ("ropd", "rar")  # a Verifier reading a rubric; rar's comes with each row
# RaR without readable data: a dataset rubric of this many criteria (RaR-Science/-Medicine rows
# carry 7 to 20 items)
ASSUMED_DATASET_CRITERIA = 10


def _judged_shape(section: Any, g: int, k: int) -> dict[str, Any]:
    """The Shape fields saying what one judge call reads, per method."""
    if section.method == "tjudge":  # one call per answer, the K references in each
        return {"pool": 1, "rubric_mode": "none", "rubrics_per_group": 0, "criteria": 0}
    if section.method == "ovd":
        together = section.ovd.per_call == "group"
        return {"pool": g if together else 1, "rubric_mode": "none", "rubrics_per_group": 0,
                "criteria": 0, "per_call": section.ovd.per_call}  # fmt: skip
    scorer = section.scorer
    if section.method == "rar":  # one shared rubric a group: the data's (and induced criteria)
        scorer = section.rar
        induced = (scorer.min_criteria + scorer.max_criteria) // 2 if scorer.mix_induced else 0
        return {"pool": g + (k if scorer.teacher_in_pool else 0), "rubric_mode": "shared",
                "rubrics_per_group": 1, "criteria": induced, "induced_criteria": induced}  # fmt: skip
    per_pair = scorer.rubric_mode == "per_pair"
    return {
        "pool": (1 if per_pair else g) + (k if scorer.teacher_in_pool else 0),
        "rubric_mode": scorer.rubric_mode,
        "rubrics_per_group": g if per_pair else 1,
        "criteria": (scorer.min_criteria + scorer.max_criteria) // 2,
    }


# -- TRL sizes -----------------------------------------------------------------------------------


class _TrlValues:
    """The config's TRL fields, with the trainer class's defaults for those it leaves out."""

    def __init__(self, config: TrainConfig) -> None:
        self.values = config.trl
        self.method = config.method
        self.defaults = {
            f.name: f.default
            for f in dataclasses.fields(trl_class(config.method))
            if f.default is not dataclasses.MISSING
        }

    def get(self, name: str) -> Any:
        return self.values.get(name, self.defaults.get(name))

    def prompts_per_step(self, processes: int) -> float:
        """Prompts behind one optimizer step: per-device batch x accumulation x processes / G."""
        batch = int(self.get("per_device_train_batch_size") or 8) * processes
        return batch * int(self.get("gradient_accumulation_steps") or 1) / self._g()

    def prompts_per_reward_call(self, processes: int) -> float:
        """Groups of one generation batch (one reward call), as GRPOConfig sizes it."""
        size = self.get("generation_batch_size")
        if size is None:
            per_generation = self.get("steps_per_generation") or self.get(
                "gradient_accumulation_steps"
            )
            size = int(self.get("per_device_train_batch_size") or 8) * processes
            size *= int(per_generation or 1)
        return int(size) / self._g()

    def _g(self) -> int:
        return self.group_size()

    def group_size(self) -> int:
        """G: answers sampled per prompt (GRPO); 1 for the trainers without groups (SFT trains
        on stored answers, LOPD/ExOPD on one sampled answer a prompt)."""
        if self.method not in (*GRPO_METHODS, *ADVERSARIAL_METHODS):
            return 1
        return int(self.get("num_generations") or 8)


def _steps(
    trl: _TrlValues, options: PlanOptions, prompts: list[TrainPrompt] | None, per_step: float
) -> tuple[int | None, str]:
    if options.steps:
        return options.steps, "--steps"
    max_steps = trl.get("max_steps")
    if isinstance(max_steps, int) and max_steps > 0:
        return max_steps, "max_steps"
    if prompts is None:
        return None, "unknown: the data was not read and max_steps is not set (--steps N)"
    epochs = float(trl.get("num_train_epochs") or 1)
    steps = math.ceil(epochs * len(prompts) / per_step)
    return steps, f"num_train_epochs {epochs:g} x {len(prompts)} prompts / {per_step:g} per step"


# -- the teacher store ---------------------------------------------------------------------------


class _Store:
    """What the teacher store holds for the dataset's prompts (read only, never built)."""

    def __init__(self, config: TrainConfig, prompts: list[TrainPrompt] | None, k: int) -> None:
        self.section = config.ropd
        self.prompts = prompts
        self.k = k
        self.need = max(k, self.section.teacher.num_answers)
        self.path = self.section.teacher.store
        self.store: Any = None
        self.found: dict[str, list[str]] = {}
        self.notes: list[str] = []
        if (
            not self.section.needs_teacher_store
            or self.path is None
            or not Path(self.path).is_file()
        ):
            return
        from ropd.teacher.references import StoreReferences
        from ropd.teacher.store import TeacherStore

        try:
            self.store = TeacherStore(self.path)
        except Exception as error:  # noqa: BLE001 - an unreadable store: planned as empty
            self.notes.append(f"teacher store {self.path}: not readable ({_short(error)})")
            return
        lookup = StoreReferences.from_config(self.store, self.section.teacher, self.need)
        for prompt in prompts or []:
            try:
                self.found[prompt.id] = lookup.lookup(prompt.messages)
            except RopdError:  # another teacher's answers: the run would not use them
                self.found[prompt.id] = []

    def references(self, prompt: TrainPrompt) -> list[str]:
        return self.found.get(prompt.id, [])[: self.k]

    def stored_texts(self) -> list[str]:
        return [text for texts in self.found.values() for text in texts]

    def answer_tokens(self, given: int | None) -> tuple[float, str]:
        """Teacher answer length: given, else the stored answers' mean, else max_tokens."""
        if given:
            return float(given), "--teacher-tokens"
        texts = self.stored_texts()
        if texts:
            reader = (
                self.section.tjudge.judge
                if self.section.method == "tjudge"
                else (
                    self.section.rar if self.section.method == "rar" else self.section.scorer
                ).verifier
            )
            counter = TokenCounter(reader.tokenizer)  # as the judge reading them counts
            mean = sum(counter.text(t) for t in texts) / len(texts)
            return mean, f"mean of {len(texts)} stored answers in {self.path}"
        role = self.section.teacher.role
        return float(role.max_tokens), "teacher role max_tokens (no stored answers: the bound)"

    def build_plan(self, answer_tokens: float, answer_source: str) -> TeacherBuild:
        """The missing answers' tokens and cost (unknown when the data was not read)."""
        role = self.section.teacher.role
        build = TeacherBuild(
            store=str(self.path) if self.path else None,
            store_exists=self.store is not None,
            answers_per_prompt=self.need,
            prompts=None,
            prompts_missing=None,
            answers_missing=None,
            input_tokens=None,
            output_tokens=None,
            answer_tokens=round(answer_tokens),
            answer_tokens_source=answer_source,
            price_set=role.price is not None,
        )
        if self.prompts is None:
            return build
        counter = TokenCounter(role.tokenizer)
        missing = [(p, self.need - len(self.found.get(p.id, []))) for p in self.prompts]
        missing = [(p, n) for p, n in missing if n > 0]
        build.prompts, build.prompts_missing = len(self.prompts), len(missing)
        build.answers_missing = sum(n for _, n in missing)
        # one request per prompt asks for all its missing answers at once (`n`)
        build.input_tokens = float(sum(counter.messages(p.messages) for p, _ in missing))
        build.output_tokens = build.answers_missing * answer_tokens
        if role.price is not None:
            build.cost = role.price.cost(build.input_tokens, build.output_tokens)
        return build

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


# -- the judges ----------------------------------------------------------------------------------


class _Given(NamedTuple):
    """What every method's judge plan is made from."""

    config: TrainConfig
    options: PlanOptions
    prompts: list[TrainPrompt] | None
    store: _Store
    counter: Counter | None


def _judge_plan(plan: Plan, given: _Given) -> None:
    """ROPD, and RaR: the Rubricator (RaR: only with `mix_induced`), the Verifier and the
    sampled checks; two phases of calls (one for RaR without a Rubricator)."""
    config, options, prompts, store, counter = given
    section = config.ropd
    shape = plan.shape
    rar = section.method == "rar"
    scorer_config: ScorerConfig = section.rar if rar else section.scorer
    scorer = RaRScorer(section.rar, client=None) if rar else GroupScorer(scorer_config, client=None)
    induce = not rar or section.rar.mix_induced
    chosen = _groups(plan, options, prompts, store, counter or scorer.verifier.counter)
    rubrics = _DataRubrics(prompts, shape, scorer) if rar else None
    total = [Load(), Load()]
    chunks: list[int] = []
    problems: list[str] = []
    for group_id, messages, refs, students in chosen:
        load = group_load(
            scorer, group_id, messages, refs, students, criteria=shape.criteria, counter=counter,
            rubric=rubrics.of(group_id) if rubrics else None, induce=induce,
        )  # fmt: skip
        total = [total[0] + load.rubricator, total[1] + load.verifier]
        chunks.extend(load.verifier_chunks)
        problems.extend(load.problems)
    if rubrics is not None:
        rubrics.describe(plan)
    _note_problems(plan, store, problems)
    if chunks and max(chunks) < shape.pool:
        per_group = len(chunks) / len(chosen) / shape.rubrics_per_group
        plan.notes.append(
            f"the Verifier pool of {shape.pool} answers is split into {per_group:g} calls per "
            f"rubric to fit its context window (each repeats the task and the rubric)"
        )
    windows = ContextWindows()
    per_group = [load.scaled(1 / len(chosen)) for load in total]
    for role, load in zip((scorer_config.rubricator, scorer_config.verifier), per_group):
        if role is scorer_config.rubricator and not induce:
            continue  # RaR without mix_induced: the rubric is the data's, no Rubricator call
        plan.judge.append(_role_plan(role, load, shape, windows, counter))
    # sampled health checks: one more Verifier pass on their share of groups, each under its
    # own role (the audit judge's prompts counted as the Verifier's: same pool, same rubric)
    checks = [(scorer_config.verifier.with_name(CHECK_ROLE), scorer_config.stability_check_share)]
    if scorer_config.audit is not None:
        checks.append((scorer_config.audit, scorer_config.audit_share))
    for role, share in checks:
        if share > 0:
            plan.judge.append(_role_plan(role, per_group[1].scaled(share), shape, windows, counter))
    if scorer_config.reinduce_on_bad_anchor:
        plan.notes.append(
            "reinduce_on_bad_anchor: each re-induced group costs one more Rubricator and Verifier "
            "call (at most twice the figures above); the share of such groups is not known "
            "before the run (ropd/health/reinduced_rate tells it)"
        )
    # first phase: the Rubricator; second: the Verifier with any sampled checks beside it
    phases = [plan.judge[:1], plan.judge[1:]] if induce else [plan.judge]
    plan.throughput = _throughput(plan, phases, section.limits.model_dump(), options)
    plan.self_hosted = _self_hosted(plan, len(phases), options)


class _DataRubrics:
    """RaR: the rubric the Verifier reads for each sampled group: the row's own (an assumed
    one of `ASSUMED_DATASET_CRITERIA` criteria without data), then with `mix_induced` the
    assumed induced criteria, joined as `reward.rar.union` joins them in the run."""

    def __init__(self, prompts: list[TrainPrompt] | None, shape: Shape, scorer: Any) -> None:
        self.own = {p.id: p.rubric for p in prompts or [] if isinstance(p.rubric, Rubric)}
        counter = scorer.verifier.counter
        self.assumed = placeholder_rubric(ASSUMED_DATASET_CRITERIA, counter, CRITERION_TOKENS)
        self.induced = (
            placeholder_rubric(shape.induced_criteria, counter, CRITERION_TOKENS)
            if shape.induced_criteria
            else None
        )
        self.sizes: list[int] = []  # dataset criteria of each sampled group
        self.shape = shape

    def of(self, group_id: str) -> Rubric:
        data = self.own.get(group_id, self.assumed)
        self.sizes.append(len(data.criteria))
        return union(data, self.induced) if self.induced is not None else data

    def describe(self, plan: Plan) -> None:
        """The shape's rubric sizes: the sampled rows' mean, plus the induced criteria."""
        mean = sum(self.sizes) / len(self.sizes) if self.sizes else float(ASSUMED_DATASET_CRITERIA)
        self.shape.dataset_criteria = mean
        self.shape.criteria = round(mean) + self.shape.induced_criteria
        if not self.own:
            plan.notes.append(
                f"no dataset rubric read: each row's rubric assumed {ASSUMED_DATASET_CRITERIA} "
                f"criteria of about {CRITERION_TOKENS} tokens"
            )


def _scalar_plan(plan: Plan, given: _Given) -> None:
    """T-Judge or OVD: one role, one phase of calls (all a reward call's at once)."""
    config, options, prompts, store, counter = given
    section = config.ropd
    shape = plan.shape
    scorer: ScalarScorer
    if section.method == "tjudge":
        scorer = TJudgeScorer(section.tjudge, client=None)
    else:
        scorer = OVDScorer(section.ovd, client=None)
    role = scorer.config.judge
    chosen = _groups(plan, options, prompts, store, counter or TokenCounter(role.tokenizer))
    windows = ContextWindows()
    total = Load()
    problems: list[str] = []
    for group_id, messages, refs, students in chosen:
        load = scalar_load(
            scorer, group_id, messages, refs, students, counter=counter, windows=windows
        )
        total += load.judge
        problems.extend(load.problems)
    _note_problems(plan, store, problems)
    per_group = total.scaled(1 / len(chosen))
    plan.judge.append(_role_plan(role, per_group, shape, windows, counter))
    plan.throughput = _throughput(plan, [plan.judge], section.limits.model_dump(), options)
    plan.self_hosted = _self_hosted(plan, 1, options)


def _self_hosted(plan: Plan, phases: int, options: PlanOptions) -> SelfHosted:
    """GPUs to read and write one reward call's judge tokens within its judge latencies."""
    groups = plan.shape.groups_per_reward_call
    tokens_in = sum(r.per_group.input_tokens for r in plan.judge) * groups
    tokens_out = sum(r.per_group.output_expected for r in plan.judge) * groups
    gpu_seconds = tokens_in / options.prefill_tps + tokens_out / options.decode_tps
    return SelfHosted(
        prefill_tps=options.prefill_tps,
        decode_tps=options.decode_tps,
        gpu_seconds=gpu_seconds,
        gpus=max(1, math.ceil(gpu_seconds / (phases * options.latency_s))),
    )


def _groups(
    plan: Plan,
    options: PlanOptions,
    prompts: list[TrainPrompt] | None,
    store: _Store,
    counter: Counter,
) -> list[tuple[str, Any, list[str], list[str]]]:
    """The sampled groups as (id, prompt messages, teacher answers, student answers): the
    store's answers where it has them, placeholders of the planned lengths otherwise."""
    shape = plan.shape
    teacher_text = (
        text_of_tokens(round(shape.teacher_tokens), counter, "teacher") if shape.k else ""
    )
    out = []
    for n, prompt in enumerate(_sample(prompts, options.sample)):
        students = [
            text_of_tokens(shape.answer_tokens, counter, f"student {i}")
            for i in range(shape.num_generations)
        ]
        refs = store.references(prompt) if prompt is not None else []
        refs += [f"{teacher_text} {j}" for j in range(len(refs), shape.k)]
        if prompt is None:
            out.append((f"group-{n}", _assumed_prompt(counter), refs, students))
        else:
            out.append((prompt.id, prompt.messages, refs, students))
    shape.groups_planned = len(out)
    return out


def _note_problems(plan: Plan, store: _Store, problems: list[str]) -> None:
    plan.notes.extend(store.notes)
    for problem in dict.fromkeys(problems):
        plan.notes.append(f"would fail: {problem}")


def _sample(prompts: list[TrainPrompt] | None, size: int) -> list[TrainPrompt | None]:
    """Up to `size` prompts spread evenly over the dataset (one assumed prompt without data)."""
    if not prompts:
        return [None]
    if len(prompts) <= size:
        return list(prompts)
    return [prompts[i * len(prompts) // size] for i in range(size)]


def _assumed_prompt(counter: Counter) -> list[dict[str, str]]:
    return [{"role": "user", "content": text_of_tokens(ASSUMED_PROMPT_TOKENS, counter, "task")}]


def _role_plan(
    role: RoleConfig, per_group: Load, shape: Shape, windows: ContextWindows, counter: Any
) -> RolePlan:
    if counter is not None:
        counting = "the caller's counter"
    elif role.tokenizer:
        counting = f"tokenizer {role.tokenizer}"
    else:
        counting = f"estimate ({ESTIMATE_CHARS_PER_TOKEN} characters a token)"
    counter_for(role)  # a tokenizer that cannot load fails here, as it would in the run
    per_step = per_group.scaled(shape.prompts_per_step)
    per_run = per_step.scaled(shape.steps) if shape.steps is not None else None

    def cost(load: Load | None) -> Cost | None:
        if role.price is None or load is None:
            return None
        return Cost(
            expected=role.price.cost(load.input_tokens, load.output_expected),
            bound=role.price.cost(load.input_tokens, load.output_bound),
        )

    return RolePlan(
        role=role.name,
        model=role.model,
        counting=counting,
        window=windows.window(role).tokens,
        max_tokens=role.max_tokens,
        price_set=role.price is not None,
        per_group=per_group,
        per_step=per_step,
        per_run=per_run,
        cost_per_group=cost(per_group),
        cost_per_step=cost(per_step),
        cost_per_run=cost(per_run),
    )


def _throughput(
    plan: Plan, phases: list[list[RolePlan]], limits: dict[str, Any], options: PlanOptions
) -> Throughput:
    """Rates needed for one reward call's groups to be judged within one judge latency per
    phase (each phase's calls all at once, the next phase waiting for the last)."""
    groups = plan.shape.groups_per_reward_call
    window_s = len(phases) * options.latency_s
    requests = sum(r.per_group.calls for r in plan.judge) * groups
    tokens = sum(r.per_group.tokens_expected for r in plan.judge) * groups
    in_flight = max(sum(r.per_group.calls for r in phase) for phase in phases) * groups
    rpm, tpm = limits.get("requests_per_minute"), limits.get("tokens_per_minute")
    max_in_flight = int(limits["max_in_flight"])
    waits = {"the judge latencies": window_s}
    if in_flight > max_in_flight:
        waits["max_in_flight"] = window_s * math.ceil(in_flight / max_in_flight)
    if rpm:
        waits["requests_per_minute"] = requests / rpm * 60
    if tpm:
        waits["tokens_per_minute"] = tokens / tpm * 60
    slowest = max(waits.values())
    return Throughput(
        groups=round(groups),
        latency_s=options.latency_s,
        phases=len(phases),
        window_s=window_s,
        requests=requests,
        tokens=tokens,
        requests_per_minute=requests / window_s * 60,
        tokens_per_minute=tokens / window_s * 60,
        in_flight=in_flight,
        limit_requests_per_minute=rpm,
        limit_tokens_per_minute=tpm,
        limit_max_in_flight=max_in_flight,
        judge_seconds_at_limits=slowest,
        limited_by=[name for name, s in waits.items() if s > window_s and s == slowest],
    )


def _assumptions(plan: Plan, options: PlanOptions, max_chars: int) -> list[str]:
    shape = plan.shape
    out = [
        (
            f"student answers of {shape.answer_tokens} tokens each ({shape.answer_tokens_source}), "
            "all different (no duplicate judged once)"
        ),
        (
            f"{options.num_processes} training process(es) (--processes): "
            f"{shape.prompts_per_step:g} prompts per optimizer step, "
            f"{shape.groups_per_reward_call:g} groups per reward call"
        ),
    ]
    if shape.k:
        out.insert(1, f"teacher answers of {shape.teacher_tokens:.0f} tokens "
                      f"({shape.teacher_tokens_source})")  # fmt: skip
    if not plan.judge:
        return out
    out.append(
        f"answers over max_answer_chars ({max_chars} characters) are clipped in the middle "
        "before judging, as the scorer does"
    )
    common = [
        (
            "structured output accepted by the endpoint (otherwise the JSON schema is added to "
            "each prompt); no re-asks of malformed replies, no context-length errors"
        ),
        (
            f"self-hosted judge: {options.prefill_tps:g} prefill and {options.decode_tps:g} "
            "decode tokens/s per GPU (--judge-prefill-tps, --judge-decode-tps)"
        ),
    ]
    if shape.method in SCALAR_METHODS:
        expected = (
            f"expected output: T-Judge writes its reasoning, then the score: ~"
            f"{TJUDGE_OUTPUT_TOKENS} tokens a call"
            if shape.method == "tjudge"
            else f"expected output: ~{OVD_TOKENS_PER_SCORE} tokens per score"
        )
        return [
            *out,
            (
                f"{expected} (a judge that reasons at length writes more, up to the bound: "
                "max_tokens per call)"
            ),
            common[0],
            (
                f"judge latency {options.latency_s:g} s per call (--latency-s); a reward call's "
                "calls are all sent at once, so its judge work is one judge latency"
            ),
            common[1],
        ]
    rubric = (
        f"rubrics of {shape.criteria} criteria (the middle of min/max_criteria), each about "
        f"{CRITERION_TOKENS} tokens as the Verifier reads it"
    )
    written = f"a rubric ~{RUBRIC_TOKENS_PER_CRITERION} tokens a criterion; "
    order = "Rubricator then Verifier"
    if shape.method == "rar":
        size = f"{shape.dataset_criteria:.3g}" if shape.dataset_criteria is not None else "?"
        rubric = f"each sampled row's own rubric (~{size} criteria), as the Verifier reads it"
        if shape.induced_criteria:
            rubric += (
                f", plus {shape.induced_criteria} induced criteria (the middle of "
                f"min/max_criteria) of about {CRITERION_TOKENS} tokens each"
            )
        else:
            written, order = "", "one Verifier phase (no Rubricator)"
    return [
        *out,
        rubric,
        (
            f"expected output: {written}verdicts ~{VERDICT_TOKENS_PER_CHECK} tokens per answer "
            "and criterion (a judge that reasons before answering writes more, up to the bound: "
            "max_tokens per call)"
        ),
        common[0],
        (
            f"judge latency {options.latency_s:g} s per call (--latency-s); a reward call's "
            f"groups all run at once, {order}"
        ),
        common[1],
    ]


def _short(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:200] + ("..." if len(text) > 200 else "")
