"""Dataset loading: every format, the bundled sample, and errors that name file, line and field."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ropd.data import DataError, load_records, record_id, sample_path, to_prompt_messages
from ropd.data.make_sample import make_rows
from ropd.data.records import Record

ROWS = [
    {"id": "a", "prompt": "What is 2 + 2?", "answer": 4},
    {"id": "b", "prompt": [{"role": "user", "content": "Name a prime."}], "answer": 2},
]


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_json_parquet_csv_give_same_rows(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    jsonl = write_jsonl(tmp_path / "d.jsonl", [json.dumps(r) for r in ROWS])
    as_json = tmp_path / "d.json"
    as_json.write_text(json.dumps(ROWS))
    for path in (jsonl, as_json):
        records = load_records(path)
        assert [r.data["id"] for r in records] == ["a", "b"]
        assert to_prompt_messages(records[0]) == [{"role": "user", "content": "What is 2 + 2?"}]
        assert to_prompt_messages(records[1]) == ROWS[1]["prompt"]
    parquet = tmp_path / "d.parquet"  # a Parquet column has one type: chat messages here
    chat_rows = [
        {**row, "prompt": [{"role": "user", "content": str(row["answer"])}]} for row in ROWS
    ]
    pq.write_table(pa.Table.from_pylist(chat_rows), parquet)
    records = load_records(parquet)
    assert [r.location for r in records] == [f"{parquet}[0]", f"{parquet}[1]"]
    assert [to_prompt_messages(r) for r in records] == [row["prompt"] for row in chat_rows]
    csv_path = tmp_path / "d.csv"
    csv_path.write_text('id,prompt,answer\na,"What is 2 + 2?",4\nb,"Say hi, please",0\n')
    records = load_records(csv_path)
    assert [r.location for r in records] == [f"{csv_path}:2", f"{csv_path}:3"]
    assert to_prompt_messages(records[1]) == [{"role": "user", "content": "Say hi, please"}]
    assert load_records(jsonl)[1].location == f"{jsonl}:2"
    assert load_records(as_json)[1].location == f"{as_json}[1]"
    assert len(load_records(jsonl, limit=1)) == 1


def test_malformed_jsonl_line_names_file_and_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [json.dumps(ROWS[0]), "", '{"id": "x", "prompt": '])
    with pytest.raises(DataError, match=re.escape(f"{path}:3: not valid JSON")):
        load_records(path)
    path = write_jsonl(tmp_path / "list.jsonl", ["[1, 2]"])
    with pytest.raises(DataError, match=re.escape(f"{path}:1: expected a JSON object, got list")):
        load_records(path)


def test_bad_json_and_csv_files(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('[{"id": 1},\n {"id": }]')
    with pytest.raises(DataError, match=re.escape(f"{path}:2: not valid JSON")):
        load_records(path)
    path.write_text('{"id": 1}')
    with pytest.raises(DataError, match="expected a JSON list of objects"):
        load_records(path)
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("id,prompt\n1,hi\n2,hi,extra\n")
    with pytest.raises(DataError, match=re.escape(f"{csv_path}:3: more values")):
        load_records(csv_path)
    with pytest.raises(DataError, match="no such file"):
        load_records(tmp_path / "missing.jsonl")
    with pytest.raises(DataError, match="unknown data format"):
        (tmp_path / "d.txt").write_text("x")
        load_records(tmp_path / "d.txt")


def test_missing_field_and_wrong_type_name_line_and_field(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            json.dumps({"id": 1, "question": "hi"}),
            json.dumps({"id": 2, "prompt": 17}),
            json.dumps({"id": 3, "prompt": [{"role": "user", "content": 5}]}),
            json.dumps({"id": 4, "prompt": [{"role": "wizard", "content": "x"}]}),
            json.dumps({"id": 5, "prompt": "  "}),
            json.dumps({"id": [5], "prompt": "ok"}),
        ],
    )
    records = load_records(path)
    with pytest.raises(DataError) as err:
        to_prompt_messages(records[0])
    assert str(err.value) == f"{path}:1: missing field 'prompt' (fields present: id, question)"
    assert to_prompt_messages(records[0], prompt_field="question")[0]["content"] == "hi"
    with pytest.raises(DataError, match=re.escape(f"{path}:2: field 'prompt' must be a string")):
        to_prompt_messages(records[1])
    with pytest.raises(
        DataError, match=re.escape(f"{path}:3: field 'prompt', message 0: 'content'")
    ):
        to_prompt_messages(records[2])
    with pytest.raises(DataError, match=re.escape(f"{path}:4: field 'prompt', message 0: 'role'")):
        to_prompt_messages(records[3])
    with pytest.raises(DataError, match=re.escape(f"{path}:5: field 'prompt' is empty")):
        to_prompt_messages(records[4])
    with pytest.raises(DataError, match=re.escape(f"{path}:6: field 'id' must be a string")):
        record_id(records[5])
    assert record_id(records[1]) == "2"
    with pytest.raises(DataError, match=re.escape(f"{path}:2: field 'prompt' must be str")):
        records[1].require("prompt", str)


def test_system_prompt_rules() -> None:
    record = Record({"prompt": "Q?", "sys": "Per-row."}, "d.jsonl:1")
    assert to_prompt_messages(record, system_prompt="Be brief.") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Q?"},
    ]
    per_row = to_prompt_messages(record, system_prompt="Be brief.", system_field="sys")
    assert per_row[0]["content"] == "Per-row."
    chat = Record({"prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]},
                  "d.jsonl:2")  # fmt: skip
    with pytest.raises(DataError, match="d.jsonl:2: field 'prompt' already starts with a system"):
        to_prompt_messages(chat, system_prompt="Be brief.")
    assert to_prompt_messages(chat)[0] == {"role": "system", "content": "S"}
    ends_with_assistant = Record({"prompt": [{"role": "assistant", "content": "A"}]}, "d.jsonl:3")
    with pytest.raises(DataError, match="ends with an assistant message"):
        to_prompt_messages(ends_with_assistant)


def test_hub_id_offline_says_plainly_it_could_not_download(tmp_path: Path) -> None:
    code = (
        "from ropd.data import load_records, DataError\n"
        "try:\n"
        "    load_records('openai/gsm8k', name='main', split='test')\n"
        "except DataError as e:\n"
        "    print(e)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    message = out.stdout
    assert "could not download the Hugging Face dataset 'openai/gsm8k'" in message
    assert "split 'test'" in message
    assert "pass a local file instead" in message


def test_bundled_sample_is_what_the_generator_makes_and_answers_are_right() -> None:
    records = load_records(sample_path())
    assert [r.data for r in records] == make_rows()
    assert 30 <= len(records) <= 60
    assert len({r.data["id"] for r in records}) == len(records)
    for record in records:
        answer, prompt = record.data["answer"], record.data["prompt"]
        assert isinstance(answer, int) and answer >= 0
        assert len(prompt) < 120
        expression = re.fullmatch(r"What is (\d+) ([-+*]) (\d+)\? Answer with a number\.", prompt)
        if expression:
            a, op, b = int(expression[1]), expression[2], int(expression[3])
            assert answer == {"+": a + b, "-": a - b, "*": a * b}[op]
        else:  # word problems: the answer follows from the two numbers in the text
            a, b = (int(x) for x in re.findall(r"\d+", prompt)[:2])
            assert answer in (a + b, a - b, a * b, a // b)
