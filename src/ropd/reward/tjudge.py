"""The T-Judge baseline: the teacher scores each rollout on its own, 0-10, no rubric.

Same interface and failure policies as `GroupScorer` (`score_groups(groups, step=...)` returns one
`GroupResult` per group, rewards aligned with the student answers), so a training run can swap
one for the other. The reward is score / 10, in [0, 1].
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ropd.llm.config import RoleConfig
from ropd.llm.types import ChatClient, JudgeError, UsageBook
from ropd.prompts import load_template
from ropd.reward import render
from ropd.reward.config import FailurePolicy
from ropd.reward.judge_call import ask_json
from ropd.reward.schemas import scalar_schema
from ropd.reward.types import Group, GroupResult
from ropd.text import strip_think

log = logging.getLogger(__name__)
MAX_SCORE = 10


class TJudgeConfig(BaseModel):
    """Settings of the scalar-judge baseline."""

    model_config = ConfigDict(extra="forbid")

    judge: RoleConfig = Field(default_factory=lambda: RoleConfig(name="tjudge", max_tokens=512))
    num_references: int = Field(
        default=0, ge=0, description="teacher answers shown to the judge as references (0 = none)"
    )
    strip_think: bool = True
    max_answer_chars: int = Field(default=24000, ge=100)
    parse_retries: int = Field(default=2, ge=0)
    failure_policy: FailurePolicy = "nan"
    constant_reward: float = Field(default=0.0, ge=0.0, le=1.0)
    prompts_dir: Path | None = None

    @model_validator(mode="after")
    def _name(self) -> TJudgeConfig:
        self.judge = self.judge.with_name("tjudge")
        return self


class _ScalarReply(BaseModel):
    score: int = Field(ge=0, le=MAX_SCORE)


class TJudgeError(RuntimeError):
    """A rollout could not be scored and the failure policy is `raise`."""


class TJudgeScorer:
    """Scores every student answer with one scalar-judge call; all calls run concurrently."""

    def __init__(
        self,
        config: TJudgeConfig,
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
        self._template = load_template("tjudge", config.prompts_dir)

    async def score_groups(
        self, groups: Sequence[Group], *, step: int | None = None
    ) -> list[GroupResult]:
        return list(await asyncio.gather(*(self.score_group(g, step=step) for g in groups)))

    async def score_group(self, group: Group, *, step: int | None = None) -> GroupResult:
        book = UsageBook()
        outcomes = await asyncio.gather(
            *(self._score_one(group, text, book) for text in group.student_responses),
            return_exceptions=True,
        )
        self.usage.merge(book)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        for error in errors:
            if not isinstance(error, JudgeError | ValueError):
                raise error
        policy = self.config.failure_policy
        fallback = self.config.constant_reward if policy == "constant" else None
        rewards = [fallback if isinstance(o, BaseException) else o for o in outcomes]
        error = None
        if errors:
            error = f"{len(errors)}/{len(outcomes)} answers unscored: {errors[0]}"
        result = GroupResult(
            id=group.id,
            rewards=rewards,
            usage=book.as_dict(),
            error=error,
            failure_policy=policy if errors else None,
            settings={
                "scorer": "tjudge",
                "judge_model": self.config.judge.model,
                "num_references": self.config.num_references,
                "template": self._template.version,
            },
        )
        if self.traces is not None:
            self.traces.record(group, result, step=step, run_id=self.run_id)
        if errors:
            log.warning("group %s: %s", group.id, error)
            if policy == "raise":
                raise TJudgeError(f"group {group.id!r} could not be scored: {error}")
        return result

    def _clean(self, text: str) -> str:
        if self.config.strip_think:
            text = strip_think(text)
        limit = self.config.max_answer_chars
        return text if len(text) <= limit else text[:limit] + "\n[... truncated ...]"

    def _messages(self, group: Group, answer: str) -> list[dict[str, str]]:
        references = [self._clean(t) for t in group.teacher_responses[: self.config.num_references]]
        boundary = render.new_boundary([answer, *references])
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
            prompt=render.render_prompt(group.prompt),
            references=refs,
            answer=render.render_block(boundary, "ANSWER", answer if answer.strip() else "(empty)"),
        )
        return [{"role": "user", "content": text}]

    async def _score_one(self, group: Group, answer: str, book: UsageBook) -> float:
        reply = await ask_json(
            self.client,
            self.config.judge,
            self._messages(group, self._clean(answer)),
            scalar_schema(),
            _ScalarReply.model_validate,
            book,
            retries=self.config.parse_retries,
            form_hint='{"reasoning": "...", "score": <integer 0-10>}',
        )
        return reply.score / 10
