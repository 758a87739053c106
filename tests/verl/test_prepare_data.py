"""`ropd verl prepare-data` and the adapter's settings checks (no verl needed, except where said)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ropd.cli import app
from ropd.integrations.verl.settings import VerlSection, VerlSettings
from ropd.llm.config import RoleConfig
from ropd.llm.types import Completion
from ropd.teacher import TeacherFingerprint, TeacherStore


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_prepare_data_writes_verl_rows(tmp_path: Path) -> None:
    data = write_jsonl(
        tmp_path / "data.jsonl",
        [
            {"id": "a", "prompt": "What is 6 x 7?", "answer": "42",
             "teacher_responses": ["42 because 6 x 7 = 42"]},
            {"id": "b", "prompt": [{"role": "user", "content": "Name a prime."}]},
        ],
    )  # fmt: skip
    out = tmp_path / "runs" / "val.parquet"
    result = CliRunner().invoke(
        app, ["verl", "prepare-data", str(data), "-o", str(out), "--split", "val",
              "--system-prompt", "Think step by step."],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"rows": 2, "with_teacher_responses": 1, "output": str(out)}
    rows = pq.read_table(out).to_pylist()
    assert rows[0]["data_source"] == "ropd"
    assert rows[0]["prompt"] == [
        {"role": "system", "content": "Think step by step."},
        {"role": "user", "content": "What is 6 x 7?"},
    ]
    assert rows[0]["reward_model"] == {"style": "ropd", "ground_truth": "42"}
    assert rows[0]["extra_info"] == {
        "index": 0, "id": "a", "split": "val", "teacher_responses": ["42 because 6 x 7 = 42"],
    }  # fmt: skip
    assert rows[1]["extra_info"]["teacher_responses"] is None
    assert rows[1]["reward_model"]["ground_truth"] == ""


def test_prepare_data_takes_teacher_answers_from_the_store(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "data.jsonl", [{"id": "a", "prompt": "What is 6 x 7?"}])
    store_path = tmp_path / "teacher.sqlite"
    with TeacherStore(store_path) as store:
        messages = [{"role": "user", "content": "What is 6 x 7?"}]
        answers = [Completion("42 because 6 x 7", "stop"), Completion("forty-two", "stop")]
        store.add_answers(
            messages, TeacherFingerprint.from_role(RoleConfig(name="teacher")), answers
        )
    out = tmp_path / "train.parquet"
    result = CliRunner().invoke(
        app, ["verl", "prepare-data", str(data), "-o", str(out), "--teacher-store",
              str(store_path), "-k", "2"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    extra = pq.read_table(out).to_pylist()[0]["extra_info"]
    assert sorted(extra["teacher_responses"]) == ["42 because 6 x 7", "forty-two"]
    assert "fewer than" not in result.output

    # K above what the store holds: the rows are written and the shortfall is said
    result = CliRunner().invoke(
        app, ["verl", "prepare-data", str(data), "-o", str(out), "--teacher-store",
              str(store_path), "-k", "4"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1 of 1 rows have fewer than 4 teacher answers" in result.stderr
    assert json.loads(result.stdout)["fewer_than_k"] == 1


def test_prepare_data_refuses_duplicate_ids(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "d.jsonl", [{"id": 1, "prompt": "x"}, {"id": 1, "prompt": "y"}])
    result = CliRunner().invoke(app, ["verl", "prepare-data", str(data), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "duplicate id '1'" in result.output
    assert not (tmp_path / "o").exists()


def settings(workers: int, batch: int, n: int) -> VerlSettings:
    return VerlSettings(VerlSection(), "ropd.yaml", n, 1, batch, workers, None)


def test_a_step_too_large_for_the_actor_limits_is_warned_about() -> None:
    assert settings(1, 32, 8).concurrency_warning() is None
    one = settings(1, 256, 8).concurrency_warning()
    assert one is not None and "2048 rollouts" in one and "reward.num_workers > 1" in one
    assert settings(8, 256, 8).concurrency_warning() is None  # 8 workers x 1000 / 2 slots
    many = settings(2, 256, 8).concurrency_warning()
    assert many is not None and "ropd_actor_concurrency" in many


def test_verl_rows_load_as_verls_rlhf_dataset(tmp_path: Path) -> None:
    pytest.importorskip("verl")
    from omegaconf import OmegaConf
    from ropd_dev.bench.verl import byte_tokenizer
    from verl.utils import hf_tokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset

    data = write_jsonl(tmp_path / "d.jsonl", [{"id": "a", "prompt": "What is 6 x 7?"}])
    out = tmp_path / "train.parquet"
    result = CliRunner().invoke(app, ["verl", "prepare-data", str(data), "-o", str(out)])
    assert result.exit_code == 0, result.output
    tokenizer = hf_tokenizer(str(byte_tokenizer(tmp_path / "tok")))
    config = OmegaConf.create({"filter_overlong_prompts": False, "cache_dir": str(tmp_path)})
    row = RLHFDataset(str(out), tokenizer, config)[0]
    assert list(row["raw_prompt"]) == [{"role": "user", "content": "What is 6 x 7?"}]
    assert row["data_source"] == "ropd" and row["extra_info"]["split"] == "train"


def test_prepare_data_writes_the_gold_answer_as_ropd_train_reads_it(tmp_path: Path) -> None:
    data = write_jsonl(
        tmp_path / "data.jsonl",
        [
            {"id": "a", "prompt": "6 x 7?", "solution": 42},
            {"id": "b", "prompt": "Half of 1?", "solution": 0.5},
            {"id": "c", "prompt": "Name two primes.", "solution": [2, 3]},  # not one answer
            {"id": "d", "prompt": "Name a prime.", "answer": "7"},  # not the answer field
        ],
    )
    out = tmp_path / "train.parquet"
    result = CliRunner().invoke(
        app, ["verl", "prepare-data", str(data), "-o", str(out), "--answer-field", "solution"]
    )
    assert result.exit_code == 0, result.output
    truths = [row["reward_model"]["ground_truth"] for row in pq.read_table(out).to_pylist()]
    assert truths == ["42", "0.5", "", ""]


def test_prepare_data_carries_the_datasets_rubric(tmp_path: Path) -> None:
    from ropd.data.rubrics import parse_rubric

    sample = Path(__file__).resolve().parents[2] / "src" / "ropd" / "data" / "sample_rar.jsonl"
    records = [json.loads(line) for line in sample.read_text(encoding="utf-8").splitlines()]
    records.append({"id": "plain", "question": "Name a prime.", "reference_answer": "2"})
    data = write_jsonl(tmp_path / "rar.jsonl", records)
    out = tmp_path / "rar.parquet"
    fields = ["--prompt-field", "question", "--answer-field", "reference_answer"]
    result = CliRunner().invoke(app, ["verl", "prepare-data", str(data), "-o", str(out), *fields])
    assert result.exit_code == 0, result.output
    rows = pq.read_table(out).to_pylist()
    carried = [row["extra_info"]["rubric"] for row in rows]
    assert carried[-1] is None  # a record without a rubric gets none
    for record, text in zip(records[:-1], carried, strict=False):
        assert parse_rubric(json.loads(text)) == parse_rubric(record["rubric"])

    bad = write_jsonl(
        tmp_path / "bad.jsonl", [{"id": "x", "prompt": "q", "rubric": [{"weight": 2}]}]
    )
    result = CliRunner().invoke(
        app, ["verl", "prepare-data", str(bad), "-o", str(tmp_path / "b.pq")]
    )
    assert result.exit_code != 0
    assert f"{bad}:1: field 'rubric'" in result.output + (result.stderr or "")
