"""The one reply policy of ropd's fake judges: what a judge answers, apart from how it is reached.

A policy is a function `(messages, json_schema) -> reply text`. The in-memory
`ScriptedChatClient` and the HTTP `StubJudgeServer` both answer through one, so a test can move
from memory to real HTTP without its judge changing its mind. A request's role is read from the
schema's name (`ropd_rubric`, `ropd_verdicts`, `ropd_scalar_score`); no schema means plain text.

- `schema_reply`: a valid reply for any ropd schema, pseudo-random but reproducible from the
  request, so rewards differ inside a group as with a real judge (training tests, benchmarks).
- `content_policy(rubric)`: a fixed rubric of "answer mentions W" criteria and verdicts that
  follow answer content, so a test knows the right verdict for every answer (engine tests).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from ropd.errors import JudgeError
from ropd.llm.types import JsonSchema
from ropd.reward.schemas import (
    OVD_SCHEMA_NAME,
    RUBRIC_SCHEMA_NAME,
    SCALAR_SCHEMA_NAME,
    VERDICTS_SCHEMA_NAME,
    answer_key,
    verdicts_schema_shape,
)

ReplyPolicy = Callable[[list[dict[str, Any]], JsonSchema | None], str]

ANSWER_BLOCK = re.compile(r"<<<(ROPD-[0-9A-F]+) ANSWER (\d+)>>>\n(.*?)\n<<<\1 END>>>", re.DOTALL)
CRITERION_BLOCK = re.compile(
    r"<<<(ROPD-[0-9A-F]+) CRITERION (C\d+)>>>\nanswer mentions (\w+)\n<<<\1 END>>>"
)
CATEGORIES = ("correctness", "reasoning", "completeness", "clarity", "format")

# Which choice of which request a reply is (set by the fakes around each choice): lets a policy
# sample different texts for the n choices of one request, as a model at temperature > 0 does,
# without the policy's signature carrying transport details.
_SAMPLE: ContextVar[tuple[object, ...]] = ContextVar("ropd_testing_sample", default=())


class ReplyError(JudgeError):
    """Raised by a policy to fail a request: over HTTP the stub answers with `status`."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


@contextmanager
def sample(*key: object) -> Iterator[None]:
    """Replies made inside are sample `key` (e.g. choice number, request seed) of their request."""
    token = _SAMPLE.set(key)
    try:
        yield
    finally:
        _SAMPLE.reset(token)


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _conversation(messages: list[dict[str, Any]]) -> list[tuple[object, object]]:
    """What a reply may depend on: roles and contents (identical in memory and over HTTP)."""
    return [(m.get("role"), m.get("content")) for m in messages]


# -- schema_reply: any ropd schema ------------------------------------------------------------


def _rubric(schema: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Four criteria (the scorer's default minimum), or as near as the schema's bounds allow."""
    array = (schema.get("properties") or {}).get("criteria") or {}
    low = int(array.get("minItems", 1))
    high = int(array.get("maxItems", max(low, 6)))
    criteria = []
    for i in range(1, max(low, min(4, high)) + 1):
        category = CATEGORIES[(i - 1) % len(CATEGORIES)]
        criteria.append(
            {
                "category": category,
                "criterion": f"The response satisfies check {i} on {category}.",
                "points": 5 if i == 1 else rng.choice([1, 2, 4]),
            }
        )
    return {"criteria": criteria}


def _verdicts(schema: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    count, ids = verdicts_schema_shape(schema)
    return {answer_key(i): {cid: rng.random() < 0.6 for cid in ids} for i in range(1, count + 1)}


def _teacher_text(rng: random.Random) -> str:
    a, b = rng.randint(2, 99), rng.randint(2, 99)
    return (
        f"We need {a} + {b}. Adding the tens and then the units gives {a + b}. "
        f"Checking by subtraction: {a + b} - {b} = {a}. The answer is {a + b}."
    )


def schema_reply(messages: list[dict[str, Any]], json_schema: JsonSchema | None) -> str:
    """A valid reply for the requested ropd schema; plain answer text without a schema.

    Rubric, verdict and scalar replies depend only on the request (the n choices agree); plain
    text is sampled per choice, so a teacher's K answers to one prompt differ.
    """
    conversation = _conversation(messages)
    if json_schema is None:
        return _teacher_text(_rng(conversation, *_SAMPLE.get()))
    rng = _rng(conversation, json_schema.name)
    if json_schema.name == RUBRIC_SCHEMA_NAME:
        return json.dumps(_rubric(json_schema.schema, rng))
    if json_schema.name == VERDICTS_SCHEMA_NAME:
        return json.dumps(_verdicts(json_schema.schema, rng))
    if json_schema.name == SCALAR_SCHEMA_NAME:
        return json.dumps({"reasoning": "Checked the answer.", "score": rng.randint(0, 10)})
    if json_schema.name == OVD_SCHEMA_NAME:  # {"score"} or one score per answer key
        properties = json_schema.schema.get("properties") or {}
        return json.dumps({key: rng.randint(0, p["maximum"]) for key, p in properties.items()})
    return json.dumps({"result": "ok"})  # a JSON request for a schema ropd does not define


# -- the content policy: verdicts that follow answer content ----------------------------------


def rubric_reply(words_points: list[tuple[str, int]], category: str = "correctness") -> str:
    """A rubric reply of "answer mentions W" criteria, one per (word, points).

    Its criteria carry ids of their own (X0, X1, ...), as chatty judges add: the scorer must
    replace them with C1..Cn.
    """
    criteria = [
        {"id": f"X{n}", "category": category, "criterion": f"answer mentions {w}", "points": p}
        for n, (w, p) in enumerate(words_points)
    ]
    return json.dumps({"criteria": criteria})


def answers_in(messages: list[dict[str, Any]]) -> dict[int, str]:
    """Answer number -> text, as the verifier was shown them."""
    return {int(n): text for _, n, text in ANSWER_BLOCK.findall(messages[-1]["content"])}


def content_verifier(messages: list[dict[str, Any]], json_schema: JsonSchema | None) -> str:
    """Verdicts by content: criterion 'answer mentions W' is true iff W is in the answer."""
    # the verifier prompt is the user turn; on a re-ask it is followed by the reply and the error
    text = messages[-1]["content"] if len(messages) == 2 else messages[1]["content"]
    criteria = [(cid, word) for _, cid, word in CRITERION_BLOCK.findall(text)]
    shown = {int(n): t for _, n, t in ANSWER_BLOCK.findall(text)}
    verdicts = {
        answer_key(n): {cid: word in body for cid, word in criteria}
        for n, body in sorted(shown.items())
    }
    return json.dumps(verdicts)


def content_policy(rubric: str) -> ReplyPolicy:
    """Rubric requests get `rubric`, verdict requests `content_verifier`, others `schema_reply`."""

    def policy(messages: list[dict[str, Any]], json_schema: JsonSchema | None) -> str:
        name = json_schema.name if json_schema is not None else None
        if name == RUBRIC_SCHEMA_NAME:
            return rubric
        if name == VERDICTS_SCHEMA_NAME:
            return content_verifier(messages, json_schema)
        return schema_reply(messages, json_schema)

    return policy


def held_until(
    count: int, policy: ReplyPolicy = schema_reply, timeout_s: float = 25.0
) -> ReplyPolicy:
    """`policy`, but every request waits until `count` requests have arrived in all (or
    `timeout_s` passed); later ones pass at once. With it a test counts how many requests a
    client holds in flight (the stub's `max_concurrent`) without racing a latency: a client
    that sends fewer than `count` at once is held to the timeout and caught by the count."""
    lock = threading.Lock()
    everyone = threading.Event()
    arrived = 0

    def held(messages: list[dict[str, Any]], json_schema: JsonSchema | None) -> str:
        nonlocal arrived
        with lock:
            arrived += 1
            if arrived >= count:
                everyone.set()
        everyone.wait(timeout=timeout_s)
        return policy(messages, json_schema)

    return held
