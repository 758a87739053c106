"""On-policy verbal distillation (OVD; Xiong et al., 2026, arXiv 2601.21968).

The teacher reads the prompt and one student trajectory (text only, no logits, no rubric, no
reference answer) and gives it a discrete score 0-9; the reward is score / 9. Same interface and
failure policies as `GroupScorer` and `TJudgeScorer`, so a training run swaps one for another.

What ropd chose where the paper is silent or its step does not fit GRPO (docs/training.md):

- `per_call: one` asks once per trajectory (the paper's description); `group` asks once per
  group with the G trajectories numbered, each scored on its own key (fewer calls).
- `reject_below`: the paper replaces a trajectory scored below the threshold with a teacher
  demonstration. TRL computes the GRPO loss on the student's own completions, so the completion
  cannot be swapped; such a trajectory gets reward 0 instead and is recorded as rejected.
- `outcome_weight`: where the group carries a gold answer (`Group.gold`: the data's answer
  column, verl's `ground_truth`), reward = w * correct + (1 - w) * score / 9, `correct` from math-verify (`data/gold.py`).
  A rejected trajectory stays at 0.

Per group the raw scores, rejections and gold checks are kept in `GroupResult.settings["ovd"]`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, create_model

from ropd.llm.config import RoleConfig
from ropd.llm.types import ChatClient, UsageBook
from ropd.prompts import load_template
from ropd.reward import render
from ropd.reward.base import BaseScorer
from ropd.reward.config import OVD_MAX_SCORE, OVDConfig
from ropd.reward.health import GoldChecker
from ropd.reward.judge_call import ask_json
from ropd.reward.schemas import answer_key, ovd_schema
from ropd.reward.tjudge import score_each
from ropd.reward.types import Group, GroupResult, Prompt


class _ScoreReply(BaseModel):
    """One trajectory's score: an integer 0-9 and nothing else (`true`, "9", 9.5 are refused)."""

    model_config = ConfigDict(extra="forbid")

    score: StrictInt = Field(ge=0, le=OVD_MAX_SCORE)


def _group_reply(num_answers: int) -> type[BaseModel]:
    """The reply model of a group call: `answer_1`..`answer_G`, each an integer 0-9."""
    field = (StrictInt, Field(ge=0, le=OVD_MAX_SCORE))
    fields: dict[str, Any] = {answer_key(n): field for n in range(1, num_answers + 1)}
    return create_model(  # type: ignore[call-overload,no-any-return]
        "OVDGroupReply", __config__=ConfigDict(extra="forbid"), **fields
    )


def verbal_reward(score: int) -> float:
    """The paper's reward of a teacher score: score / 9."""
    return score / OVD_MAX_SCORE


def combine(
    score: int, correct: bool | None, *, outcome_weight: float, reject_below: int | None
) -> tuple[float, bool]:
    """(reward, rejected) of one trajectory: 0 when rejected; with a gold check, the outcome
    mixed in by `outcome_weight`; otherwise score / 9."""
    if reject_below is not None and score < reject_below:
        return 0.0, True
    verbal = verbal_reward(score)
    if correct is None or outcome_weight == 0:
        return verbal, False
    return outcome_weight * float(correct) + (1 - outcome_weight) * verbal, False


class OVDScorer(BaseScorer[OVDConfig]):
    """Scores student trajectories with the teacher's 0-9 verdict (one call each, or per group).

    A group's `gold` answer is read only when `outcome_weight` > 0 (`gold_of`).
    """

    kind = "ovd"
    method = "ovd"

    def __init__(
        self,
        config: OVDConfig,
        client: ChatClient,
        traces: Any | None = None,
        *,
        run_id: str | None = None,
    ):
        super().__init__(config, client, traces, run_id=run_id)
        self._gold_checker = GoldChecker("ovd outcome reward")
        name = "ovd_group" if config.per_call == "group" else "ovd"
        self._template = load_template(name, config.prompts_dir)

    @classmethod
    def roles_of(cls, config: OVDConfig) -> list[RoleConfig]:
        return config.roles()

    @classmethod
    def config_with_roles(cls, config: OVDConfig, roles: list[RoleConfig]) -> OVDConfig:
        return config.with_roles(roles)

    def settings(self, group: Group) -> dict[str, Any]:
        return {
            "scorer": "ovd",
            "judge_model": self.config.judge.model,
            "per_call": self.config.per_call,
            "reject_below": self.config.reject_below,
            "outcome_weight": self.config.outcome_weight,
            "template": self._template.version,
        }

    def gold_of(self, group: Group) -> str | None:
        """The group's gold answer (TRL's `answer` column, verl's `ground_truth`, a groups
        file's `gold`) when the outcome reward is on and the group has a non-empty one."""
        if self.config.outcome_weight == 0 or group.gold is None or not group.gold.strip():
            return None
        return group.gold

    async def _score(self, group: Group, book: UsageBook) -> GroupResult:
        """Teacher scores, then rejection and the outcome reward; a failed answer gets the
        failure policy's reward and the group an error naming how many failed."""
        answers = [self.clean(text) for text in group.student_responses]
        if self.config.per_call == "group":
            scores, error = await self._score_together(group.prompt, answers, book)
        else:
            outcomes, error = await score_each(
                self._score_alone(group.prompt, answer, book) for answer in answers
            )
            scores = [None if isinstance(o, BaseException) else o for o in outcomes]
        correct = await self._gold_checks(group)
        rewards: list[float | None] = []
        rejected: list[bool] = []
        for score, ok in zip(scores, correct, strict=True):
            if score is None:
                rewards.append(self.failure_reward)
                rejected.append(False)
                continue
            reward, out = combine(
                score,
                ok,
                outcome_weight=self.config.outcome_weight,
                reject_below=self.config.reject_below,
            )
            rewards.append(reward)
            rejected.append(out)
        settings = self.settings(group)
        settings["ovd"] = {
            "scores": scores,
            "rejected": rejected,
            "correct": correct,
            "reject_below": self.config.reject_below,
        }
        return GroupResult(
            id=group.id, rewards=rewards, usage=book.as_dict(), error=error, settings=settings
        )

    async def _gold_checks(self, group: Group) -> list[bool | None]:
        """Each answer checked against the gold answer (None everywhere without one); math-verify
        runs in a worker thread (CPU work). An answer it cannot check is None, not wrong."""
        gold = self.gold_of(group)
        if gold is None:
            return [None] * len(group.student_responses)

        def check() -> list[bool | None]:
            return [self._gold_checker.check(text, gold) for text in group.student_responses]

        return await asyncio.to_thread(check)

    def _boundary_and_task(self, prompt: Prompt, texts: list[str]) -> tuple[str, str]:
        prompt_text = render.render_prompt(prompt)
        boundary = render.new_boundary([prompt_text, *texts])
        return boundary, render.render_task(boundary, prompt_text)

    def messages_alone(self, prompt: Prompt, answer: str) -> list[dict[str, str]]:
        """The messages of a `per_call: one` call scoring `answer` (cleaned, non-empty); the
        run and `ropd plan` both build them here."""
        self._require("one")
        boundary, task = self._boundary_and_task(prompt, [answer])
        text = self._template.render(
            prompt=task, answer=render.render_block(boundary, "ANSWER", answer)
        )
        return [{"role": "user", "content": text}]

    def messages_together(self, prompt: Prompt, answers: list[str]) -> list[dict[str, str]]:
        """The messages of a `per_call: group` call scoring `answers` (cleaned, non-empty),
        numbered from 1 in this order; the run and `ropd plan` both build them here."""
        self._require("group")
        boundary, task = self._boundary_and_task(prompt, answers)
        numbers = range(1, len(answers) + 1)
        text = self._template.render(
            prompt=task,
            answers=render.render_blocks(boundary, "ANSWER", answers, numbers),
            keys=", ".join(f'"{answer_key(n)}": <integer 0-9>' for n in numbers),
        )
        return [{"role": "user", "content": text}]

    def _require(self, per_call: str) -> None:
        """The template loaded is the configured `per_call`'s: the other builder cannot run."""
        if self.config.per_call != per_call:
            raise ValueError(f"ovd.per_call is {self.config.per_call!r}, not {per_call!r}")

    async def _score_alone(self, prompt: Prompt, answer: str, book: UsageBook) -> int:
        """One call for one trajectory (an empty one scores 0 without a call)."""
        if not answer.strip():
            return 0
        reply = await ask_json(
            self.client,
            self.config.judge,
            self.messages_alone(prompt, answer),
            ovd_schema(max_score=OVD_MAX_SCORE),
            _ScoreReply.model_validate,
            book,
            retries=self.config.parse_retries,
            form_hint='{"score": <integer 0-9>}',
        )
        return reply.score

    async def _score_together(
        self, prompt: Prompt, answers: list[str], book: UsageBook
    ) -> tuple[list[int | None], str | None]:
        """One call for the group's non-empty trajectories; empty ones score 0 without it. A
        reply that fails validation after the re-asks fails every answer it was for."""
        shown = [i for i, answer in enumerate(answers) if answer.strip()]
        scores: list[int | None] = [0] * len(answers)
        if not shown:
            return scores, None
        texts = [answers[i] for i in shown]
        messages = self.messages_together(prompt, texts)
        model = _group_reply(len(texts))
        outcomes, error = await score_each(
            [
                ask_json(
                    self.client,
                    self.config.judge,
                    messages,
                    ovd_schema(len(texts), OVD_MAX_SCORE),
                    model.model_validate,
                    book,
                    retries=self.config.parse_retries,
                    form_hint="one integer 0-9 per answer key",
                )
            ]
        )
        reply = outcomes[0]
        if isinstance(reply, BaseException):
            for i in shown:
                scores[i] = None
            return scores, f"{len(shown)}/{len(answers)} answers unscored: {reply}"
        for n, i in enumerate(shown, start=1):
            scores[i] = getattr(reply, answer_key(n))
        return scores, error


__all__ = ["OVDConfig", "OVDScorer", "combine", "verbal_reward"]
