"""`ropd score` and `ropd inspect` end to end, judged by a stub endpoint on 127.0.0.1.

The real CLI and the real OpenAI client talk HTTP to a `StubJudgeServer` (the `stub` fixture)
whose verdicts follow answer content; what reached the judge is read from the stub's records.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ropd.cli import app
from ropd.llm.types import JsonSchema
from ropd.reward.schemas import RUBRIC_SCHEMA_NAME, VERDICTS_SCHEMA_NAME
from ropd.reward.traces import TraceStore
from ropd.rubric import weighted_score
from ropd.testing import (
    ReplyError,
    ReplyPolicy,
    StubJudgeServer,
    content_policy,
    held_until,
    rubric_reply,
)

WORDS = [("391", 5), ("because", 2), ("check", 1), ("units", 2)]
OUTPUT_FIELDS = {"id", "rewards", "teacher_scores", "rubric", "verdicts", "usage", "error"}
WIDE = {"COLUMNS": "240"}  # keep rich from wrapping criterion texts in the tables


def expected_reward(text: str) -> float:
    return weighted_score([p for _, p in WORDS], [w in text for w, _ in WORDS])


def group_row(gid: str, students: list[str] | None = None, **extra: object) -> dict:
    row: dict = {
        "id": gid,
        "prompt": f"What is 17 * 23? (question {gid})",
        "student_responses": students or ["391 because 17*23", "It is 401"],
        "teacher_responses": ["391 because 17*23=391, check: 391/23=17, no units"],
    }
    row.update(extra)
    return row


def write_jsonl(path: Path, rows: list) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], env={**WIDE, **(env or {})})


def judge(stub: StubJudgeServer) -> list[str]:
    """Flags sending both judge roles to the stub."""
    return ["--base-url", stub.base_url, "--model", "stub"]


def bodies_for(stub: StubJudgeServer, schema_name: str) -> list[dict]:
    """The request bodies that asked for `schema_name`, in arrival order."""
    return [
        body
        for body in stub.bodies
        if (body.get("response_format") or {}).get("json_schema", {}).get("name") == schema_name
    ]


def run_roles(traces: Path) -> list[tuple[str, str | None, str]]:
    """(name, base_url, model) of each judge role, as the run recorded them."""
    with TraceStore(traces) as store:
        roles = store.runs()[0]["info"]["roles"]
    return [(r["name"], r["base_url"], r["model"]) for r in roles]


@pytest.fixture
def three_groups(tmp_path: Path) -> Path:
    return write_jsonl(
        tmp_path / "groups.jsonl",
        [
            group_row("g1"),
            group_row("g2", ["check units", "391 because check units", "nothing"]),
            group_row(
                "g3",
                prompt=[
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "17*23?"},
                ],
            ),
        ],
    )


def test_score_writes_one_documented_line_per_group(stub, three_groups, tmp_path):
    out = tmp_path / "scores.jsonl"
    result = run("score", three_groups, "-o", out, *judge(stub))
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in read_jsonl(out)}
    assert set(rows) == {"g1", "g2", "g3"}
    source = {r["id"]: r for r in read_jsonl(three_groups)}
    for gid, row in rows.items():
        assert OUTPUT_FIELDS <= set(row)
        assert row["error"] is None
        assert row["rewards"] == pytest.approx(
            [expected_reward(t) for t in source[gid]["student_responses"]]
        )
        assert [c["criterion"] for c in row["rubric"]["criteria"]] == [
            f"answer mentions {w}" for w, _ in WORDS
        ]
        assert row["usage"]["rubricator"]["calls"] == 1
    # one judge for both roles: --base-url and --model apply to each
    traces = tmp_path / "scores.traces.db"
    assert run_roles(traces) == [
        ("rubricator", stub.base_url, "stub"),
        ("verifier", stub.base_url, "stub"),
    ]
    assert stub.calls == {RUBRIC_SCHEMA_NAME: 3, VERDICTS_SCHEMA_NAME: 3}
    assert {body["model"] for body in stub.bodies} == {"stub"}
    assert "groups 3 (scored 3, skipped 0" in result.stdout
    assert f"traces: {traces}" in result.stdout
    with TraceStore(traces) as store:
        assert {g.group_id for g in store.list()} == {"g1", "g2", "g3"}


def test_price_gives_the_cost_of_each_group_and_of_the_run(stub, three_groups, tmp_path):
    out = tmp_path / "scores.jsonl"
    result = run("score", three_groups, "-o", out, *judge(stub), "--price", "2.5,10")
    assert result.exit_code == 0, result.output
    total = 0.0
    for row in read_jsonl(out):
        for role in ("rubricator", "verifier"):
            usage = row["usage"][role]
            expected = (usage["prompt_tokens"] * 2.5 + usage["completion_tokens"] * 10) / 1e6
            assert usage["cost"] == pytest.approx(expected) and expected > 0
            total += usage["cost"]
    assert f"judge cost {total:.4f}" in result.stdout
    assert " in / " in result.stdout  # input and output tokens apart


@pytest.mark.parametrize("value", ["2.5", "a,b", "1,-2", "1,2,3"])
def test_a_bad_price_is_refused_before_any_call(stub, three_groups, tmp_path, value):
    result = run("score", three_groups, "-o", tmp_path / "o.jsonl", *judge(stub), "--price", value)
    assert result.exit_code == 2, result.output
    assert "--price: two non-negative numbers IN,OUT" in result.output
    assert stub.calls == {}


def test_options_reach_the_scorer(stub, three_groups, tmp_path):
    stub.policy = held_until(3, stub.policy)  # each request waits until 3 are in flight
    stub.models = ["m1", "m2"]  # what /v1/models lists: both pass the probe
    out = tmp_path / "o.jsonl"
    result = run(
        "score", three_groups, "-o", out, "--base-url", stub.base_url, "--model", "m1",
        "--verifier-model", "m2", "-k", "1", "--no-blind", "--no-teacher-in-pool",
        "--rubric-mode", "per_pair", "--max-in-flight", "3",
        "--traces", tmp_path / "t.db", "--seed", "5",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert run_roles(tmp_path / "t.db") == [
        ("rubricator", stub.base_url, "m1"),
        ("verifier", stub.base_url, "m2"),
    ]
    assert {b["model"] for b in bodies_for(stub, RUBRIC_SCHEMA_NAME)} == {"m1"}
    assert {b["model"] for b in bodies_for(stub, VERDICTS_SCHEMA_NAME)} == {"m2"}
    assert stub.max_concurrent == 3  # 7 rubric requests were ready; 3 were let through at once
    settings = read_jsonl(out)[0]["settings"]
    assert settings["blind"] is False and settings["teacher_in_pool"] is False
    assert settings["rubric_mode"] == "per_pair" and settings["seed"] == 5
    assert settings["num_teacher_refs"] == 1
    assert (tmp_path / "t.db").is_file() and not (tmp_path / "o.traces.db").exists()
    # per_pair: one rubricator call per distinct student answer; students verified alone
    assert len(bodies_for(stub, RUBRIC_SCHEMA_NAME)) == 2 + 3 + 2
    first_verifier = bodies_for(stub, VERDICTS_SCHEMA_NAME)[0]
    assert "teacher model" not in first_verifier["messages"][-1]["content"]


def test_requests_per_minute_reach_the_client(stub, tmp_path):
    groups = write_jsonl(tmp_path / "groups.jsonl", [group_row("r1")])
    out = tmp_path / "scores.jsonl"
    result = run("score", groups, "-o", out, "-k", "1", "--rpm", "60", *judge(stub))
    assert result.exit_code == 0, result.output
    assert stub.requests == 2  # one rubric, one verdicts request
    gap = stub.arrivals[1] - stub.arrivals[0]
    assert gap >= 0.9  # 60 a minute: paced one a second, not sent back to back


def test_by_default_256_groups_are_judged_at_once(tmp_path):
    """The default window (--batch-size 256) and in-flight limit (512) hold 256 groups'
    requests together: a batch of that size waits about two judge latencies, not eight."""
    rows = [group_row(f"m{i}", [f"391 because of {i}"]) for i in range(300)]
    groups = write_jsonl(tmp_path / "groups.jsonl", rows)
    policy = content_policy(rubric_reply(WORDS))
    # every request waits at the stub until 256 have arrived: a client sending fewer at once
    # is held to the timeout and leaves max_concurrent below 256; counted, not timed
    with StubJudgeServer(latency_s=0.0, policy=held_until(256, policy)) as slow:
        result = run("score", groups, "-o", tmp_path / "scores.jsonl", "-k", "1", *judge(slow))
    assert result.exit_code == 0, result.output
    assert slow.max_concurrent == 256  # 300 groups ready, the window lets 256 through


def test_malformed_lines_are_all_reported_before_any_judge_call(stub, tmp_path):
    bad = write_jsonl(
        tmp_path / "groups.jsonl",
        [
            group_row("ok"),
            '{"id": "b1", "prompt": "x", "student_responses": ["a"',
            {"id": "b2", "prompt": "x", "teacher_responses": ["t"]},
            {"id": "b3", "prompt": "x", "student_responses": "abc", "teacher_responses": []},
            {"id": "b4", "prompt": 7, "student_responses": ["a"], "teacher_responses": []},
            group_row("ok"),
            {"id": "b5", "prompt": "x", "student_responses": ["a"]},
        ],
    )
    out = tmp_path / "scores.jsonl"
    result = run("score", bad, "-o", out, *judge(stub))
    assert result.exit_code == 2
    err = result.stderr
    assert f"{bad}:2: invalid JSON" in err
    assert f"{bad}:3: field 'student_responses': required field is missing" in err
    assert f"{bad}:4: field 'student_responses': Input should be a valid list" in err
    assert f"{bad}:5: field 'prompt': must be a string or a list of chat messages" in err
    assert f"{bad}:6: field 'id': duplicate id 'ok' (first on line 1)" in err
    assert f"{bad}:7: field 'teacher_responses': required field is missing" in err
    assert stub.requests == 0
    assert not out.exists()


def test_resume_skips_finished_ids_and_drops_a_truncated_last_line(stub, three_groups, tmp_path):
    out = tmp_path / "scores.jsonl"
    assert run("score", three_groups, "-o", out, *judge(stub)).exit_code == 0
    lines = out.read_text().splitlines(keepends=True)
    first_id = json.loads(lines[0])["id"]
    # as if killed while writing the second line
    out.write_text(lines[0] + lines[1][: len(lines[1]) // 2])
    stub.reset_stats()

    result = run("score", three_groups, "-o", out, "--resume", *judge(stub))
    assert result.exit_code == 0, result.output
    assert "dropped a half-written last line" in result.stderr
    rows = read_jsonl(out)  # every line parses
    assert sorted(r["id"] for r in rows) == ["g1", "g2", "g3"]
    assert stub.calls[RUBRIC_SCHEMA_NAME] == 2  # the finished group was skipped
    prompts = " ".join(body["messages"][-1]["content"] for body in stub.bodies)
    assert f"question {first_id})" not in prompts
    assert "skipped 1 already done" in result.stdout

    again = run("score", three_groups, "-o", out, "--resume", *judge(stub))
    assert again.exit_code == 0 and len(read_jsonl(out)) == 3
    # a resumed run keeps recording under the run that wrote the output
    with TraceStore(tmp_path / "scores.traces.db") as store:
        assert len(store.runs()) == 1


def test_existing_output_needs_resume_or_overwrite(stub, three_groups, tmp_path):
    out = write_jsonl(tmp_path / "scores.jsonl", [{"id": "old"}])
    result = run("score", three_groups, "-o", out, *judge(stub))
    assert result.exit_code == 2
    assert "--resume" in result.stderr and "--overwrite" in result.stderr
    assert read_jsonl(out) == [{"id": "old"}]
    assert run("score", three_groups, "-o", out, "--overwrite", *judge(stub)).exit_code == 0
    assert len(read_jsonl(out)) == 3


def _failing_verifier_for(question: str, policy: ReplyPolicy) -> ReplyPolicy:
    """`policy`, except that verdict requests about `question` fail with HTTP 500."""

    def reply(messages: list[dict], json_schema: JsonSchema | None) -> str:
        verdicts = json_schema is not None and json_schema.name == VERDICTS_SCHEMA_NAME
        if verdicts and f"question {question})" in messages[-1]["content"]:
            raise ReplyError("verifier endpoint is down", status=500)
        return policy(messages, json_schema)

    return reply


NO_RETRIES = ("--max-retries", "0")  # a failing request fails at once, without backoff sleeps


def test_failed_group_is_recorded_with_null_rewards_under_nan(stub, three_groups, tmp_path):
    stub.policy = _failing_verifier_for("g2", stub.policy)
    out = tmp_path / "scores.jsonl"
    result = run("score", three_groups, "-o", out, *NO_RETRIES, *judge(stub))
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in read_jsonl(out)}
    assert rows["g2"]["rewards"] == [None, None, None]
    assert "HTTP 500" in rows["g2"]["error"]
    assert rows["g1"]["error"] is None
    assert "failed 1" in result.stdout
    with TraceStore(tmp_path / "scores.traces.db") as store:
        assert [g.group_id for g in store.list(failed=True)] == ["g2"]


def test_resume_judges_failed_groups_again_and_says_how_many(stub, three_groups, tmp_path):
    working = stub.policy
    stub.policy = _failing_verifier_for("g2", working)
    out = tmp_path / "scores.jsonl"
    assert run("score", three_groups, "-o", out, *NO_RETRIES, *judge(stub)).exit_code == 0
    assert [r["id"] for r in read_jsonl(out) if r["error"]] == ["g2"]
    stub.policy = working  # the outage is over
    stub.reset_stats()

    result = run("score", three_groups, "-o", out, "--resume", *judge(stub))
    assert result.exit_code == 0, result.output
    assert "1 groups failed in an earlier run; judging them again" in result.stderr
    assert "scored 1, 1 of them failed before, skipped 2 already done" in result.stdout
    assert "failed 0" in result.stdout
    rows = read_jsonl(out)
    assert sorted(r["id"] for r in rows) == ["g1", "g2", "g3"]  # one line per group
    assert all(r["error"] is None for r in rows)
    assert stub.calls[RUBRIC_SCHEMA_NAME] == 1  # only g2 was judged again
    with TraceStore(tmp_path / "scores.traces.db") as store:
        assert len(store.runs()) == 1 and store.list(failed=True) == []


def test_failure_policy_raise_stops_with_nonzero_exit_and_keeps_finished_work(
    stub, three_groups, tmp_path
):
    working = stub.policy
    stub.policy = _failing_verifier_for("g1", working)
    out = tmp_path / "scores.jsonl"
    result = run(
        "score", three_groups, "-o", out, "--failure-policy", "raise", "--batch-size", "1",
        *NO_RETRIES, *judge(stub),
    )  # fmt: skip
    assert result.exit_code == 1
    assert "GroupScoringError" in result.stderr and "--resume" in result.stderr
    assert read_jsonl(out) == []  # batch size 1: g1 failed first, nothing else started
    stub.policy = working
    assert run("score", three_groups, "-o", out, "--resume", *judge(stub)).exit_code == 0
    assert sorted(r["id"] for r in read_jsonl(out)) == ["g1", "g2", "g3"]


def test_api_key_is_checked_up_front_and_never_written(stub, three_groups, tmp_path):
    out = tmp_path / "scores.jsonl"
    missing = run(
        "score", three_groups, "-o", out, "--base-url", stub.base_url,
        "--model", "stub", "--api-key-env", "ROPD_TEST_UNSET_KEY",
    )  # fmt: skip
    assert missing.exit_code == 2 and "ROPD_TEST_UNSET_KEY" in missing.stderr
    assert stub.requests == 0

    secret = "sk-test-0123456789abcdefSECRET"
    ok = run(
        "score", three_groups, "-o", out, "--base-url", stub.base_url,
        "--model", "stub", "--api-key-env", "ROPD_TEST_KEY",
        env={"ROPD_TEST_KEY": secret},
    )  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert {h["authorization"] for h in stub.headers} == {f"Bearer {secret}"}  # sent, only there
    assert secret not in ok.output
    assert secret not in out.read_text()
    db = tmp_path / "scores.traces.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(FULL)")
    assert secret.encode() not in db.read_bytes()
    with TraceStore(db) as store:
        assert store.runs()[0]["info"]["roles"][0]["api_key_env"] == "ROPD_TEST_KEY"


def test_inspect_shows_prompt_rubric_verdicts_and_rewards(stub, three_groups, tmp_path):
    out = tmp_path / "scores.jsonl"
    assert run("score", three_groups, "-o", out, *judge(stub)).exit_code == 0
    db = tmp_path / "scores.traces.db"
    shown = run("inspect", "--traces", db, "g2")
    assert shown.exit_code == 0, shown.output
    text = shown.stdout
    assert "What is 17 * 23? (question g2)" in text
    for word, points in WORDS:
        assert f"answer mentions {word}" in text
    assert "correctness" in text
    # student 0 "check units": C1 (391) fails, C3 and C4 pass; reward 3/10
    row = next(line for line in text.splitlines() if "student" in line and "│ 0 " in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    assert cells[-5:] == ["fail", "fail", "pass", "pass", "0.300"]
    assert "391 because check units" in text  # answer texts
    assert "teacher" in text

    listed = run("inspect", "--traces", db, "--list")
    assert listed.exit_code == 0 and all(g in listed.stdout for g in ("g1", "g2", "g3"))
    stats = run("inspect", "--traces", db, "--stats")
    assert stats.exit_code == 0 and "correctness" in stats.stdout
    missing = run("inspect", "--traces", db, "nope")
    assert missing.exit_code == 1 and "no group 'nope'" in missing.stderr


def test_inspect_truncates_long_answers_unless_full(stub, tmp_path):
    long_answer = "391 because " + "x" * 2000 + " THE-END"
    groups = write_jsonl(tmp_path / "g.jsonl", [group_row("long", [long_answer])])
    assert run("score", groups, "-o", tmp_path / "s.jsonl", *judge(stub)).exit_code == 0
    db = tmp_path / "s.traces.db"
    short = run("inspect", "--traces", db, "long")
    assert "THE-END" not in short.stdout and "--full shows all" in short.stdout
    full = run("inspect", "--traces", db, "long", "--full")
    assert "THE-END" in full.stdout


def test_teacher_answers_are_looked_up_in_the_store(stub, tmp_path):
    from ropd.llm.types import Completion
    from ropd.teacher.fingerprint import TeacherFingerprint
    from ropd.teacher.store import TeacherStore

    reference = "391 because 17*23=391; check 391/17=23; no units"
    with TeacherStore(tmp_path / "teacher.db") as store:
        store.add_answers(
            "What is 17 * 23? (question s1)",
            TeacherFingerprint(model="teacher-x", temperature=1.0),
            [Completion(text=reference, finish_reason="stop")],
        )
    rows = [group_row("s1"), group_row("s2")]
    for row in rows:
        del row["teacher_responses"]
    groups = write_jsonl(tmp_path / "groups.jsonl", rows)
    out = tmp_path / "scores.jsonl"

    # without a store, the missing field is an input error
    no_store = run("score", groups, "-o", out, "-k", "1", *judge(stub))
    assert no_store.exit_code == 2
    assert f"{groups}:1: field 'teacher_responses': required field is missing" in no_store.stderr

    # s2 has no answers in the store: reported by line before anything is judged
    store_flags = ("-k", "1", "--teacher-store", tmp_path / "teacher.db", *judge(stub))
    missing = run("score", groups, "-o", out, *store_flags)
    assert missing.exit_code == 2
    assert f"{groups}:2: field 'teacher_responses': " in missing.stderr
    assert "no usable teacher answers" in missing.stderr
    assert stub.requests == 0

    write_jsonl(groups, rows[:1])
    ok = run("score", groups, "-o", out, *store_flags)
    assert ok.exit_code == 0, ok.output
    (row,) = read_jsonl(out)
    assert row["teacher_scores"] == pytest.approx([expected_reward(reference)])
    shown = bodies_for(stub, VERDICTS_SCHEMA_NAME)[0]["messages"][-1]["content"]
    assert reference in shown
    with TraceStore(tmp_path / "scores.traces.db") as traces:
        assert traces.get("s1").teacher_responses == [reference]
