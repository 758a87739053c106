"""`analyze` with method rar: each pool line's own rubric, exact figures beside ropd."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.analysis.conftest import make_judge, pool_rows, read_jsonl, write_jsonl

from ropd.analysis.methods import parse_method
from ropd.analysis.pool import PoolFileError
from ropd.analysis.runner import analyze
from ropd.errors import ConfigError

# RaR layout; the Verifier passes "answer mentions W" iff W is in the answer
RUBRIC = [
    {"title": "Essential Criteria", "description": "answer mentions MARK", "weight": 5},
    {"title": "Optional Criteria", "description": "answer mentions alpha", "weight": 1},
    {"title": "Pitfall Criteria", "description": "answer mentions zzz", "weight": -2},
]


def rar_pool(tmp_path: Path, *, drop: str | None = None) -> Path:
    rows = pool_rows()
    for row in rows:
        if row["id"] != drop:
            row["rubric"] = RUBRIC
    return write_jsonl(tmp_path / "pool.jsonl", rows)


def test_rar_scores_each_line_against_its_rubric(tmp_path: Path) -> None:
    out = tmp_path / "out"
    client = make_judge()
    analyze(rar_pool(tmp_path), out, methods="ropd,rar", client=client, plots=False)
    data = json.loads((out / "analysis.json").read_text())
    assert data["methods"]["rar"]["failed_groups"] == 0
    assert data["methods"]["rar"]["settings"]["mix_induced"] is False
    rows = read_jsonl(out / "rewards.jsonl")
    rewards: dict[tuple[str, str], list[float]] = {}
    for row in sorted(rows, key=lambda r: r["index"]):
        rewards.setdefault((row["method"], row["group_id"]), []).append(row["reward"])
    # by hand, (5 MARK + 1 alpha - 2 zzz) / 6 clipped
    assert rewards[("rar", "g1")] == pytest.approx([5 / 6, 5 / 6, 1 / 6, 5 / 6])
    assert rewards[("rar", "g2")] == pytest.approx([1.0, 0.0, 0.0, 1 / 6])
    assert rewards[("rar", "g3")] == pytest.approx([0.0, 1.0, 0.0, 1 / 6])
    # one Rubricator call per group, for ropd only
    assert len(client.calls_for("rubricator")) == 3


def test_rar_needs_a_rubric_on_every_line(tmp_path: Path) -> None:
    with pytest.raises(PoolFileError) as caught:
        analyze(rar_pool(tmp_path, drop="g2"), tmp_path / "out", methods="rar",
                client=make_judge(), plots=False)  # fmt: skip
    assert "pool.jsonl:2: field 'rubric'" in str(caught.value)


def test_rar_switches_are_checked() -> None:
    assert parse_method("rar:mix_induced=true+k=2").overrides == {
        "mix_induced": "true",
        "num_teacher_refs": "2",
    }
    with pytest.raises(ConfigError, match="valid for rar"):
        parse_method("rar:per_pair")
