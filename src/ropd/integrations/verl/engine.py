"""ropd's engine as the verl adapter opens it: the judge, the trace store and the teacher store.

The same opening as the TRL adapter's (`integrations/engine.py`), from the `ropd:` section
instead of keyword arguments; everything after it is `reward.batch.BatchScorer`.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from ropd import redact
from ropd.integrations.engine import open_engine
from ropd.integrations.verl import judge_servers
from ropd.integrations.verl.collector import GroupCollector
from ropd.integrations.verl.settings import VerlSettings
from ropd.integrations.verl.tracking import StepTracking
from ropd.llm.types import ChatClient
from ropd.reward.batch import BatchScorer, ReferenceSource, Scorer
from ropd.reward.gate import QualityGate

log = redact.logger(__name__)


def batch_scorer(
    settings: VerlSettings, *, client: ChatClient | None = None, probe: bool = True
) -> BatchScorer:
    """A `BatchScorer` that opens the judge on first use, in the loop that scores."""
    section = settings.section
    if section.teacher.build_missing:
        log.warning(
            "ropd: teacher.build_missing is not applied on verl; build the store beforehand "
            "(`ropd teacher build`) or put teacher_responses into the rows (`ropd verl "
            "prepare-data --teacher-store`)"
        )

    async def opener(stack: AsyncExitStack) -> tuple[Scorer, ReferenceSource | None]:
        run = section.model_copy(update={"probe": section.probe and probe and client is None})
        run = await judge_servers.resolve(run, settings.judge_servers)
        return await open_engine(
            stack,
            run,
            client=client,
            traces=settings.traces,
            run_info={"trainer": "verl", "config": settings.config_path},
        )

    # No health monitor here: the collector reviews health per step, over all its groups.
    return BatchScorer(opener, QualityGate.from_config(section.gate))


def failure_reward(settings: VerlSettings) -> float:
    """The one float a group that cannot be scored gives all its members (verl has no mask)."""
    config = settings.section.judge_config
    return config.constant_reward if config.failure_policy == "constant" else 0.0


def group_collector(
    settings: VerlSettings, *, client: ChatClient | None = None, probe: bool = True
) -> GroupCollector:
    """The run's one collector, scoring through ropd's engine as `settings` configure it."""
    return GroupCollector(
        batch_scorer(settings, client=client, probe=probe),
        groups_per_step=settings.groups_per_step,
        timeout_s=settings.group_timeout_s,
        min_timeout_s=settings.group_timeout_floor_s,
        failure_reward=failure_reward(settings),
        health=settings.section.health,
        step_log=step_tracking(settings),
    )


def step_tracking(settings: VerlSettings) -> StepTracking | None:
    """verl's `trainer.logger` backends for the step metrics (None: no logger, or turned off)."""
    if not settings.loggers:
        return None
    return StepTracking(settings.project_name, settings.experiment_name, settings.loggers)
