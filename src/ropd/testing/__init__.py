"""Fake judges for testing code built on ropd (and ropd itself), without any model behind them.

Every fake answers through one reply policy, `(messages, json_schema) -> text` (`replies.py`),
so the same judge behaves the same in memory (`ScriptedChatClient`, exact and instant) and over
real HTTP (`StubJudgeServer`, latency, failures and format quirks of real endpoints):

- `schema_reply`: a valid, reproducible reply for any ropd schema (training tests, benchmarks);
  `scripted_judge()` is an in-memory client answering every role with it.
- `content_policy(rubric)`: "answer mentions W" criteria and verdicts that follow answer content,
  so a test knows every right verdict (engine tests); `make_client` is its in-memory client.

`FaultJudgeServer` is the stub with a seeded share of faults (HTTP errors, hangs, resets, HTML or
cut JSON with status 200, wrong-shaped or truncated content), for robustness tests.

This package is for tests: `ropd.llm` and `ropd.reward` never import it.
"""

from __future__ import annotations

from ropd.testing.faults import (
    ALL_FAULTS,
    CONTENT_FAULTS,
    EMPTY_CONTENT,
    ENVELOPE_FAULTS,
    FINISH_LENGTH,
    HANG,
    HTML_200,
    HTTP_429,
    HTTP_429_RETRY_AFTER,
    HTTP_500,
    HTTP_502,
    HTTP_503,
    INVALID_JSON_200,
    NO_CHOICES_200,
    RESET,
    SELF_REPORTED_TOTALS,
    TRANSPORT_FAULTS,
    TRUNCATED_JSON_200,
    WRONG_SHAPE,
    FaultJudgeServer,
)
from ropd.testing.replies import (
    ReplyError,
    ReplyPolicy,
    answers_in,
    content_policy,
    content_verifier,
    rubric_reply,
    schema_reply,
)
from ropd.testing.scripted import ScriptedCall, ScriptedChatClient, make_client, scripted_judge
from ropd.testing.stub_server import StubJudgeServer

__all__ = [
    "ALL_FAULTS",
    "CONTENT_FAULTS",
    "EMPTY_CONTENT",
    "ENVELOPE_FAULTS",
    "FINISH_LENGTH",
    "HANG",
    "HTML_200",
    "HTTP_429",
    "HTTP_429_RETRY_AFTER",
    "HTTP_500",
    "HTTP_502",
    "HTTP_503",
    "INVALID_JSON_200",
    "NO_CHOICES_200",
    "RESET",
    "SELF_REPORTED_TOTALS",
    "TRANSPORT_FAULTS",
    "TRUNCATED_JSON_200",
    "WRONG_SHAPE",
    "FaultJudgeServer",
    "ReplyError",
    "ReplyPolicy",
    "ScriptedCall",
    "ScriptedChatClient",
    "StubJudgeServer",
    "answers_in",
    "content_policy",
    "content_verifier",
    "make_client",
    "rubric_reply",
    "schema_reply",
    "scripted_judge",
]
