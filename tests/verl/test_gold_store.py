"""Under verl the gold checks of each group reach the trace store, beside its rewards.

No verl needed (math-verify is, which `.venv-verl` has): the collector is driven with the
scripted judge of `conftest.py`; the gold checks follow the boxed number.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.verl.conftest import RUBRIC, TEACHER, prompt_of

from ropd.integrations.verl.collector import VerlRollout
from ropd.integrations.verl.engine import group_collector
from ropd.integrations.verl.settings import VerlSection, VerlSettings
from ropd.reward.batch import Rollout
from ropd.reward.traces import TraceStore
from ropd.testing import make_client

G = 2
# per group: (answer, gold answer of its row); boxed 7 is right
GROUPS = {
    0: [("42 because \\boxed{7}", "7"), ("42 \\boxed{8}", "7")],
    1: [("no idea \\boxed{7}", "7"), ("42 because check units \\boxed{3}", "7")],
    2: [("42", None), ("because units", None)],  # a row without a gold answer
}


def settings(tmp_path: Path) -> VerlSettings:
    return VerlSettings(
        section=VerlSection.model_validate({"scorer": {"num_teacher_refs": 1}}),
        config_path="ropd.yaml",
        group_size=G,
        val_group_size=G,
        groups_per_step=len(GROUPS),
        workers=1,
        traces=tmp_path / "traces.db",
        group_timeout_s=30.0,
    )


async def test_the_collector_records_each_answers_gold_check(tmp_path: Path) -> None:
    pytest.importorskip("math_verify")
    collector = group_collector(settings(tmp_path), client=make_client(RUBRIC))
    await asyncio.gather(
        *(
            collector.submit(
                VerlRollout(
                    f"uid-{g}", Rollout(f"q{g}", prompt_of(g), text, tuple(TEACHER), gold), G
                )
            )
            for g, rows in GROUPS.items()
            for text, gold in rows
        )
    )
    await collector.flush()
    metrics = collector.step_metrics[1]
    await collector.aclose()

    with TraceStore(tmp_path / "traces.db") as store:
        (step,) = store.steps()
    by_group = {res.id: correct for res, correct in zip(step.results, step.correct, strict=True)}
    assert by_group == {"q0": [True, False], "q1": [True, False], "q2": None}
    # the logged step numbers and the store's agree
    assert metrics["ropd/health/gold_checked"] == 4.0
    assert step.health().gold_auc == metrics["ropd/health/gold_auc"]
    assert step.health().gold_pair_accuracy == metrics["ropd/health/gold_pair_accuracy"] == 0.5
