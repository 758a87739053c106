"""The shared SQLite helper: WAL connections, transactions, schema versions and clear errors."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from ropd.errors import StoreError
from ropd.reward.traces import SCHEMA_VERSION, TraceStore, TraceStoreError
from ropd.sqlite import Schema, connect, open_store, schema_version, transaction
from ropd.teacher.store import TeacherStore, TeacherStoreError

DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)
"""
SCHEMA = Schema(kind="test store", version="test.v2", ddl=DDL, family=r"test\.v\d+")


def names(conn: sqlite3.Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT name FROM items ORDER BY id")]


def test_creates_schema_in_wal_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "a.db"  # missing folders are made
    conn = open_store(path, SCHEMA)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000
    assert schema_version(conn) == "test.v2"
    with transaction(conn):
        conn.execute("INSERT INTO items (name) VALUES ('a')")
    conn.close()
    again = open_store(path, SCHEMA)
    assert names(again) == ["a"]
    again.close()


def test_foreign_keys_only_when_asked(tmp_path: Path) -> None:
    with_fk = connect(tmp_path / "a.db", foreign_keys=True)
    without = connect(tmp_path / "b.db")
    assert with_fk.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert without.execute("PRAGMA foreign_keys").fetchone()[0] == 0
    with_fk.close()
    without.close()


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    garbage = tmp_path / "notes.db"
    garbage.write_bytes(b"this is not sqlite at all\n" * 100)
    with pytest.raises(StoreError, match=re.escape(f"{garbage}: not an SQLite database")):
        open_store(garbage, SCHEMA)
    with pytest.raises(TraceStoreError, match=re.escape(str(garbage))):
        TraceStore(garbage)
    with pytest.raises(TeacherStoreError, match=re.escape(f"{garbage}: not an SQLite database")):
        TeacherStore(garbage)
    assert garbage.read_bytes() == b"this is not sqlite at all\n" * 100  # left untouched


def test_a_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    open_store(path, SCHEMA).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = 'test.v3' WHERE key = 'schema_version'")
    conn.close()
    message = f"{path}: test store schema version 'test.v3', this ropd reads version 'test.v2'"
    with pytest.raises(StoreError, match=re.escape(message)):
        open_store(path, SCHEMA)


def test_other_sqlite_files_are_refused_and_left_alone(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    for opener, error in ((TraceStore, TraceStoreError), (TeacherStore, TeacherStoreError)):
        with pytest.raises(error, match=re.escape(f"{other}: an SQLite file that is not a ropd")):
            opener(other)
    with sqlite3.connect(other) as conn:  # no store tables were added to it
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    conn.close()
    assert tables == ["t"]


def test_a_store_of_the_other_kind_is_named_as_such(tmp_path: Path) -> None:
    traces, teacher = tmp_path / "traces.db", tmp_path / "teacher.db"
    TraceStore(traces).close()
    TeacherStore(teacher).close()
    with pytest.raises(TeacherStoreError, match=re.escape(f"{traces}: not a ropd teacher store")):
        TeacherStore(traces)
    with pytest.raises(TraceStoreError, match=re.escape(f"{teacher}: not a ropd trace store")):
        TraceStore(teacher)
    with pytest.raises(StoreError, match="another kind of file"):
        open_store(teacher, SCHEMA)


def test_files_written_before_the_helper_still_open(tmp_path: Path) -> None:
    """The version marker is unchanged: `meta.schema_version`, as both stores wrote it."""
    from ropd.reward import traces as traces_module
    from ropd.teacher import store as teacher_module

    old_traces = tmp_path / "old-traces.db"
    with sqlite3.connect(old_traces) as conn:  # what the trace store wrote before
        conn.executescript(traces_module._SCHEMA)
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (1,))
    conn.close()
    with TraceStore(old_traces) as store:
        assert store.list() == []

    old_teacher = tmp_path / "old-teacher.db"
    with sqlite3.connect(old_teacher) as conn:  # what the teacher store wrote before
        conn.executescript(teacher_module._SCHEMA)
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
            (teacher_module.EXPORT_VERSION,),
        )
    conn.close()
    with TeacherStore(old_teacher) as store:
        assert store.stats()["answers"] == 0
    assert SCHEMA_VERSION == 1


def test_rollback_on_exception(tmp_path: Path) -> None:
    conn = open_store(tmp_path / "a.db", SCHEMA)
    with transaction(conn):
        conn.execute("INSERT INTO items (name) VALUES ('kept')")
    with pytest.raises(ValueError, match="midway"), transaction(conn):
        conn.execute("INSERT INTO items (name) VALUES ('lost')")
        raise ValueError("midway")
    assert not conn.in_transaction
    assert names(conn) == ["kept"]
    with transaction(conn):  # the connection is usable again
        conn.execute("INSERT INTO items (name) VALUES ('next')")
    assert names(conn) == ["kept", "next"]
    conn.close()


def test_a_reader_sees_committed_rows_while_a_writer_is_open(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    writer = open_store(path, SCHEMA, timeout_s=1.0)
    reader = open_store(path, SCHEMA, timeout_s=1.0)
    with transaction(writer):
        writer.execute("INSERT INTO items (name) VALUES ('committed')")
    with transaction(writer):
        writer.execute("INSERT INTO items (name) VALUES ('pending')")
        assert names(reader) == ["committed"]  # not blocked, and no uncommitted rows
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            reader.execute("BEGIN IMMEDIATE")  # a second writer waits (here: times out)
    assert names(reader) == ["committed", "pending"]
    writer.close()
    reader.close()


def test_a_read_snapshot_stays_put_while_a_writer_commits(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    writer = open_store(path, SCHEMA)
    reader = open_store(path, SCHEMA)
    with transaction(writer):
        writer.execute("INSERT INTO items (name) VALUES ('first')")
    with transaction(reader, write=False):
        assert names(reader) == ["first"]
        with transaction(writer):
            writer.execute("INSERT INTO items (name) VALUES ('second')")
        assert names(reader) == ["first"]  # one consistent state for the whole read
    assert names(reader) == ["first", "second"]
    writer.close()
    reader.close()
