"""Step 3 of the method, rubric induction: one Rubricator call writes a group's rubric.

The Rubricator sees the task, the K teacher references and the group's student answers (each in
an unforgeable block) and writes N weighted true/false criteria. Ids are ours to assign,
surface-format criteria are capped at 1 point whatever the judge wrote, and a check written twice
(a weak judge's stutter) is kept once with its higher weight, the merge recorded in the group's
`settings["context"]["rubricator"]["merged_criteria"]` (`check_rubric`).

When all K + G answers do not fit the Rubricator's context window (`ropd.llm.tokens`), they are
clipped evenly: every answer gets an equal share of the room, an answer shorter than its share
keeps its whole text and leaves the rest to the others, and a clipped answer keeps its head and
tail with the cut said in its text. A context-length error from the endpoint clips harder, a
bounded number of times.

A rubric that fails its anchors can be asked for once more (`reinduce_on_bad_anchor`): the same
messages with a short paragraph saying why the earlier one could not be used (`REASONS`,
template `rubricator_retry`).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any

from ropd.errors import ContextOverflow
from ropd.llm.config import RoleConfig
from ropd.llm.tokens import ContextWindows, counter_for
from ropd.llm.types import ChatClient, JsonSchema, UsageBook
from ropd.prompts import PromptTemplate, load_template
from ropd.reward import render
from ropd.reward.judge_call import ask_json
from ropd.reward.schemas import rubric_schema
from ropd.reward.types import ContextRecord
from ropd.rubric import Criterion, Rubric
from ropd.text import clip_to_fit

FORMAT_CATEGORIES = {"format", "formatting", "style", "presentation", "layout"}
BLOCK_TOKENS = 24  # an answer's block markers and label, besides its text
MIN_SHARE_TOKENS = 32  # an answer's share below this says nothing a rubric could rest on
MAX_RESPLITS = 6  # context-length errors answered by clipping harder before giving up
# Why a group's rubric is asked for again (`settings["reinduced"]`) -> what the Rubricator is told.
REASONS = {
    "teacher_fail": "it failed every reference answer, although they are the strong answers",
    "no_spread": "it separated none of the student answers (they all got the same score)",
}


def shown(text: str) -> str:
    """An answer as placed in a judge prompt (an empty one is said to be empty)."""
    return text if text.strip() else "(empty answer)"


def validate_rubric(data: dict[str, Any], min_criteria: int, max_criteria: int) -> Rubric:
    """A strictly checked rubric with ids C1..Cn, format criteria capped at 1 point and
    repeated checks merged (`check_rubric`, which also says what was merged)."""
    return check_rubric(data, min_criteria, max_criteria).rubric


@dataclass(frozen=True)
class CriteriaMerge:
    """Criteria the judge wrote as the same check, kept as one (recorded in the trace).

    `positions` are the judge's own (1-based, in the order it wrote them) and `points` their
    points after the format cap; `kept` is the id of the one kept in the rubric.
    """

    kept: str
    criterion: str
    positions: list[int]
    points: list[int]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CheckedRubric:
    """A validated rubric and the repeated checks merged in it."""

    rubric: Rubric
    merges: list[CriteriaMerge] = field(default_factory=list)


def check_rubric(data: dict[str, Any], min_criteria: int, max_criteria: int) -> CheckedRubric:
    """Validate the judge's rubric; merge repeated checks instead of refusing the rubric.

    The size bounds apply to what the judge wrote (the schema it was given asks for them), and
    the lower bound to the distinct checks left after merging too: four copies of one check are
    one criterion, a rubric that separates nobody, so it is asked again.
    Criteria whose text is the same up to case, spacing and punctuation (`comparable_text`) are
    one check: counted twice, its points would weigh double. They are kept once, where the
    judge first wrote it, with the text, category and points of the copy worth the most points
    (the first of equals); ids are then C1..Cn in the judge's order. Nothing else is repaired:
    a malformed item, points out of range or a size out of bounds still invalidates the rubric.
    """
    items = data.get("criteria")
    if isinstance(items, list):  # ids are ours to assign: C1..Cn, in the judge's order
        data = {
            "criteria": [
                {**item, "id": f"C{n}"} if isinstance(item, dict) else item
                for n, item in enumerate(items, start=1)
            ]
        }
    rubric = Rubric.model_validate(data)
    if any(c.pitfall for c in rubric.criteria):  # negative points come only with dataset rubrics
        raise ValueError("criterion points must be integers from 1 to 5")
    rubric.check_size(min_criteria, max_criteria)
    capped = [_capped(c) for c in rubric.criteria]
    groups: dict[str, list[int]] = {}  # comparable text -> judge positions (0-based), in order
    for position, c in enumerate(capped):
        groups.setdefault(comparable_text(c.criterion), []).append(position)
    criteria: list[Criterion] = []
    merges: list[CriteriaMerge] = []
    for positions in groups.values():  # dicts keep insertion order: the judge's first mention
        best = max(positions, key=lambda p: (capped[p].points, -p))
        kept = capped[best].model_copy(update={"id": f"C{len(criteria) + 1}"})
        criteria.append(kept)
        if len(positions) > 1:
            merges.append(
                CriteriaMerge(
                    kept=kept.id,
                    criterion=kept.criterion,
                    positions=[p + 1 for p in positions],
                    points=[capped[p].points for p in positions],
                )
            )
    if len(criteria) < min_criteria:
        raise ValueError(
            f"rubric has {len(capped)} criteria but only {len(criteria)} different checks (the "
            f"others repeat one, up to case and punctuation); write at least {min_criteria} "
            "different checks"
        )
    return CheckedRubric(Rubric(criteria=criteria), merges)


def _capped(c: Criterion) -> Criterion:
    """A criterion with its category normalised and format criteria capped at 1 point."""
    category = c.category.strip().lower() or "general"
    points = min(c.points, 1) if category in FORMAT_CATEGORIES else c.points
    return Criterion(id=c.id, category=category, criterion=c.criterion.strip(), points=points)


def comparable_text(text: str) -> str:
    """Criterion text with case, spacing and punctuation ignored: equal means the same check."""
    return " ".join(re.sub(r"[^\w]+", " ", text.casefold()).split())


class RubricInducer:
    """Writes the Rubricator's messages and asks for a rubric (templates loaded once)."""

    def __init__(
        self,
        role: RoleConfig,
        *,
        min_criteria: int,
        max_criteria: int,
        parse_retries: int,
        prompts_dir: Any = None,
        windows: ContextWindows | None = None,
    ):
        self.role = role
        self.min_criteria = min_criteria
        self.max_criteria = max_criteria
        self.parse_retries = parse_retries
        self.system: PromptTemplate = load_template("rubricator_system", prompts_dir)
        self.user: PromptTemplate = load_template("rubricator_user", prompts_dir)
        self.retry: PromptTemplate = load_template("rubricator_retry", prompts_dir)
        self.windows = windows if windows is not None else ContextWindows()
        self.counter = counter_for(role)

    def messages(
        self,
        prompt_text: str,
        references: list[str],
        students: list[str],
        reasons: tuple[str, ...] = (),
    ) -> list[dict[str, str]]:
        """The Rubricator's messages; `reasons` (keys of `REASONS`) say why an earlier rubric
        for the same answers was rejected, in a paragraph after the answers."""
        bounds = {"min_criteria": str(self.min_criteria), "max_criteria": str(self.max_criteria)}
        boundary = render.new_boundary([prompt_text, *references, *students])
        numbered = lambda texts: range(1, len(texts) + 1)
        user = self.user.render(
            prompt=render.render_task(boundary, prompt_text),
            boundary=boundary,
            num_references=str(len(references)),
            references=render.render_blocks(
                boundary, "REFERENCE", [shown(t) for t in references], numbered(references)
            )
            or "(none)",
            num_students=str(len(students)),
            students=render.render_blocks(
                boundary, "STUDENT", [shown(t) for t in students], numbered(students)
            ),
            **bounds,
        )
        if reasons:
            user += self.retry.render(reason="; ".join(REASONS[r] for r in reasons))
        return [
            {"role": "system", "content": self.system.render(**bounds)},
            {"role": "user", "content": user},
        ]

    async def induce(
        self,
        client: ChatClient,
        prompt_text: str,
        references: list[str],
        students: list[str],
        book: UsageBook,
        record: ContextRecord | None = None,
        reasons: tuple[str, ...] = (),
    ) -> Rubric:
        """One rubric for `students`, contrasted with `references` (clipped evenly to fit);
        `reasons`: why an earlier rubric for them was rejected (see `messages`)."""
        record = record if record is not None else ContextRecord()
        schema = rubric_schema(self.min_criteria, self.max_criteria)
        answers = [*references, *students]
        limit: int | None = None  # total answer tokens, once an error asked for less
        for depth in range(MAX_RESPLITS + 1):
            room = self._room(prompt_text, schema, len(answers), reasons)
            total = min((x for x in (room, limit) if x is not None), default=None)
            fitted = self.fit(answers, total)
            messages = self.messages(
                prompt_text, fitted[: len(references)], fitted[len(references) :], reasons
            )
            try:
                checked = await ask_json(
                    client,
                    self.role,
                    messages,
                    schema,
                    lambda data: check_rubric(data, self.min_criteria, self.max_criteria),
                    book,
                    retries=self.parse_retries,
                )
            except ContextOverflow as overflow:
                if depth == MAX_RESPLITS:
                    raise
                record.resplits += 1
                self.windows.learn(self.role, overflow, self.counter.messages(messages))
                used = sum(self._cost(text) for text in fitted)
                room = self._room(prompt_text, schema, len(answers), reasons)
                limit = room if room is not None and room < used else used // 2
                continue
            record.windows["rubricator"] = self.windows.window(self.role)
            record.rubricator_clipped_answers += sum(a != f for a, f in zip(answers, fitted))
            record.merged_criteria += [merge.as_dict() for merge in checked.merges]
            return checked.rubric
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def fit(self, answers: list[str], total: int | None) -> list[str]:
        """`answers` clipped evenly to `total` tokens together (unchanged when None or room).

        Shares are equal; an answer needing less than its share keeps its whole text and the
        tokens it leaves go to the others (the longest answers are the ones clipped).
        """
        if total is None:
            return list(answers)
        costs = [self._cost(text) for text in answers]
        if sum(costs) <= total:
            return list(answers)
        shares = [0] * len(answers)
        left = total
        by_cost = sorted(range(len(answers)), key=costs.__getitem__)
        for position, i in enumerate(by_cost):
            shares[i] = min(costs[i], left // (len(answers) - position))
            left -= shares[i]
        return [
            text
            if share >= cost
            else clip_to_fit(text, max(share - BLOCK_TOKENS, 0), self.counter.text)
            for text, share, cost in zip(answers, shares, costs)
        ]

    def _cost(self, text: str) -> int:
        return self.counter.text(shown(text)) + BLOCK_TOKENS

    def _room(
        self, prompt_text: str, schema: JsonSchema, count: int, reasons: tuple[str, ...] = ()
    ) -> int | None:
        """Tokens all answers of the call may take together (None while the window is unknown).

        The task and instructions go in whole; when they leave less than a minimal share for
        each of the `count` answers the group cannot get a rubric from this judge
        (`ContextOverflow`).
        """
        budget = self.windows.prompt_budget(self.role)
        if budget is None:
            return None
        schema_text = json.dumps(schema.schema, separators=(",", ":"))  # may go in the prompt
        fixed = self.counter.messages(
            self.messages(prompt_text, [], [], reasons)
        ) + self.counter.text(schema_text)
        room = budget - fixed
        if room < count * (BLOCK_TOKENS + MIN_SHARE_TOKENS):
            window = self.windows.window(self.role)
            raise ContextOverflow(
                f"{self.role.name}: the task and instructions take about {fixed} tokens, but a "
                f"{window.tokens}-token context window ({window.source}) leaves "
                f"{max(budget, 0)} for the prompt after max_tokens {self.role.max_tokens} and "
                f"the margin, too little for {count} answers",
                window=window.tokens,
            )
        return room
