"""A hand-made pool whose every reward is known, and a judge that answers by content.

The Rubricator always writes RUBRIC ("answer mentions W" criteria in three categories); the
Verifier passes a criterion iff its word is in the answer; the T-Judge gives 9 to answers
mentioning MARK, else 2. So every reward, and every figure of `analysis.json`, is known by hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ropd.llm.types import JsonSchema
from ropd.reward.schemas import SCALAR_SCHEMA_NAME
from ropd.testing import ScriptedChatClient, content_policy

RUBRIC = json.dumps(
    {
        "criteria": [
            {"category": "Correctness", "criterion": "answer mentions MARK", "points": 4},
            {"category": "reasoning", "criterion": "answer mentions bonus", "points": 2},
            {"category": "clarity", "criterion": "answer mentions alpha", "points": 1},
            {"category": "clarity", "criterion": "answer mentions beta", "points": 1},
        ]
    }
)
TJUDGE_ANSWER = re.compile(r"<<<(ROPD-[0-9A-F]+) ANSWER>>>\n(.*?)\n<<<\1 END>>>", re.DOTALL)

# (response, correct); ropd reward = (4*MARK + 2*bonus + alpha + beta) / 8
POOL = {
    "g1": [("MARK bonus", True), ("MARK", True), ("bonus alpha", False), ("MARK", False)],
    "g2": [("MARK alpha beta", True), ("nothing", False), ("beta", False),
           ("alpha beta bonus", False)],
    "g3": [("bonus", False), ("MARK bonus alpha beta", False), ("zzz", False),
           ("alpha", False)],
}  # fmt: skip


def judge_policy(messages: list[dict[str, Any]], json_schema: JsonSchema | None) -> str:
    if json_schema is not None and json_schema.name == SCALAR_SCHEMA_NAME:
        answer = TJUDGE_ANSWER.findall(messages[-1]["content"])[-1][1]
        return json.dumps({"reasoning": "by content", "score": 9 if "MARK" in answer else 2})
    return content_policy(RUBRIC)(messages, json_schema)


def make_judge() -> ScriptedChatClient:
    return ScriptedChatClient({r: judge_policy for r in ("rubricator", "verifier", "tjudge")})


def pool_rows() -> list[dict[str, Any]]:
    return [
        {
            "id": gid,
            "prompt": f"Question {gid}: say the words.",
            "responses": [text for text, _ in answers],
            "correct": [ok for _, ok in answers],
            "teacher_responses": ["MARK bonus alpha beta, said the teacher"],
        }
        for gid, answers in POOL.items()
    ]


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


@pytest.fixture
def pool_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "pool.jsonl", pool_rows())
