"""Step 3 of the method, rubric induction: one Rubricator call writes a group's rubric.

The Rubricator sees the task, the K teacher references and the group's student answers (each in
an unforgeable block) and writes N weighted true/false criteria. Ids are ours to assign, and
surface-format criteria are capped at 1 point whatever the judge wrote.
"""

from __future__ import annotations

import re
from typing import Any

from ropd.llm.config import RoleConfig
from ropd.llm.types import ChatClient, UsageBook
from ropd.prompts import PromptTemplate, load_template
from ropd.reward import render
from ropd.reward.judge_call import ask_json
from ropd.reward.schemas import rubric_schema
from ropd.rubric import Criterion, Rubric

FORMAT_CATEGORIES = {"format", "formatting", "style", "presentation", "layout"}


def shown(text: str) -> str:
    """An answer as placed in a judge prompt (an empty one is said to be empty)."""
    return text if text.strip() else "(empty answer)"


def validate_rubric(data: dict[str, Any], min_criteria: int, max_criteria: int) -> Rubric:
    """A strictly checked rubric with ids C1..Cn and format criteria capped at 1 point."""
    items = data.get("criteria")
    if isinstance(items, list):  # ids are ours to assign: C1..Cn, in the judge's order
        data = {
            "criteria": [
                {**item, "id": f"C{n}"} if isinstance(item, dict) else item
                for n, item in enumerate(items, start=1)
            ]
        }
    rubric = Rubric.model_validate(data)
    rubric.check_size(min_criteria, max_criteria)
    first_with: dict[str, str] = {}
    for c in rubric.criteria:  # a repeated check would count its points twice
        key = _comparable(c.criterion)
        if key in first_with:
            raise ValueError(
                f"criteria {first_with[key]} and {c.id} are the same check; "
                "every criterion must check something different"
            )
        first_with[key] = c.id
    criteria = []
    for c in rubric.criteria:
        category = c.category.strip().lower() or "general"
        points = min(c.points, 1) if category in FORMAT_CATEGORIES else c.points
        criteria.append(
            Criterion(id=c.id, category=category, criterion=c.criterion.strip(), points=points)
        )
    return Rubric(criteria=criteria)


def _comparable(text: str) -> str:
    """Criterion text with case, spacing and punctuation ignored (to spot repeats)."""
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
    ):
        self.role = role
        self.min_criteria = min_criteria
        self.max_criteria = max_criteria
        self.parse_retries = parse_retries
        self.system: PromptTemplate = load_template("rubricator_system", prompts_dir)
        self.user: PromptTemplate = load_template("rubricator_user", prompts_dir)

    def messages(
        self, prompt_text: str, references: list[str], students: list[str]
    ) -> list[dict[str, str]]:
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
    ) -> Rubric:
        """One rubric for `students`, contrasted with `references`."""
        return await ask_json(
            client,
            self.role,
            self.messages(prompt_text, references, students),
            rubric_schema(self.min_criteria, self.max_criteria),
            lambda data: validate_rubric(data, self.min_criteria, self.max_criteria),
            book,
            retries=self.parse_retries,
        )
