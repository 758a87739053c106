"""One way to open the SQLite stores (teacher answers, traces): WAL, schema, version, errors.

Both stores are single files that several processes share (a build or a training run writes while
`ropd inspect` or another worker reads), so every connection gets WAL mode, a busy timeout and
`BEGIN IMMEDIATE` write transactions (writers queue instead of failing half-way).

The version marker is the row `schema_version` of a `meta (key, value)` table, the format both
stores have always written, so files made before this module open unchanged. A file that is not
SQLite, belongs to another kind of store, or carries a version this ropd does not read raises the
store's own `StoreError` subclass with the file named, before anything is written to it.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ropd.errors import StoreError

Lock = AbstractContextManager[Any]  # a threading.Lock or RLock guarding a shared connection
_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)", re.IGNORECASE)


@dataclass(frozen=True)
class Schema:
    """What one kind of store looks like on disk.

    `version` is the exact `meta.schema_version` value this code reads and writes; `family`
    matches every version value of this kind (older or newer), which tells "another version of
    this store" apart from "another kind of file".
    """

    kind: str
    version: str
    ddl: str
    family: str
    error: type[StoreError] = StoreError
    hint: str = ""
    tables: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", frozenset(_TABLE.findall(self.ddl)))
        if "meta" not in self.tables:
            raise ValueError(f"{self.kind} schema must create the meta table")


def connect(
    path: str | Path,
    *,
    timeout_s: float = 30.0,
    foreign_keys: bool = False,
    error: type[StoreError] = StoreError,
) -> sqlite3.Connection:
    """An autocommit connection in WAL mode with a busy timeout, usable from any thread.

    Autocommit (`isolation_level=None`) leaves transactions to `transaction()`; callers share
    the connection behind their own lock. WAL + synchronous=NORMAL survives process kills.
    """
    path = Path(path)
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(
            str(path), timeout=timeout_s, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise error(f"{path}: cannot open the database ({exc})") from exc
    try:
        conn.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if foreign_keys:
            conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.Error as exc:
        conn.close()
        raise store_error(path, exc, error) from exc
    return conn


@contextmanager
def transaction(
    conn: sqlite3.Connection, lock: Lock | None = None, *, write: bool = True
) -> Iterator[sqlite3.Connection]:
    """`BEGIN IMMEDIATE ... COMMIT`, rolled back on any exception (under `lock` if given).

    IMMEDIATE takes the write lock up front, so two writers wait for each other (busy timeout)
    instead of one failing when it first writes. With `write=False` it is a plain `BEGIN`: in
    WAL mode, a read snapshot that several queries see alike while writers go on.
    """
    with lock if lock is not None else nullcontext():
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
                conn.execute("ROLLBACK")
            raise


def open_store(
    path: str | Path,
    schema: Schema,
    *,
    timeout_s: float = 30.0,
    foreign_keys: bool = False,
    lock: Lock | None = None,
) -> sqlite3.Connection:
    """`connect` + `ensure_schema`: a connection to a checked (or newly created) store."""
    conn = connect(path, timeout_s=timeout_s, foreign_keys=foreign_keys, error=schema.error)
    try:
        ensure_schema(conn, path, schema, lock=lock)
    except sqlite3.Error as exc:
        conn.close()
        raise store_error(Path(path), exc, schema.error) from exc
    except StoreError:
        conn.close()
        raise
    return conn


def ensure_schema(
    conn: sqlite3.Connection, path: str | Path, schema: Schema, *, lock: Lock | None = None
) -> None:
    """Check the file's version marker; create the schema in an empty file.

    Readers of an existing store never take the write lock. Creation re-checks inside its write
    transaction, because another process may have created the store in the meantime.
    """
    if _check(conn, Path(path), schema):
        return
    with transaction(conn, lock):
        if _check(conn, Path(path), schema):
            return
        for statement in schema.ddl.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
            (schema.version,),
        )


def schema_version(conn: sqlite3.Connection) -> str | None:
    """The `meta.schema_version` value of an open database (None when it has none)."""
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not has_meta:
        return None
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return None if row is None else str(row[0])


def _check(conn: sqlite3.Connection, path: Path, schema: Schema) -> bool:
    """True when the store exists at our version, False when it is ours to create; else raise."""
    tables = {
        row[0]
        for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    }
    found = schema_version(conn)
    if found == schema.version:
        return True
    if found is None:
        if tables <= schema.tables:  # empty, or our own creation cut short before the marker
            return False
        if "meta" in tables:
            raise schema.error(f"{path}: not a ropd {schema.kind} (no schema version in its meta)")
        shown = ", ".join(sorted(tables)[:3])
        raise schema.error(f"{path}: an SQLite file that is not a ropd {schema.kind} (has {shown})")
    if re.fullmatch(schema.family, found) is None:
        raise schema.error(
            f"{path}: not a ropd {schema.kind}: its schema version {found!r} belongs to another "
            "kind of file"
        )
    hint = f"; {schema.hint}" if schema.hint else ""
    raise schema.error(
        f"{path}: {schema.kind} schema version {found!r}, this ropd reads version "
        f"{schema.version!r}{hint}"
    )


def store_error(path: Path, exc: sqlite3.Error, error: type[StoreError]) -> StoreError:
    """One clear message for an SQLite error met while opening or preparing a store."""
    if getattr(exc, "sqlite_errorname", "") == "SQLITE_NOTADB" or "not a database" in str(exc):
        return error(f"{path}: not an SQLite database ({exc})")
    if "locked" in str(exc) or getattr(exc, "sqlite_errorname", "") == "SQLITE_BUSY":
        return error(
            f"{path}: the database is locked by another program ({exc}); end its transaction "
            "or close it (e.g. an sqlite3 shell left inside BEGIN) and run again"
        )
    return error(f"{path}: cannot use the database ({exc})")


__all__ = [
    "Schema",
    "connect",
    "ensure_schema",
    "open_store",
    "schema_version",
    "store_error",
    "transaction",
]
