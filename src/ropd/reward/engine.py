"""The ROPD group scorer: rubric induction, then blind verification, then the reward formula.

One group = one prompt, its G student answers and its K teacher answers. Per group the scorer
makes one Rubricator call (one per student answer in the per-pair ablation) and one Verifier
call per chunk of the answer pool. All groups of a batch run concurrently; the client's limits
decide how many requests are really in flight.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ropd.llm.types import ChatClient, JudgeError, UsageBook
from ropd.prompts import load_template
from ropd.reward import render
from ropd.reward.config import ScorerConfig
from ropd.reward.judge_call import InvalidJudgeReply, ask_json
from ropd.reward.schemas import rubric_schema, verdicts_schema
from ropd.reward.types import AnswerVerdicts, Group, GroupResult, Source
from ropd.rubric import Criterion, Rubric, weighted_score
from ropd.text import strip_think

log = logging.getLogger(__name__)
FORMAT_CATEGORIES = {"format", "formatting", "style", "presentation", "layout"}


class GroupInputError(ValueError):
    """The group itself cannot be scored as configured (e.g. no teacher answers)."""


class GroupScoringError(RuntimeError):
    """A group failed and the failure policy is `raise`."""

    def __init__(self, group_id: str, cause: str):
        super().__init__(f"group {group_id!r} could not be scored: {cause}")
        self.group_id = group_id
        self.cause = cause


@dataclass(frozen=True)
class PoolEntry:
    """One distinct answer to verify, and where it came from."""

    source: Source
    index: int
    text: str


class _VerdictEntry(BaseModel):
    answer: int
    verdicts: dict[str, bool]


class _VerdictReply(BaseModel):
    answers: list[_VerdictEntry]


class GroupScorer:
    """Scores whole groups the ROPD way; see `ScorerConfig` for every switch."""

    def __init__(
        self,
        config: ScorerConfig,
        client: ChatClient,
        traces: Any | None = None,
        *,
        run_id: str | None = None,
    ):
        self.config = config
        self.client = client
        self.traces = traces
        self.run_id = run_id
        self.usage = UsageBook()
        d = config.prompts_dir
        self._rubricator_system = load_template("rubricator_system", d)
        self._rubricator_user = load_template("rubricator_user", d)
        self._verifier_system = load_template("verifier_system", d)
        self._verifier_user = load_template("verifier_user", d)

    @property
    def template_versions(self) -> dict[str, str]:
        templates = (
            self._rubricator_system,
            self._rubricator_user,
            self._verifier_system,
            self._verifier_user,
        )
        return {t.name: t.version for t in templates}

    async def score_groups(
        self, groups: Sequence[Group], *, step: int | None = None
    ) -> list[GroupResult]:
        """Score all groups concurrently; results keep the input order."""
        return list(await asyncio.gather(*(self.score_group(g, step=step) for g in groups)))

    async def score_group(self, group: Group, *, step: int | None = None) -> GroupResult:
        """Score one group. Failures follow the configured policy; never a silent 0."""
        book = UsageBook()
        failure: Exception | None = None
        try:
            result = await self._score(group, book)
        except (JudgeError, InvalidJudgeReply, GroupInputError) as exc:
            failure = exc
            result = self._failed_result(group, exc, book)
        finally:
            self.usage.merge(book)
        if self.traces is not None:
            self.traces.record(group, result, step=step, run_id=self.run_id)
        if failure is not None:
            log.warning("group %s failed: %s", group.id, result.error)
            if self.config.failure_policy == "raise":
                raise GroupScoringError(group.id, result.error or "") from failure
        return result

    # -- the method -------------------------------------------------------------------------

    async def _score(self, group: Group, book: UsageBook) -> GroupResult:
        cfg = self.config
        students = [self._clean(t) for t in group.student_responses]
        references = [self._clean(t) for t in group.teacher_responses]
        if cfg.num_teacher_refs is not None:
            references = references[: cfg.num_teacher_refs]
        if cfg.num_teacher_refs != 0 and not references:
            raise GroupInputError(
                "the group has no teacher answers (give teacher_responses or a teacher store)"
            )
        prompt_text = render.render_prompt(group.prompt)

        first_of: list[int] = []  # student index -> index of the first identical student answer
        seen: dict[str, int] = {}
        for i, text in enumerate(students):
            first = seen.setdefault(text, i) if cfg.dedupe else i
            first_of.append(first)
        distinct = [i for i, first in enumerate(first_of) if first == i]

        if cfg.rubric_mode == "shared":
            distinct_texts = [students[i] for i in distinct]
            rubric = await self._induce(prompt_text, references, distinct_texts, book)
            pool = [PoolEntry("student", i, students[i]) for i in distinct]
            if cfg.teacher_in_pool:
                pool += [PoolEntry("teacher", j, t) for j, t in enumerate(references)]
            verdicts = await self._verify(prompt_text, rubric, pool, book, group.id)
            rubrics = [rubric]
            by_entry = {(e.source, e.index): (0, verdicts[k]) for k, e in enumerate(pool)}
        else:
            rubrics, by_entry = await self._score_per_pair(
                prompt_text, references, students, distinct, book, group.id
            )

        def scored(source: Source, index: int, entry: tuple, duplicate_of: int | None = None):
            rubric_index, (label, verdict) = entry
            rubric = rubrics[rubric_index]
            score = weighted_score(rubric.points, _ordered(rubric, verdict))
            answer = AnswerVerdicts(
                source=source,
                index=index,
                verdicts=verdict,
                score=score,
                rubric_index=rubric_index,
                label=label,
                duplicate_of=duplicate_of,
            )
            return score, answer

        answers: list[AnswerVerdicts] = []
        rewards: list[float | None] = []
        for i, first in enumerate(first_of):
            score, answer = scored(
                "student", i, by_entry[("student", first)], None if first == i else first
            )
            rewards.append(score)
            answers.append(answer)
        teacher_scores: list[float | None] = []
        for j in range(len(references)):
            entry = by_entry.get(("teacher", j))
            if entry is None:
                teacher_scores.append(None)
                continue
            score, answer = scored("teacher", j, entry)
            teacher_scores.append(score)
            answers.append(answer)
        return GroupResult(
            id=group.id,
            rewards=rewards,
            teacher_scores=teacher_scores,
            rubrics=rubrics,
            verdicts=answers,
            usage=book.as_dict(),
            settings=self._settings(len(references)),
        )

    async def _score_per_pair(
        self,
        prompt_text: str,
        references: list[str],
        students: list[str],
        distinct: list[int],
        book: UsageBook,
        group_id: str,
    ) -> tuple[list[Rubric], dict[tuple[str, int], tuple[int, tuple[int | None, dict[str, bool]]]]]:
        """Ablation: one rubric per student answer, induced from the references and that answer
        alone, so no rubric sees the rest of the group."""

        async def one(rubric_index: int, i: int) -> tuple[Rubric, list[PoolEntry], list]:
            rubric = await self._induce(prompt_text, references, [students[i]], book)
            pool = [PoolEntry("student", i, students[i])]
            if self.config.teacher_in_pool:
                pool += [PoolEntry("teacher", j, t) for j, t in enumerate(references)]
            verdicts = await self._verify(
                prompt_text, rubric, pool, book, f"{group_id}:{rubric_index}"
            )
            return rubric, pool, verdicts

        done = await asyncio.gather(*(one(r, i) for r, i in enumerate(distinct)))
        rubrics: list[Rubric] = []
        by_entry: dict = {}
        teacher_runs: dict[int, list[tuple[int, tuple[int | None, dict[str, bool]]]]] = {}
        for rubric_index, (rubric, pool, verdicts) in enumerate(done):
            rubrics.append(rubric)
            for entry, verdict in zip(pool, verdicts):
                if entry.source == "student":
                    by_entry[("student", entry.index)] = (rubric_index, verdict)
                else:
                    teacher_runs.setdefault(entry.index, []).append((rubric_index, verdict))
        # A teacher answer is verified once per rubric; its reported score uses the first rubric.
        for j, runs in teacher_runs.items():
            by_entry[("teacher", j)] = runs[0]
        return rubrics, by_entry

    async def _induce(
        self, prompt_text: str, references: list[str], students: list[str], book: UsageBook
    ) -> Rubric:
        cfg = self.config
        boundary = render.new_boundary([prompt_text, *references, *students])
        user = self._rubricator_user.render(
            prompt=prompt_text,
            boundary=boundary,
            num_references=str(len(references)),
            references=render.render_blocks(
                boundary,
                "REFERENCE",
                [_shown(t) for t in references],
                range(1, len(references) + 1),
            )
            or "(none)",
            num_students=str(len(students)),
            students=render.render_blocks(
                boundary, "STUDENT", [_shown(t) for t in students], range(1, len(students) + 1)
            ),
            min_criteria=str(cfg.min_criteria),
            max_criteria=str(cfg.max_criteria),
        )
        system = self._rubricator_system.render(
            min_criteria=str(cfg.min_criteria), max_criteria=str(cfg.max_criteria)
        )
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        return await ask_json(
            self.client,
            cfg.rubricator,
            messages,
            rubric_schema(cfg.min_criteria, cfg.max_criteria),
            self._validate_rubric,
            book,
            retries=cfg.parse_retries,
        )

    async def _verify(
        self,
        prompt_text: str,
        rubric: Rubric,
        pool: list[PoolEntry],
        book: UsageBook,
        shuffle_key: str,
    ) -> list[tuple[int | None, dict[str, bool]]]:
        """Verdicts for every pool entry (in pool order), with the label it was shown under."""
        ids = [c.id for c in rubric.criteria]
        results: list[tuple[int | None, dict[str, bool]] | None] = [None] * len(pool)
        to_judge = []
        for k, entry in enumerate(pool):
            if entry.text.strip():
                to_judge.append(k)
            else:  # an empty answer meets no criterion; no judge call is spent on it
                results[k] = (None, {cid: False for cid in ids})
        order = list(to_judge)
        random.Random(f"{self.config.seed}:{shuffle_key}").shuffle(order)
        size = self.config.max_answers_per_verifier_call or max(len(order), 1)
        chunks = [order[s : s + size] for s in range(0, len(order), size)]

        async def judge(chunk: list[int]) -> None:
            verdicts = await self._verify_chunk(prompt_text, rubric, [pool[k] for k in chunk], book)
            for position, k in enumerate(chunk):
                results[k] = (position + 1, verdicts[position])

        await asyncio.gather(*(judge(c) for c in chunks))
        assert all(r is not None for r in results), "a pool entry was left without verdicts"
        return results  # type: ignore[return-value]

    async def _verify_chunk(
        self, prompt_text: str, rubric: Rubric, entries: list[PoolEntry], book: UsageBook
    ) -> list[dict[str, bool]]:
        cfg = self.config
        ids = [c.id for c in rubric.criteria]
        texts = [_shown(e.text) for e in entries]
        boundary = render.new_boundary(
            [prompt_text, *texts, *(c.criterion for c in rubric.criteria)]
        )
        if not cfg.blind:  # ablation: identities revealed to the verifier
            texts = [f"(written by the {e.source} model)\n{t}" for e, t in zip(entries, texts)]
        numbers = list(range(1, len(entries) + 1))
        answers = render.render_blocks(boundary, "ANSWER", texts, numbers)
        user = self._verifier_user.render(
            prompt=prompt_text,
            rubric=render.render_rubric(rubric),
            boundary=boundary,
            num_answers=str(len(entries)),
            answers=answers,
            answer_numbers=", ".join(map(str, numbers)),
            criterion_ids=", ".join(ids),
        )
        messages = [
            {"role": "system", "content": self._verifier_system.render()},
            {"role": "user", "content": user},
        ]
        return await ask_json(
            self.client,
            cfg.verifier,
            messages,
            verdicts_schema(len(entries), ids),
            lambda data: _validate_verdicts(data, len(entries), ids),
            book,
            retries=cfg.parse_retries,
        )

    # -- helpers ----------------------------------------------------------------------------

    def _validate_rubric(self, data: dict[str, Any]) -> Rubric:
        items = data.get("criteria")
        if isinstance(items, list):  # ids are ours to assign: C1..Cn, in the judge's order
            data = {
                "criteria": [
                    {**item, "id": f"C{n}"} if isinstance(item, dict) else item
                    for n, item in enumerate(items, start=1)
                ]
            }
        rubric = Rubric.model_validate(data)
        rubric.check_size(self.config.min_criteria, self.config.max_criteria)
        criteria = [
            Criterion(
                id=c.id,
                category=c.category.strip().lower() or "general",
                criterion=c.criterion.strip(),
                points=min(c.points, 1)
                if c.category.strip().lower() in FORMAT_CATEGORIES
                else c.points,
            )
            for c in rubric.criteria
        ]
        return Rubric(criteria=criteria)

    def _clean(self, text: str) -> str:
        if self.config.strip_think:
            text = strip_think(text)
        text = text.strip()
        limit = self.config.max_answer_chars
        if len(text) > limit:
            half = limit // 2
            omitted = len(text) - 2 * half
            text = f"{text[:half]}\n[... {omitted} characters omitted ...]\n{text[-half:]}"
        return text

    def _settings(self, references_used: int) -> dict[str, Any]:
        return {
            **self.config.ablation_settings(),
            "teacher_refs_used": references_used,
            "templates": self.template_versions,
        }

    def _failed_result(self, group: Group, exc: Exception, book: UsageBook) -> GroupResult:
        policy = self.config.failure_policy
        value = self.config.constant_reward if policy == "constant" else None
        return GroupResult(
            id=group.id,
            rewards=[value] * len(group.student_responses),
            teacher_scores=[],
            usage=book.as_dict(),
            error=f"{type(exc).__name__}: {exc}",
            failure_policy=policy,
            settings=self._settings(len(group.teacher_responses)),
        )


def _validate_verdicts(
    data: dict[str, Any], num_answers: int, criterion_ids: list[str]
) -> list[dict[str, bool]]:
    """Strictly check the verifier's structure; return verdicts ordered by answer number.

    The requested form is `{"answer_1": {"C1": true, ...}, ...}`; the list form
    `{"answers": [{"answer": 1, "verdicts": {...}}, ...]}` is accepted from judges that ignore
    the schema. Either way every answer must appear exactly once with exactly the criterion ids.
    """
    if isinstance(data.get("answers"), list):
        reply = _VerdictReply.model_validate(data)
        numbers = [a.answer for a in reply.answers]
        given = {a.answer: a.verdicts for a in reply.answers}
    else:
        numbers = []
        given = {}
        for key, value in data.items():
            number = _answer_number(key)
            if number is None:
                raise ValueError(f"unexpected key {key!r}; expected answer_1..answer_{num_answers}")
            numbers.append(number)
            given[number] = _VerdictEntry(answer=number, verdicts=value).verdicts
    if len(numbers) != num_answers or set(numbers) != set(range(1, num_answers + 1)):
        raise ValueError(
            f"expected one entry for each answer 1..{num_answers}, got answer numbers {numbers}"
        )
    wanted = set(criterion_ids)
    ordered: list[dict[str, bool]] = []
    for number in range(1, num_answers + 1):
        verdicts = given[number]
        if set(verdicts) != wanted:
            missing, extra = sorted(wanted - set(verdicts)), sorted(set(verdicts) - wanted)
            raise ValueError(
                f"answer {number}: verdicts must cover exactly {criterion_ids}"
                f" (missing {missing}, unexpected {extra})"
            )
        ordered.append({cid: bool(verdicts[cid]) for cid in criterion_ids})
    return ordered


def _answer_number(key: str) -> int | None:
    match = re.fullmatch(r"(?:answer[_ ]?)?(\d+)", key.strip(), re.IGNORECASE)
    return int(match.group(1)) if match else None


def _ordered(rubric: Rubric, verdicts: dict[str, bool]) -> list[bool]:
    return [verdicts[c.id] for c in rubric.criteria]


def _shown(text: str) -> str:
    return text if text.strip() else "(empty answer)"
