"""The named Ray actor that owns the run's one collector when verl runs several reward workers.

verl sends each rollout to a random reward worker, so siblings land on different processes.
Every worker forwards its rollouts to one actor, named after the Ray job, that holds the group
collector, the judge client (so `limits` such as requests per minute hold for the whole run,
not per worker) and the trace store. The first worker to ask creates it (`get_if_exists`); it
lives as long as that worker. ropd must be importable on every node, and the judge's key
variables must reach the actor's process (Ray's runtime env, see docs/verl.md).
"""

from __future__ import annotations

from typing import Any

from ropd.integrations.verl.collector import RolloutScore, VerlRollout
from ropd.integrations.verl.engine import group_collector
from ropd.integrations.verl.settings import VerlSettings

ACTOR_PREFIX = "ropd_scorer_"


class ScorerActor:
    """An async Ray actor around `GroupCollector`: every method runs on the actor's one loop."""

    def __init__(self, settings: VerlSettings):
        self.collector = group_collector(settings)

    async def submit(self, item: VerlRollout) -> RolloutScore:
        return await self.collector.submit(item)

    async def waiting(self) -> int:
        return self.collector.waiting

    async def aclose(self) -> None:
        await self.collector.aclose()


def actor_name() -> str:
    """One name per Ray job: the reward workers of a run share it, other runs do not."""
    import ray

    return ACTOR_PREFIX + ray.get_runtime_context().get_job_id()


def scorer_actor(settings: VerlSettings) -> Any:
    """The run's scorer actor, created by whichever worker asks first.

    `num_cpus=0`: it waits on the judge rather than computing, and must never wait for a CPU
    that verl's own workers hold.
    """
    import ray

    return (
        ray.remote(ScorerActor)
        .options(
            name=actor_name(),
            get_if_exists=True,
            max_concurrency=settings.actor_concurrency,
            num_cpus=0,
        )
        .remote(settings)
    )
