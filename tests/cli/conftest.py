"""Fixtures of the command-line tests: a stub judge endpoint behind `ropd score`.

The CLI runs unpatched, through the real OpenAI client, against a `StubJudgeServer` whose
verdicts follow answer content; tests inspect what reached the judge through the stub's
recorded request bodies.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ropd.testing import StubJudgeServer, content_policy, rubric_reply

RUBRIC = rubric_reply(
    [("391", 5), ("because", 2), ("check", 1), ("units", 2)], category="correctness"
)


@pytest.fixture
def stub() -> Iterator[StubJudgeServer]:
    """A judge endpoint on 127.0.0.1: RUBRIC for every rubric, verdicts by answer content."""
    with StubJudgeServer(latency_s=0.0, policy=content_policy(RUBRIC)) as server:
        yield server
