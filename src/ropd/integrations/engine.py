"""Opening ropd's engine for a training-engine adapter: the scorer and the teacher answers.

TRL's and verl's adapters open the same things from a `RunConfig`: one `Session` (judge,
trace store, teacher store), the method's scorer on it and the store's K answers per prompt.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from ropd.llm.types import ChatClient
from ropd.reward.batch import ReferenceSource, Scorer
from ropd.run_config import RunConfig
from ropd.session import Session
from ropd.teacher.store import TeacherStore


async def open_engine(
    stack: AsyncExitStack,
    run: RunConfig,
    *,
    client: ChatClient | None = None,
    traces: str | Path | Any | None = None,
    run_info: dict[str, Any] | None = None,
    teacher_store: TeacherStore | None = None,
    k: int | None = None,
) -> tuple[Scorer, ReferenceSource | None]:
    """The scorer (ROPD, T-Judge, OVD or RaR, per `run.method`) and the store's answers, closed with
    `stack`. K is `run.k` unless `k` is given; the store is `run.teacher.store` (which must
    exist on this node) unless an open `teacher_store` is passed."""
    k = run.k if k is None else k
    access: Any = teacher_store if teacher_store is not None else "none"
    if teacher_store is None and run.teacher.store is not None and k > 0:
        access = "read"
    session = await stack.enter_async_context(
        Session.open(run, client, traces=traces, run_info=run_info, teacher=access)
    )
    if run.method == "ovd":
        from ropd.reward.ovd import OVDScorer

        return OVDScorer.from_session(session), session.references(k)
    if run.method == "rar":
        from ropd.reward.rar import RaRScorer

        return RaRScorer.from_session(session), session.references(k)
    if run.method == "tjudge":
        from ropd.reward.tjudge import TJudgeScorer as scorer_class
    else:
        from ropd.reward.group_scorer import GroupScorer as scorer_class
    return scorer_class.from_session(session), session.references(k)  # type: ignore[attr-defined]


__all__ = ["open_engine"]
