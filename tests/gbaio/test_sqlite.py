from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
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


def _open(tmp_path: Path, busy_timeout: float = sqlite.BUSY_TIMEOUT) -> tuple[sqlite.Database, list[str]]:
    db = sqlite.Database(tmp_path / "g.sqlite", SCHEMA, busy_timeout=busy_timeout)
    statements: list[str] = []
    db._writer._db.set_trace_callback(statements.append)
    return db, statements


def _other(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "g.sqlite", isolation_level=None)


async def _hold_writer(db: sqlite.Database) -> tuple[threading.Event, asyncio.Future[None]]:
    """Keep the writer thread busy until the event is set: what is queued meanwhile forms one batch."""
    release, started = threading.Event(), threading.Event()

    def wait(_: sqlite3.Connection) -> None:
        started.set()
        release.wait(5)

    held = asyncio.ensure_future(db.write(wait))
    await asyncio.to_thread(started.wait, 5)
    return release, held


async def test_concurrent_writers_share_one_commit_and_return_only_once_committed(tmp_path: Path) -> None:
    db, statements = _open(tmp_path)
    other = _other(tmp_path)

    async def write(i: int) -> None:
        await db.execute("INSERT INTO t VALUES (?, ?)", (f"k{i}", i))
        # Visible to another connection as soon as the writer returns: committed, not just executed.
        assert other.execute("SELECT v FROM t WHERE k = ?", (f"k{i}",)).fetchone() == (i,)

    release, held = await _hold_writer(db)
    writes = asyncio.gather(*(write(i) for i in range(20)))
    await asyncio.sleep(0.05)
    release.set()
    await writes
    await held
    assert statements.count("COMMIT") == 2  # the holder's batch, then all twenty together
    assert other.execute("SELECT count(*) FROM t").fetchone() == (20,)
    db.close()


async def test_a_failing_statement_fails_alone(tmp_path: Path) -> None:
    db, _ = _open(tmp_path)
    await db.execute("INSERT INTO t VALUES ('dup', 1)")
    release, held = await _hold_writer(db)
    batch = asyncio.gather(
        db.execute("INSERT INTO t VALUES ('a', 1)"),
        db.execute("INSERT INTO t VALUES ('dup', 2)"),
        db.execute("INSERT INTO t VALUES ('b', 1)"),
        return_exceptions=True,
    )
    await asyncio.sleep(0.05)
    release.set()
    results = await batch
    await held
    assert results[0] == [] and results[2] == []
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert await db.query("SELECT k, v FROM t ORDER BY k") == [("a", 1), ("b", 1), ("dup", 1)]
    db.close()


async def test_a_failed_commit_reaches_every_writer_of_the_batch_and_keeps_nothing(tmp_path: Path) -> None:
    db, _ = _open(tmp_path)
    db._writer._db.execute("PRAGMA foreign_keys = ON")  # a no-op inside a transaction: set while idle
    release, held = await _hold_writer(db)
    # The deferred foreign key is checked at COMMIT, so the whole batch fails there.
    batch = asyncio.gather(
        db.execute("INSERT INTO t VALUES ('a', 1)"),
        db.execute("INSERT INTO child VALUES (1, 42)"),
        return_exceptions=True,
    )
    await asyncio.sleep(0.05)
    release.set()
    results = await batch
    await held
    assert all(isinstance(r, sqlite3.IntegrityError) for r in results)
    assert not db._writer._db.in_transaction
    assert await db.query("SELECT count(*) FROM t") == [(0,)]
    db.close()


async def test_an_exclusive_write_is_all_or_nothing(tmp_path: Path) -> None:
    db, _ = _open(tmp_path)

    def half(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES ('a', 1)")
        raise ValueError("second half refused")

    with pytest.raises(ValueError, match="second half"):
        await db.write(half, exclusive=True)
    assert await db.query("SELECT count(*) FROM t") == [(0,)]
    with pytest.raises(ValueError, match="second half"):
        db.write_blocking(half)
    assert db.read_blocking(lambda c: c.execute("SELECT count(*) FROM t").fetchall()) == [(0,)]
    db.close()


async def test_a_caller_cancelled_before_its_turn_gets_nothing_written(tmp_path: Path) -> None:
    db, _ = _open(tmp_path)
    release, held = await _hold_writer(db)
    first = asyncio.ensure_future(db.execute("INSERT INTO t VALUES ('a', 1)"))
    second = asyncio.ensure_future(db.execute("INSERT INTO t VALUES ('b', 1)"))
    await asyncio.sleep(0.05)
    first.cancel()
    await asyncio.sleep(0)
    release.set()
    await second
    await held
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await db.query("SELECT k FROM t") == [("b",)]
    db.close()


async def test_another_process_holding_the_write_lock_never_blocks_the_event_loop(tmp_path: Path) -> None:
    """Issue 27 class 4: the loop keeps turning and reads keep answering while a write waits for the
    lock; the write fails after busy_timeout (the stores' 503 / DIAMETER_TOO_BUSY)."""
    db, _ = _open(tmp_path, busy_timeout=1.0)
    await db.execute("INSERT INTO t VALUES ('a', 1)")
    other = _other(tmp_path)
    other.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        write = asyncio.ensure_future(db.execute("INSERT INTO t VALUES ('b', 2)"))
        gaps: list[float] = []
        while not write.done():
            tick = time.monotonic()
            await asyncio.sleep(0.01)
            gaps.append(time.monotonic() - tick)
            read_started = time.monotonic()
            assert await db.query("SELECT v FROM t WHERE k = 'a'") == [(1,)]
            assert time.monotonic() - read_started < 0.5
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            await write
        assert 0.9 < time.monotonic() - started < 3.0
        assert max(gaps) < 0.5, f"the event loop stalled for {max(gaps):.2f} s"
    finally:
        other.execute("ROLLBACK")
        other.close()
    await db.execute("INSERT INTO t VALUES ('b', 2)")  # the lock gone, writes work again
    db.close()


async def test_a_stuck_writer_bounds_the_wait_of_its_callers(tmp_path: Path) -> None:
    db, _ = _open(tmp_path, busy_timeout=0.2)
    release, held = await _hold_writer(db)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match=r"did not answer within 1\.2 s"):
        await db.execute("INSERT INTO t VALUES ('a', 1)")
    assert time.monotonic() - started < 2.0
    release.set()
    with pytest.raises(sqlite3.OperationalError, match="did not answer"):
        await held  # the holder's own wait is bounded alike
    assert await db.query("SELECT count(*) FROM t") == [(0,)]  # the caller gave up: nothing written for it
    db.close()


async def test_close_commits_what_is_queued_and_then_refuses(tmp_path: Path) -> None:
    db, _ = _open(tmp_path)
    release, held = await _hold_writer(db)
    write = asyncio.ensure_future(db.execute("INSERT INTO t VALUES ('a', 1)"))
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.to_thread(db.close)
    await write
    await held
    assert _other(tmp_path).execute("SELECT count(*) FROM t").fetchone() == (1,)
    with pytest.raises(sqlite3.ProgrammingError, match="closed database"):
        await db.query("SELECT 1")


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
