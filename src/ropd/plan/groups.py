"""Judge tokens of one group, counted on the prompts ropd would really send.

The messages come from the scorer's own builders (`RubricInducer.messages`,
`BlindVerifier.messages`), answers are cleaned as the scorer cleans them (`BaseScorer.clean`),
the Rubricator's answers are fitted to its window by `RubricInducer.fit` and the Verifier's pool
is split by `BlindVerifier.plan`: the plan counts what the run would send, not a re-derivation
of it. Only the rubric is made up (the Rubricator has not written it yet): `criteria` criteria
of about `criterion_tokens` tokens each.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ropd.errors import ContextOverflow
from ropd.plan.model import Load
from ropd.reward import render
from ropd.reward.group_scorer import GroupScorer
from ropd.reward.schemas import rubric_schema
from ropd.reward.verification import PoolEntry
from ropd.rubric import Criterion, Rubric
from ropd.text import clip_to_fit

RUBRIC_TOKENS_PER_CRITERION = 40  # a criterion as the Rubricator writes it: JSON, text, points
VERDICT_TOKENS_PER_CHECK = 8  # one `"C3": true,` in the Verifier's reply
CRITERION_TOKENS = 20  # the text of one criterion as the Verifier reads it


class Counter(Protocol):
    """What counts prompt tokens (`ropd.llm.tokens.TokenCounter` or a stand-in)."""

    def text(self, text: str) -> int: ...

    def messages(self, messages: Sequence[dict[str, Any]]) -> int: ...


@dataclass
class GroupLoad:
    """One group's Rubricator and Verifier load, and how its Verifier pool was split."""

    rubricator: Load
    verifier: Load
    verifier_chunks: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def text_of_tokens(tokens: int, counter: Counter, tag: str = "") -> str:
    """A placeholder answer that `counter` counts as about `tokens` tokens (distinct per tag)."""
    if tokens <= 0:
        return ""
    head = f"[{tag}] " if tag else ""
    words = tokens
    text = head + " ".join(["step"] * words)
    for _ in range(4):
        got = counter.text(text)
        if abs(got - tokens) <= max(1, tokens // 200):
            break
        words = max(1, round(words * tokens / max(got, 1)))
        text = head + " ".join(["step"] * words)
    return text


def placeholder_rubric(criteria: int, counter: Counter, criterion_tokens: int) -> Rubric:
    """A rubric of the assumed size, for counting the Verifier's prompts."""
    return Rubric(
        criteria=[
            Criterion(
                id=f"C{n}",
                category="correctness",
                criterion=text_of_tokens(criterion_tokens, counter, f"criterion {n}"),
                points=5 if n == 1 else 2,
            )
            for n in range(1, criteria + 1)
        ]
    )


def group_load(
    scorer: GroupScorer,
    group_id: str,
    prompt: str | list[dict[str, Any]],
    references: list[str],
    students: list[str],
    *,
    criteria: int,
    criterion_tokens: int = CRITERION_TOKENS,
    counter: Counter | None = None,
    rubric: Rubric | None = None,
    induce: bool = True,
) -> GroupLoad:
    """The judge calls and tokens of one group as `scorer` would judge it.

    `counter` counts the prompts (default: each role's own counter, as the scorer sizes them);
    windows, fitting and splitting always use the scorer's own counters. `rubric` is the one
    the Verifier reads (default: `criteria` made-up criteria of `criterion_tokens` each).
    `induce=False` (RaR without `mix_induced`: the rubric is the data's) asks no Rubricator.
    """
    cfg = scorer.config
    refs = [scorer.clean(t) for t in (references if cfg.num_teacher_refs is None
                                      else references[: cfg.num_teacher_refs])]  # fmt: skip
    cleaned = [scorer.clean(t) for t in students]
    distinct = list(dict.fromkeys(cleaned)) if cfg.dedupe else cleaned
    prompt_text = render.render_prompt(prompt)
    if rubric is None:
        rubric = placeholder_rubric(criteria, scorer.verifier.counter, criterion_tokens)
    load = GroupLoad(Load(), Load())
    if cfg.rubric_mode == "shared":
        rounds = [(distinct, group_id)]
    else:  # one rubric per distinct student answer, each verified with the references
        rounds = [([s], f"{group_id}:{n}") for n, s in enumerate(distinct)]
    for shown_students, shuffle_key in rounds:
        if induce:
            load.rubricator += _rubricator(scorer, prompt_text, refs, shown_students, criteria,
                                           counter, load.problems)  # fmt: skip
        pool = [PoolEntry("student", i, t) for i, t in enumerate(shown_students)]
        if cfg.teacher_in_pool:
            pool += [PoolEntry("teacher", j, t) for j, t in enumerate(refs)]
        load.verifier += _verifier(scorer, prompt_text, rubric, pool, shuffle_key, counter, load)
    return load


def _rubricator(
    scorer: GroupScorer,
    prompt_text: str,
    refs: list[str],
    students: list[str],
    criteria: int,
    counter: Counter | None,
    problems: list[str],
) -> Load:
    inducer = scorer.inducer
    cfg = scorer.config
    answers = [*refs, *students]
    try:  # the room the run fits answers into (None while the window is unknown)
        room = inducer._room(prompt_text, rubric_schema(cfg.min_criteria, cfg.max_criteria),
                             len(answers))  # fmt: skip
    except ContextOverflow as overflow:
        problems.append(str(overflow))
        return Load()
    fitted = inducer.fit(answers, room)
    messages = inducer.messages(prompt_text, fitted[: len(refs)], fitted[len(refs) :])
    bound = inducer.role.max_tokens
    return Load(
        calls=1,
        input_tokens=(counter or inducer.counter).messages(messages),
        output_expected=min(bound, criteria * RUBRIC_TOKENS_PER_CRITERION),
        output_bound=bound,
    )


def _verifier(
    scorer: GroupScorer,
    prompt_text: str,
    rubric: Rubric,
    pool: list[PoolEntry],
    shuffle_key: str,
    counter: Counter | None,
    load: GroupLoad,
) -> Load:
    verifier = scorer.verifier
    order = [k for k, entry in enumerate(pool) if entry.text.strip()]  # empty: no call spent
    random.Random(f"{verifier.seed}:{shuffle_key}").shuffle(order)  # the run's own order
    if not order:
        return Load()
    try:
        room, per_answer = verifier._room(prompt_text, rubric)
        chunks = verifier.plan(prompt_text, rubric, [pool[k].text for k in order])
    except ContextOverflow as overflow:
        load.problems.append(str(overflow))
        return Load()
    bound = verifier.role.max_tokens
    total = Load()
    for chunk in chunks:
        entries = [pool[order[i]] for i in chunk]
        if len(entries) == 1 and room is not None:  # a lone answer over the room is clipped
            text = clip_to_fit(entries[0].text, room - per_answer, verifier.counter.text)
            entries = [replace(entries[0], text=text)]
        messages = verifier.messages(prompt_text, rubric, entries)
        checks = len(entries) * len(rubric.criteria)
        total += Load(
            calls=1,
            input_tokens=(counter or verifier.counter).messages(messages),
            output_expected=min(bound, checks * VERDICT_TOKENS_PER_CHECK),
            output_bound=bound,
        )
        load.verifier_chunks.append(len(entries))
    return total
