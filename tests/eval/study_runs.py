"""Real inputs of a study table: training run folders written by the runner's own writer, and
eval summaries written by the real `ropd eval` run against a scripted student.

Two tasks: `math` (3 problems: p1 17*23, p2 6/8, p3 the radical) and `mcq` (2 questions: the
Red Planet, sodium). A student is right exactly on the questions it is told, so every pass@1
is a fraction known by hand.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from ropd.eval.generate import EndpointGenerator
from ropd.eval.runner import prepare, run_eval
from ropd.eval.tasks import parse_tasks
from ropd.eval.types import GenerationSettings
from ropd.llm.config import RoleConfig
from ropd.testing import ScriptedChatClient
from ropd.train import runner
from ropd.train.config import load_config

FIXTURES = Path(__file__).parent / "fixtures"
TASKS = f"math={FIXTURES / 'math.jsonl'},mcq={FIXTURES / 'mcq.jsonl'}"
# keyword in the prompt -> the right answer (mcq: the choice text whose letter is right)
RIGHT = {
    "17 * 23": "\\boxed{391}",
    "6/8": "\\boxed{\\frac{3}{4}}",
    "square root": "\\boxed{3\\sqrt{2}}",
    "Red Planet": "Mars",
    "sodium": "Na",
}
ALL = frozenset(RIGHT)

CONFIG = """\
output_dir: {folder}
ropd:
  method: ropd
  student: Qwen/Qwen3-0.6B
  data: {{source: sample, limit: 8}}
  teacher: {{store: {folder}/teacher.db}}
"""


class Student:
    """Right on the questions whose keyword it knows, wrong on every other one."""

    def __init__(self, knows: frozenset[str]) -> None:
        self.knows = knows

    def __call__(self, messages, schema) -> str:
        prompt = messages[-1]["content"]
        for keyword, answer in RIGHT.items():
            if keyword in prompt and keyword in self.knows:
                if answer.startswith("\\boxed"):
                    return f"So {answer}"
                letter = re.search(rf"^([A-D])\) {answer}$", prompt, re.MULTILINE).group(1)
                return f"Answer: {letter}"
        return "\\boxed{0}"  # no letter for mcq, a wrong number for math


def evaluate(out: Path, model: str, knows: frozenset[str] = frozenset(), **settings) -> Path:
    """`ropd eval`'s run of `model` (the served name: here a path) into `out`."""
    client = ScriptedChatClient({"student": Student(knows)})
    role = RoleConfig(name="student", base_url="http://127.0.0.1:9/v1", model=model)
    generation = GenerationSettings(**{"n": 2, "max_new_tokens": 64, **settings})
    asyncio.run(
        run_eval(prepare(parse_tasks(TASKS)), EndpointGenerator(client, role), generation, out)
    )
    return out


def training_run(folder: Path, method: str) -> Path:
    """A run folder as `ropd train` starts one (`ropd_run.json` by the runner's own writer), with
    the `final/` model folder a finished run leaves."""
    folder.mkdir(parents=True)
    config_file = folder / "train.yaml"
    config_file.write_text(CONFIG.format(folder=folder))
    overrides: dict[str, object] = {"ropd.method": method}
    if method in ("lopd", "exopd"):
        overrides[f"ropd.{method}.teacher_model"] = "Qwen/Qwen3-1.7B"
    config = load_config(config_file, overrides, check_paths=False)
    runner._write_run_file(config, f"{method}-20260101-000000-test", finished=True, global_step=5)
    (folder / "final").mkdir()
    return folder
