"""The T-Judge baseline: the teacher scores each rollout on its own, 0-10, no rubric.

Same interface and failure policies as `GroupScorer` (`score_groups(groups, step=...)` returns one
`GroupResult` per group, rewards aligned with the student answers), so a training run can swap
one for the other. The reward is score / 10, in [0, 1].
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, Field, StrictInt

from ropd import redact
from ropd.errors import InputError, JudgeError, JudgeUnavailable
from ropd.llm.config import RoleConfig
from ropd.llm.types import ChatClient, UsageBook
from ropd.prompts import load_template
from ropd.reward import render
from ropd.reward.base import BaseScorer, GroupScoringError
from ropd.reward.config import MAX_SCORE, TJudgeConfig
from ropd.reward.judge_call import ask_json
from ropd.reward.schemas import scalar_schema
from ropd.reward.types import Group, GroupResult

log = redact.logger(__name__)
T = TypeVar("T")


class _ScalarReply(BaseModel):
    score: StrictInt = Field(ge=0, le=MAX_SCORE)  # `true` is not the score 1


TJudgeError = GroupScoringError  # the name ropd 0.1 raised under policy `raise`


async def score_each(jobs: Iterable[Awaitable[T]]) -> tuple[list[T | BaseException], str | None]:
    """Run one judge job per answer concurrently: each outcome (a value, or the error that job
    raised) and a summary of the failures (None when none failed).

    A judge error or bad input fails only its answer; an unusable judge (`JudgeUnavailable`)
    or an error that is not a judge's is raised, since the run cannot go on or it is not ours.
    """
    outcomes = await asyncio.gather(*jobs, return_exceptions=True)
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    for error in errors:
        if isinstance(error, JudgeUnavailable) or not isinstance(error, JudgeError | InputError):
            raise error
    summary = f"{len(errors)}/{len(outcomes)} answers unscored: {errors[0]}" if errors else None
    return list(outcomes), summary


class TJudgeScorer(BaseScorer[TJudgeConfig]):
    """Scores every student answer with one scalar-judge call; all calls run concurrently."""

    kind = "tjudge"
    method = "tjudge"

    def __init__(
        self,
        config: TJudgeConfig,
        client: ChatClient,
        traces: Any | None = None,
        *,
        run_id: str | None = None,
    ):
        super().__init__(config, client, traces, run_id=run_id)
        self._template = load_template("tjudge", config.prompts_dir)

    @classmethod
    def roles_of(cls, config: TJudgeConfig) -> list[RoleConfig]:
        return config.roles()

    @classmethod
    def config_with_roles(cls, config: TJudgeConfig, roles: list[RoleConfig]) -> TJudgeConfig:
        return config.with_roles(roles)

    def settings(self, group: Group) -> dict[str, Any]:
        return {
            "scorer": "tjudge",
            "judge_model": self.config.judge.model,
            "num_references": self.config.num_references,
            "template": self._template.version,
        }

    async def _score(self, group: Group, book: UsageBook) -> GroupResult:
        """Each answer on its own; answers that fail get the policy's reward, the group an error."""
        outcomes, error = await score_each(
            self._score_one(group, text, book) for text in group.student_responses
        )
        rewards = [self.failure_reward if isinstance(o, BaseException) else o for o in outcomes]
        return GroupResult(
            id=group.id,
            rewards=rewards,
            usage=book.as_dict(),
            error=error,
            settings=self.settings(group),
        )

    def messages(self, group: Group, answer: str) -> list[dict[str, str]]:
        """The one call's messages for `answer` (already cleaned), with the group's first
        `num_references` teacher answers as references; `ropd plan` counts these same ones."""
        references = [self.clean(t) for t in group.teacher_responses[: self.config.num_references]]
        prompt_text = render.render_prompt(group.prompt)
        boundary = render.new_boundary([prompt_text, answer, *references])
        refs = ""
        if references:
            blocks = render.render_blocks(
                boundary, "REFERENCE", references, range(1, len(references) + 1)
            )
            refs = (
                "\nReference answers from a strong model (usually, not always, correct):\n"
                f"{blocks}\n"
            )
        text = self._template.render(
            prompt=render.render_task(boundary, prompt_text),
            references=refs,
            answer=render.render_block(boundary, "ANSWER", answer if answer.strip() else "(empty)"),
        )
        return [{"role": "user", "content": text}]

    async def _score_one(self, group: Group, answer: str, book: UsageBook) -> float:
        reply = await ask_json(
            self.client,
            self.config.judge,
            self.messages(group, self.clean(answer)),
            scalar_schema(),
            _ScalarReply.model_validate,
            book,
            retries=self.config.parse_retries,
            form_hint='{"reasoning": "...", "score": <integer 0-10>}',
        )
        return reply.score / 10
