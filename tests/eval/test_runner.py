"""A whole run against a scripted endpoint: scores, pass@1 statistics, resume, failures,
what samples and summaries record."""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from pathlib import Path

import pytest

from ropd.eval.generate import EndpointGenerator
from ropd.eval.runner import Grader, prepare, run_eval
from ropd.eval.tasks import parse_tasks
from ropd.eval.types import EvalError, GenerationSettings, SamplesFailedError
from ropd.llm.config import RoleConfig
from ropd.llm.types import JudgeError
from ropd.testing import ScriptedChatClient

FIXTURES = Path(__file__).parent / "fixtures"
STUDENT = RoleConfig(name="student", base_url="http://127.0.0.1:9/v1", model="scripted-student")
GRADER = RoleConfig(name="grader", base_url="http://127.0.0.1:9/v1", model="scripted-grader")


class Student:
    """Right on 17*23 always, right on 6/8 every other time, always wrong on the radical."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.fail_on = fail_on
        self.p2_calls = 0

    def __call__(self, messages, schema) -> str:
        prompt = messages[-1]["content"]
        if self.fail_on and self.fail_on in prompt:
            raise JudgeError("endpoint down")
        if "17 * 23" in prompt:
            return "17*23 = 391, so \\boxed{391}"
        if "6/8" in prompt:
            self.p2_calls += 1
            return "\\boxed{\\frac{3}{4}}" if self.p2_calls % 2 == 1 else "\\boxed{\\frac{2}{3}}"
        if "Red Planet" in prompt:
            letter = re.search(r"^([A-D])\) Mars$", prompt, re.MULTILINE).group(1)
            return f"Mars is red.\nAnswer: {letter}"
        if "sodium" in prompt:
            return "Answer: Z"  # no valid letter
        return "The answer is \\boxed{4}"


def _tasks(spec: str, limit: int | None = None):
    return prepare(parse_tasks(spec), limit=limit)


def _lines(folder: Path) -> list[dict]:
    return [json.loads(x) for x in (folder / "samples.jsonl").read_text().splitlines()]


async def test_scores_and_pass_at_1_statistics(tmp_path: Path) -> None:
    client = ScriptedChatClient({"student": Student()})
    settings = GenerationSettings(n=4, max_new_tokens=64)
    tasks = _tasks(f"math={FIXTURES / 'math.jsonl'},mcq={FIXTURES / 'mcq.jsonl'}")
    result = await run_eval(tasks, EndpointGenerator(client, STUDENT), settings, tmp_path)

    math = result.summary["tasks"]["math"]
    assert math["pass_at_1"] == pytest.approx((4 + 2 + 0) / 12)
    per_index = [2 / 3, 1 / 3, 2 / 3, 1 / 3]
    assert math["pass_at_1_std"] == pytest.approx(statistics.stdev(per_index))
    assert (math["items"], math["n"], math["samples"], math["failed"]) == (3, 4, 12, 0)
    mcq = result.summary["tasks"]["mcq"]
    assert mcq["pass_at_1"] == pytest.approx(0.5) and mcq["no_answer"] == 4

    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["tasks"]["math"]["pass_at_1"] == math["pass_at_1"]
    assert saved["model_fingerprint"] == "endpoint:scripted-student"
    assert saved["generation"]["n"] == 4 and saved["generation"]["top_p"] == 0.95
    assert saved["settings"] == {
        "model": "scripted-student",
        "backend": "openai-compatible",
        "endpoint": "127.0.0.1:9",  # host and port only, never a path or credentials
        "num_samples": 4,
        "temperature": 1.0,
        "top_p": 0.95,
        "max_tokens": 64,
        "seed": 0,
        "system_prompt": None,
        "system_prompt_sha256": None,
        "limit": None,
        "grader": None,
        "grader_max_tokens": None,
    }
    assert "| math | math | 50.0 |" in (tmp_path / "summary.md").read_text()

    lines = _lines(tmp_path)
    assert len(lines) == 20  # compacted: one line per sample
    assert {(r["task"], r["item_id"]) for r in lines if r["score"] == 1.0} >= {("math", "p1")}
    # Each sample carries the messages sent and the reference it was scored against.
    golds = {(r["task"], r["item_id"]): r["gold"] for r in lines}
    assert golds[("math", "p1")] == "391" and golds[("math", "p3")] == "3\\sqrt{2}"
    for line in lines:
        assert line["prompt"] == [{"role": "user", "content": line["prompt"][0]["content"]}]
        if line["task"] == "mcq":  # the gold letter is the one the prompt shows the answer under
            right = "Mars" if line["item_id"] == "q1" else "Na"
            assert f"{line['gold']}) {right}\n" in line["prompt"][0]["content"]
    sent = {c.messages[-1]["content"] for c in client.calls}
    assert {line["prompt"][-1]["content"] for line in lines} == sent
    # One request per item, asking for all n samples at once.
    assert [c.n for c in client.calls] == [4] * 5


async def test_rerun_reuses_samples_and_extends_n(tmp_path: Path) -> None:
    tasks = _tasks(f"math={FIXTURES / 'math.jsonl'}")
    client = ScriptedChatClient({"student": Student()})
    first = await run_eval(
        tasks, EndpointGenerator(client, STUDENT), GenerationSettings(n=2), tmp_path
    )
    assert first.generated == 6

    again = ScriptedChatClient({"student": Student()})
    second = await run_eval(
        tasks, EndpointGenerator(again, STUDENT), GenerationSettings(n=2), tmp_path
    )
    assert (second.generated, second.reused, again.calls) == (0, 6, [])
    assert second.summary["tasks"]["math"] == first.summary["tasks"]["math"]

    more = ScriptedChatClient({"student": Student()})
    third = await run_eval(
        tasks, EndpointGenerator(more, STUDENT), GenerationSettings(n=3), tmp_path
    )
    assert (third.generated, third.reused) == (3, 6)
    assert third.summary["tasks"]["math"]["samples"] == 9

    hotter = ScriptedChatClient({"student": Student()})
    fourth = await run_eval(
        tasks,
        EndpointGenerator(hotter, STUDENT),
        GenerationSettings(n=2, temperature=0.6),
        tmp_path,
    )
    assert fourth.generated == 6  # other settings: nothing to reuse


async def test_failed_generation_is_kept_out_and_redone(tmp_path: Path) -> None:
    tasks = _tasks(f"math={FIXTURES / 'math.jsonl'}")
    broken = ScriptedChatClient({"student": Student(fail_on="square root")})
    first = await run_eval(
        tasks, EndpointGenerator(broken, STUDENT), GenerationSettings(n=2), tmp_path
    )
    assert len(first.failed) == 1 and "p3" in first.failed[0]
    math = first.summary["tasks"]["math"]
    # Not generated is failed: counted, not silently dropped from the denominator.
    assert (math["failed"], math["failed_generation"], math["failed_grading"]) == (2, 2, 0)
    assert (math["samples"], math["scored"], math["missing"]) == (4, 4, 2)
    with pytest.raises(SamplesFailedError, match=r"2 of 6 samples failed \(2 could not be"):
        first.check()

    fixed = ScriptedChatClient({"student": Student()})
    second = await run_eval(
        tasks, EndpointGenerator(fixed, STUDENT), GenerationSettings(n=2), tmp_path
    )
    assert (second.generated, second.reused) == (2, 4)
    assert "square root" in fixed.calls[0].messages[-1]["content"]
    assert second.summary["tasks"]["math"]["missing"] == 0
    assert second.summary["tasks"]["math"]["failed"] == 0
    second.check()  # nothing failed: no error


async def test_every_generation_failing_is_all_failed(tmp_path: Path) -> None:
    tasks = _tasks(f"math={FIXTURES / 'math.jsonl'},mcq={FIXTURES / 'mcq.jsonl'}")

    def down(messages, schema) -> str:
        raise JudgeError("endpoint down")

    broken = ScriptedChatClient({"student": down})
    result = await run_eval(
        tasks, EndpointGenerator(broken, STUDENT), GenerationSettings(n=3), tmp_path
    )
    for name, items in (("math", 3), ("mcq", 2)):
        task = result.summary["tasks"][name]
        assert (task["failed"], task["scored"], task["pass_at_1"]) == (3 * items, 0, None)
    assert result.totals() == {
        "expected": 15,
        "failed": 15,
        "failed_generation": 15,
        "failed_grading": 0,
    }
    with pytest.raises(SamplesFailedError, match="all 15 samples failed.*endpoint down"):
        result.check()
    assert "| math | math | n/a | n/a | 3 | 3 | 9 | 0 |" in (tmp_path / "summary.md").read_text()


def _grader(fail: bool):
    def handle(messages, schema):
        if fail:
            raise JudgeError("grader down")
        user = messages[-1]["content"]
        response = user.split("<response>")[1].split("</response>")[0]
        criterion = user.split("<rubric_item")[1]
        met = ("pressure" in criterion and "pressure" in response) or (
            "butter" in criterion and "butter" in response
        )
        return json.dumps({"explanation": "x", "criteria_met": met})

    return handle


async def test_rubric_task_grades_and_regrades_after_grader_outage(tmp_path: Path) -> None:
    tasks = _tasks(f"rubric={FIXTURES / 'rubric.jsonl'}")

    def student(messages, schema):
        return "Apply pressure, then put butter on it."

    client = ScriptedChatClient({"student": student, "grader": _grader(fail=True)})
    first = await run_eval(
        tasks,
        EndpointGenerator(client, STUDENT),
        GenerationSettings(n=1),
        tmp_path,
        grader=Grader(client, GRADER),
    )
    rubric = first.summary["tasks"]["rubric"]
    assert (rubric["failed"], rubric["failed_generation"], rubric["failed_grading"]) == (2, 0, 2)
    assert rubric["pass_at_1"] is None
    with pytest.raises(SamplesFailedError, match="all 2 samples failed.*2 could not be graded"):
        first.check()
    assert first.summary["settings"]["grader"] == "scripted-grader"
    assert first.summary["settings"]["grader_max_tokens"] == GRADER.max_tokens
    by_item = {r["item_id"]: r for r in _lines(tmp_path)}
    assert [g["points"] for g in by_item["r1"]["gold"]] == [5, 3, -4]  # the rubric items
    assert by_item["r2"]["prompt"][0] == {
        "role": "system",
        "content": "You are a careful health assistant.",
    }

    healed = ScriptedChatClient({"student": student, "grader": _grader(fail=False)})
    second = await run_eval(
        tasks,
        EndpointGenerator(healed, STUDENT),
        GenerationSettings(n=1),
        tmp_path,
        grader=Grader(healed, GRADER),
    )
    assert healed.calls_for("student") == []  # nothing regenerated
    assert len(healed.calls_for("grader")) == 5  # 3 + 2 rubric items
    rubric = second.summary["tasks"]["rubric"]
    # r1: pressure (+5) and butter (-4) met out of 8 positive points; r2: nothing met.
    assert rubric["pass_at_1"] == pytest.approx(((5 - 4) / 8 + 0.0) / 2)
    assert rubric["failed"] == 0


async def test_system_prompt_reaches_the_model(tmp_path: Path) -> None:
    client = ScriptedChatClient({"student": Student()})
    tasks = _tasks(f"math={FIXTURES / 'math.jsonl'}")
    await run_eval(
        tasks,
        EndpointGenerator(client, STUDENT),
        GenerationSettings(n=1, system_prompt="Be brief."),
        tmp_path,
    )
    assert all(c.messages[0] == {"role": "system", "content": "Be brief."} for c in client.calls)
    assert all(line["prompt"][0]["content"] == "Be brief." for line in _lines(tmp_path))
    settings = json.loads((tmp_path / "summary.json").read_text())["settings"]
    assert settings["system_prompt"] == "Be brief."
    assert settings["system_prompt_sha256"] == hashlib.sha256(b"Be brief.").hexdigest()[:16]


async def test_limit_is_recorded(tmp_path: Path) -> None:
    client = ScriptedChatClient({"student": Student()})
    tasks = _tasks(f"math={FIXTURES / 'math.jsonl'}", limit=2)
    result = await run_eval(
        tasks, EndpointGenerator(client, STUDENT), GenerationSettings(n=1), tmp_path, limit=2
    )
    assert result.summary["settings"]["limit"] == 2
    assert (result.summary["tasks"]["math"]["limit"], result.summary["tasks"]["math"]["items"]) == (
        2,
        2,
    )
    assert "| limit (first N items per task) | 2 |" in (tmp_path / "summary.md").read_text()


async def test_samples_of_older_versions_get_prompt_and_gold(tmp_path: Path) -> None:
    tasks = _tasks(f"math={FIXTURES / 'math.jsonl'}")
    client = ScriptedChatClient({"student": Student()})
    await run_eval(tasks, EndpointGenerator(client, STUDENT), GenerationSettings(n=1), tmp_path)
    complete = _lines(tmp_path)
    old = [{k: v for k, v in r.items() if k not in ("prompt", "gold")} for r in complete]
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    again = ScriptedChatClient({"student": Student()})
    result = await run_eval(
        tasks, EndpointGenerator(again, STUDENT), GenerationSettings(n=1), tmp_path
    )
    assert (result.generated, again.calls) == (0, [])
    key = ("item_id", "prompt", "gold", "completion")
    assert [[r[k] for k in key] for r in _lines(tmp_path)] == [
        [r[k] for k in key] for r in complete
    ]


async def test_rubric_task_without_grader_is_refused(tmp_path: Path) -> None:
    client = ScriptedChatClient({"student": Student()})
    with pytest.raises(EvalError, match="grader"):
        await run_eval(
            _tasks(f"rubric={FIXTURES / 'rubric.jsonl'}"),
            EndpointGenerator(client, STUDENT),
            GenerationSettings(n=1),
            tmp_path,
        )


async def test_truncated_last_line_is_redone(tmp_path: Path) -> None:
    tasks = _tasks(f"math={FIXTURES / 'math.jsonl'}")
    client = ScriptedChatClient({"student": Student()})
    await run_eval(tasks, EndpointGenerator(client, STUDENT), GenerationSettings(n=1), tmp_path)
    path = tmp_path / "samples.jsonl"
    text = path.read_text()
    path.write_text(text[: len(text) - 40])  # a crash in the middle of the last line
    again = ScriptedChatClient({"student": Student()})
    result = await run_eval(
        tasks, EndpointGenerator(again, STUDENT), GenerationSettings(n=1), tmp_path
    )
    assert (result.generated, result.reused) == (1, 2)
