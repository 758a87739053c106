"""A small training config on local files: three prompts, fixed sizes, fixed prices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CONFIG = """\
output_dir: {out}
max_steps: 10
num_generations: 4
per_device_train_batch_size: 8
gradient_accumulation_steps: 2
steps_per_generation: 4
max_completion_length: 120
ropd:
  method: ropd
  data:
    source: {data}
  teacher:
    store: {store}
    build_missing: true
    num_answers: 2
    role:
      base_url: http://127.0.0.1:9/v1
      model: teacher-model
      max_tokens: 300
      price: {{input_per_mtok: 1.0, output_per_mtok: 4.0}}
  scorer:
    num_teacher_refs: 2
    min_criteria: 4
    max_criteria: 6
    judge:
      base_url: http://127.0.0.1:9/v1
      model: judge-model
      price: {{input_per_mtok: 2.0, output_per_mtok: 10.0}}
    rubricator: {{max_tokens: 1000}}
    verifier: {{max_tokens: 500}}
  limits:
    requests_per_minute: 12
"""


@pytest.fixture
def small_config(tmp_path: Path) -> Path:
    data = tmp_path / "prompts.jsonl"
    rows = [{"id": f"p{i}", "prompt": f"{i}" * 30, "answer": "1"} for i in range(3)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "train.yaml"
    path.write_text(
        CONFIG.format(out=tmp_path / "run", data=data, store=tmp_path / "teacher.sqlite")
    )
    return path
