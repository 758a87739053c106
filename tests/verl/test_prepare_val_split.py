"""`ropd verl prepare-data --val-output --val-size`: a validation split held out of the prompts.

No verl needed: runs in the main venv and in `.venv-verl`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from ropd.cli import app


def write_prompts(path: Path, ids: list[str]) -> Path:
    rows = [{"id": i, "prompt": f"Question {i}?", "answer": str(n)} for n, i in enumerate(ids)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def prepare(data: Path, folder: Path, *extra: str) -> tuple[int, str, list[dict], list[dict]]:
    train, val = folder / "train.parquet", folder / "val.parquet"
    result = CliRunner().invoke(
        app,
        ["verl", "prepare-data", str(data), "-o", str(train), "--val-output", str(val), *extra],
    )
    if result.exit_code != 0:
        return result.exit_code, result.output, [], []
    rows = [pq.read_table(p).to_pylist() for p in (train, val)]
    return result.exit_code, result.output, rows[0], rows[1]


def ids(rows: list[dict]) -> list[str]:
    return [row["extra_info"]["id"] for row in rows]


def test_val_size_prompts_are_held_out_at_random_in_file_order(tmp_path: Path) -> None:
    names = [f"q{n:02d}" for n in range(20)]
    data = write_prompts(tmp_path / "d.jsonl", names)
    code, output, train, val = prepare(data, tmp_path / "a", "--val-size", "5")
    assert code == 0, output
    summary = json.loads(output)
    assert (summary["rows"], summary["val_rows"]) == (15, 5)
    assert summary["val_output"] == str(tmp_path / "a" / "val.parquet")
    assert sorted(ids(train) + ids(val)) == names
    assert ids(val) == sorted(ids(val)) and ids(train) == sorted(ids(train))  # file order
    assert ids(val) not in (names[:5], names[-5:])  # drawn, not a slice
    assert {row["extra_info"]["split"] for row in val} == {"val"}
    assert {row["extra_info"]["split"] for row in train} == {"train"}
    assert [row["extra_info"]["index"] for row in val] == list(range(5))

    # the same seed draws the same prompts; another seed others
    assert ids(prepare(data, tmp_path / "b", "--val-size", "5")[3]) == ids(val)
    other = prepare(data, tmp_path / "c", "--val-size", "5", "--val-seed", "1")[3]
    assert ids(other) != ids(val)


def test_val_split_needs_both_flags_and_prompts_left_to_train_on(tmp_path: Path) -> None:
    data = write_prompts(tmp_path / "d.jsonl", ["a", "b", "c"])
    code, output, *_ = prepare(data, tmp_path / "x")  # --val-output without --val-size
    assert code == 2 and "--val-output and --val-size go together" in output
    code, output, *_ = prepare(data, tmp_path / "y", "--val-size", "3")
    assert code == 2 and "leave prompts to train on (the data has 3)" in output
    assert not (tmp_path / "y" / "train.parquet").exists()


def test_an_id_repeated_across_the_split_is_refused(tmp_path: Path) -> None:
    data = write_prompts(tmp_path / "d.jsonl", ["a", "b", "c", "a"])
    for seed in range(4):  # whichever side each copy lands on
        code, output, *_ = prepare(
            data, tmp_path / str(seed), "--val-size", "1", "--val-seed", str(seed)
        )
        assert code == 2 and "duplicate id 'a'" in output
