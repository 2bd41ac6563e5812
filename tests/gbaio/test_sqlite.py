from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from gbaio import sqlite

SCHEMA = """
CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS parent (id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS child (
    id INTEGER PRIMARY KEY, parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED
);
"""


def _open(tmp_path: Path) -> tuple[sqlite3.Connection, list[str], sqlite3.Connection]:
    db = sqlite.connect(tmp_path / "g.sqlite", SCHEMA)
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    return db, statements, sqlite3.connect(tmp_path / "g.sqlite")


def test_concurrent_writers_share_one_commit_and_return_only_once_committed(tmp_path: Path) -> None:
    db, statements, other = _open(tmp_path)
    writes = sqlite.GroupCommit(db)

    async def write(i: int) -> None:
        await writes.execute("INSERT INTO t VALUES (?, ?)", (f"k{i}", i))
        # Visible to another connection as soon as the writer returns: committed, not just executed.
        assert other.execute("SELECT v FROM t WHERE k = ?", (f"k{i}",)).fetchone() == (i,)

    async def main() -> None:
        await asyncio.gather(*(write(i) for i in range(20)))

    asyncio.run(main())
    assert statements.count("COMMIT") == 1
    assert other.execute("SELECT count(*) FROM t").fetchone() == (20,)


def test_a_failing_statement_fails_alone(tmp_path: Path) -> None:
    db, _, other = _open(tmp_path)
    writes = sqlite.GroupCommit(db)

    async def main() -> list[object]:
        await writes.execute("INSERT INTO t VALUES ('dup', 1)")
        return await asyncio.gather(
            writes.execute("INSERT INTO t VALUES ('a', 1)"),
            writes.execute("INSERT INTO t VALUES ('dup', 2)"),
            writes.execute("INSERT INTO t VALUES ('b', 1)"),
            return_exceptions=True,
        )

    results = asyncio.run(main())
    assert results[0] == [] and results[2] == []
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert other.execute("SELECT k, v FROM t ORDER BY k").fetchall() == [("a", 1), ("b", 1), ("dup", 1)]


def test_a_failed_commit_reaches_every_writer_of_the_batch_and_keeps_nothing(tmp_path: Path) -> None:
    db, _, other = _open(tmp_path)
    db.execute("PRAGMA foreign_keys = ON")
    writes = sqlite.GroupCommit(db)

    async def main() -> list[object]:
        # The deferred foreign key is checked at COMMIT, so the whole batch fails there.
        return await asyncio.gather(
            writes.execute("INSERT INTO t VALUES ('a', 1)"),
            writes.execute("INSERT INTO child VALUES (1, 42)"),
            return_exceptions=True,
        )

    results = asyncio.run(main())
    assert all(isinstance(r, sqlite3.IntegrityError) for r in results)
    assert not db.in_transaction
    assert other.execute("SELECT count(*) FROM t").fetchone() == (0,)

    async def after() -> None:
        await writes.execute("INSERT INTO t VALUES ('b', 2)")

    asyncio.run(after())
    assert other.execute("SELECT k FROM t").fetchall() == [("b",)]


def test_a_cancelled_writer_does_not_cancel_the_batch(tmp_path: Path) -> None:
    db, _, other = _open(tmp_path)
    writes = sqlite.GroupCommit(db)

    async def main() -> None:
        first = asyncio.ensure_future(writes.execute("INSERT INTO t VALUES ('a', 1)"))
        second = asyncio.ensure_future(writes.execute("INSERT INTO t VALUES ('b', 1)"))
        await asyncio.sleep(0)  # both statements have run; the commit is scheduled
        first.cancel()
        await second
        with pytest.raises(asyncio.CancelledError):
            await first

    asyncio.run(main())
    assert other.execute("SELECT count(*) FROM t").fetchone() == (2,)


def test_commit_now_flushes_an_open_batch(tmp_path: Path) -> None:
    db, _, other = _open(tmp_path)
    writes = sqlite.GroupCommit(db)

    async def main() -> None:
        task = asyncio.ensure_future(writes.execute("INSERT INTO t VALUES ('a', 1)"))
        await asyncio.sleep(0)
        writes.commit()  # what close() does before closing the connection
        assert other.execute("SELECT count(*) FROM t").fetchone() == (1,)
        await task

    asyncio.run(main())


def test_a_database_that_cannot_be_opened_is_named(tmp_path: Path) -> None:
    (tmp_path / "junk.sqlite").write_bytes(b"not a database, " * 8)
    with pytest.raises(sqlite.DatabaseOpenError, match=r"junk\.sqlite: file is not a database"):
        sqlite.connect(tmp_path / "junk.sqlite", SCHEMA)
    (tmp_path / "afile").write_text("")
    with pytest.raises(sqlite.DatabaseOpenError, match=r"afile/g\.sqlite: .*afile is not a directory"):
        sqlite.connect(tmp_path / "afile" / "g.sqlite", SCHEMA)


def test_a_database_this_process_cannot_write_is_refused_at_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite falls back to read-only where it cannot write the file (a read-only mount); tests run as root,
    which permissions do not stop, so the fallback is forced with mode=ro."""
    sqlite.connect(tmp_path / "g.sqlite", SCHEMA).close()
    real_connect = sqlite3.connect

    def read_only(path: str, **kwargs: object) -> sqlite3.Connection:
        return real_connect(f"file:{path}?mode=ro", uri=True, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite3, "connect", read_only)
    with pytest.raises(sqlite.DatabaseOpenError, match=r"g\.sqlite: attempt to write a readonly database \(read-only"):
        sqlite.connect(tmp_path / "g.sqlite", SCHEMA)
    monkeypatch.undo()
    db = sqlite.connect(tmp_path / "g.sqlite", SCHEMA)  # writable again: opens, and the probe left nothing open
    assert not db.in_transaction and db.execute("PRAGMA user_version").fetchone() == (0,)
