"""`analyze` with method gad: a saved discriminator scores the hand-made pool, with no judge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.analysis.conftest import POOL, read_jsonl

from ropd.analysis.methods import parse_method
from ropd.analysis.runner import analyze
from ropd.errors import ConfigError
from ropd.integrations.trl.gad import Discriminator


@pytest.fixture
def discriminator(tiny_student: Path, tmp_path: Path) -> Path:
    """A discriminator after one Bradley-Terry step, saved as a GAD run saves it."""
    torch.manual_seed(0)
    d = Discriminator.build(str(tiny_student), lora={"r": 4, "lora_alpha": 8}, learning_rate=1e-2)
    prompt = [{"role": "user", "content": "Question g1: say the words."}]
    d.step([([d.text(prompt, "MARK bonus")], [d.text(prompt, "zzz")])])
    return d.save(tmp_path / "final" / "discriminator")


def test_gad_scores_the_pool_with_the_saved_discriminator(
    pool_file: Path, discriminator: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    name = f"gad:checkpoint={discriminator}"
    # no client: a method needing the judge would open the embedded one and fail here
    analyze(pool_file, out, methods=name, plots=False)
    data = json.loads((out / "analysis.json").read_text())
    figures = data["methods"][name]
    assert figures["failed_groups"] == 0 and figures["missing_groups"] == 0
    rows = read_jsonl(out / "rewards.jsonl")
    got: dict[str, list[float]] = {}
    for row in sorted(rows, key=lambda r: r["index"]):
        got.setdefault(row["group_id"], []).append(row["reward"])
    d = Discriminator.load(discriminator)
    for gid, answers in POOL.items():
        prompt = [{"role": "user", "content": f"Question {gid}: say the words."}]
        expected = d.score([d.text(prompt, text) for text, _ in answers]).tolist()
        assert got[gid] == pytest.approx(expected, abs=1e-5)
    assert len({round(r, 6) for rs in got.values() for r in rs}) > 1  # not a constant


def test_gad_needs_a_saved_discriminator(pool_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="gad:checkpoint=<folder>"):
        parse_method("gad")
    with pytest.raises(ConfigError, match="valid for gad: checkpoint=<value>"):
        parse_method("gad:lr=1")
    with pytest.raises(ConfigError, match="holds no saved GAD discriminator"):
        analyze(pool_file, tmp_path / "out", methods=f"gad:checkpoint={tmp_path}", plots=False)
