"""Step 4 of the method, blind verification: the Verifier checks every answer of a pool.

The pool is the group's distinct student answers plus (by default) the teacher references,
shuffled with a seed and shown as Answer 1..M, so the Verifier cannot tell who wrote what. It
returns one boolean per criterion for every answer; the structure is validated strictly and
verdicts are read only by answer number.

Large pools are split into several calls: at most `max_answers_per_call` answers each, and no
more than fit the Verifier's context window (`ropd.llm.tokens`), each call carrying the task and
the whole rubric. An answer too long to fit even alone is clipped (head and tail kept, the cut
said in its text). When the endpoint still refuses a prompt as too long (`ContextOverflow`), the
call is split in two, or its lone answer clipped harder, a bounded number of times.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import re
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, StrictBool, StrictInt

from ropd.errors import ContextOverflow
from ropd.llm.config import RoleConfig
from ropd.llm.tokens import ContextWindows, counter_for
from ropd.llm.types import ChatClient, UsageBook
from ropd.prompts import PromptTemplate, load_template
from ropd.reward import render
from ropd.reward.induction import shown
from ropd.reward.judge_call import ask_json
from ropd.reward.schemas import verdicts_schema
from ropd.reward.types import ContextRecord, Source
from ropd.rubric import Rubric
from ropd.text import clip_to_fit

Verdict = tuple[int | None, dict[str, bool]]  # (label the answer was shown under, booleans)

# Tokens an answer adds besides its text: block markers with the number, the authorship line of
# the non-blind ablation, the answer's share of the prompt's answer list.
ANSWER_BLOCK_TOKENS = 40
MIN_ANSWER_TOKENS = 64  # an answer clipped to less says nothing a verdict could rest on
# Context-length errors answered by sending less, one after the other, before a call gives up
# (12 answers halve down to one in 4; the rest clip a lone answer harder).
MAX_RESPLITS = 8


@dataclass(frozen=True)
class PoolEntry:
    """One distinct answer to verify, and where it came from."""

    source: Source
    index: int
    text: str


class _VerdictEntry(BaseModel):
    # strict: `1` or "yes" is not a verdict, and `true` is not answer 1 (a judge's sloppy or
    # quoted JSON must not pass as booleans)
    answer: StrictInt
    verdicts: dict[str, StrictBool]


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
        windows: ContextWindows | None = None,
    ):
        self.role = role
        self.blind = blind
        self.seed = seed
        self.max_answers_per_call = max_answers_per_call
        self.parse_retries = parse_retries
        self.system: PromptTemplate = load_template("verifier_system", prompts_dir)
        self.user: PromptTemplate = load_template("verifier_user", prompts_dir)
        self.windows = windows if windows is not None else ContextWindows()
        self.counter = counter_for(role)

    def calling(self, role: RoleConfig) -> BlindVerifier:
        """This verifier (settings, templates, context windows) calling `role` instead: the
        sampled checks' second Verifier (`reward/health_checks.py`)."""
        twin = copy.copy(self)
        twin.role, twin.counter = role, counter_for(role)
        return twin

    async def verify(
        self,
        client: ChatClient,
        prompt_text: str,
        rubric: Rubric,
        pool: list[PoolEntry],
        book: UsageBook,
        shuffle_key: str,
        record: ContextRecord | None = None,
    ) -> list[Verdict]:
        """Verdicts for every pool entry (in pool order), with the label it was shown under.

        An empty answer meets no criterion; no judge call is spent on it. How the pool was split
        and clipped is added to `record`.
        """
        record = record if record is not None else ContextRecord()
        ids = [c.id for c in rubric.criteria]
        results: list[Verdict | None] = [None] * len(pool)
        order = []
        for k, entry in enumerate(pool):
            if entry.text.strip():
                order.append(k)
            else:
                results[k] = (None, {cid: False for cid in ids})
        random.Random(f"{self.seed}:{shuffle_key}").shuffle(order)

        async def judge(chunk: list[int], depth: int, limit: int | None = None) -> None:
            """One call for `chunk`; on a context-length error, the same answers in less room.

            `limit`: the token allowance of a lone answer that had to be clipped harder.
            """
            room, per_answer = self._room(prompt_text, rubric)
            entries = [pool[k] for k in chunk]
            clipped = 0
            allowance = min((x for x in (room, limit) if x is not None), default=None)
            if len(entries) == 1 and allowance is not None:
                text = clip_to_fit(entries[0].text, allowance - per_answer, self.counter.text)
                clipped = int(text != entries[0].text)
                entries = [replace(entries[0], text=text)]
            try:
                verdicts = await self.verify_chunk(client, prompt_text, rubric, entries, book)
            except ContextOverflow as overflow:
                if depth >= MAX_RESPLITS:
                    raise
                record.resplits += 1
                sent = self.counter.messages(self.messages(prompt_text, rubric, entries))
                self.windows.learn(self.role, overflow, sent)
                if len(chunk) > 1:
                    parts = self.plan(prompt_text, rubric, [pool[k].text for k in chunk])
                    if len(parts) < 2:  # what was learned does not split it: halve
                        parts = [
                            list(range(len(chunk) // 2)),
                            list(range(len(chunk) // 2, len(chunk))),
                        ]
                    await asyncio.gather(
                        *(judge([chunk[i] for i in part], depth + 1) for part in parts)
                    )
                    return
                room, per_answer = self._room(prompt_text, rubric)
                used = self.counter.text(entries[0].text) + per_answer
                smaller = room if room is not None and room < used else used // 2
                await judge(chunk, depth + 1, smaller)
                return
            record.windows["verifier"] = self.windows.window(self.role)
            record.verifier_chunks.append(len(chunk))
            record.verifier_clipped_answers += clipped
            for position, k in enumerate(chunk):
                results[k] = (position + 1, verdicts[position])

        chunks = self.plan(prompt_text, rubric, [pool[k].text for k in order]) if order else []
        await asyncio.gather(*(judge([order[i] for i in chunk], 0) for chunk in chunks))
        assert all(r is not None for r in results), "a pool entry was left without verdicts"
        return results  # type: ignore[return-value]

    def plan(self, prompt_text: str, rubric: Rubric, texts: list[str]) -> list[list[int]]:
        """Consecutive calls (indices into `texts`) of at most `max_answers_per_call` answers
        whose prompts fit the window (an answer over the whole room goes alone, to be clipped).
        """
        room, per_answer = self._room(prompt_text, rubric)
        cap = self.max_answers_per_call or len(texts)
        chunks: list[list[int]] = []
        used = 0
        for i, text in enumerate(texts):
            cost = 0 if room is None else min(self.counter.text(text) + per_answer, room)
            if not chunks or len(chunks[-1]) >= cap or (room is not None and used + cost > room):
                chunks.append([])
                used = 0
            chunks[-1].append(i)
            used += cost
        return chunks

    def _room(self, prompt_text: str, rubric: Rubric) -> tuple[int | None, int]:
        """(tokens the answers of one call may take, None while the window is unknown; the
        tokens each answer adds besides its text).

        The task and the whole rubric go into every call; when they alone leave no room for an
        answer the group cannot be verified with this judge (`ContextOverflow`).
        """
        ids = [c.id for c in rubric.criteria]
        one, two = (self.counter.text(_compact(verdicts_schema(n, ids).schema)) for n in (1, 2))
        per_answer = ANSWER_BLOCK_TOKENS + max(two - one, 0)  # the schema may go in the prompt
        budget = self.windows.prompt_budget(self.role)
        if budget is None:
            return None, per_answer
        fixed = self.counter.messages(self.messages(prompt_text, rubric, [])) + one
        room = budget - fixed
        if room < per_answer + MIN_ANSWER_TOKENS:
            window = self.windows.window(self.role)
            raise ContextOverflow(
                f"{self.role.name}: the task and rubric take about {fixed} tokens, but a "
                f"{window.tokens}-token context window ({window.source}) leaves "
                f"{max(budget, 0)} for the prompt after max_tokens {self.role.max_tokens} and "
                "the margin; no answer fits beside them",
                window=window.tokens,
            )
        return room, per_answer

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


def _compact(schema: dict[str, Any]) -> str:
    """A schema as the client writes it into a prompt when the endpoint cannot enforce it."""
    return json.dumps(schema, separators=(",", ":"))
