"""`analyze` with method ovd on the hand-made pool: exact figures beside tjudge, switches."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from tests.analysis.conftest import judge_policy, read_jsonl

from ropd.analysis.methods import parse_method
from ropd.analysis.runner import analyze
from ropd.errors import ConfigError
from ropd.llm.types import JsonSchema
from ropd.reward.schemas import OVD_SCHEMA_NAME
from ropd.testing import ScriptedChatClient

BLOCK = re.compile(r"<<<(ROPD-[0-9A-F]+) ANSWER(?: (\d+))?>>>\n(.*?)\n<<<\1 END>>>", re.DOTALL)


def ovd_policy(messages: list[dict[str, Any]], json_schema: JsonSchema | None) -> str:
    """9 for an answer mentioning MARK, else 2: one score, or one per numbered answer."""
    assert json_schema is not None and json_schema.name == OVD_SCHEMA_NAME
    blocks = BLOCK.findall(messages[0]["content"])
    scores = {n: 9 if "MARK" in text else 2 for _, n, text in blocks}
    if list(scores) == [""]:
        return json.dumps({"score": scores[""]})
    return json.dumps({f"answer_{n}": s for n, s in scores.items()})


def judge() -> ScriptedChatClient:
    return ScriptedChatClient({"tjudge": judge_policy, "ovd": ovd_policy})


def test_ovd_is_compared_with_tjudge_on_one_pool(pool_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    client = judge()
    methods = "tjudge,ovd,ovd:per_call=group+reject_below=3"
    analyze(pool_file, out, methods=methods, client=client, plots=False)
    data = json.loads((out / "analysis.json").read_text())
    for name in ("ovd", "ovd:per_call=group+reject_below=3"):
        figures = data["methods"][name]  # the same ranking as tjudge's: 1.0 with MARK, else low
        assert figures["auc"] == pytest.approx(24 / 27)
        assert figures["pair_accuracy"] == pytest.approx(6 / 7)
        assert figures["failed_groups"] == 0 and figures["missing_groups"] == 0
    assert data["methods"]["ovd"]["judge_usage"]["ovd"]["calls"] == 12
    grouped = data["methods"]["ovd:per_call=group+reject_below=3"]
    assert grouped["judge_usage"]["ovd"]["calls"] == 3
    assert grouped["settings"] == {"per_call": "group", "reject_below": 3}
    rows = read_jsonl(out / "rewards.jsonl")
    rewards: dict[tuple[str, str], list[float]] = {}
    for row in sorted(rows, key=lambda r: r["index"]):
        rewards.setdefault((row["method"], row["group_id"]), []).append(row["reward"])
    assert rewards[("ovd", "g1")] == pytest.approx([1.0, 1.0, 2 / 9, 1.0])
    # score 2 is below reject_below=3: reward 0
    assert rewards[("ovd:per_call=group+reject_below=3", "g1")] == [1.0, 1.0, 0.0, 1.0]
    # the teacher sees no teacher answer (OVD is judged from the trajectory alone)
    assert all("said the teacher" not in c.messages[0]["content"] for c in client.calls_for("ovd"))


def test_ovd_switches_are_checked() -> None:
    assert parse_method("ovd:reject_below=4").overrides == {"reject_below": "4"}
    with pytest.raises(ConfigError, match="valid for ovd: per_call=<value>, reject_below"):
        parse_method("ovd:num_references=1")
