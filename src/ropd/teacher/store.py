"""The offline teacher store: one SQLite row per teacher answer.

Why SQLite: one file, no server, transactions that survive SIGKILL, and a UNIQUE constraint on
(prompt key, fingerprint, sample index) so neither a resumed build nor a second import can ever
duplicate an answer. WAL mode lets training read while a build is still writing.

Answers keep their reasoning (`<think>...</think>`); `lookup` strips it at use unless told not to.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from typing_extensions import Self

from ropd.data.records import DataError, check_messages
from ropd.errors import InputError, StoreError
from ropd.llm.types import Completion
from ropd.sqlite import Schema, open_store, transaction
from ropd.teacher import legacy
from ropd.teacher.fingerprint import TeacherFingerprint, canonical_messages, prompt_key
from ropd.teacher.status import STATUSES, USABLE_DEFAULT, classify
from ropd.text import strip_think

EXPORT_VERSION = "ropd.teacher_store.v1"
Messages = str | list[dict[str, Any]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fingerprints (
    hash TEXT PRIMARY KEY,
    fields TEXT NOT NULL,
    origin TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS prompts (
    prompt_key TEXT PRIMARY KEY,
    messages TEXT,
    record_id TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY,
    prompt_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT,
    status TEXT NOT NULL CHECK (status IN ('ok', 'empty', 'truncated', 'refused')),
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    latency_s REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    UNIQUE (prompt_key, fingerprint, sample_index)
);
"""


class TeacherStoreError(StoreError):
    """A lookup or store operation that cannot be satisfied."""


# The export format's name has always been the file's version marker too (meta.schema_version).
_STORE_SCHEMA = Schema(
    kind="teacher store",
    version=EXPORT_VERSION,
    ddl=_SCHEMA,
    family=r"ropd\.teacher_store\.v\d+",
    error=TeacherStoreError,
)


class FingerprintMismatch(TeacherStoreError):
    """Answers for the prompt exist, but only under other teacher fingerprints."""

    def __init__(self, message: str, differences: dict[str, list[str]]) -> None:
        super().__init__(message)
        self.differences = differences


class MissingReferences(TeacherStoreError):
    """Fewer usable answers than asked for (or none at all) for a prompt."""


@dataclass
class ImportReport:
    added: int = 0
    skipped: int = 0
    renumbered: int = 0
    legacy_rows: int = 0
    rows_by_raw_hash: int = 0
    fingerprints: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "skipped": self.skipped,
            "renumbered": self.renumbered,
            "legacy_rows": self.legacy_rows,
            "rows_by_raw_hash": self.rows_by_raw_hash,
            "fingerprints": sorted(self.fingerprints),
        }


@dataclass(frozen=True)
class Truncation:
    """A prompt's answers cut off at a token limit: how many, and the highest limit they hit."""

    count: int
    max_tokens: int | None


@dataclass(frozen=True)
class StoredAnswer:
    prompt_key: str
    fingerprint: str
    sample_index: int
    text: str
    finish_reason: str | None
    status: str


class TeacherStore:
    """Teacher answers keyed by (prompt key, fingerprint hash, sample index).

    Safe to share between threads of one process (one connection behind a lock); several
    processes may read while one writes.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._lock = threading.RLock()
        self._db = open_store(self.path, _STORE_SCHEMA, lock=self._lock)

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return transaction(self._db, self._lock)

    # -- writing -------------------------------------------------------------------------------

    def _ensure_fingerprint(
        self, fingerprint: TeacherFingerprint, origin: dict[str, Any] | None = None
    ) -> str:
        digest = fingerprint.hash
        self._db.execute(
            "INSERT OR IGNORE INTO fingerprints (hash, fields, origin, created_at) "
            "VALUES (?, ?, ?, ?)",
            (
                digest,
                json.dumps(fingerprint.model_dump(mode="json"), sort_keys=True),
                json.dumps(origin, sort_keys=True, default=str) if origin else None,
                time.time(),
            ),
        )
        return digest

    def _ensure_prompt(self, key: str, messages: list[dict[str, Any]] | None, rid: str | None):
        self._db.execute(
            "INSERT OR IGNORE INTO prompts (prompt_key, messages, record_id, created_at) "
            "VALUES (?, ?, ?, ?)",
            (key, json.dumps(messages, ensure_ascii=False) if messages else None, rid, time.time()),
        )

    def add_prompt(self, messages: Messages, *, record_id: str | None = None) -> str:
        """Remember a prompt's messages (and its dataset id); returns its key."""
        canonical = canonical_messages(messages)
        key = prompt_key(canonical)
        with self._write():
            self._ensure_prompt(key, canonical, record_id)
        return key

    def add_answers(
        self,
        messages: Messages,
        fingerprint: TeacherFingerprint,
        completions: Sequence[Completion],
        *,
        record_id: str | None = None,
    ) -> list[int]:
        """Store completions at the next free sample indexes, in one transaction.

        The indexes are allocated inside the write transaction, so concurrent writers (tasks or
        processes) can never collide, and an answer is durable as soon as this returns.
        """
        canonical = canonical_messages(messages)
        key = prompt_key(canonical)
        indexes: list[int] = []
        with self._write():
            digest = self._ensure_fingerprint(fingerprint)
            self._ensure_prompt(key, canonical, record_id)
            start = self._next_index(key, digest)
            now = time.time()
            for offset, completion in enumerate(completions):
                index = start + offset
                self._db.execute(
                    "INSERT INTO answers (prompt_key, fingerprint, sample_index, text, "
                    "finish_reason, status, prompt_tokens, completion_tokens, latency_s, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        key,
                        digest,
                        index,
                        completion.text,
                        completion.finish_reason,
                        classify(completion.text, completion.finish_reason),
                        completion.prompt_tokens,
                        completion.completion_tokens,
                        completion.latency_s,
                        now,
                    ),
                )
                indexes.append(index)
        return indexes

    def _next_index(self, key: str, digest: str) -> int:
        row = self._db.execute(
            "SELECT COALESCE(MAX(sample_index) + 1, 0) FROM answers "
            "WHERE prompt_key = ? AND fingerprint = ?",
            (key, digest),
        ).fetchone()
        return int(row[0])

    # -- reading -------------------------------------------------------------------------------

    def usable_counts(
        self,
        keys: Iterable[str],
        fingerprint: TeacherFingerprint,
        usable: Iterable[str] = USABLE_DEFAULT,
    ) -> dict[str, int]:
        """Usable answers per prompt key under one fingerprint (keys without answers: 0)."""
        statuses = sorted(set(usable))
        counts = dict.fromkeys(keys, 0)
        marks = ",".join("?" * len(statuses))
        with self._lock:
            rows = self._db.execute(
                f"SELECT prompt_key, COUNT(*) FROM answers WHERE fingerprint = ? "
                f"AND status IN ({marks}) GROUP BY prompt_key",
                (fingerprint.hash, *statuses),
            ).fetchall()
        for key, count in rows:
            if key in counts:
                counts[key] = int(count)
        return counts

    def truncations(
        self, keys: Iterable[str], fingerprint: TeacherFingerprint
    ) -> dict[str, Truncation]:
        """Truncated answers per prompt key at `fingerprint`'s token limit or a higher one.

        Counted under `fingerprint` and under every stored fingerprint that differs from it only
        by a higher `max_tokens`: an answer cut off at a limit would be cut off at any lower one
        too, so asking again at this limit pays for the same truncation. The limit an answer was
        made at is its fingerprint's `max_tokens`. Keys without such answers are left out.
        """
        hashes = self._same_teacher_at_or_above(fingerprint)
        marks = ",".join("?" * len(hashes))
        wanted = set(keys)
        with self._lock:
            rows = self._db.execute(
                f"SELECT prompt_key, fingerprint, COUNT(*) FROM answers WHERE status = 'truncated' "
                f"AND fingerprint IN ({marks}) GROUP BY prompt_key, fingerprint",
                list(hashes),
            ).fetchall()
        found: dict[str, Truncation] = {}
        for key, digest, count in rows:
            if key not in wanted:
                continue
            before = found.get(key, Truncation(0, None))
            limits = [m for m in (before.max_tokens, hashes[digest]) if m is not None]
            found[key] = Truncation(before.count + int(count), max(limits) if limits else None)
        return found

    def _same_teacher_at_or_above(self, fingerprint: TeacherFingerprint) -> dict[str, int | None]:
        """Hash -> max_tokens of `fingerprint` and of every stored fingerprint equal to it but
        for a `max_tokens` at least as high (limits compare only when both are known)."""
        mine = fingerprint.model_dump(mode="json")
        limit = mine.pop("max_tokens")
        found: dict[str, int | None] = {fingerprint.hash: limit}
        if limit is None:
            return found
        with self._lock:
            rows = self._db.execute("SELECT hash, fields FROM fingerprints").fetchall()
        for digest, fields in rows:
            theirs = json.loads(fields)
            other = theirs.pop("max_tokens", None)
            if isinstance(other, int) and other >= limit and theirs == mine:
                found[digest] = other
        return found

    def count_usable(
        self,
        messages: Messages,
        *,
        fingerprint: TeacherFingerprint,
        usable: Iterable[str] = USABLE_DEFAULT,
    ) -> int:
        """How many usable answers one prompt has under `fingerprint`."""
        key = prompt_key(messages)
        return self.usable_counts([key], fingerprint, usable)[key]

    def _rows_for(self, messages: Messages) -> list[StoredAnswer]:
        canonical = canonical_messages(messages)
        keys = [prompt_key(canonical), *legacy.raw_candidates(canonical)]
        marks = ",".join("?" * len(keys))
        with self._lock:
            rows = self._db.execute(
                "SELECT prompt_key, fingerprint, sample_index, text, finish_reason, status "
                f"FROM answers WHERE prompt_key IN ({marks}) "
                "ORDER BY fingerprint, prompt_key, sample_index",
                keys,
            ).fetchall()
        return [StoredAnswer(*row) for row in rows]

    def fingerprint(self, digest: str) -> TeacherFingerprint:
        """The fingerprint stored under a hash."""
        with self._lock:
            row = self._db.execute(
                "SELECT fields FROM fingerprints WHERE hash = ?", (digest,)
            ).fetchone()
        if row is None:
            raise TeacherStoreError(f"{self.path}: no fingerprint {digest}")
        return TeacherFingerprint(**json.loads(row[0]))

    def fingerprints(self) -> list[TeacherFingerprint]:
        with self._lock:
            rows = self._db.execute(
                "SELECT fields FROM fingerprints ORDER BY created_at"
            ).fetchall()
        return [TeacherFingerprint(**json.loads(r[0])) for r in rows]

    def lookup(
        self,
        messages: Messages,
        *,
        k: int,
        fingerprint: TeacherFingerprint | None = None,
        accept_any_fingerprint: bool = False,
        strip_think: bool = True,
        include_unusable: bool = False,
        allow_fewer: bool = False,
        usable: Iterable[str] = USABLE_DEFAULT,
    ) -> list[str]:
        """The first `k` usable teacher answers for a prompt (by sample index).

        `messages` are the chat messages after the system prompt (a string is one user message).
        With `fingerprint`, only answers made under it count; answers that exist only under
        other fingerprints raise FingerprintMismatch listing the differing fields, unless
        `accept_any_fingerprint`. Without `fingerprint`, the prompt's answers must come from one
        fingerprint (or `accept_any_fingerprint`). Fewer than `k` usable answers raise
        MissingReferences unless `allow_fewer`.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        statuses = set(STATUSES) if include_unusable else set(usable)
        rows = [r for r in self._rows_for(messages) if r.status in statuses]
        by_fp: dict[str, list[StoredAnswer]] = {}
        for row in rows:
            by_fp.setdefault(row.fingerprint, []).append(row)
        key = prompt_key(messages)
        if not by_fp:
            raise MissingReferences(f"{self.path}: no usable teacher answers for prompt {key[:12]}")

        if accept_any_fingerprint:
            first = fingerprint.hash if fingerprint is not None else None
            order = sorted(by_fp, key=lambda fp: (fp != first, fp))
            chosen = [row for fp in order for row in by_fp[fp]]
        elif fingerprint is not None:
            chosen = by_fp.get(fingerprint.hash, [])
            if not chosen:
                differences = {
                    fp: fingerprint.diff(self.fingerprint(fp), ("requested", "stored"))
                    for fp in sorted(by_fp)
                }
                detail = "; ".join(
                    f"{fp}: " + ", ".join(lines) for fp, lines in differences.items()
                )
                raise FingerprintMismatch(
                    f"{self.path}: prompt {key[:12]} has teacher answers only under other "
                    f"fingerprints than {fingerprint.hash} — differing fields: {detail}. "
                    "Rebuild with these settings, or accept any fingerprint.",
                    differences,
                )
        else:
            if len(by_fp) > 1:
                described = "; ".join(self.fingerprint(fp).describe() for fp in sorted(by_fp))
                raise FingerprintMismatch(
                    f"{self.path}: prompt {key[:12]} has answers under {len(by_fp)} teacher "
                    f"fingerprints ({described}); pass the fingerprint to use, or accept any.",
                    {},
                )
            chosen = next(iter(by_fp.values()))

        if len(chosen) < k and not allow_fewer:
            raise MissingReferences(
                f"{self.path}: prompt {key[:12]} has {len(chosen)} usable teacher answers, "
                f"{k} requested; run `ropd teacher build` again to top it up"
            )
        texts = [row.text for row in chosen[:k]]
        if strip_think:
            texts = [_strip(t) for t in texts]
        return texts

    def answers(self) -> Iterator[StoredAnswer]:
        """Every stored answer, ordered by prompt, fingerprint and sample index."""
        with self._lock:
            rows = self._db.execute(
                "SELECT prompt_key, fingerprint, sample_index, text, finish_reason, status "
                "FROM answers ORDER BY prompt_key, fingerprint, sample_index"
            ).fetchall()
        return (StoredAnswer(*row) for row in rows)

    def stats(self, k: int | None = None) -> dict[str, Any]:
        """Counts for `ropd teacher stats`: prompts, answers by status, per fingerprint, tokens.

        With `k`, also how many prompts have at least `k` usable (`ok`) answers per fingerprint.
        """
        with self._lock:
            db = self._db
            total = db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
            by_status = dict(db.execute("SELECT status, COUNT(*) FROM answers GROUP BY status"))
            tokens = db.execute(
                "SELECT COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0) "
                "FROM answers"
            ).fetchone()
            prompts = db.execute("SELECT COUNT(DISTINCT prompt_key) FROM answers").fetchone()[0]
            by_hash = db.execute(
                "SELECT a.fingerprint, f.fields, f.origin, COUNT(*), COUNT(DISTINCT a.prompt_key),"
                " SUM(a.status = 'ok'), SUM(a.status = 'truncated') FROM answers a"
                " JOIN fingerprints f ON f.hash = a.fingerprint"
                " GROUP BY a.fingerprint ORDER BY MIN(a.created_at)"
            ).fetchall()
            raw_only = db.execute(
                "SELECT COUNT(DISTINCT prompt_key) FROM answers WHERE prompt_key LIKE ?",
                (legacy.RAW_KEY_PREFIX + "%",),
            ).fetchone()[0]
            histograms: dict[str, dict[str, int]] = {}
            for (digest,) in db.execute("SELECT hash FROM fingerprints").fetchall():
                counts = db.execute(
                    "SELECT n, COUNT(*) FROM (SELECT SUM(status = 'ok') AS n FROM answers "
                    "WHERE fingerprint = ? GROUP BY prompt_key) GROUP BY n ORDER BY n",
                    (digest,),
                ).fetchall()
                histograms[digest] = {str(n): c for n, c in counts}
        fingerprints = []
        for digest, fields, origin, answers, n_prompts, ok, truncated in by_hash:
            entry: dict[str, Any] = {
                "hash": digest,
                "fields": json.loads(fields),
                "answers": answers,
                "prompts": n_prompts,
                "ok": int(ok or 0),
                "truncated": int(truncated or 0),  # cut off at fields["max_tokens"]
                "ok_per_prompt": histograms.get(digest, {}),
            }
            if origin:
                entry["origin"] = json.loads(origin)
            if k is not None:
                entry[f"prompts_with_{k}_ok"] = sum(
                    c for n, c in histograms.get(digest, {}).items() if int(n) >= k
                )
            fingerprints.append(entry)
        return {
            "path": str(self.path),
            "prompts": prompts,
            "prompts_known_by_raw_hash_only": raw_only,
            "answers": total,
            "by_status": {s: int(by_status.get(s, 0)) for s in STATUSES},
            "prompt_tokens": int(tokens[0]),
            "completion_tokens": int(tokens[1]),
            "fingerprints": fingerprints,
        }

    # -- export / import -----------------------------------------------------------------------

    def export_jsonl(self, path: str | Path) -> int:
        """Write one JSON line per answer (prompt messages and fingerprint fields included).

        Written to a temporary file first and renamed, so a crash never leaves half a file.
        """
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        count = 0
        with self._lock:
            fields = {
                h: json.loads(f)
                for h, f in self._db.execute("SELECT hash, fields FROM fingerprints")
            }
            prompts = {
                key: (json.loads(m) if m else None, rid)
                for key, m, rid in self._db.execute(
                    "SELECT prompt_key, messages, record_id FROM prompts"
                )
            }
            rows = self._db.execute(
                "SELECT prompt_key, fingerprint, sample_index, text, finish_reason, status, "
                "prompt_tokens, completion_tokens, latency_s, created_at FROM answers "
                "ORDER BY prompt_key, fingerprint, sample_index"
            ).fetchall()
        with tmp.open("w", encoding="utf-8") as out:
            for key, digest, index, text, finish, status, p_tok, c_tok, latency, created in rows:
                messages, rid = prompts.get(key, (None, None))
                out.write(
                    json.dumps(
                        {
                            "schema_version": EXPORT_VERSION,
                            "prompt_key": key,
                            "record_id": rid,
                            "messages": messages,
                            "fingerprint_hash": digest,
                            "fingerprint": fields[digest],
                            "sample_index": index,
                            "text": text,
                            "finish_reason": finish,
                            "status": status,
                            "prompt_tokens": p_tok,
                            "completion_tokens": c_tok,
                            "latency_s": latency,
                            "created_at": created,
                        },
                        ensure_ascii=False,
                    )
                    + "\n"
                )
                count += 1
        os.replace(tmp, target)
        return count

    def import_jsonl(self, path: str | Path) -> ImportReport:
        """Add answers from our export format or the reference's v1/v2 index rows.

        All or nothing: one transaction, so a bad line (reported with its file, line and
        field) leaves the store as it was. Importing the same file twice adds nothing. A row
        whose sample index is taken by a different answer (two stores merged) is appended at
        the next free index instead.
        """
        from ropd.data.records import load_records

        report = ImportReport()
        records = load_records(path)
        with self._write():
            for record in records:
                version = record.get("schema_version")
                where = record.location
                if version == EXPORT_VERSION:
                    self._import_own(record.data, where, report)
                elif version in legacy.VERSIONS:
                    self._import_legacy(legacy.parse_legacy_row(record.data, where), where, report)
                else:
                    raise DataError(
                        f"{where}: field 'schema_version' must be one of "
                        f"{[EXPORT_VERSION, *legacy.VERSIONS]}, got {version!r}"
                    )
        return report

    def _import_own(self, row: dict[str, Any], where: str, report: ImportReport) -> None:
        for name in ("prompt_key", "fingerprint", "sample_index", "text"):
            if name not in row:
                raise DataError(f"{where}: missing field {name!r}")
        try:
            fingerprint = TeacherFingerprint(**row["fingerprint"])
        except (TypeError, ValueError) as exc:
            raise DataError(f"{where}: field 'fingerprint': {exc}") from None
        messages = row.get("messages")
        key = row["prompt_key"]
        if messages is not None:
            messages = check_messages(messages, where, "messages")
            if prompt_key(messages) != key:
                raise DataError(f"{where}: field 'prompt_key' does not match field 'messages'")
        elif not isinstance(key, str) or not key.startswith(legacy.RAW_KEY_PREFIX):
            raise DataError(f"{where}: field 'messages' is required for key {key!r}")
        index, text = row["sample_index"], row["text"]
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise DataError(f"{where}: field 'sample_index' must be a non-negative integer")
        if not isinstance(text, str):
            raise DataError(f"{where}: field 'text' must be a string")
        status = row.get("status") or classify(text, row.get("finish_reason"))
        if status not in STATUSES:
            raise DataError(f"{where}: field 'status' must be one of {list(STATUSES)}")
        try:
            answer = Completion(
                text=text,
                finish_reason=row.get("finish_reason"),
                prompt_tokens=int(row.get("prompt_tokens") or 0),
                completion_tokens=int(row.get("completion_tokens") or 0),
                latency_s=float(row.get("latency_s") or 0.0),
            )
            created = float(row["created_at"]) if row.get("created_at") is not None else None
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"{where}: usage or created_at fields must be numbers ({exc})"
            ) from None
        digest = self._ensure_fingerprint(fingerprint)
        self._ensure_prompt(key, messages, row.get("record_id"))
        self._insert_imported(key, digest, index, answer, status, report, created=created)
        report.fingerprints.add(digest)

    def _import_legacy(self, row: legacy.LegacyRow, where: str, report: ImportReport) -> None:
        report.legacy_rows += 1
        if row.raw_prompt is not None:
            try:
                messages = check_messages(canonical_messages(row.raw_prompt), where, "raw_prompt")
            except (KeyError, TypeError) as exc:
                raise DataError(f"{where}: prompt messages need 'role' and 'content' ({exc})")
            key = prompt_key(messages)
        else:
            messages = None
            key = legacy.raw_key(row.digest)
            report.rows_by_raw_hash += 1
        digest = self._ensure_fingerprint(row.fingerprint, row.origin)
        self._ensure_prompt(key, messages, row.uid)
        for index, text in enumerate(row.answers):
            answer = Completion(text=text)
            self._insert_imported(key, digest, index, answer, classify(text, None), report)
        report.fingerprints.add(digest)

    def _insert_imported(
        self,
        key: str,
        digest: str,
        index: int,
        answer: Completion,
        status: str,
        report: ImportReport,
        *,
        created: float | None = None,
    ) -> None:
        """Insert at `index`; skip if that answer is already there; else append at the end."""
        existing = self._db.execute(
            "SELECT text FROM answers WHERE prompt_key = ? AND fingerprint = ? AND sample_index = ?",
            (key, digest, index),
        ).fetchone()
        if existing is not None:
            if existing[0] == answer.text:
                report.skipped += 1
                return
            same = self._db.execute(
                "SELECT 1 FROM answers WHERE prompt_key = ? AND fingerprint = ? AND text = ?",
                (key, digest, answer.text),
            ).fetchone()
            if same is not None:
                report.skipped += 1
                return
            index = self._next_index(key, digest)
            report.renumbered += 1
        self._db.execute(
            "INSERT INTO answers (prompt_key, fingerprint, sample_index, text, finish_reason, "
            "status, prompt_tokens, completion_tokens, latency_s, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key, digest, index, answer.text, answer.finish_reason, status,
                answer.prompt_tokens, answer.completion_tokens, answer.latency_s,
                created if created is not None else time.time(),
            ),
        )  # fmt: skip
        report.added += 1


def _strip(text: str) -> str:
    return strip_think(text)


def open_existing(path: Path) -> TeacherStore:
    """An existing store file, opened; `InputError` naming a missing path or a directory,
    `StoreError` for a file that is not a store."""
    if path.is_dir():
        raise InputError(f"{path}: the teacher store is a directory, not a store file")
    if not path.is_file():
        raise InputError(f"{path}: teacher store not found")
    try:
        return TeacherStore(path)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot open the teacher store ({exc})") from None
