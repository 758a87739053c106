"""Task specs, local task files, their validation errors and the prompts built from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ropd.eval.items import MATH_INSTRUCTION, load_items, shuffled_order
from ropd.eval.tasks import BUILTIN_TASKS, parse_tasks
from ropd.eval.types import EvalError

FIXTURES = Path(__file__).parent / "fixtures"


def test_parse_builtin_and_local_tasks() -> None:
    specs = parse_tasks(f"aime24, GPQA ,math={FIXTURES / 'math.jsonl'},mine@mcq=x.jsonl")
    assert [s.name for s in specs] == ["aime24", "gpqa_diamond", "math", "mine"]
    assert specs[0].hub_id == "HuggingFaceH4/aime_2024" and specs[0].family == "math"
    assert specs[1].hub_config == "gpqa_diamond"
    assert specs[2].family == "math" and specs[2].path.endswith("math.jsonl")
    assert specs[3].family == "mcq" and specs[3].path == "x.jsonl"


def test_every_paper_benchmark_is_registered() -> None:
    for name in ("aime24", "aime25", "hmmt25", "gpqa_diamond", "healthbench", "ifeval"):
        assert name in BUILTIN_TASKS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("aime23", "unknown task 'aime23'"),
        ("poetry=file.jsonl", "unknown family 'poetry'"),
        ("math=", "no file"),
        ("math=a/x.jsonl,mcq=b/x.jsonl", "two tasks are named x"),
        (" , ", "no task given"),
    ],
)
def test_bad_task_specs(text: str, message: str) -> None:
    with pytest.raises(EvalError, match=message):
        parse_tasks(text)


def test_math_items_get_the_boxed_instruction() -> None:
    (spec,) = parse_tasks(f"math={FIXTURES / 'math.jsonl'}")
    items = load_items(spec)
    assert [i.item_id for i in items] == ["p1", "p2", "p3"]
    assert items[1].target == {"answer": "\\frac{3}{4}"}
    assert items[0].messages[0]["content"].endswith(MATH_INSTRUCTION)
    assert items[0].location.endswith("math.jsonl:1")


def test_mcq_shuffle_is_seeded_and_keeps_the_right_answer() -> None:
    (spec,) = parse_tasks(f"mcq={FIXTURES / 'mcq.jsonl'}")
    first = load_items(spec, seed=0)
    again = load_items(spec, seed=0)
    assert [i.messages for i in first] == [i.messages for i in again]
    for item, right in zip(first, ["Mars", "Na"], strict=True):
        letter = item.target["correct"]
        assert f"{letter}) {right}\n" in item.messages[0]["content"]
    # Another seed gives another order for at least one of a handful of items.
    orders = {tuple(shuffled_order(4, seed, "t", "q")) for seed in range(8)}
    assert len(orders) > 1


def test_rubric_prompt_may_be_text_or_messages() -> None:
    (spec,) = parse_tasks(f"rubric={FIXTURES / 'rubric.jsonl'}")
    items = load_items(spec)
    assert items[0].messages == [{"role": "user", "content": items[0].messages[0]["content"]}]
    assert [m["role"] for m in items[1].messages] == ["system", "user"]
    assert items[0].target["rubrics"][2] == {
        "criterion": "Recommends putting butter on the wound.",
        "points": -4.0,
    }


@pytest.mark.parametrize(
    ("family", "name", "expected"),
    [
        ("math", "bad_math.jsonl", r"bad_math\.jsonl:2: field 'answer': Field required"),
        ("mcq", "bad_mcq.jsonl", r"bad_mcq\.jsonl:1: field 'answer': 'C' is neither a letter A-B"),
        ("rubric", "bad_rubric.jsonl", r"bad_rubric\.jsonl:1: field 'rubrics': .*positive"),
    ],
)
def test_malformed_files_name_file_line_and_field(family: str, name: str, expected: str) -> None:
    (spec,) = parse_tasks(f"{family}={FIXTURES / name}")
    with pytest.raises(EvalError, match=expected):
        load_items(spec)


def test_broken_json_line_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "probs.jsonl"
    path.write_text('{"problem": "1+1", "answer": "2"}\n{"problem": \n')
    (spec,) = parse_tasks(f"math={path}")
    with pytest.raises(EvalError, match=r"probs\.jsonl:2: not valid JSON"):
        load_items(spec)
    (missing,) = parse_tasks(f"math={tmp_path / 'nope.jsonl'}")
    with pytest.raises(EvalError, match="no such file"):
        load_items(missing)


def test_duplicate_ids_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "dup.jsonl"
    path.write_text(
        '{"id": 1, "problem": "a", "answer": "1"}\n{"id": 1, "problem": "b", "answer": "2"}\n'
    )
    (spec,) = parse_tasks(f"math={path}")
    with pytest.raises(EvalError, match=r"dup\.jsonl:2: field 'id'.*repeats"):
        load_items(spec)


def test_ifeval_kwargs_must_match_instructions(tmp_path: Path) -> None:
    path = tmp_path / "if.jsonl"
    path.write_text(
        '{"key": 1, "prompt": "p", "instruction_id_list": ["a", "b"], "kwargs": [{}]}\n'
    )
    (spec,) = parse_tasks(f"ifeval={path}")
    with pytest.raises(EvalError, match=r"if\.jsonl:1: .*kwargs has 1 entries for 2"):
        load_items(spec)


def test_limit_takes_the_first_items() -> None:
    (spec,) = parse_tasks(f"math={FIXTURES / 'math.jsonl'}")
    assert [i.item_id for i in load_items(spec, limit=2)] == ["p1", "p2"]


def test_local_copies_of_hub_benchmarks_use_the_hub_fields() -> None:
    gpqa, health = parse_tasks(
        f"gpqa_diamond={FIXTURES / 'gpqa_hub_rows.jsonl'},"
        f"healthbench={FIXTURES / 'healthbench_hub_rows.jsonl'}"
    )
    (question,) = load_items(gpqa)
    assert question.item_id == "recA" and gpqa.family == "mcq"
    assert f"{question.target['correct']}) Photon\n" in question.messages[0]["content"]
    (case,) = load_items(health)
    assert case.item_id == "hb1" and health.family == "rubric"
    assert [r["points"] for r in case.target["rubrics"]] == [5.0, -8.0]
    assert case.messages[0]["content"].startswith("My child has a fever")


def test_local_copy_missing_a_hub_field(tmp_path: Path) -> None:
    path = tmp_path / "gpqa.jsonl"
    path.write_text('{"Question": "q", "Correct Answer": "a"}\n')
    (spec,) = parse_tasks(f"gpqa_diamond={path}")
    with pytest.raises(EvalError, match=r"gpqa\.jsonl:1: field 'Incorrect Answer 1': missing"):
        load_items(spec)
