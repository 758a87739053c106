"""The plan of `method: rar`: each row's own rubric read from the data, no Rubricator unless
`mix_induced`, figures worked out by hand, and token counts against what a judge received."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from ropd import Group, RoleConfig
from ropd.plan.build import PlanOptions, build_plan
from ropd.plan.groups import group_load
from ropd.plan.render import render_text
from ropd.reward.config import RaRConfig
from ropd.reward.rar import RaRScorer
from ropd.testing import StubJudgeServer
from ropd.train.config import load_config

from .test_arithmetic import ThousandCounter
from .test_counts import StubCounter

SIZES = (3, 5, 4)  # criteria of the three rows' rubrics: a mean of 4


def rubric(n: int, tag: str = "fact") -> list[dict[str, Any]]:
    """RaR's layout: n items, the first worth 5, the others 2."""
    return [
        {"title": f"t{j}", "description": f"Essential Criteria: states {tag} {j}",
         "weight": 5 if j == 0 else 2}
        for j in range(n)
    ]  # fmt: skip


@pytest.fixture
def rar_config(small_config: Path) -> Path:
    """The small config as `method: rar` on three rows carrying rubrics of 3, 5 and 4 items."""
    data = small_config.parent / "rar.jsonl"
    rows = [
        {"id": f"p{i}", "prompt": f"{i}" * 30, "answer": "1", "rubric": rubric(n)}
        for i, n in enumerate(SIZES)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = small_config.read_text().replace("method: ropd", "method: rar")
    text = text.replace("  scorer:\n    num_teacher_refs: 2\n", "  rar:\n")
    text = text.replace(str(small_config.parent / "prompts.jsonl"), str(data))
    small_config.write_text(text)
    return small_config


def plan_of(path: Path, **overrides: Any) -> Any:
    config = load_config(path, overrides, check_paths=False)
    options = PlanOptions(latency_s=20, prefill_tps=1000, decode_tps=100)
    return build_plan(config, options, counter=ThousandCounter())


def test_rar_plans_the_verifier_alone_on_each_rows_own_rubric(rar_config: Path) -> None:
    plan = plan_of(rar_config)
    shape = plan.shape
    assert (shape.method, shape.k, shape.pool) == ("rar", 0, 4)  # K 0: the G students only
    assert shape.dataset_criteria == 4 and shape.criteria == 4  # (3 + 5 + 4) / 3
    assert shape.induced_criteria == 0
    (verifier,) = plan.judge  # no Rubricator: the rubric is the data's
    assert verifier.role == "verifier"
    # 1 call of 1,000 tokens; output 4 answers x (3, 5, 4) criteria x 8 = 96, 160, 128: mean 128
    assert verifier.per_group.model_dump() == {
        "calls": 1, "input_tokens": 1000, "output_expected": 128, "output_bound": 500,
    }  # fmt: skip
    assert verifier.cost_per_step is not None  # 4 groups: 4000 x 2 + 512 x 10, per million
    assert verifier.cost_per_step.expected == pytest.approx(0.01312)
    t = plan.throughput
    assert t is not None
    assert (t.phases, t.window_s) == (1, 20)  # one phase of calls: one latency
    assert t.requests == 8 and t.in_flight == 8  # 8 groups x 1 call
    assert t.tokens == 8 * 1128
    assert t.judge_seconds_at_limits == pytest.approx(40)  # 8 requests at 12 a minute
    h = plan.self_hosted
    assert h is not None
    assert h.gpu_seconds == pytest.approx(18.24)  # 8000 / 1000 + 1024 / 100
    assert h.gpus == 1
    assert plan.teacher_build is None  # K = 0: no teacher answers to build
    text = "\n".join(render_text(plan))
    assert "G=4 students, dataset rubric of ~4 criteria, 4 answers verified" in text
    assert "rubricator" not in text


def test_mix_induced_adds_the_rubricator_and_the_induced_criteria(rar_config: Path) -> None:
    plan = plan_of(rar_config, **{"ropd.rar.mix_induced": True, "ropd.rar.num_teacher_refs": 2})
    shape = plan.shape
    assert shape.pool == 6 and shape.k == 2  # G 4 + K 2
    assert shape.induced_criteria == 5  # the middle of min 4 and max 6
    assert shape.criteria == 9  # 4 of the data on average + 5 induced
    rubricator, verifier = plan.judge
    # Rubricator: 1 call of 1,000 tokens; output 5 criteria x 40 = 200, bound 1000
    assert rubricator.per_group.model_dump() == {
        "calls": 1, "input_tokens": 1000, "output_expected": 200, "output_bound": 1000,
    }  # fmt: skip
    # Verifier: 6 answers x (3+5, 5+5, 4+5) criteria x 8 = 384, 480, 432: mean 432 (bound 500)
    assert verifier.per_group.output_expected == 432
    t = plan.throughput
    assert t is not None and (t.phases, t.requests) == (2, 16)  # Rubricator, then Verifier
    b = plan.teacher_build
    assert b is not None and b.answers_missing == 6  # 3 prompts x K 2
    text = "\n".join(render_text(plan))
    assert "G=4 students + K=2 teachers, dataset rubric of ~4 criteria + 5 induced" in text


def test_a_row_without_a_rubric_is_noted_and_an_assumed_rubric_planned(rar_config: Path) -> None:
    data = rar_config.parent / "rar.jsonl"
    rows = [json.loads(x) for x in data.read_text().splitlines()]
    del rows[1]["rubric"]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plan = plan_of(rar_config)
    notes = "\n".join(plan.notes)
    assert "rar.jsonl:2: missing field 'rubric'" in notes  # as `ropd train` would refuse it
    assert "no dataset rubric read" in notes
    assert plan.shape.dataset_criteria == 10 and plan.shape.criteria == 10  # assumed size


def groups() -> list[Group]:
    words = ["seven", "triangle", "integral", "prime", "matrix", "vector"]
    out = []
    for g in range(3):
        students = [
            " ".join(words[(g + s + i) % len(words)] for i in range(60 + 25 * s)) for s in range(4)
        ]
        out.append(
            Group(
                id=f"g{g}",
                prompt=f"Problem {g}: what is {g + 3} times {g + 11}? Show the steps.",
                student_responses=students,
                teacher_responses=[],
                rubric=rubric(SIZES[g], tag=f"step of problem {g}"),
            )
        )
    return out


def test_planned_verifier_input_matches_what_the_stub_judge_received() -> None:
    with StubJudgeServer(0.0) as stub:
        config = RaRConfig(judge=RoleConfig(base_url=stub.base_url, model="stub"))

        async def score() -> list[Any]:
            async with RaRScorer.open(config) as scorer:
                return await scorer.score_groups(groups())

        results = asyncio.run(score())
    scorer = RaRScorer(config, client=None)
    for group, result in zip(groups(), results):
        assert result.error is None
        assert "rubricator" not in result.usage  # the data's rubric: no Rubricator call
        planned = group_load(
            scorer, group.id, group.prompt, [], group.student_responses, criteria=0,
            counter=StubCounter(), rubric=group.rubric, induce=False,
        )  # fmt: skip
        received = result.usage["verifier"]
        assert planned.rubricator.calls == 0
        assert planned.verifier.calls == received["calls"]
        assert planned.verifier.input_tokens == pytest.approx(received["prompt_tokens"], rel=0.10)
