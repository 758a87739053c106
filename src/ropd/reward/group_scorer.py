"""The ROPD group scorer: sequences rubric induction, blind verification and the reward formula.

One group = one prompt, its G student answers and its K teacher answers. Per group the scorer
makes one Rubricator call (one per student answer in the per-pair ablation) and one Verifier
call per chunk of the answer pool; identical student answers are judged once. All groups of a
batch run concurrently; the client's limits decide how many requests are really in flight.
Rewards come only from `rubric.weighted_score` over the validated booleans. Judge prompts are
fitted to the judges' context windows (one `ContextWindows` per scorer, so what one group learns
from a context-length error serves the others); how is recorded in `settings["context"]`.
On a sampled share of groups the pool is verified once more beside the first pass
(`reward/health_checks.py`); that pass only fills `GroupResult.checks`, never a reward.

With `reinduce_on_bad_anchor`, a shared rubric that fails every teacher answer, or gives every
student answer the same reward, is asked for once more (the Rubricator told why) and the pool
verified again; the second rubric gives the rewards whatever it does, so a group costs at most
one extra Rubricator and Verifier call (made under those roles). Recorded as
`checks["reinduced"]` and `settings["reinduced"]` (the reason; null when it was not needed).
"""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import Any

from ropd.llm.config import RoleConfig
from ropd.llm.tokens import ContextWindows
from ropd.llm.types import UsageBook
from ropd.reward import render
from ropd.reward.base import BaseScorer, GroupInputError, GroupLike
from ropd.reward.config import ScorerConfig
from ropd.reward.health_checks import SampledChecks, add_into
from ropd.reward.induction import RubricInducer
from ropd.reward.types import AnswerVerdicts, ContextRecord, Group, GroupResult, Source
from ropd.reward.verification import BlindVerifier, PoolEntry, Verdict
from ropd.rubric import Rubric, weighted_score

# (source, index) -> (index of the rubric that judged it, its verdict)
Judged = dict[tuple[str, int], tuple[int, Verdict]]

# The context record of the group being scored in this task: `settings` reads it, also for a
# group that failed half-way (its result is built by `BaseScorer` from `settings`).
_CONTEXT: ContextVar[ContextRecord | None] = ContextVar("ropd_context_record", default=None)
# The training step of the group being scored (`score_group(step=...)`), for the checks' sample.
_STEP: ContextVar[int | None] = ContextVar("ropd_scoring_step", default=None)
# Why the group being scored got a second rubric (keys of `induction.REASONS`, "+"-joined).
_REINDUCED: ContextVar[str | None] = ContextVar("ropd_reinduced", default=None)


class GroupScorer(BaseScorer[ScorerConfig]):
    """Scores whole groups the ROPD way; see `ScorerConfig` for every switch.

    Usually obtained with `async with GroupScorer.open(config) as scorer:`, which owns the judge
    connection; construct it directly to score through a `ChatClient` you already hold.
    """

    kind = "score"

    def __init__(
        self,
        config: ScorerConfig,
        client: Any,
        traces: Any | None = None,
        *,
        run_id: str | None = None,
    ):
        super().__init__(config, client, traces, run_id=run_id)
        self.windows = ContextWindows()
        self.inducer = RubricInducer(
            config.rubricator,
            min_criteria=config.min_criteria,
            max_criteria=config.max_criteria,
            parse_retries=config.parse_retries,
            prompts_dir=config.prompts_dir,
            windows=self.windows,
        )
        self.verifier = BlindVerifier(
            config.verifier,
            blind=config.blind,
            seed=config.seed,
            max_answers_per_call=config.max_answers_per_verifier_call,
            parse_retries=config.parse_retries,
            prompts_dir=config.prompts_dir,
            windows=self.windows,
        )
        self.checks = SampledChecks(config, self.verifier)

    @classmethod
    def roles_of(cls, config: ScorerConfig) -> list[RoleConfig]:
        return config.roles()

    @classmethod
    def config_with_roles(cls, config: ScorerConfig, roles: list[RoleConfig]) -> ScorerConfig:
        return config.with_roles(roles)

    @property
    def template_versions(self) -> dict[str, str]:
        templates = (
            self.inducer.system,
            self.inducer.user,
            self.verifier.system,
            self.verifier.user,
        )
        if self.config.reinduce_on_bad_anchor:
            templates += (self.inducer.retry,)
        return {t.name: t.version for t in templates}

    def settings(self, group: Group) -> dict[str, Any]:
        record = _CONTEXT.get()
        context = {"context": record.as_dict()} if record is not None else {}
        # present whenever the option is on: null says the first rubric was kept
        reinduced = {"reinduced": _REINDUCED.get()} if self.config.reinduce_on_bad_anchor else {}
        used = len(self._used_references(group))
        k = self.config.num_teacher_refs
        return {
            **self.config.ablation_settings(),
            "teacher_refs_used": used,
            # fewer teacher answers than K: the rubric rests on fewer anchors than configured
            "teacher_refs_short": k is not None and used < k,
            "templates": self.template_versions,
            **context,
            **reinduced,
        }

    # -- the method -------------------------------------------------------------------------

    def _used_references(self, group: Group) -> list[str]:
        """The first K teacher answers (all of them when K is None), as given."""
        k = self.config.num_teacher_refs
        return group.teacher_responses if k is None else group.teacher_responses[:k]

    def _references(self, group: Group) -> list[str]:
        return [self.clean(t) for t in self._used_references(group)]

    async def score_group(self, group: GroupLike, *, step: int | None = None) -> GroupResult:
        step_token = _STEP.set(step)  # `_score` has no step argument; the checks' sample needs it
        # nothing of this group outlives it in the caller's context (a `reject` after it)
        reason_token, context_token = _REINDUCED.set(None), _CONTEXT.set(None)
        try:
            return await super().score_group(group, step=step)
        finally:
            _CONTEXT.reset(context_token)
            _REINDUCED.reset(reason_token)
            _STEP.reset(step_token)

    async def _score(self, group: Group, book: UsageBook) -> GroupResult:
        cfg = self.config
        record = ContextRecord()
        _CONTEXT.set(record)
        _REINDUCED.set(None)
        students = [self.clean(t) for t in group.student_responses]
        references = self._references(group)
        if cfg.num_teacher_refs != 0 and not references:
            raise GroupInputError(
                "the group has no teacher answers (give teacher_responses or a teacher store)"
            )
        if cfg.min_teacher_refs is not None and len(references) < cfg.min_teacher_refs:
            raise GroupInputError(
                f"the group has {len(references)} teacher answers; min_teacher_refs is "
                f"{cfg.min_teacher_refs}"
            )
        prompt_text = render.render_prompt(group.prompt)

        first_of: list[int] = []  # student index -> index of the first identical student answer
        seen: dict[str, int] = {}
        for i, text in enumerate(students):
            first_of.append(seen.setdefault(text, i) if cfg.dedupe else i)
        distinct = [i for i, first in enumerate(first_of) if first == i]
        # sampled health checks; they change no reward
        checks = self.checks.kinds(group.id, _STEP.get())

        if cfg.rubric_mode == "shared":
            pool = self._pool(students, distinct, references)
            rubric, verdicts, sums = await self._induce_and_verify(
                group, prompt_text, references, [students[i] for i in distinct], pool, book,
                record, checks,
            )  # fmt: skip
            reasons = self._bad_anchor(rubric, pool, verdicts) if cfg.reinduce_on_bad_anchor else ()
            if reasons:
                _REINDUCED.set("+".join(reasons))
                record = ContextRecord()  # settings["context"]: the pass that gives the rewards
                _CONTEXT.set(record)
                rubric, verdicts, sums = await self._induce_and_verify(
                    group, prompt_text, references, [students[i] for i in distinct], pool, book,
                    record, checks, reasons,
                )  # fmt: skip
                sums = {**sums, "reinduced": 1.0}
            rubrics = [rubric]
            judged: Judged = {(e.source, e.index): (0, verdicts[k]) for k, e in enumerate(pool)}
        else:
            rubrics, judged, sums = await self._score_per_pair(
                prompt_text, references, students, distinct, book, group.id, record, checks
            )
        notes = {
            ("student", i): self.empty_note(group.student_responses[i], students[i])
            for i in range(len(students))
        }
        notes.update(
            {
                ("teacher", j): self.empty_note(t, references[j])
                for j, t in enumerate(self._used_references(group))
            }
        )
        result = self._result(group, rubrics, judged, first_of, len(references), book, notes)
        return result.model_copy(update={"checks": sums}) if sums else result

    async def _induce_and_verify(
        self,
        group: Group,
        prompt_text: str,
        references: list[str],
        students: list[str],
        pool: list[PoolEntry],
        book: UsageBook,
        record: ContextRecord,
        checks: tuple[str, ...],
        reasons: tuple[str, ...] = (),
    ) -> tuple[Rubric, list[Verdict], dict[str, float]]:
        """One rubric for the group and the pool's verdicts (sampled checks beside them)."""
        rubric = await self._rubric(group, prompt_text, references, students, book, record, reasons)
        verdicts, sums = await self.checks.verify(
            self.verifier, self.client, prompt_text, rubric, pool, book, group.id, record, checks
        )
        return rubric, verdicts, sums

    async def _rubric(
        self,
        group: Group,
        prompt_text: str,
        references: list[str],
        students: list[str],
        book: UsageBook,
        record: ContextRecord,
        reasons: tuple[str, ...],
    ) -> Rubric:
        """The rubric the pool is verified against: the Rubricator's (RaR's comes with the group)."""
        return await self.inducer.induce(
            self.client, prompt_text, references, students, book, record, reasons
        )

    def _bad_anchor(
        self, rubric: Rubric, pool: list[PoolEntry], verdicts: list[Verdict]
    ) -> tuple[str, ...]:
        """Why this rubric cannot be trusted (keys of `induction.REASONS`), or nothing.

        `teacher_fail`: the best teacher answer in the pool scores below
        `reinduce_teacher_below`. `no_spread`: at least two different student answers, all
        with the same score (dedupe off, copies of one text do not count as different).
        """
        scores: dict[str, list[float]] = {"student": [], "teacher": []}
        texts: set[str] = set()
        for entry, (_, verdict) in zip(pool, verdicts, strict=True):
            points = [verdict[c.id] for c in rubric.criteria]
            scores[entry.source].append(weighted_score(rubric.points, points))
            if entry.source == "student":
                texts.add(entry.text)
        reasons: list[str] = []
        teachers = scores["teacher"]
        if teachers and max(teachers) < self.config.reinduce_teacher_below:
            reasons.append("teacher_fail")
        students = scores["student"]
        if len(texts) >= 2 and max(students) == min(students):
            reasons.append("no_spread")
        return tuple(reasons)

    def _pool(
        self, students: list[str], chosen: list[int], references: list[str]
    ) -> list[PoolEntry]:
        pool = [PoolEntry("student", i, students[i]) for i in chosen]
        if self.config.teacher_in_pool:
            pool += [PoolEntry("teacher", j, t) for j, t in enumerate(references)]
        return pool

    async def _score_per_pair(
        self,
        prompt_text: str,
        references: list[str],
        students: list[str],
        distinct: list[int],
        book: UsageBook,
        group_id: str,
        record: ContextRecord,
        checks: tuple[str, ...],
    ) -> tuple[list[Rubric], Judged, dict[str, float]]:
        """Ablation: one rubric per student answer, induced from the references and that answer
        alone, so no rubric sees the rest of the group. A sampled check covers every rubric."""

        async def one(
            rubric_index: int, i: int
        ) -> tuple[Rubric, list[PoolEntry], list[Verdict], dict[str, float]]:
            rubric = await self.inducer.induce(
                self.client, prompt_text, references, [students[i]], book, record
            )
            pool = self._pool(students, [i], references)
            key = f"{group_id}:{rubric_index}"
            verdicts, sums = await self.checks.verify(
                self.verifier, self.client, prompt_text, rubric, pool, book, key, record, checks
            )
            return rubric, pool, verdicts, sums

        done = await asyncio.gather(*(one(r, i) for r, i in enumerate(distinct)))
        rubrics: list[Rubric] = []
        judged: Judged = {}
        sums: dict[str, float] = {}
        for rubric_index, (rubric, pool, verdicts, part) in enumerate(done):
            rubrics.append(rubric)
            add_into(sums, part)
            for entry, verdict in zip(pool, verdicts):
                # A teacher answer is verified once per rubric; its score uses the first rubric.
                judged.setdefault((entry.source, entry.index), (rubric_index, verdict))
        return rubrics, judged, sums

    def _result(
        self,
        group: Group,
        rubrics: list[Rubric],
        judged: Judged,
        first_of: list[int],
        num_references: int,
        book: UsageBook,
        notes: dict[tuple[str, int], str | None],
    ) -> GroupResult:
        def scored(source: Source, index: int, key: tuple[str, int], duplicate_of: int | None):
            rubric_index, (label, verdict) = judged[key]
            rubric = rubrics[rubric_index]
            score = weighted_score(rubric.points, [verdict[c.id] for c in rubric.criteria])
            answer = AnswerVerdicts(
                source=source,
                index=index,
                verdicts=verdict,
                score=score,
                rubric_index=rubric_index,
                label=label,
                duplicate_of=duplicate_of,
                note=notes.get((source, index)),
            )
            return score, answer

        answers: list[AnswerVerdicts] = []
        rewards: list[float | None] = []
        for i, first in enumerate(first_of):
            score, answer = scored("student", i, ("student", first), None if first == i else first)
            rewards.append(score)
            answers.append(answer)
        teacher_scores: list[float | None] = []
        for j in range(num_references):
            if ("teacher", j) not in judged:
                teacher_scores.append(None)
                continue
            score, answer = scored("teacher", j, ("teacher", j), None)
            teacher_scores.append(score)
            answers.append(answer)
        return GroupResult(
            id=group.id,
            rewards=rewards,
            teacher_scores=teacher_scores,
            rubrics=rubrics,
            verdicts=answers,
            usage=book.as_dict(),
            settings=self.settings(group),
        )
