"""Step 4 of the method, blind verification: the Verifier checks every answer of a pool.

The pool is the group's distinct student answers plus (by default) the teacher references,
shuffled with a seed and shown as Answer 1..M, so the Verifier cannot tell who wrote what. It
returns one boolean per criterion for every answer; the structure is validated strictly and
verdicts are read only by answer number. Large pools can be split into several calls.
"""

from __future__ import annotations

import asyncio
import random
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ropd.llm.config import RoleConfig
from ropd.llm.types import ChatClient, UsageBook
from ropd.prompts import PromptTemplate, load_template
from ropd.reward import render
from ropd.reward.induction import shown
from ropd.reward.judge_call import ask_json
from ropd.reward.schemas import verdicts_schema
from ropd.reward.types import Source
from ropd.rubric import Rubric

Verdict = tuple[int | None, dict[str, bool]]  # (label the answer was shown under, booleans)


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


def validate_verdicts(
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


class BlindVerifier:
    """Writes the Verifier's messages and collects verdicts for a whole pool."""

    def __init__(
        self,
        role: RoleConfig,
        *,
        blind: bool,
        seed: int,
        max_answers_per_call: int | None,
        parse_retries: int,
        prompts_dir: Any = None,
    ):
        self.role = role
        self.blind = blind
        self.seed = seed
        self.max_answers_per_call = max_answers_per_call
        self.parse_retries = parse_retries
        self.system: PromptTemplate = load_template("verifier_system", prompts_dir)
        self.user: PromptTemplate = load_template("verifier_user", prompts_dir)

    async def verify(
        self,
        client: ChatClient,
        prompt_text: str,
        rubric: Rubric,
        pool: list[PoolEntry],
        book: UsageBook,
        shuffle_key: str,
    ) -> list[Verdict]:
        """Verdicts for every pool entry (in pool order), with the label it was shown under.

        An empty answer meets no criterion; no judge call is spent on it.
        """
        ids = [c.id for c in rubric.criteria]
        results: list[Verdict | None] = [None] * len(pool)
        order = []
        for k, entry in enumerate(pool):
            if entry.text.strip():
                order.append(k)
            else:
                results[k] = (None, {cid: False for cid in ids})
        random.Random(f"{self.seed}:{shuffle_key}").shuffle(order)
        size = self.max_answers_per_call or max(len(order), 1)
        chunks = [order[s : s + size] for s in range(0, len(order), size)]

        async def judge(chunk: list[int]) -> None:
            entries = [pool[k] for k in chunk]
            verdicts = await self.verify_chunk(client, prompt_text, rubric, entries, book)
            for position, k in enumerate(chunk):
                results[k] = (position + 1, verdicts[position])

        await asyncio.gather(*(judge(c) for c in chunks))
        assert all(r is not None for r in results), "a pool entry was left without verdicts"
        return results  # type: ignore[return-value]

    def messages(
        self, prompt_text: str, rubric: Rubric, entries: list[PoolEntry]
    ) -> list[dict[str, str]]:
        ids = [c.id for c in rubric.criteria]
        texts = [shown(e.text) for e in entries]
        boundary = render.new_boundary(
            [prompt_text, *texts, *(c.criterion for c in rubric.criteria)]
        )
        if not self.blind:  # ablation: identities revealed to the verifier
            texts = [f"(written by the {e.source} model)\n{t}" for e, t in zip(entries, texts)]
        numbers = list(range(1, len(entries) + 1))
        user = self.user.render(
            prompt=render.render_task(boundary, prompt_text),
            rubric=render.render_rubric(boundary, rubric),
            boundary=boundary,
            num_answers=str(len(entries)),
            answers=render.render_blocks(boundary, "ANSWER", texts, numbers),
            answer_numbers=", ".join(map(str, numbers)),
            criterion_ids=", ".join(ids),
        )
        return [
            {"role": "system", "content": self.system.render()},
            {"role": "user", "content": user},
        ]

    async def verify_chunk(
        self,
        client: ChatClient,
        prompt_text: str,
        rubric: Rubric,
        entries: list[PoolEntry],
        book: UsageBook,
    ) -> list[dict[str, bool]]:
        """One Verifier call: verdicts for `entries`, in their order."""
        ids = [c.id for c in rubric.criteria]
        return await ask_json(
            client,
            self.role,
            self.messages(prompt_text, rubric, entries),
            verdicts_schema(len(entries), ids),
            lambda data: validate_verdicts(data, len(entries), ids),
            book,
            retries=self.parse_retries,
        )
