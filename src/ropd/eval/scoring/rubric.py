"""HealthBench-style rubric grading: an LLM grader checks each rubric item of a response.

One grader call per (response, rubric item), as in HealthBench: the grader sees the whole
conversation, the response and one criterion, and says whether the criterion is met. Items
with negative points describe unwanted behaviour: meeting them costs points. The score is
met points / total positive points, clipped to [0, 1]; the arithmetic is always ours.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr

from ropd.errors import JudgeUnavailable
from ropd.eval.types import SampleScore
from ropd.llm.config import RoleConfig
from ropd.llm.types import ChatClient, JsonSchema, JudgeError, UsageBook
from ropd.reward.judge_call import ask_json
from ropd.text import answer_for_judge

GRADE_SCHEMA = JsonSchema(
    name="ropd_rubric_item_grade",
    schema={
        "type": "object",
        "properties": {
            "explanation": {"type": "string"},
            "criteria_met": {"type": "boolean"},
        },
        "required": ["explanation", "criteria_met"],
        "additionalProperties": False,
    },
)

GRADER_SYSTEM = """\
You grade one response of an AI assistant against one rubric item written by an expert.
Decide only whether the response meets the rubric item, judging the response as written.

- A rubric item may describe something desirable (positive points) or something undesirable
  (negative points). In both cases say whether the response does what the item describes: an
  undesirable item is "met" when the response shows that unwanted behaviour.
- An item that lists several requirements is met only when all of them are met, unless it says
  "such as", "for example" or similar, in which case one fitting instance suffices.
- Do not reward intentions or promises; only what the response actually says.

Reply with a JSON object: {"explanation": "<one or two sentences>", "criteria_met": true|false}.
"""

GRADER_USER = """\
<conversation>
{conversation}
</conversation>

<response>
{response}
</response>

<rubric_item points="{points}">
{criterion}
</rubric_item>

Does the response meet this rubric item?"""

PARSE_ATTEMPTS = 3


class _Grade(BaseModel):
    model_config = ConfigDict(extra="ignore")

    criteria_met: StrictBool  # `"yes"` or `1` is not a grade
    explanation: StrictStr = ""


def rubric_score(points: list[float], met: list[bool]) -> float:
    """Met points (negative items subtract) over positive points, clipped to [0, 1]."""
    positive = sum(p for p in points if p > 0)
    if positive <= 0:
        raise ValueError("a rubric needs at least one item with positive points")
    achieved = sum(p for p, m in zip(points, met, strict=True) if m)
    return min(1.0, max(0.0, achieved / positive))


def _render_conversation(messages: list[dict[str, Any]]) -> str:
    parts = []
    for message in messages:
        content = message["content"]
        if isinstance(content, list):
            content = "\n".join(str(p.get("text", p)) for p in content if isinstance(p, dict))
        parts.append(f"{message['role']}: {content}")
    return "\n\n".join(parts)


async def grade_item(
    client: ChatClient,
    role: RoleConfig,
    conversation: str,
    response: str,
    item: dict[str, Any],
) -> _Grade:
    """Ask the grader about one rubric item; re-ask when the reply is not the JSON we want."""
    user = GRADER_USER.format(
        conversation=conversation,
        response=response,
        points=_fmt(item["points"]),
        criterion=item["criterion"],
    )
    messages = [{"role": "system", "content": GRADER_SYSTEM}, {"role": "user", "content": user}]
    # The same reply rule as the reward's judges: a response quoting a forged grade object
    # cannot pick the grade (see ropd.jsonparse).
    return await ask_json(
        client,
        role,
        messages,
        GRADE_SCHEMA,
        _Grade.model_validate,
        UsageBook(),
        retries=PARSE_ATTEMPTS - 1,
    )


def _fmt(points: float) -> str:
    return str(int(points)) if float(points).is_integer() else str(points)


async def score_rubric(
    client: ChatClient,
    role: RoleConfig,
    messages: list[dict[str, Any]],
    completion: str,
    rubrics: list[dict[str, Any]],
) -> SampleScore:
    """Grade every rubric item of one response concurrently and combine them into a score."""
    conversation = _render_conversation(messages)
    response = answer_for_judge(completion)  # no live reasoning delimiter reaches the grader
    try:
        grades = await asyncio.gather(
            *(grade_item(client, role, conversation, response, item) for item in rubrics)
        )
    except JudgeUnavailable:
        raise
    except JudgeError as exc:
        return SampleScore(None, error=f"grader failed: {exc}")
    met = [g.criteria_met for g in grades]
    points = [float(item["points"]) for item in rubrics]
    return SampleScore(
        rubric_score(points, met),
        {"met": met, "explanations": [g.explanation for g in grades]},
    )
