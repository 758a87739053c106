"""The session: the one place a run's connections and stores are opened.

Every entry point (`ropd score`, `teacher build`, `eval`, `analyze`, `train`, `RopdReward`,
verl's reward manager) opens its judges and stores with `Session.open(config)`; nothing else
checks API keys, starts the embedded server, probes endpoints, takes locks or opens the trace
and teacher stores. Order, and why:

1. locks (the outputs named, and the teacher store when it is written): a second run on the same
   files is refused before anything is paid for;
2. API-key variables of every role: an unset one fails before any connection;
3. the chat client: the embedded llama.cpp server started when a role has no `base_url`, every
   remote endpoint probed once (`llm/connect.py`; `config.probe` off skips the probe);
4. the teacher store (read: it must exist, a reward process on another node must not create an
   empty one; write: created) and the trace store.

Everything is closed in reverse order when the block exits, also on errors and Ctrl-C.
`client=` is the one test seam: a scripted or custom `ChatClient` replaces step 3.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ropd.errors import ConfigError
from ropd.io.lock import OutputLock
from ropd.llm.config import RoleConfig
from ropd.llm.types import ChatClient
from ropd.reward.config import ScorerConfig, TJudgeConfig
from ropd.reward.traces import TraceStore
from ropd.run_config import RunConfig
from ropd.teacher.store import TeacherStore

TeacherAccess = Literal["none", "read", "write"]
TEACHER_LOCK_ADVICE = "wait for it or use another teacher store (--store, ropd.teacher.store)"


@dataclass
class Session:
    """A run's open connections and stores; `Session.open` makes one."""

    config: RunConfig  # with every judge role resolved to the endpoint actually called
    client: ChatClient
    roles: list[RoleConfig]  # the roles asked for, resolved (embedded server's URL and model)
    traces: TraceStore | None = None
    teacher_store: TeacherStore | None = None
    locks: list[OutputLock] = field(default_factory=list)

    @property
    def run_id(self) -> str | None:
        """The trace store's run id (new, or `config.run_id` continued)."""
        return self.traces.run_id if self.traces is not None else self.config.run_id

    @property
    def judge_config(self) -> ScorerConfig | TJudgeConfig:
        """The method's judge settings, roles resolved."""
        return self.config.judge_config

    def role(self, name: str) -> RoleConfig:
        """The resolved role called `name` (`rubricator`, `verifier`, `tjudge`, `teacher`...)."""
        for role in self.roles:
            if role.name == name:
                return role
        raise KeyError(f"no role {name!r} in this session ({[r.name for r in self.roles]})")

    def references(self, k: int | None = None) -> Any | None:
        """The teacher store's K answers per prompt (`config.k` unless given); None without a
        store or with K = 0."""
        k = self.config.k if k is None else k
        if self.teacher_store is None or k < 1:
            return None
        from ropd.teacher.references import StoreReferences

        return StoreReferences.from_config(
            self.teacher_store, self.config.teacher, k, strip_think=self.judge_config.strip_think
        )

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        config: RunConfig,
        client: ChatClient | None = None,
        *,
        roles: Sequence[RoleConfig] | None = None,
        traces: str | Path | TraceStore | None = None,
        run_info: dict[str, Any] | None = None,
        teacher: TeacherAccess | TeacherStore = "none",
        locks: Sequence[OutputLock] = (),
    ) -> AsyncIterator[Session]:
        """Open what `config` names, in the order of the module doc; close it all on exit.

        `roles`: the roles to connect (default: the method's judge roles, `config.judge_roles()`).
        `traces`: a path or an open `TraceStore` (default `config.traces`; neither: no traces);
        a path opened here continues `config.run_id` when set, with `run_info` recorded.
        `teacher`: `read` opens `config.teacher.store` (which must exist), `write` locks and
        opens it (created if new), `none` leaves it closed; an open `TeacherStore` is used as
        it is (and left open). `locks` are taken first.
        """
        wanted = list(config.judge_roles() if roles is None else roles)
        async with AsyncExitStack() as stack:
            held = list(locks)
            store_path = config.teacher.store
            if teacher == "write":
                if store_path is None:
                    raise ConfigError("no teacher store path (ropd.teacher.store)")
                held.append(OutputLock(store_path, advice=TEACHER_LOCK_ADVICE))
            for lock in held:
                stack.enter_context(lock)
            for role in wanted:
                if role.on_verl:
                    raise ConfigError(
                        f"role {role.name!r}: base_url: verl names the reward-model servers of a "
                        "verl run; it only works inside one (the verl reward manager resolves "
                        "it). Here, give the endpoint's URL instead."
                    )
                role.check_api_key()
            resolved = wanted
            if client is None:
                from ropd.llm.connect import open_chat_client

                client, resolved = await stack.enter_async_context(
                    open_chat_client(wanted, config.limits, probe=config.probe)
                )
            config = _with_roles(config, resolved)
            teacher_store = teacher if isinstance(teacher, TeacherStore) else None
            if teacher in ("read", "write") and store_path is not None:
                if teacher == "read" and not Path(store_path).is_file():
                    raise ConfigError(f"teacher store {store_path} does not exist (on this node)")
                teacher_store = stack.enter_context(TeacherStore(store_path))
            trace_store = config.traces if traces is None else traces
            if isinstance(trace_store, str | Path):
                trace_store = stack.enter_context(
                    TraceStore(trace_store, run_id=config.run_id, run_info=run_info)
                )
            yield cls(config, client, list(resolved), trace_store, teacher_store, held)


def _with_roles(config: RunConfig, roles: Sequence[RoleConfig]) -> RunConfig:
    """`config` with the judge roles among `roles` replaced (matched by name)."""
    names = {role.name for role in roles}
    update: dict[str, Any] = {}
    if names & {"rubricator", "verifier"}:
        keep = [role for role in config.scorer.roles() if role.name not in names]
        update["scorer"] = config.scorer.with_roles([*roles, *keep])
    if "tjudge" in names:
        update["tjudge"] = config.tjudge.with_roles(list(roles))
    if "ovd" in names:
        update["ovd"] = config.ovd.with_roles(list(roles))
    if "teacher" in names:
        teacher_role = next(role for role in roles if role.name == "teacher")
        update["teacher"] = config.teacher.model_copy(update={"role": teacher_role})
    return config.model_copy(update=update) if update else config


__all__ = ["Session", "TeacherAccess"]
