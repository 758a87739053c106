"""Opening ropd's engine for a training-engine adapter: the scorer and the teacher answers.

TRL's and verl's adapters open the same things (the judge with its limits, the trace store, the
teacher store with its K), only from different settings; this is that opening, once.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from ropd.errors import ConfigError
from ropd.llm.config import LimitsConfig
from ropd.llm.types import ChatClient
from ropd.reward.batch import ReferenceSource, Scorer
from ropd.reward.config import ScorerConfig
from ropd.reward.tjudge import TJudgeConfig
from ropd.teacher.store import TeacherStore


async def open_engine(
    stack: AsyncExitStack,
    config: ScorerConfig | TJudgeConfig,
    *,
    limits: LimitsConfig | None,
    traces: str | Path | None,
    client: ChatClient | None,
    run_id: str | None,
    run_info: dict[str, Any],
    probe: bool,
    teacher_store: TeacherStore | str | Path | None,
    answers_per_prompt: int,
    fingerprint: str | None = None,
    accept_any_fingerprint: bool = False,
) -> tuple[Scorer, ReferenceSource | None]:
    """The scorer (ROPD or T-Judge, per `config`) and the store's answers, closed with `stack`.

    A store given as a path is opened here and must exist (a reward process on another node
    must not create an empty one); with no store or K = 0 there are no references.
    """
    if isinstance(config, TJudgeConfig):
        from ropd.reward.tjudge import TJudgeScorer as scorer_class
    else:
        from ropd.reward.group_scorer import GroupScorer as scorer_class
    scorer = await stack.enter_async_context(
        scorer_class.open(
            config,  # type: ignore[arg-type]
            limits=limits,
            traces=traces,
            client=client,
            run_id=run_id,
            run_info=run_info,
            probe=probe,
        )
    )
    if teacher_store is None or answers_per_prompt < 1:
        return scorer, None
    from ropd.teacher.references import StoreReferences

    store = teacher_store
    if isinstance(store, str | Path):
        if not Path(store).is_file():
            raise ConfigError(f"teacher store {store} does not exist (on this node)")
        store = stack.enter_context(TeacherStore(store))
    references = StoreReferences(
        store,
        answers_per_prompt,
        fingerprint=fingerprint,
        accept_any_fingerprint=accept_any_fingerprint,
        strip_think=config.strip_think,
    )
    return scorer, references


__all__ = ["open_engine"]
