"""What every group scorer shares: opening its judge, batching, streaming, the failure policy.

A scorer turns whole groups into `GroupResult`s. Subclasses (`GroupScorer` for ROPD,
`TJudgeScorer` for the scalar-judge baseline) only say how one group is judged (`_score`) and
which roles they call; everything around it is here, so both behave the same: answers are
cleaned by one rule, a failure follows one policy, every group goes to the trace store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import ValidationError
from typing_extensions import Self

from ropd import redact
from ropd.errors import InputError, JudgeError, JudgeUnavailable
from ropd.llm.config import LimitsConfig, RoleConfig
from ropd.llm.types import ChatClient, UsageBook
from ropd.reward.config import JudgeSettings
from ropd.reward.types import Group, GroupResult
from ropd.text import answer_for_judge, clip_middle

log = redact.logger("ropd.reward")

C = TypeVar("C", bound=JudgeSettings)
GroupLike = Group | Mapping[str, Any]


class GroupInputError(InputError):
    """The group itself cannot be scored as configured (e.g. no teacher answers)."""


class GroupScoringError(JudgeError):
    """A group failed and the failure policy is `raise`."""

    def __init__(self, group_id: str, cause: str):
        super().__init__(f"group {group_id!r} could not be scored: {cause}")
        self.group_id = group_id
        self.cause = cause


def as_group(group: GroupLike) -> Group:
    """Accept a `Group` or a plain mapping with the same fields (validated: InputError)."""
    if isinstance(group, Group):
        return group
    try:
        return Group.model_validate(dict(group))
    except ValidationError as exc:
        where = group.get("id", "?") if isinstance(group, Mapping) else "?"
        raise GroupInputError(f"group {where!r} is invalid: {exc}") from None


def unusable_id(value: object) -> bool:
    """True when `value` cannot name a group (ids are strings or integers, never booleans)."""
    return isinstance(value, bool) or not isinstance(value, str | int)


def _printable(value: object) -> Any:
    """`value` with every string made encodable (a lone surrogate becomes U+FFFD)."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(value, list | tuple):
        return [_printable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(_printable(k)): _printable(v) for k, v in value.items()}
    return value


def lenient_group(raw: Mapping[str, Any]) -> Group:
    """A `Group` built without validation from a mapping that failed it, its texts made
    storable: only for recording a rejected group, never for judging one."""

    def texts(name: str) -> list[str]:
        value = raw.get(name)
        items = value if isinstance(value, list | tuple) else []
        return [v if isinstance(v, str) else repr(v) for v in _printable(list(items))]

    prompt = _printable(raw.get("prompt"))
    return Group.model_construct(
        id=str(_printable(raw.get("id"))),
        prompt=prompt if isinstance(prompt, str | list) else repr(prompt),
        student_responses=texts("student_responses"),
        teacher_responses=texts("teacher_responses"),
    )


class BaseScorer(Generic[C]):
    """Scores whole groups; see `open` for the usual way to get one.

    `client` is anything with the `ChatClient.chat` method (the OpenAI-compatible client, or
    `ropd.testing.ScriptedChatClient` in tests); `traces` a `TraceStore` or None.
    """

    method: ClassVar[str] = "ropd"  # the `RunConfig.method` this scorer implements
    kind: ClassVar[str] = "scorer"

    def __init__(
        self,
        config: C,
        client: ChatClient,
        traces: Any | None = None,
        *,
        run_id: str | None = None,
    ):
        self.config = config
        self.client = client
        self.traces = traces
        self.run_id = run_id
        self.usage = UsageBook()
        self._queue_warned = False

    def _say_if_requests_queue(self, groups: int) -> None:
        """Warn once when `groups` scored together need more requests than may be in flight.

        Each group needs a Rubricator request, then its Verifier request(s): below about two
        per group, rounds queue behind the limit and a batch takes several judge latencies
        more, which nothing else would show.
        """
        limits = getattr(self.client, "limits", None)
        allowed = getattr(limits, "max_in_flight", None)
        if allowed is None or 2 * groups <= allowed or self._queue_warned:
            return
        self._queue_warned = True
        log.warning(
            "%d groups are scored at once but at most %d requests may be in flight: requests "
            "will queue (about %.0f rounds of judge latency instead of 2); raise max_in_flight "
            "(--max-in-flight) to about %d if the endpoint accepts that many",
            groups,
            allowed,
            max(2.0, 2 * groups / allowed),
            2 * groups,
        )

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        config: C,
        *,
        limits: LimitsConfig | None = None,
        traces: str | Path | Any | None = None,
        client: ChatClient | None = None,
        run_id: str | None = None,
        run_info: dict[str, Any] | None = None,
        probe: bool = True,
    ) -> AsyncIterator[Self]:
        """A scorer that owns its judge connection (and the embedded server, when needed).

        A convenience over `Session.open` (`ropd/session.py`, where keys are checked, the
        embedded server started, endpoints probed and stores opened) for one scorer: roles
        without a `base_url` are served by the embedded local model, stopped on exit. `traces`
        is a path (a trace store opened and closed here) or an open `TraceStore`. Pass `client`
        to score through another `ChatClient` (tests, custom transports); `limits` then does not
        apply, nor does the probe. Unset API-key variables fail here, before any group is
        scored; with `probe` every endpoint is probed once: unreachable, key rejected or model
        not served is `JudgeUnavailable` before the first group (`ropd.llm.probe`).
        """
        from ropd.run_config import RunConfig, judge_field
        from ropd.session import Session

        run = RunConfig(
            method=cls.method,
            **{judge_field(cls.method): config},
            limits=limits or LimitsConfig(),
            run_id=run_id,
            probe=probe and client is None,
        )
        info = {"command": cls.kind, **(run_info or {})}
        async with Session.open(
            run, client, roles=cls.roles_of(config), traces=traces, run_info=info
        ) as session:
            yield cls.from_session(session, config)

    @classmethod
    def from_session(cls, session: Any, config: C | None = None) -> Self:
        """A scorer on an open `Session`: its client, its trace store and run id, and `config`
        (default: the session's judge settings) with its roles resolved as the session's."""
        config = session.judge_config if config is None else config
        names = {role.name for role in cls.roles_of(config)}
        roles = [role for role in session.roles if role.name in names]
        if roles:
            config = cls.config_with_roles(config, roles)
        return cls(config, session.client, session.traces, run_id=session.run_id)

    @classmethod
    def roles_of(cls, config: C) -> list[RoleConfig]:
        """The roles a scorer with `config` calls."""
        raise NotImplementedError

    @classmethod
    def config_with_roles(cls, config: C, roles: list[RoleConfig]) -> C:
        """`config` with its roles replaced by `roles` (matched by name)."""
        raise NotImplementedError

    # -- scoring ----------------------------------------------------------------------------

    async def score_groups(
        self, groups: Iterable[GroupLike], *, step: int | None = None
    ) -> list[GroupResult]:
        """Score all groups concurrently; results keep the input order.

        A failed group is a failed result, never an exception for the batch: a mapping whose
        answers do not validate (a lone surrogate in one completion) fails only its own group.
        Only policy `raise` or an unusable judge (`JudgeUnavailable`: key rejected, model not
        served) raises, and then the groups still running are cancelled at once.
        """
        tasks = [asyncio.create_task(self._score_item(g, step)) for g in groups]
        if not tasks:
            return []
        self._say_if_requests_queue(len(tasks))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            return [task.result() for task in tasks]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def stream(
        self,
        groups: Iterable[GroupLike],
        *,
        step: int | None = None,
        window: int | None = None,
    ) -> AsyncIterator[GroupResult]:
        """Yield results as groups finish, keeping at most `window` groups in flight.

        When a group raises (policy `raise`) no new group starts; the groups already in
        flight finish and are yielded, then the first error is raised. `JudgeUnavailable` (key
        rejected, model not served) cancels the groups in flight at once: their calls would
        fail the same way.
        """
        queue = iter(groups)
        pending: set[asyncio.Task[GroupResult]] = set()
        first_error: BaseException | None = None
        limit = window if window is not None else float("inf")
        if window is not None:
            self._say_if_requests_queue(window)

        def refill() -> None:
            while first_error is None and len(pending) < limit:
                item = next(queue, None)
                if item is None:
                    return
                pending.add(asyncio.create_task(self._score_item(item, step)))

        refill()
        try:
            while pending:
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    pending.discard(task)
                    error = task.exception()
                    if isinstance(error, JudgeUnavailable):
                        raise error
                    if error is not None:
                        first_error = first_error or error
                        continue
                    yield task.result()
                refill()
        finally:
            for task in pending:
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*pending, return_exceptions=True)
        if first_error is not None:
            raise first_error

    async def _score_item(self, item: GroupLike, step: int | None) -> GroupResult:
        """`score_group`, or a failed result for a mapping that is not a valid group but names
        itself (an id), so one bad answer in a batch costs only its group."""
        try:
            group = as_group(item)
        except GroupInputError as exc:
            if not isinstance(item, Mapping) or unusable_id(item.get("id")):
                raise
            return await self.reject(item, str(exc), step=step)
        return await self.score_group(group, step=step)

    async def reject(
        self, raw: Mapping[str, Any], cause: str, *, step: int | None = None
    ) -> GroupResult:
        """A failed result for a group that cannot be judged as given (its failure policy
        applies, the trace store keeps it with its cause); `raw` holds its fields unvalidated."""
        group = lenient_group(raw)
        result = self._failed_result(group, f"invalid group: {cause}", UsageBook())
        return await self._finish(group, result, step)

    async def score_group(self, group: GroupLike, *, step: int | None = None) -> GroupResult:
        """Score one group. Failures follow the configured policy; never a silent 0."""
        group = as_group(group)
        book = UsageBook()
        try:
            result = await self._score(group, book)
        except JudgeUnavailable:
            raise  # the run cannot go on with this judge; no group's result is recorded
        except (JudgeError, InputError) as exc:
            result = self._failed_result(group, f"{type(exc).__name__}: {exc}", book)
        except Exception as exc:  # one bad reply must never crash a batch or a training step
            log.exception("group %s: unexpected error while scoring", group.id)
            result = self._failed_result(group, f"unexpected {type(exc).__name__}: {exc}", book)
        finally:
            self.usage.merge(book)
        return await self._finish(group, result, step)

    async def _finish(self, group: Group, result: GroupResult, step: int | None) -> GroupResult:
        """Scrub, apply the failure policy's bookkeeping, record; raise under policy `raise`."""
        result = result.scrubbed()
        if result.failed:
            result = result.model_copy(update={"failure_policy": self.config.failure_policy})
        if self.traces is not None:
            result = await self._record(group, result, step)
        if result.failed:
            log.warning("group %s failed: %s", group.id, result.error)
            if self.config.failure_policy == "raise":
                raise GroupScoringError(group.id, result.error or "")
        return result

    async def _record(self, group: Group, result: GroupResult, step: int | None) -> GroupResult:
        """Write the group to the trace store; a store that cannot take it fails the group.

        A reward nobody can inspect afterwards is not used (the failure policy applies, the
        cause names the store). The write runs in a worker thread, so a store locked by another
        process waits out its busy timeout without stalling the other groups' judge calls.
        """
        try:
            await asyncio.to_thread(
                self.traces.record, group, result, step=step, run_id=self.run_id
            )
            return result
        except Exception as exc:  # noqa: BLE001 - sqlite3 errors, a full disk, a closed store
            where = getattr(self.traces, "path", "the trace store")
            cause = redact.scrub(f"trace store {where}: {type(exc).__name__}: {exc}")
            log.error("group %s: not recorded: %s", group.id, cause)
            error = cause if result.error is None else f"{result.error}; {cause}"
            return result.model_copy(
                update={
                    "rewards": [self.failure_reward] * len(group.student_responses),
                    "error": error,
                    "failure_policy": self.config.failure_policy,
                }
            )

    async def _score(self, group: Group, book: UsageBook) -> GroupResult:
        """Judge one group; raise JudgeError/InputError (or set `error`) when it fails."""
        raise NotImplementedError

    # -- shared helpers ---------------------------------------------------------------------

    @property
    def failure_reward(self) -> float | None:
        """The reward of an answer that could not be scored, under the configured policy."""
        cfg = self.config
        return cfg.constant_reward if cfg.failure_policy == "constant" else None

    def clean(self, text: str) -> str:
        """An answer as judges see it: reasoning stripped (unless kept), clipped in the middle.

        Whether reasoning is stripped or kept, no reasoning delimiter reaches a judge live
        (`ropd.text.answer_for_judge`): a judge quoting the answer must not seem to close its own
        reasoning.
        """
        text = answer_for_judge(text, strip=self.config.strip_think)
        return clip_middle(text, self.config.max_answer_chars)

    def empty_note(self, original: str, cleaned: str) -> str | None:
        """Why an answer reaches no judge: it is empty, or nothing is left once reasoning is cut.

        Such an answer meets no criterion (reward 0) without a judge call; the note says so in
        its verdict record, so a truncated reasoning is not mistaken for a judged wrong answer.
        """
        if cleaned.strip():
            return None
        if original.strip():
            return "empty after removing reasoning (no text outside <think>)"
        return "empty answer"

    def settings(self, group: Group) -> dict[str, Any]:
        """What is recorded with every result of this scorer."""
        return {}

    def _failed_result(self, group: Group, error: str, book: UsageBook) -> GroupResult:
        return GroupResult(
            id=group.id,
            rewards=[self.failure_reward] * len(group.student_responses),
            teacher_scores=[],
            usage=book.as_dict(),
            error=error,
            settings=self.settings(group),
        )
