"""The progress line shows the judge working: requests in flight, retried, waiting Retry-After."""

from __future__ import annotations

import io
import json
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console

from ropd.cli.score import _live
from ropd.llm.client import OpenAIChatClient
from ropd.llm.types import Completion, UsageBook
from ropd.progress import RunProgress, judge_activity
from ropd.reward.config import ScorerConfig
from ropd.score_file import ScoreFileStats, score_file
from ropd.testing import make_client, rubric_reply


def lines(poll, *, counters: dict[str, int] | None = None, updates: int = 0) -> list[str]:
    """The plain lines of a display polled `updates` times between its first and last line."""
    log = io.StringIO()
    with RunProgress(
        "scoring", "groups", console=Console(file=log, width=300), every_s=0, poll=poll
    ) as p:
        p.start(total=2, **(counters or {}))
        for _ in range(updates):
            p._refresh()
            p._emit()
    return log.getvalue().splitlines()


def test_judge_activity_reads_the_clients_counters():
    client = SimpleNamespace(in_flight=3, retries={"rubricator": 2, "verifier": 1})
    assert judge_activity(client) == {
        "in_flight": 3,
        "retried": 3,
        "waiting_Retry-After": None,  # shown only while a request waits one out
    }
    client.waiting_retry_after = 2
    assert judge_activity(client)["waiting_Retry-After"] == 2
    # a client without the counters (a scripted one), or none yet: zeros
    assert judge_activity(object()) == {"in_flight": 0, "retried": 0, "waiting_Retry-After": None}
    assert judge_activity(None)["in_flight"] == 0


def test_the_real_clients_counters_are_the_ones_read():
    client = OpenAIChatClient()
    client.in_flight = 1
    client.retries["verifier"] = 4
    assert judge_activity(client)["in_flight"] == 1 and judge_activity(client)["retried"] == 4
    assert judge_activity(client)["waiting_Retry-After"] is None  # nothing waits on one yet
    client.waiting_retry_after = 2  # two calls sleeping on a server's Retry-After
    assert judge_activity(client)["waiting_Retry-After"] == 2


def test_the_line_shows_in_flight_and_retried_between_results():
    client = SimpleNamespace(in_flight=1, retries={})
    seen: list[int] = []

    def poll():
        seen.append(1)
        if len(seen) == 2:  # the judge retried a timed-out request and waits out a Retry-After
            client.retries["rubricator"] = 1
            client.waiting_retry_after = 7
        if len(seen) == 3:
            client.waiting_retry_after = 0
        return None, judge_activity(client)

    shown = lines(poll, counters={"failed": 0}, updates=2)
    assert shown == [
        "scoring 0/2 groups, failed 0, in flight 1, retried 0, 0s elapsed",
        "scoring 0/2 groups, failed 0, in flight 1, retried 1, waiting Retry-After 7, 0s elapsed",
        "scoring 0/2 groups, failed 0, in flight 1, retried 1, 0s elapsed",
    ]


def test_a_counter_set_to_none_is_hidden_until_set_again():
    log = io.StringIO()
    with RunProgress("scoring", "groups", console=Console(file=log), every_s=0) as p:
        p.start(total=1, a=1, b=2)
        p.update(a=None)
        assert p.line() == "scoring 0/1 groups, b 2, 0s elapsed"
        p.update(a=3)
        assert p.line() == "scoring 0/1 groups, b 2, a 3, 0s elapsed"


def test_the_score_commands_poll_reads_live_tokens_and_requests():
    assert _live([]) == (None, {})
    stats = ScoreFileStats(total=2)
    done, counters = _live([stats])  # before the judge opened: zeros
    assert done is None
    assert counters == {
        "judge_tokens_in": 0,
        "out": 0,
        "in_flight": 0,
        "retried": 0,
        "waiting_Retry-After": None,
    }
    client = OpenAIChatClient()
    client.in_flight = 1
    client.retries["rubricator"] = 2
    client.usage.add("rubricator", Completion(text="", prompt_tokens=900, completion_tokens=80))
    stats.judge = client
    _, counters = _live([stats])
    # tokens of a request that finished count before its group does
    assert counters["judge_tokens_in"] == 900 and counters["out"] == 80
    assert counters["in_flight"] == 1 and counters["retried"] == 2
    assert stats.usage == UsageBook()  # the finished groups' usage is left alone


def test_score_file_hands_its_judge_to_the_progress_display(tmp_path: Path):
    groups = tmp_path / "groups.jsonl"
    row = {"id": "g", "prompt": "6*7?", "student_responses": ["42"], "teacher_responses": ["42"]}
    groups.write_text(json.dumps(row) + "\n")
    client = make_client(rubric_reply([("42", 2), ("a", 1), ("b", 1), ("c", 1)]))
    judges: list[object] = []
    stats = score_file(
        groups,
        tmp_path / "out.jsonl",
        ScorerConfig(),
        client=client,
        on_result=lambda result, stats: judges.append(stats.judge),
    )
    assert judges == [client] and stats.judge is client
    assert stats.live_usage is stats.usage  # a scripted client keeps no book of its own
