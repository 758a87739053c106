"""Pool files (validation, math-verify truth, eval samples), method names, logprob alignment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.analysis.conftest import read_jsonl, write_jsonl

from ropd.analysis.methods import parse_method, parse_methods, ropd_config, tjudge_config
from ropd.analysis.pool import PoolFileError, pool_from_eval, read_pool
from ropd.errors import ConfigError, InputError
from ropd.llm.config import RoleConfig
from ropd.llm.logprobs import LogprobAlignmentError, continuation_logprobs

GOOD = {"id": "a", "prompt": "p", "responses": ["x", "y"], "correct": [True, False]}


def test_every_bad_pool_line_is_reported_with_line_and_field(tmp_path: Path) -> None:
    rows = [
        GOOD,
        {"id": "b", "prompt": "p", "correct": [True]},
        {"id": "c", "prompt": "p", "responses": ["x"], "correct": [True, False]},
        {"id": "d", "prompt": "p", "responses": ["x"], "correct": [True], "answer": "1"},
        "{not json",
        {**GOOD, "extra": 1},
        GOOD,
        {"id": "e", "prompt": [{"role": "robot", "content": "hi"}], "responses": ["x"],
         "correct": ["yes"]},
    ]  # fmt: skip
    path = write_jsonl(tmp_path / "pool.jsonl", rows)
    with pytest.raises(PoolFileError) as info:
        read_pool(path, require_teacher=False)
    shown = [str(e) for e in info.value.errors]
    assert f"{path}:2: field 'responses': required field is missing" in shown
    assert f"{path}:3: field 'correct': has 2 values for 1 responses" in shown
    assert any(s.startswith(f"{path}:4: field 'correct': give exactly one of") for s in shown)
    assert any(s.startswith(f"{path}:5: invalid JSON") for s in shown)
    assert any(s.startswith(f"{path}:6: field 'extra': unknown field") for s in shown)
    assert any(s.startswith(f"{path}:7: field 'id': duplicate id 'a'") for s in shown)
    assert any(s.startswith(f"{path}:8: field 'prompt[0].role'") for s in shown)
    assert any(
        s.startswith(f"{path}:8: field 'correct': must be a list of booleans") for s in shown
    )


def test_teacher_answers_are_required_only_when_asked(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "pool.jsonl", [GOOD])
    assert read_pool(path, require_teacher=False)[0].correct == (True, False)
    with pytest.raises(PoolFileError, match=r"pool.jsonl:1: field 'teacher_responses'"):
        read_pool(path, require_teacher=True)


def test_gold_answers_are_checked_with_math_verify(tmp_path: Path) -> None:
    row = {"id": 1, "prompt": "2*21?", "answer": "42",
           "responses": ["so the answer is \\boxed{42}", "I think 41", "$42$"]}  # fmt: skip
    path = write_jsonl(tmp_path / "pool.jsonl", [row])
    (item,) = read_pool(path, require_teacher=False)
    assert item.group.id == "1" and item.correct == (True, False, True)


def test_eval_samples_become_a_pool(tmp_path: Path) -> None:
    def sample(item: str, index: int, score: float | None, text: str) -> dict:
        return {"task": "gsm8k", "item_id": item, "sample_index": index, "gen_key": "k",
                "prompt": [{"role": "user", "content": f"question {item}"}], "gold": "4",
                "completion": text, "score": score}  # fmt: skip

    samples = write_jsonl(
        tmp_path / "samples.jsonl",
        [
            sample("1", 0, 0.0, "first try"),
            sample("1", 1, 1.0, "four"),
            sample("2", 0, None, "not graded"),
            sample("2", 1, 0.0, "five"),
            sample("1", 0, 1.0, "4, retried"),  # the last line of a key wins
        ],
    )
    done = pool_from_eval(samples, tmp_path / "pool.jsonl")
    assert (done.groups, done.responses, done.correct, done.skipped_ungraded) == (2, 3, 2, 1)
    rows = read_jsonl(tmp_path / "pool.jsonl")
    assert rows[0] == {
        "id": "gsm8k:1", "task": "gsm8k",
        "prompt": [{"role": "user", "content": "question 1"}],
        "responses": ["4, retried", "four"], "correct": [True, True],
    }  # fmt: skip
    assert rows[1]["responses"] == ["five"] and rows[1]["correct"] == [False]
    assert len(read_pool(tmp_path / "pool.jsonl", require_teacher=False)) == 2
    with pytest.raises(Exception, match="exists"):
        pool_from_eval(samples, tmp_path / "pool.jsonl")


def test_eval_lines_that_are_not_samples_are_reported(tmp_path: Path) -> None:
    samples = write_jsonl(tmp_path / "s.jsonl", [{"task": "t"}, "[1]"])
    with pytest.raises(PoolFileError) as info:
        pool_from_eval(samples, tmp_path / "pool.jsonl")
    assert [e.line for e in info.value.errors] == [1, 2]
    assert not (tmp_path / "pool.jsonl").exists()


def test_switches_map_to_config_fields() -> None:
    judge = RoleConfig(name="judge", base_url="http://x/v1", model="m")
    method = parse_method("ropd:k=1+revealed+no_teacher_pool+rubric_mode=per_pair+seed=3")
    config = ropd_config(method, judge)
    assert (config.num_teacher_refs, config.blind, config.teacher_in_pool) == (1, False, False)
    assert (config.rubric_mode, config.seed) == ("per_pair", 3)
    assert ropd_config(parse_method("ropd:k=all"), judge).num_teacher_refs is None
    assert tjudge_config(parse_method("tjudge:refs=2"), judge).num_references == 2
    assert [m.name for m in parse_methods("ropd, tjudge,teacher_logprob")] == [
        "ropd", "tjudge", "teacher_logprob",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "ropd:bogus",
            r"unknown switch 'bogus'; valid for ropd: num_teacher_refs=<value>.*revealed",
        ),
        ("rubric", r"unknown method 'rubric'.*valid: ropd, tjudge, ovd, rar, teacher_logprob"),
        ("ropd,ropd", r"ropd is given twice"),
        ("teacher_logprob:k=1", r"takes no switches"),
        ("", r"no method given"),
    ],
)
def test_bad_method_names_are_config_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_methods(text)


def test_a_bad_switch_value_names_the_method() -> None:
    judge = RoleConfig(name="judge", base_url="http://x/v1", model="m")
    with pytest.raises(ConfigError, match=r"method 'ropd:rubric_mode=odd': rubric_mode"):
        ropd_config(parse_method("ropd:rubric_mode=odd"), judge)


def test_logprob_alignment_vllm_and_llama_cpp_shapes() -> None:
    # llama-cpp-python: prompt tokens only (BOS dropped, special tokens as ""), first None
    tokens = ["user", "\n", "Hi", "", "\n", "ass", "istant", "\n", "The", " answer", "."]
    values = [None, -1.0, -2.0, -0.1, -0.1, -0.1, -0.1, -0.1, -0.5, -0.25, -0.75]
    assert continuation_logprobs("The answer.", tokens, values, 13) == [-0.5, -0.25, -0.75]
    # vLLM: the generated token is listed too (beyond usage.prompt_tokens)
    assert continuation_logprobs("The answer.", [*tokens, "<|im_end|>"], [*values, -0.01], 11) == [
        -0.5, -0.25, -0.75,
    ]  # fmt: skip
    # llama-cpp-python lists the generated token when BOS tokens were dropped; an end-of-text
    # token has no text
    assert continuation_logprobs("The answer.", [*tokens, " Yes"], [*values, -3.0], 13, " Yes") == [
        -0.5, -0.25, -0.75,
    ]  # fmt: skip
    assert continuation_logprobs("The answer.", [*tokens, ""], [*values, -3.0], 13) == [
        -0.5, -0.25, -0.75,
    ]  # fmt: skip
    # a token straddling the boundary belongs to the response
    assert continuation_logprobs("nswer.", tokens, values, 11) == [-0.25, -0.75]
    with pytest.raises(LogprobAlignmentError):
        continuation_logprobs("Another text", tokens, values, 11)


def test_analysis_json_is_plain_json(tmp_path: Path) -> None:
    """Guards the report format: numbers, None and strings only (no NaN)."""
    from ropd.analysis.methods import Outcome
    from ropd.analysis.stats import method_stats

    stats = method_stats([Outcome("m", "g", [0.5, 0.5], [True, True])])
    assert stats["auc"] is None and stats["pair_accuracy"] is None
    json.dumps(stats, allow_nan=False)


def test_pool_from_eval_attaches_teacher_answers_by_the_task_prompt(tmp_path: Path) -> None:
    """`ropd eval` appends its math instruction; the store is keyed by the task file's prompt."""
    from ropd.eval.items import MATH_INSTRUCTION
    from ropd.llm.types import Completion
    from ropd.teacher.fingerprint import TeacherFingerprint
    from ropd.teacher.store import TeacherStore

    store_path = tmp_path / "teacher.db"
    with TeacherStore(store_path) as store:
        store.add_answers(
            [{"role": "user", "content": "What is 2 + 2?"}],
            TeacherFingerprint.from_role(RoleConfig(name="teacher")),
            [Completion("4", "stop"), Completion("four", "stop")],
        )
    seen = [{"role": "user", "content": f"What is 2 + 2?\n\n{MATH_INSTRUCTION}"}]
    rows = [
        {"task": "math", "item_id": item, "sample_index": 0, "gen_key": "k", "prompt": prompt,
         "gold": "4", "completion": "\\boxed{4}", "score": 1.0}
        for item, prompt in (("1", seen), ("2", [{"role": "user", "content": "unknown"}]))
    ]  # fmt: skip
    samples = write_jsonl(tmp_path / "samples.jsonl", rows)
    done = pool_from_eval(samples, tmp_path / "pool.jsonl", teacher_store=store_path)
    assert (done.with_teacher, done.without_teacher) == (1, ("math:2",))
    pool = read_jsonl(tmp_path / "pool.jsonl")
    assert pool[0]["prompt"] == seen  # the judge sees what the student was asked
    assert pool[0]["teacher_responses"] == ["4", "four"]
    assert "teacher_responses" not in pool[1]
    only_unknown = write_jsonl(tmp_path / "unknown.jsonl", rows[1:])
    with pytest.raises(InputError, match="no teacher answers for any of the 1 prompts"):
        pool_from_eval(only_unknown, tmp_path / "pool2.jsonl", teacher_store=store_path)
    assert not (tmp_path / "pool2.jsonl").exists()
