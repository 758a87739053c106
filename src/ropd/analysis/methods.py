"""The reward methods `ropd analyze` compares, and how each scores a pool's groups.

A method is written `ropd`, `ropd:<switch>+<switch>...`, `tjudge[:num_references=N]`,
`ovd[:per_call=group+reject_below=N]` (on-policy verbal distillation: the teacher's 0-9 score
of each answer, verbal only: a pool carries correctness labels, not gold answers) or
`teacher_logprob`, or `rar[:mix_induced=true+k=N]` (each pool line's own `rubric`, verified by
the same Verifier; see `reward/rar.py`), or `gad:checkpoint=<folder>` (the score of a GAD
discriminator saved by `ropd train --method gad`, `<run>/final/discriminator`; no judge). A ropd switch is `field=value` for any ablation field of `ScorerConfig`
(`ablation_settings()`), or a named shortcut (`k=1`, `revealed`, `no_teacher_pool`,
`per_pair`, ...). Unknown switches are a `ConfigError` naming them and listing the valid ones,
found before any judge call.

Every method yields one `Outcome` per group: rewards aligned with the responses, the group's
error, its judge usage and (ropd) the criteria passed per metric category, by correctness.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ValidationError

from ropd.analysis.pool import PoolItem
from ropd.analysis.templates import ChatTemplate
from ropd.errors import ConfigError, JudgeError, JudgeUnavailable
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.llm.types import ChatClient, UsageBook
from ropd.reward.config import OVDConfig, RaRConfig, ScorerConfig
from ropd.reward.group_scorer import GroupScorer
from ropd.reward.metrics import OTHER_CATEGORY, metric_category
from ropd.reward.ovd import OVDScorer
from ropd.reward.rar import RaRScorer
from ropd.reward.tjudge import TJudgeConfig, TJudgeScorer
from ropd.reward.types import GroupResult

C = TypeVar("C", bound=BaseModel)  # a method's judge settings
Kind = Literal["ropd", "tjudge", "ovd", "rar", "teacher_logprob", "gad"]
KINDS: tuple[str, ...] = ("ropd", "tjudge", "ovd", "rar", "teacher_logprob", "gad")
NO_JUDGE_KINDS = ("teacher_logprob", "gad")  # scored without the judge endpoint
# The `field=value` switches of the single-judge methods (and of rar).
JUDGE_SWITCHES = {
    "tjudge": ["num_references"],
    "ovd": ["per_call", "reject_below"],
    "rar": ["mix_induced", "num_teacher_refs", "blind", "teacher_in_pool"],
    "gad": ["checkpoint"],
}

# Named ropd switches: the paper's ablations by the names people say them.
SHORTCUTS: dict[str, dict[str, Any]] = {
    "revealed": {"blind": False},
    "blind": {"blind": True},
    "no_teacher_pool": {"teacher_in_pool": False},
    "teacher_pool": {"teacher_in_pool": True},
    "per_pair": {"rubric_mode": "per_pair"},
    "shared": {"rubric_mode": "shared"},
    "no_refs": {"num_teacher_refs": 0},
}
ALIASES = {
    "ropd": {"k": "num_teacher_refs"},
    "tjudge": {"refs": "num_references"},
    "rar": {"k": "num_teacher_refs"},
}
_NONE_WORDS = ("none", "all", "null")


def ropd_fields() -> list[str]:
    """The `field=value` switches of ropd: ablation fields that are `ScorerConfig` fields."""
    return [f for f in ScorerConfig().ablation_settings() if f in ScorerConfig.model_fields]


@dataclass(frozen=True)
class Method:
    """One method as written on the command line, with its config overrides."""

    name: str
    kind: Kind
    overrides: dict[str, Any] = field(default_factory=dict)


def parse_methods(text: str | Sequence[str]) -> list[Method]:
    """`ropd,ropd:k=1,tjudge` (or a list of such names) -> methods, in order, no repeats."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    names = [p.strip() for p in parts if p.strip()]
    if not names:
        raise ConfigError(f"--methods: no method given (choose from {', '.join(KINDS)})")
    methods = [parse_method(name) for name in names]
    seen: set[str] = set()
    for method in methods:
        if method.name in seen:
            raise ConfigError(f"--methods: {method.name} is given twice")
        seen.add(method.name)
    return methods


def parse_method(name: str) -> Method:
    """One method name; ConfigError naming an unknown method or switch and the valid ones."""
    kind, _, rest = name.partition(":")
    if kind not in KINDS:
        raise ConfigError(f"unknown method {kind!r} in {name!r}; valid: {', '.join(KINDS)}")
    switches = [s.strip() for s in rest.split("+")] if rest else []
    if kind == "teacher_logprob" and switches:
        raise ConfigError(f"method {name!r}: teacher_logprob takes no switches")
    valid = ropd_fields() if kind == "ropd" else JUDGE_SWITCHES.get(kind, [])
    aliases = ALIASES.get(kind, {})
    overrides: dict[str, Any] = {}
    for switch in switches:
        key, equals, value = switch.partition("=")
        key = aliases.get(key.strip(), key.strip())
        if not equals and kind == "ropd" and key in SHORTCUTS:
            overrides.update(SHORTCUTS[key])
        elif equals and key in valid:
            value = value.strip()
            overrides[key] = None if value.lower() in _NONE_WORDS else value
        else:
            named = sorted(SHORTCUTS) if kind == "ropd" else []
            forms = [f"{f}=<value>" for f in valid] + [f"{a}=<value>" for a in aliases] + named
            raise ConfigError(
                f"method {name!r}: unknown switch {switch!r}; valid for {kind}: {', '.join(forms)}"
            )
    if kind == "gad" and not overrides.get("checkpoint"):
        raise ConfigError(
            f"method {name!r}: gad needs its discriminator: gad:checkpoint=<folder> (saved by "
            "ropd train --method gad as <run>/final/discriminator or checkpoint-N/discriminator)"
        )
    return Method(name=name, kind=kind, overrides=overrides)  # type: ignore[arg-type]


def gad_checkpoint(method: Method) -> str:
    """The discriminator folder of a gad method; a folder without a saved one is refused now,
    before any group is scored."""
    from pathlib import Path

    folder = str(method.overrides["checkpoint"])
    if not (Path(folder) / "gad_state.json").is_file():
        raise ConfigError(
            f"method {method.name!r}: {folder} holds no saved GAD discriminator (gad_state.json)"
        )
    return folder


def ropd_config(method: Method, judge: RoleConfig, **settings: Any) -> ScorerConfig:
    """The scorer config of a ropd method: the judge, shared settings, then its switches."""
    return _validated(ScorerConfig, method, judge, settings)


def tjudge_config(method: Method, judge: RoleConfig, **settings: Any) -> TJudgeConfig:
    """The T-Judge config of a tjudge method."""
    return _validated(TJudgeConfig, method, judge.with_name("tjudge"), settings)


def ovd_config(method: Method, judge: RoleConfig, **settings: Any) -> OVDConfig:
    """The OVD config of an ovd method (the judge in the teacher's place)."""
    return _validated(OVDConfig, method, judge.with_name("ovd"), settings)


def rar_config(method: Method, judge: RoleConfig, **settings: Any) -> RaRConfig:
    """The RaR config of a rar method: the judge as Verifier (and Rubricator, when mixed)."""
    return _validated(RaRConfig, method, judge, settings)


def _validated(model: type[C], method: Method, judge: RoleConfig, settings: dict[str, Any]) -> C:
    """`model` from the judge, the shared settings, then the method's switches; a bad value is
    a ConfigError naming the method."""
    try:
        return model.model_validate({"judge": judge, **settings, **method.overrides})
    except ValidationError as exc:
        raise ConfigError(f"method {method.name!r}: {_first_problem(exc)}") from None


def _first_problem(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ()))
    shown = f" (got {err['input']!r})" if "input" in err else ""
    return f"{where}: {err['msg'].removeprefix('Value error, ')}{shown}".lstrip(": ")


# -- outcomes ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One method's result for one group (one line of the analysis' `groups.jsonl`).

    `categories[category][truth] = [passed, total]` criteria verdicts of student responses,
    `truth` being "correct" or "incorrect" (ropd only).
    """

    method: str
    id: str
    rewards: list[float | None]
    correct: list[bool]
    error: str | None = None
    usage: dict[str, dict[str, float]] = field(default_factory=dict)
    categories: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The resume key: method names hold no space, so `method id` is unambiguous."""
        return f"{self.method} {self.id}"

    def row(self) -> dict[str, Any]:
        return {
            "id": self.key,
            "method": self.method,
            "group_id": self.id,
            "rewards": self.rewards,
            "correct": self.correct,
            "error": self.error,
            "usage": self.usage,
            "categories": self.categories,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Outcome:
        return cls(
            method=row["method"],
            id=row["group_id"],
            rewards=row["rewards"],
            correct=row["correct"],
            error=row.get("error"),
            usage=row.get("usage") or {},
            categories=row.get("categories") or {},
        )


def outcome_of(method: str, result: GroupResult, correct: Sequence[bool]) -> Outcome:
    """A scorer's result as an outcome, with its criteria verdicts counted by category."""
    categories: dict[str, dict[str, list[int]]] = {}
    for answer in result.verdicts:
        if answer.source != "student" or answer.rubric_index >= len(result.rubrics):
            continue
        named = {c.id: c.category for c in result.rubrics[answer.rubric_index].criteria}
        truth = "correct" if correct[answer.index] else "incorrect"
        for cid, ok in answer.verdicts.items():
            category = metric_category(named.get(cid, OTHER_CATEGORY))
            counts = categories.setdefault(category, {}).setdefault(truth, [0, 0])
            counts[0] += bool(ok)
            counts[1] += 1
    return Outcome(
        method=method,
        id=result.id,
        rewards=list(result.rewards),
        correct=list(correct),
        error=result.error,
        usage=result.usage,
        categories=categories,
    )


# -- scoring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Judges:
    """What the methods score with: the (resolved) judge and teacher roles and their clients."""

    judge: RoleConfig
    client: ChatClient | None
    limits: LimitsConfig | None
    teacher: RoleConfig | None = None
    logprobs: Any | None = None  # anything with `continuation_logprobs(prefix, text)`
    template: ChatTemplate | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # JudgeSettings for every scorer


async def score_method(
    method: Method,
    items: Sequence[PoolItem],
    judges: Judges,
    *,
    traces: Any,
    window: int,
) -> AsyncIterator[Outcome]:
    """Score `items` with `method`, yielding outcomes as groups finish; traces in `traces`."""
    truth = {item.group.id: item.correct for item in items}
    if method.kind == "teacher_logprob":
        async for outcome in _teacher_logprob(method, items, judges, traces, window):
            yield outcome
        return
    if method.kind == "gad":
        async for outcome in _gad(method, items, traces):
            yield outcome
        return
    scorer_class: Any
    if method.kind == "ropd":
        scorer_class = GroupScorer
        config: Any = ropd_config(method, judges.judge, **judges.settings)
    elif method.kind == "rar":
        scorer_class = RaRScorer
        config = rar_config(method, judges.judge, **judges.settings)
    elif method.kind == "ovd":
        scorer_class = OVDScorer
        config = ovd_config(method, judges.judge, **judges.settings)
    else:
        scorer_class = TJudgeScorer
        config = tjudge_config(method, judges.judge, **judges.settings)
    async with _open_scorer(scorer_class, config, judges, traces) as scorer:
        async for result in scorer.stream([item.group for item in items], window=window):
            yield outcome_of(method.name, result, truth[result.id])


@asynccontextmanager
async def _open_scorer(
    scorer_class: Any, config: Any, judges: Judges, traces: Any
) -> AsyncIterator[Any]:
    """The scorer on the judges' client and the analysis trace store."""
    async with scorer_class.open(
        config,
        limits=judges.limits,
        traces=traces,
        client=judges.client,
        run_id=traces.run_id,
        probe=False,
    ) as scorer:
        yield scorer


async def _teacher_logprob(
    method: Method, items: Sequence[PoolItem], judges: Judges, traces: Any, window: int
) -> AsyncIterator[Outcome]:
    """Mean teacher log-probability of each response under the chat template."""
    if judges.logprobs is None or judges.template is None or judges.teacher is None:
        raise ConfigError("teacher_logprob needs a teacher endpoint with prompt log-probabilities")
    client, template, teacher = judges.logprobs, judges.template, judges.teacher
    settings = {
        "scorer": "teacher_logprob",
        "teacher_model": teacher.model,
        "chat_template": template.name,
    }

    async def one(item: PoolItem) -> Outcome:
        prefix = template.prefix(item.group.prompt)
        book = UsageBook()
        outcomes = await asyncio.gather(
            *(_mean_logprob(client, prefix, text, book) for text in item.group.student_responses),
            return_exceptions=True,
        )
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        for error in errors:
            if isinstance(error, JudgeUnavailable) or not isinstance(error, JudgeError):
                raise error
        rewards = [None if isinstance(o, BaseException) else o for o in outcomes]
        error = f"{len(errors)}/{len(outcomes)} responses unscored: {errors[0]}" if errors else None
        usage = book.as_dict()
        result = GroupResult(
            id=item.group.id, rewards=rewards, usage=usage, error=error, settings=settings
        )
        traces.record(item.group, result.scrubbed(), run_id=traces.run_id)
        return Outcome(method.name, item.group.id, rewards, list(item.correct), error, usage)

    async for outcome in _windowed(items, one, window):
        yield outcome


async def _gad(method: Method, items: Sequence[PoolItem], traces: Any) -> AsyncIterator[Outcome]:
    """Each response's score by a saved GAD discriminator (its reward when training), the prompt
    read as one user turn when it is a plain string, as training prompts are conversations."""
    from ropd.integrations.trl.gad import Discriminator

    folder = gad_checkpoint(method)
    discriminator = await asyncio.to_thread(Discriminator.load, folder)
    settings = {"scorer": "gad", "discriminator": folder}
    for item in items:
        prompt = item.group.prompt
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        texts = [discriminator.text(messages, r) for r in item.group.student_responses]
        scores = await asyncio.to_thread(discriminator.score, texts)
        rewards: list[float | None] = [float(x) for x in scores]
        result = GroupResult(id=item.group.id, rewards=rewards, settings=settings)
        traces.record(item.group, result.scrubbed(), run_id=traces.run_id)
        yield Outcome(method.name, item.group.id, rewards, list(item.correct))


async def _mean_logprob(client: Any, prefix: str, text: str, book: UsageBook) -> float | None:
    """None for an empty response: it has no tokens to average."""
    if not text:
        return None
    values = await client.continuation_logprobs(prefix, text, book)
    return sum(values) / len(values) if values else None


async def _windowed(
    items: Sequence[PoolItem], work: Callable[[PoolItem], Any], window: int
) -> AsyncIterator[Outcome]:
    """Run `work` over items, at most `window` at once, yielding results as they finish."""
    queue = iter(items)
    pending: set[asyncio.Task[Outcome]] = set()
    done: list[asyncio.Task[Outcome]] = []
    try:
        while True:
            while len(pending) < window and (item := next(queue, None)) is not None:
                pending.add(asyncio.create_task(work(item)))
            if not pending:
                return
            finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            done = list(finished)
            while done:
                yield done.pop().result()
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:  # finished beside the one that raised: retrieve, never log them
            if not task.cancelled():
                task.exception()
