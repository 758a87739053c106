"""`teacher_logprob` against the real embedded llama.cpp server (SmolLM2), through `analyze`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.analysis.conftest import read_jsonl, write_jsonl

from ropd.analysis.runner import analyze
from ropd.llm.config import RoleConfig


@pytest.mark.slow
def test_a_likely_answer_beats_garbage(local_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    row = {
        "id": "capital",
        "prompt": "What is the capital of France?",
        "responses": ["The capital of France is Paris.", "zq xv kjw pplo qqz vbn rrt"],
        "correct": [True, False],
    }
    pool = write_jsonl(tmp_path / "pool.jsonl", [row])
    teacher = RoleConfig(name="teacher", base_url=local_server.base_url, model=local_server.model)
    analyze(pool, tmp_path / "out", methods="teacher_logprob", teacher=teacher,
            chat_template="embedded", plots=False)  # fmt: skip
    rewards = [r["reward"] for r in read_jsonl(tmp_path / "out" / "rewards.jsonl")]
    assert rewards[0] > rewards[1] + 1.0, rewards
    assert all(r < 0 for r in rewards)
    figures = json.loads((tmp_path / "out" / "analysis.json").read_text())["methods"]
    assert figures["teacher_logprob"]["auc"] == 1.0
    assert figures["teacher_logprob"]["judge_usage"]["teacher"]["calls"] == 2
