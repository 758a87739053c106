"""Which benchmarks exist, where their data lives, and how a `--tasks` string is read.

A task is a name, a family (which scorer and prompt format it uses) and a source: either a
Hugging Face dataset (the paper's benchmarks) or a local file with the family's own fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ropd.eval.types import FAMILIES, EvalError


@dataclass(frozen=True)
class TaskSpec:
    """One task to run: `hub_id` for a Hugging Face dataset, or `path` for a local file."""

    name: str
    family: str
    hub_id: str | None = None
    hub_config: str | None = None
    hub_split: str = "train"
    hub_data_files: str | None = None
    path: str | None = None
    convert: Callable[[dict[str, Any]], dict[str, Any]] | None = field(
        default=None, compare=False, repr=False
    )

    @property
    def source(self) -> str:
        if self.path is not None:
            return self.path
        extra = f" ({self.hub_data_files})" if self.hub_data_files else ""
        config = f"/{self.hub_config}" if self.hub_config else ""
        return f"hf://{self.hub_id}{config}[{self.hub_split}]{extra}"


def _aime24(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row.get("id"), "problem": row["problem"], "answer": row["answer"]}


def _matharena(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row.get("problem_idx"), "problem": row["problem"], "answer": row["answer"]}


def _gpqa(row: dict[str, Any]) -> dict[str, Any]:
    correct = row["Correct Answer"].strip()
    wrong = [row[f"Incorrect Answer {i}"].strip() for i in (1, 2, 3)]
    return {
        "id": row.get("Record ID"),
        "question": row["Question"].strip(),
        "choices": [correct, *wrong],
        "answer": 0,
    }


def _healthbench(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row.get("prompt_id"),
        "prompt": row["prompt"],
        "rubrics": [{"criterion": r["criterion"], "points": r["points"]} for r in row["rubrics"]],
    }


def _ifeval(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": row["key"],
        "prompt": row["prompt"],
        "instruction_id_list": row["instruction_id_list"],
        "kwargs": row["kwargs"],
    }


_HEALTHBENCH = "openai/healthbench"

BUILTIN_TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec("aime24", "math", hub_id="HuggingFaceH4/aime_2024", convert=_aime24),
        TaskSpec("aime25", "math", hub_id="MathArena/aime_2025", convert=_matharena),
        TaskSpec("hmmt25", "math", hub_id="MathArena/hmmt_feb_2025", convert=_matharena),
        TaskSpec(
            "gpqa_diamond",
            "mcq",
            hub_id="Idavidrein/gpqa",
            hub_config="gpqa_diamond",
            convert=_gpqa,
        ),
        TaskSpec(
            "healthbench",
            "rubric",
            hub_id=_HEALTHBENCH,
            hub_data_files="2025-05-07-06-14-12_oss_eval.jsonl",
            convert=_healthbench,
        ),
        TaskSpec(
            "healthbench_hard",
            "rubric",
            hub_id=_HEALTHBENCH,
            hub_data_files="hard_2025-05-08-21-00-10.jsonl",
            convert=_healthbench,
        ),
        TaskSpec(
            "healthbench_consensus",
            "rubric",
            hub_id=_HEALTHBENCH,
            hub_data_files="consensus_2025-05-09-20-00-46.jsonl",
            convert=_healthbench,
        ),
        TaskSpec("ifeval", "ifeval", hub_id="google/IFEval", convert=_ifeval),
    )
}
ALIASES = {"hmmt_feb25": "hmmt25", "gpqa": "gpqa_diamond"}


def parse_tasks(text: str) -> list[TaskSpec]:
    """Read `aime24,gpqa_diamond=gpqa.jsonl,math=path.jsonl,mymath@math=other.jsonl`.

    A builtin name selects a Hugging Face benchmark; `BUILTIN=PATH` reads a local copy of it
    (same fields as on the hub). `FAMILY=PATH` is a local file with the family's own fields,
    named after the file's stem; `NAME@FAMILY=PATH` names it explicitly.
    """
    specs: list[TaskSpec] = []
    for raw in (part.strip() for part in text.split(",")):
        if not raw:
            continue
        if "=" in raw:
            head, path = (s.strip() for s in raw.split("=", 1))
            name, _, family = head.rpartition("@")
            builtin = BUILTIN_TASKS.get(ALIASES.get(family.lower(), family.lower()))
            if family not in FAMILIES and builtin is not None and path:
                # A local copy of a benchmark, with the benchmark's own field names.
                specs.append(
                    TaskSpec(
                        name=name or builtin.name,
                        family=builtin.family,
                        path=path,
                        convert=builtin.convert,
                    )
                )
                continue
            if family not in FAMILIES:
                raise EvalError(
                    f"task {raw!r}: unknown family {family!r} (choose from {', '.join(FAMILIES)})"
                )
            if not path:
                raise EvalError(f"task {raw!r}: no file after '='")
            name = name or Path(path).stem
            specs.append(TaskSpec(name=name, family=family, path=path))
        else:
            key = ALIASES.get(raw.lower(), raw.lower())
            if key not in BUILTIN_TASKS:
                known = ", ".join(sorted(BUILTIN_TASKS))
                raise EvalError(
                    f"unknown task {raw!r}: use one of {known}, or FAMILY=PATH for a local file "
                    f"(families: {', '.join(FAMILIES)})"
                )
            specs.append(BUILTIN_TASKS[key])
    if not specs:
        raise EvalError("no task given: pass e.g. --tasks aime24,gpqa_diamond")
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise EvalError(
            f"two tasks are named {', '.join(duplicates)}: name local files with NAME@FAMILY=PATH"
        )
    return specs
