"""Judge tokens of one group for the scalar judges: T-Judge (`tjudge`) and OVD (`ovd`).

Both make one phase of calls and no rubric: T-Judge asks once per student answer, with the
group's first `num_references` teacher answers in the prompt, and writes its reasoning before
a 0-10 score; OVD asks the teacher once per answer (`per_call: one`) or once per group for all
its answers (`per_call: group`) and writes only the 0-9 score(s). The messages come from the
scorers' own builders (`TJudgeScorer.messages`, `OVDScorer.messages_alone` and
`messages_together`) on answers cleaned as the scorer cleans them, so the plan counts what the
run sends. Neither scorer splits a prompt to fit a window: one that does not fit is a problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ropd.llm.tokens import ContextWindows, TokenCounter
from ropd.plan.groups import Counter
from ropd.plan.model import Load
from ropd.reward.ovd import OVDScorer
from ropd.reward.tjudge import TJudgeScorer
from ropd.reward.types import Group

# expected output: T-Judge writes `{"reasoning": "...", "score": n}`, its reasoning about 150
# tokens; OVD writes `{"score": n}` or one `"answer_k": n,` per answer, about 8 tokens a score
TJUDGE_OUTPUT_TOKENS = 160
OVD_TOKENS_PER_SCORE = 8

ScalarScorer = TJudgeScorer | OVDScorer


@dataclass
class ScalarLoad:
    """One group's load on the scalar judge, and the prompts that would not fit its window."""

    judge: Load
    problems: list[str] = field(default_factory=list)


def scalar_load(
    scorer: ScalarScorer,
    group_id: str,
    prompt: str | list[dict[str, Any]],
    references: list[str],
    students: list[str],
    *,
    counter: Counter | None = None,
    windows: ContextWindows | None = None,
) -> ScalarLoad:
    """The judge calls and tokens of one group as `scorer` would judge it.

    `references` are the group's teacher answers (T-Judge shows its first `num_references`;
    OVD none). `counter` counts the prompts (default: the judge role's own counter).
    """
    role = scorer.config.judge
    own = TokenCounter(role.tokenizer)  # sizes prompts against the window, as ropd counts
    cleaned = [scorer.clean(text) for text in students]
    out = ScalarLoad(Load())
    calls: list[tuple[list[dict[str, str]], int]] = []  # (messages, expected output)
    if isinstance(scorer, TJudgeScorer):
        group = Group(id=group_id, prompt=prompt, student_responses=students,
                      teacher_responses=references)  # fmt: skip
        calls = [(scorer.messages(group, text), TJUDGE_OUTPUT_TOKENS) for text in cleaned]
    else:
        shown = [text for text in cleaned if text.strip()]  # an empty answer scores 0, no call
        if scorer.config.per_call == "group" and shown:
            calls = [(scorer.messages_together(prompt, shown), OVD_TOKENS_PER_SCORE * len(shown))]
        elif scorer.config.per_call == "one":
            calls = [(scorer.messages_alone(prompt, text), OVD_TOKENS_PER_SCORE) for text in shown]
    budget = (windows or ContextWindows()).prompt_budget(role)
    for messages, expected in calls:
        tokens = (counter or own).messages(messages)
        counted = own.messages(messages) if counter is not None else tokens
        if budget is not None and counted > budget:
            out.problems.append(
                f"a {role.name} prompt of {counted} tokens does not fit its window (room for "
                f"{max(budget, 0)} beside max_tokens {role.max_tokens}); the {role.name} scorer "
                "does not split prompts"
            )
        out.judge += Load(
            calls=1,
            input_tokens=tokens,
            output_expected=min(role.max_tokens, expected),
            output_bound=role.max_tokens,
        )
    return out
