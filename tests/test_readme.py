"""The README's Python section runs as written, against a real HTTP judge on 127.0.0.1:8000.

The TRL snippet that follows it needs a downloadable model; the same wiring (a `RopdReward` in a
user-built `GRPOTrainer`, teacher answers from a dataset column) is trained for real in
`tests/integrations/trl/test_reward.py`.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from ropd.testing import StubJudgeServer

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Python\n") : text.index("### In your own TRL trainer")]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


def test_readme_python_section_runs_as_written(tmp_path: Path, monkeypatch, capsys) -> None:
    blocks = python_blocks()
    assert len(blocks) == 2
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 8000)) == 0:
            pytest.fail("port 8000 is taken: the README example talks to 127.0.0.1:8000")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with StubJudgeServer(latency_s=0.0, port=8000, models=["Qwen/Qwen3-30B-A3B"]) as judge:
        namespace: dict[str, object] = {"__name__": "readme"}
        for block in blocks:
            exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
        models = {body["model"] for body in judge.bodies}
    printed = capsys.readouterr().out
    assert models == {"Qwen/Qwen3-30B-A3B"}
    results = namespace["results"]
    assert [r.id for r in results] == ["q1"] and not results[0].failed  # type: ignore[attr-defined]
    assert all(0.0 <= r <= 1.0 for r in results[0].rewards)  # type: ignore[attr-defined]
    assert "q1 [" in printed and (tmp_path / "traces.db").is_file()
