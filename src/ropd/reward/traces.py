"""The trace store: every prompt, answer, rubric, verdict, score, usage record and error.

A reward that trained a model must be explainable after the fact, so each scored group is kept
in an embedded SQLite database in normalised tables (criteria and verdicts are queryable, e.g. for
per-category pass rates). WAL mode and a busy timeout let several processes (data-parallel
trainers, a `ropd inspect` while a run writes) share one file. API keys are never stored: the
settings recorded are model names and environment-variable names, and anything that looks like a
key is redacted on the way in.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ropd.errors import StoreError
from ropd.redact import scrub, scrub_value
from ropd.reward.health import TEACHER_FAIL_BELOW, HealthMetrics, health_metrics
from ropd.reward.metrics import StepMetrics, metric_category, step_metrics
from ropd.reward.types import AnswerVerdicts, Group, GroupResult
from ropd.rubric import Criterion, Rubric
from ropd.sqlite import Schema, open_store, store_error, transaction

if TYPE_CHECKING:
    from typing_extensions import Self

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    info TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS groups (
    pk INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    step INTEGER,
    group_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    prompt TEXT NOT NULL,
    error TEXT,
    failure_policy TEXT,
    settings TEXT NOT NULL,
    usage TEXT NOT NULL,
    reward_mean REAL,
    num_student INTEGER NOT NULL,
    num_teacher INTEGER NOT NULL,
    num_criteria INTEGER NOT NULL,
    checks TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS groups_key
    ON groups (run_id, group_id, COALESCE(step, -1));
CREATE INDEX IF NOT EXISTS groups_by_step ON groups (run_id, step);
CREATE INDEX IF NOT EXISTS groups_by_id ON groups (group_id);
CREATE TABLE IF NOT EXISTS answers (
    group_pk INTEGER NOT NULL REFERENCES groups (pk) ON DELETE CASCADE,
    source TEXT NOT NULL,
    idx INTEGER NOT NULL,
    text TEXT NOT NULL,
    reward REAL,
    score REAL,
    rubric_index INTEGER,
    label INTEGER,
    duplicate_of INTEGER,
    note TEXT,
    correct INTEGER,
    PRIMARY KEY (group_pk, source, idx)
);
CREATE TABLE IF NOT EXISTS criteria (
    group_pk INTEGER NOT NULL REFERENCES groups (pk) ON DELETE CASCADE,
    rubric_index INTEGER NOT NULL,
    position INTEGER NOT NULL,
    criterion_id TEXT NOT NULL,
    category TEXT NOT NULL,
    points INTEGER NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (group_pk, rubric_index, position)
);
CREATE TABLE IF NOT EXISTS verdicts (
    group_pk INTEGER NOT NULL REFERENCES groups (pk) ON DELETE CASCADE,
    source TEXT NOT NULL,
    idx INTEGER NOT NULL,
    rubric_index INTEGER NOT NULL,
    criterion_id TEXT NOT NULL,
    passed INTEGER NOT NULL,
    PRIMARY KEY (group_pk, source, idx, rubric_index, criterion_id)
);
"""


# Views for the common questions, documented with example queries in docs/traces.md. They are
# recreated on every open, so a store written by an older ropd gets the current definitions.
# Failed groups count in group totals, failures and usage only (as in `reward/metrics.py`).
VIEWS = {
    "step_summary": """
        SELECT g.run_id, g.step, COUNT(*) AS groups,
               SUM(g.error IS NOT NULL) AS failed_groups,
               AVG(g.error IS NOT NULL) AS failed_group_rate,
               (SELECT AVG(a.reward) FROM answers a JOIN groups s ON s.pk = a.group_pk
                 WHERE s.run_id = g.run_id AND s.step IS g.step AND s.error IS NULL
                   AND a.source = 'student') AS reward_mean,
               (SELECT AVG(a.reward) FROM answers a JOIN groups s ON s.pk = a.group_pk
                 WHERE s.run_id = g.run_id AND s.step IS g.step AND s.error IS NULL
                   AND a.source = 'teacher') AS teacher_score_mean,
               AVG(CASE WHEN g.error IS NULL THEN g.num_criteria END) AS criteria_per_group
          FROM groups g GROUP BY g.run_id, g.step""",
    "criterion_pass_rate": """
        SELECT g.run_id, g.step, g.group_id, c.rubric_index, c.criterion_id, c.category,
               c.metric_category, c.points, c.text,
               COUNT(v.passed) AS student_verdicts, SUM(v.passed) AS student_passed,
               AVG(v.passed) AS pass_rate
          FROM criteria c JOIN groups g ON g.pk = c.group_pk
          LEFT JOIN verdicts v ON v.group_pk = c.group_pk AND v.rubric_index = c.rubric_index
               AND v.criterion_id = c.criterion_id AND v.source = 'student'
         WHERE g.error IS NULL
         GROUP BY c.group_pk, c.rubric_index, c.criterion_id""",
    "category_pass_rate": """
        SELECT g.run_id, g.step, c.metric_category AS category,
               COUNT(*) AS student_verdicts, SUM(v.passed) AS student_passed,
               AVG(v.passed) AS pass_rate
          FROM verdicts v JOIN groups g ON g.pk = v.group_pk
          JOIN criteria c ON c.group_pk = v.group_pk AND c.rubric_index = v.rubric_index
               AND c.criterion_id = v.criterion_id
         WHERE v.source = 'student' AND g.error IS NULL
         GROUP BY g.run_id, g.step, c.metric_category""",
    "failures_per_step": """
        SELECT run_id, step, COUNT(*) AS groups, SUM(error IS NOT NULL) AS failed_groups,
               AVG(error IS NOT NULL) AS failed_group_rate,
               (SELECT f.error FROM groups f WHERE f.run_id = g.run_id AND f.step IS g.step
                  AND f.error IS NOT NULL ORDER BY f.created_at, f.pk LIMIT 1) AS first_error
          FROM groups g GROUP BY run_id, step""",
    "gold_per_step": """
        SELECT g.run_id, g.step, COUNT(a.correct) AS checked, SUM(a.correct) AS correct,
               AVG(a.correct) AS correct_rate,
               AVG(CASE WHEN a.correct = 1 THEN a.reward END) AS reward_correct_mean,
               AVG(CASE WHEN a.correct = 0 THEN a.reward END) AS reward_incorrect_mean
          FROM answers a JOIN groups g ON g.pk = a.group_pk
         WHERE a.source = 'student' AND g.error IS NULL AND a.correct IS NOT NULL
         GROUP BY g.run_id, g.step""",
    "usage_per_step": """
        SELECT g.run_id, g.step, r.key AS role,
               SUM(json_extract(r.value, '$.calls')) AS calls,
               SUM(json_extract(r.value, '$.failed_calls')) AS failed_calls,
               SUM(json_extract(r.value, '$.prompt_tokens')) AS input_tokens,
               SUM(json_extract(r.value, '$.completion_tokens')) AS output_tokens,
               SUM(json_extract(r.value, '$.latency_s')) AS latency_s,
               SUM(json_extract(r.value, '$.cost')) AS cost
          FROM groups g, json_each(g.usage) r GROUP BY g.run_id, g.step, r.key""",
    "cost_per_step": """
        SELECT run_id, step, SUM(calls) AS calls, SUM(input_tokens) AS input_tokens,
               SUM(output_tokens) AS output_tokens, SUM(cost) AS cost
          FROM usage_per_step GROUP BY run_id, step""",
}


class TraceStoreError(StoreError):
    """The trace database cannot be used (wrong schema version, not a trace store, ...)."""


_STORE_SCHEMA = Schema(
    kind="trace store",
    version=str(SCHEMA_VERSION),
    ddl=_SCHEMA,
    family=r"\d+",  # trace stores have always marked their version with a bare integer
    error=TraceStoreError,
    hint="use a new --traces file",
)


def redact(text: str) -> str:
    """Replace every configured key value and anything shaped like an API key or bearer token."""
    return scrub(text)


def scrub_settings(value: Any) -> Any:
    """Drop secret-named keys and redact secrets in strings, recursively."""
    return scrub_value(value)


@dataclass(frozen=True)
class GroupSummary:
    """One traced group in a listing."""

    group_id: str
    run_id: str
    step: int | None
    created_at: float
    reward_mean: float | None
    num_student: int
    num_teacher: int
    num_criteria: int
    error: str | None


@dataclass(frozen=True)
class TracedGroup:
    """Everything stored about one scored group: what `ropd inspect` shows."""

    group_id: str
    run_id: str
    step: int | None
    created_at: float
    prompt: str | list[dict[str, Any]]
    student_responses: list[str]
    teacher_responses: list[str]
    result: GroupResult
    # each student answer's gold check (None: not checked); None when no answer was checked
    student_correct: list[bool | None] | None = None


@dataclass(frozen=True)
class TracedStep:
    """The scored groups of one (run, step), rebuilt from the store, oldest record first.

    `answers[g]` and `correct[g]` are group g's student answer texts and gold checks (None
    when none were stored): with `results` they give every `ropd/health/*` number
    (`reward.health.health_metrics`).
    """

    run_id: str
    step: int | None
    results: list[GroupResult]
    answers: list[list[str]] = field(default_factory=list)
    correct: list[list[bool | None] | None] = field(default_factory=list)

    def health(self, teacher_fail_below: float = TEACHER_FAIL_BELOW) -> HealthMetrics:
        """The step's reward-health numbers, gold agreement included where checks are stored."""
        return health_metrics(
            self.results,
            self.answers or None,
            self.correct or None,
            teacher_fail_below=teacher_fail_below,
        )


@dataclass(frozen=True)
class StepSummary:
    """One (run, step): the very `StepMetrics` the training log computed from the same groups."""

    run_id: str
    step: int | None
    metrics: StepMetrics

    @property
    def groups(self) -> int:
        return self.metrics.groups

    @property
    def failed(self) -> int:
        return self.metrics.failed_groups

    @property
    def failure_rate(self) -> float:
        return self.metrics.failed_group_rate

    @property
    def reward_mean(self) -> float | None:
        """Mean student reward of the groups that did not fail."""
        return self.metrics.reward_mean

    @property
    def teacher_score_mean(self) -> float | None:
        return self.metrics.teacher_score_mean

    @property
    def rubric_size_mean(self) -> float | None:
        return self.metrics.rubric_size

    @property
    def category_pass_rate(self) -> dict[str, float]:
        return self.metrics.pass_rate

    @property
    def prompt_tokens(self) -> int:
        return int(self.metrics.judge_input_tokens)

    @property
    def completion_tokens(self) -> int:
        return int(self.metrics.judge_output_tokens)

    def as_log_dict(self, prefix: str = "rubric/") -> dict[str, float]:
        """Flat numbers for a training logger (TensorBoard, W&B, TRL's `log`)."""
        out: dict[str, float] = {
            f"{prefix}groups": float(self.groups),
            f"{prefix}failure_rate": self.failure_rate,
            f"{prefix}judge_tokens": float(self.prompt_tokens + self.completion_tokens),
        }
        if self.reward_mean is not None:
            out[f"{prefix}reward_mean"] = self.reward_mean
        if self.teacher_score_mean is not None:
            out[f"{prefix}teacher_score_mean"] = self.teacher_score_mean
        if self.rubric_size_mean is not None:
            out[f"{prefix}rubric_size"] = self.rubric_size_mean
        for category, rate in self.category_pass_rate.items():
            out[f"{prefix}pass_rate/{category}"] = rate
        return out


def new_run_id(prefix: str = "run") -> str:
    """A sortable, unique run id such as `score-20260101-120000-1a2b`."""
    return f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"


class TraceStore:
    """SQLite store of scored groups, keyed by (run, step, group id).

    `record` is what `GroupScorer` calls after each group. Recording the same group twice in the
    same run and step replaces the earlier record (a resumed run re-scores unfinished groups).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        run_id: str | None = None,
        run_info: dict[str, Any] | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.path = Path(path)
        self.run_id = run_id or new_run_id()
        self._lock = threading.Lock()
        self._conn = open_store(
            self.path, _STORE_SCHEMA, timeout_s=timeout_s, foreign_keys=True, lock=self._lock
        )
        self._conn.row_factory = sqlite3.Row
        self._run_info = run_info
        try:
            self._add_missing_columns()
        except sqlite3.Error as exc:  # e.g. locked by another program past the busy timeout
            self._conn.close()
            raise store_error(self.path, exc, TraceStoreError) from exc

    def _add_missing_columns(self) -> None:
        """Columns added since version 1 (nullable, so older readers are unaffected), and the
        current views."""
        with self._write() as conn:
            have = {row["name"] for row in conn.execute("PRAGMA table_info(groups)")}
            if "checks" not in have:  # sampled health checks' sums (JSON; NULL: none ran)
                conn.execute("ALTER TABLE groups ADD COLUMN checks TEXT")
            have = {row["name"] for row in conn.execute("PRAGMA table_info(answers)")}
            if "note" not in have:
                conn.execute("ALTER TABLE answers ADD COLUMN note TEXT")
            if "correct" not in have:  # gold checks of student answers (1/0; NULL: unchecked)
                conn.execute("ALTER TABLE answers ADD COLUMN correct INTEGER")
            have = {row["name"] for row in conn.execute("PRAGMA table_info(criteria)")}
            if "metric_category" not in have:
                conn.execute("ALTER TABLE criteria ADD COLUMN metric_category TEXT")
            missing = conn.execute(
                "SELECT DISTINCT category FROM criteria WHERE metric_category IS NULL"
            ).fetchall()
            conn.executemany(
                "UPDATE criteria SET metric_category = ? "
                "WHERE category = ? AND metric_category IS NULL",
                [(metric_category(row["category"]), row["category"]) for row in missing],
            )
            stored = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'view'"))
            for name, select in VIEWS.items():
                create = f"CREATE VIEW {name} AS {select}"
                if stored.get(name) != create:  # schema changes make other connections re-prepare
                    conn.execute(f"DROP VIEW IF EXISTS {name}")
                    conn.execute(create)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction, taken up front so concurrent writers queue instead of failing."""
        return transaction(self._conn, self._lock)

    # -- writing -----------------------------------------------------------------------------

    def record(
        self,
        group: Group,
        result: GroupResult,
        *,
        step: int | None = None,
        run_id: str | None = None,
    ) -> None:
        """Store one scored group with everything that produced its rewards (and the student
        answers' gold checks when the group carries them, `Group.student_correct`)."""
        run = run_id or self.run_id
        now = time.time()
        student_rewards = [r for r in result.rewards if r is not None]
        num_criteria = sum(len(r.criteria) for r in result.rubrics)
        scores: dict[tuple[str, int], AnswerVerdicts] = {
            (v.source, v.index): v for v in result.verdicts
        }
        gold = _gold_column(group.student_correct, len(group.student_responses))
        answers: list[tuple[str, int, str, float | None, int | None]] = []
        for i, text in enumerate(group.student_responses):
            reward = result.rewards[i] if i < len(result.rewards) else None
            answers.append(("student", i, text, reward, gold[i]))
        for i, text in enumerate(group.teacher_responses):
            score = result.teacher_scores[i] if i < len(result.teacher_scores) else None
            answers.append(("teacher", i, text, score, None))
        error = redact(result.error) if result.error is not None else None
        # a failed group's rewards are its failure policy's, not a judgement: no mean for it
        reward_mean = (
            sum(student_rewards) / len(student_rewards)
            if student_rewards and not result.failed
            else None
        )
        settings = scrub_settings(result.settings)
        with self._write() as conn:
            self._ensure_run(conn, run, now)
            conn.execute(
                "DELETE FROM groups WHERE run_id = ? AND group_id = ? "
                "AND COALESCE(step, -1) = COALESCE(?, -1)",
                (run, group.id, step),
            )
            cursor = conn.execute(
                "INSERT INTO groups (run_id, step, group_id, created_at, prompt, error, "
                "failure_policy, settings, usage, reward_mean, num_student, num_teacher, "
                "num_criteria, checks) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run,
                    step,
                    group.id,
                    now,
                    redact(json.dumps(group.prompt, ensure_ascii=False)),
                    error,
                    result.failure_policy,
                    json.dumps(settings, ensure_ascii=False, default=str),
                    json.dumps(result.usage),
                    reward_mean,
                    len(group.student_responses),
                    len(group.teacher_responses),
                    num_criteria,
                    json.dumps(result.checks) if result.checks else None,
                ),
            )
            pk = cursor.lastrowid
            rows = []
            for source, idx, text, reward, correct in answers:
                v = scores.get((source, idx))
                judged = (
                    (v.score, v.rubric_index, v.label, v.duplicate_of, v.note) if v else (None,) * 5
                )
                rows.append((pk, source, idx, redact(text), reward, *judged, correct))
            conn.executemany(
                "INSERT INTO answers (group_pk, source, idx, text, reward, score, rubric_index, "
                "label, duplicate_of, note, correct) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.executemany(
                "INSERT INTO criteria (group_pk, rubric_index, position, criterion_id, category, "
                "points, text, metric_category) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        pk,
                        r_i,
                        pos,
                        c.id,
                        redact(c.category),
                        c.points,
                        redact(c.criterion),
                        metric_category(c.category),
                    )
                    for r_i, rubric in enumerate(result.rubrics)
                    for pos, c in enumerate(rubric.criteria)
                ],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO verdicts (group_pk, source, idx, rubric_index, "
                "criterion_id, passed) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (pk, v.source, v.index, v.rubric_index, cid, int(passed))
                    for v in result.verdicts
                    for cid, passed in v.verdicts.items()
                ],
            )

    def record_correct(
        self,
        checks: Mapping[str, Sequence[bool | None] | None],
        *,
        step: int | None = None,
        run_id: str | None = None,
    ) -> int:
        """Add gold checks to recorded groups: group id -> each student answer's check (None:
        not checkable), in one transaction; the number of answers updated.

        For checks that finish after the group was recorded: the training adapters check answers
        beside the judge calls instead of before them, and write the checks here afterwards.
        Groups not in the store (never recorded) are skipped.
        """
        run = run_id or self.run_id
        rows = [
            (value, run, group_id, step, idx)
            for group_id, correct in checks.items()
            if correct is not None
            for idx, value in enumerate(_gold_column(correct, len(correct)))
        ]
        if not rows:
            return 0
        with self._write() as conn:
            cursor = conn.executemany(
                "UPDATE answers SET correct = ? WHERE source = 'student' AND group_pk = "
                "(SELECT pk FROM groups WHERE run_id = ? AND group_id = ? "
                "AND COALESCE(step, -1) = COALESCE(?, -1)) AND idx = ?",
                rows,
            )
            return cursor.rowcount

    def _ensure_run(self, conn: sqlite3.Connection, run: str, now: float) -> None:
        info = self._run_info if run == self.run_id else None
        conn.execute(
            "INSERT OR IGNORE INTO runs (run_id, created_at, info) VALUES (?, ?, ?)",
            (run, now, json.dumps(scrub_settings(info or {}), default=str)),
        )

    # -- reading -----------------------------------------------------------------------------

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _snapshot(self) -> AbstractContextManager[sqlite3.Connection]:
        """Several reads that see one state of the file, even while another process writes."""
        return transaction(self._conn, self._lock, write=False)

    def runs(self) -> list[dict[str, Any]]:
        """Every run in the store, oldest first, with its info and group count."""
        rows = self._query(
            "SELECT r.run_id, r.created_at, r.info, COUNT(g.pk) AS groups FROM runs r "
            "LEFT JOIN groups g ON g.run_id = r.run_id GROUP BY r.run_id ORDER BY r.created_at"
        )
        return [
            {
                "run_id": r["run_id"],
                "created_at": r["created_at"],
                "info": json.loads(r["info"]),
                "groups": r["groups"],
            }
            for r in rows
        ]

    def latest_run(self, **info: Any) -> str | None:
        """The newest run whose info contains all the given key/values (e.g. output=...)."""
        for run in reversed(self.runs()):
            if all(run["info"].get(k) == v for k, v in info.items()):
                return str(run["run_id"])
        return None

    def list(
        self,
        run_id: str | None = None,
        step: int | None = None,
        failed: bool | None = None,
        limit: int | None = 100,
    ) -> list[GroupSummary]:
        """Traced groups, newest first, filtered by run, step and failure."""
        where, params = self._filters(run_id, step)
        if failed is True:
            where.append("error IS NOT NULL")
        elif failed is False:
            where.append("error IS NULL")
        sql = (
            "SELECT group_id, run_id, step, created_at, reward_mean, num_student, num_teacher, "
            "num_criteria, error FROM groups"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY created_at DESC, pk DESC"
        )
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [GroupSummary(**dict(r)) for r in self._query(sql, tuple(params))]

    @staticmethod
    def _filters(
        run_id: str | None, step: int | None, table: str = ""
    ) -> tuple[list[str], list[Any]]:
        prefix = f"{table}." if table else ""
        where: list[str] = []
        params: list[Any] = []
        if run_id is not None:
            where.append(f"{prefix}run_id = ?")
            params.append(run_id)
        if step is not None:
            where.append(f"{prefix}step = ?")
            params.append(step)
        return where, params

    def get(
        self, group_id: str, run_id: str | None = None, step: int | None = None
    ) -> TracedGroup | None:
        """The newest record of a group (narrowed by run and step), or None."""
        where, params = self._filters(run_id, step)
        where.insert(0, "group_id = ?")
        params.insert(0, group_id)
        with self._snapshot() as conn:
            rows = conn.execute(
                "SELECT * FROM groups WHERE "
                + " AND ".join(where)
                + " ORDER BY created_at DESC, pk DESC LIMIT 1",
                tuple(params),
            ).fetchall()
            traced = _load(conn, rows)
        return traced[0] if traced else None

    def steps(self, run_id: str | None = None, step: int | None = None) -> list[TracedStep]:
        """Every traced group's `GroupResult`, per (run, step), steps in order of first record."""
        where, params = self._filters(run_id, step)
        with self._snapshot() as conn:
            rows = conn.execute(
                "SELECT * FROM groups"
                + (" WHERE " + " AND ".join(where) if where else "")
                + " ORDER BY created_at, pk",
                tuple(params),
            ).fetchall()
            traced = _load(conn, rows)
        by_step: dict[tuple[str, int | None], TracedStep] = {}
        for t in traced:
            step_of = by_step.setdefault((t.run_id, t.step), TracedStep(t.run_id, t.step, []))
            step_of.results.append(t.result)
            step_of.answers.append(t.student_responses)
            step_of.correct.append(t.student_correct)
        return list(by_step.values())

    def summary(self, run_id: str | None = None, step: int | None = None) -> list[StepSummary]:
        """Per (run, step): the training log's metrics, computed from the traced groups."""
        return [
            StepSummary(t.run_id, t.step, step_metrics(t.results)) for t in self.steps(run_id, step)
        ]


_CHUNK = 500  # group keys per IN (...) list, below SQLite's bound-parameter limit


def _gold_column(correct: Sequence[bool | None] | None, n: int) -> list[int | None]:
    """The `answers.correct` values of n student answers: 1, 0, or NULL (not checked)."""
    values = list(correct) if correct is not None else []
    return [None if i >= len(values) or values[i] is None else int(values[i]) for i in range(n)]


def _load(conn: sqlite3.Connection, groups: list[sqlite3.Row]) -> list[TracedGroup]:
    """Rebuild traced groups from their `groups` rows: four queries per chunk of groups."""
    children: dict[str, dict[int, list[sqlite3.Row]]] = {
        "answers": {},
        "criteria": {},
        "verdicts": {},
    }
    pks = [g["pk"] for g in groups]
    for start in range(0, len(pks), _CHUNK):
        chunk = pks[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        queries = {
            "answers": f"SELECT * FROM answers WHERE group_pk IN ({marks}) ORDER BY source, idx",
            "criteria": f"SELECT * FROM criteria WHERE group_pk IN ({marks}) "
            "ORDER BY rubric_index, position",
            "verdicts": "SELECT v.*, c.position FROM verdicts v LEFT JOIN criteria c "
            "ON c.group_pk = v.group_pk AND c.rubric_index = v.rubric_index "
            f"AND c.criterion_id = v.criterion_id WHERE v.group_pk IN ({marks}) "
            "ORDER BY v.source, v.idx, c.position",
        }
        for table, sql in queries.items():
            for row in conn.execute(sql, chunk):
                children[table].setdefault(row["group_pk"], []).append(row)
    return [
        _traced_group(
            g,
            children["answers"].get(g["pk"], []),
            children["criteria"].get(g["pk"], []),
            children["verdicts"].get(g["pk"], []),
        )
        for g in groups
    ]


def _traced_group(
    g: sqlite3.Row,
    answers: list[sqlite3.Row],
    criteria: list[sqlite3.Row],
    verdict_rows: list[sqlite3.Row],
) -> TracedGroup:
    """One group's rows back into the `GroupResult` the scorer returned."""
    rubrics: dict[int, list[Criterion]] = {}
    for c in criteria:
        rubrics.setdefault(c["rubric_index"], []).append(
            Criterion(
                id=c["criterion_id"],
                category=c["category"],
                criterion=c["text"],
                points=c["points"],
            )
        )
    by_answer: dict[tuple[str, int], dict[str, bool]] = {}
    for v in verdict_rows:
        by_answer.setdefault((v["source"], v["idx"]), {})[v["criterion_id"]] = bool(v["passed"])
    student = [a for a in answers if a["source"] == "student"]
    correct = [None if a["correct"] is None else bool(a["correct"]) for a in student]
    teacher = [a for a in answers if a["source"] == "teacher"]
    verdicts = [
        AnswerVerdicts(
            source=a["source"],
            index=a["idx"],
            verdicts=by_answer.get((a["source"], a["idx"]), {}),
            score=a["score"],
            rubric_index=a["rubric_index"] or 0,
            label=a["label"],
            duplicate_of=a["duplicate_of"],
            note=a["note"],
        )
        for a in answers
        if a["score"] is not None
    ]
    verdicts.sort(key=lambda v: (v.source != "student", v.index))
    result = GroupResult(
        id=g["group_id"],
        rewards=[a["reward"] for a in student],
        teacher_scores=[a["reward"] for a in teacher],
        rubrics=[Rubric(criteria=rubrics[i]) for i in sorted(rubrics)],
        verdicts=verdicts,
        usage=json.loads(g["usage"]),
        error=g["error"],
        failure_policy=g["failure_policy"],
        settings=json.loads(g["settings"]),
        checks=json.loads(g["checks"]) if g["checks"] else {},
    )
    return TracedGroup(
        group_id=g["group_id"],
        run_id=g["run_id"],
        step=g["step"],
        created_at=g["created_at"],
        prompt=json.loads(g["prompt"]),
        student_responses=[a["text"] for a in student],
        teacher_responses=[a["text"] for a in teacher],
        result=result,
        student_correct=correct if any(c is not None for c in correct) else None,
    )
