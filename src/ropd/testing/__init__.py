"""Fake judges for testing code built on ropd (and ropd itself), without any model behind them.

Every fake answers through one reply policy, `(messages, json_schema) -> text` (`replies.py`),
so the same judge behaves the same in memory (`ScriptedChatClient`, exact and instant) and over
real HTTP (`StubJudgeServer`, latency, failures and format quirks of real endpoints):

- `schema_reply`: a valid, reproducible reply for any ropd schema (training tests, benchmarks);
  `scripted_judge()` is an in-memory client answering every role with it.
- `content_policy(rubric)`: "answer mentions W" criteria and verdicts that follow answer content,
  so a test knows every right verdict (engine tests); `make_client` is its in-memory client.
- `held_until(n, policy)`: holds every request until n have arrived, so a test counts how many
  requests a client keeps in flight at once without racing a latency.

The fault-injecting stub (`FaultJudgeServer`, for robustness tests) and the benchmarks are
development tools, not part of this package: they live in the development package `ropd_dev`
(`ropd_dev.faults`, `ropd_dev.bench`; folder `dev/` of a source checkout).

This package is for tests: `ropd.llm` and `ropd.reward` never import it.
"""

from __future__ import annotations

from ropd.testing.replies import (
    ReplyError,
    ReplyPolicy,
    answers_in,
    content_policy,
    content_verifier,
    held_until,
    rubric_reply,
    schema_reply,
)
from ropd.testing.scripted import ScriptedCall, ScriptedChatClient, make_client, scripted_judge
from ropd.testing.stub_server import StubJudgeServer

__all__ = [
    "ReplyError",
    "ReplyPolicy",
    "ScriptedCall",
    "ScriptedChatClient",
    "StubJudgeServer",
    "answers_in",
    "content_policy",
    "content_verifier",
    "held_until",
    "make_client",
    "rubric_reply",
    "schema_reply",
    "scripted_judge",
]

# Names this package held up to 0.2, now in the development package (`dev/`, `ropd_dev.faults`).
_MOVED_TO_DEV = frozenset(
    [
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
    ]
)


def __getattr__(name: str) -> object:
    """A name that moved says where it went (an ImportError naming the new module)."""
    if name in _MOVED_TO_DEV:
        raise ImportError(
            f"ropd.testing.{name} moved to ropd_dev.faults, the development package "
            "(from a source checkout: pip install --no-deps -e dev/)"
        )
    raise AttributeError(f"module 'ropd.testing' has no attribute {name!r}")
