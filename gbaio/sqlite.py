"""The SQLite settings every gbagw store uses (autocommit connections in WAL mode), and
:class:`Database`, which keeps every SQLite call off the event loop.

WAL + synchronous=NORMAL is durable across process crashes (kill -9: tested) without an fsync per
commit; a power cut may lose the last commits. For the HSS that may replay an SQN, which the USIM turns
into a resynchronisation (TS 33.102 6.3.5); for the BSF it may lose the newest contexts, whose UEs then
bootstrap again (measured: the fsync per SQN update was 76 % of the HSS's time under load).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from gbaio.errors import os_reason
from gbaio.private_files import create_private_file

T = TypeVar("T")
Op = Callable[[sqlite3.Connection], Any]

# How long a write waits for another connection's write lock before it fails (SQLITE_BUSY): then the
# caller answers 503 / DIAMETER_TOO_BUSY and the peer retries.
BUSY_TIMEOUT = 10.0


class DatabaseOpenError(RuntimeError):
    """A database file cannot be created or opened (not a directory, not SQLite, no permission)."""


def connect(path: Path, schema: str, busy_timeout: float = BUSY_TIMEOUT) -> sqlite3.Connection:
    try:
        # SQLite gives the -wal and -shm files the database file's mode: 0600 here keeps all three private.
        create_private_file(path)
        db = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        reason = os_reason(exc, path) if isinstance(exc, OSError) else str(exc)
        raise DatabaseOpenError(f"cannot open SQLite database {path}: {reason}") from None
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        db.executescript(schema)
        _check_writable(db)
    except sqlite3.Error as exc:
        db.close()
        raise DatabaseOpenError(f"cannot open SQLite database {path}: {exc}") from None
    return db


def _check_writable(db: sqlite3.Connection) -> None:
    """Fail now if the file only opened for reading.

    SQLite opens a file it cannot write read-only without a word (a read-only mount, a systemd unit's
    ProtectSystem= without a StateDirectory=), and every write would fail later: a BSF would answer each
    bootstrap 503. Rewriting the header's user_version in a transaction that is rolled back is the
    smallest write that reaches the file's lock and permissions and changes nothing.
    """
    try:
        db.execute("BEGIN IMMEDIATE")
        (version,) = db.execute("PRAGMA user_version").fetchone()
        db.execute(f"PRAGMA user_version = {int(version)}")
    except sqlite3.OperationalError as exc:
        if "readonly" not in str(exc):
            raise
        raise sqlite3.OperationalError(
            f"{exc} (read-only for this process: check the data directory's mount and owner)"
        ) from None
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")


@dataclass(slots=True)
class _Job:
    op: Op
    exclusive: bool  # in a transaction of its own, rolled back whole if it raises
    loop: asyncio.AbstractEventLoop | None  # the awaiting loop, or None for a blocking caller
    future: asyncio.Future[Any] | concurrent.futures.Future[Any]


_Outcome = tuple[_Job, Any, BaseException | None]


class _Worker:
    """One thread that owns one connection and runs the jobs queued to it, in order.

    A writer (``grouped``) runs every job waiting when it is free in one transaction and settles
    their futures only after COMMIT (group commit): nothing is acknowledged to a peer before it is in
    the WAL, so kill -9 loses no answered write. A commit costs ~40 µs (WAL append) against ~5 µs for
    a statement, and under load a batch holds several writes. A statement that fails leaves the others
    of its batch (SQLite rolls back only that statement); a failed BEGIN or COMMIT fails the batch.
    """

    def __init__(self, db: sqlite3.Connection, name: str, *, grouped: bool) -> None:
        self._db = db
        self._grouped = grouped
        # Lists of jobs: an event loop hands over what it queued in one turn at once (one thread
        # wake-up per turn, not per job); an exclusive job is always alone in its list.
        self._jobs: queue.SimpleQueue[list[_Job] | None] = queue.SimpleQueue()
        self._turn: dict[asyncio.AbstractEventLoop, list[_Job]] = {}
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: _Job) -> None:
        """Queue ``job``; from an event loop (``job.loop``) it goes with the rest of this loop turn."""
        loop = job.loop
        if loop is None or job.exclusive:
            self._jobs.put([job])
            return
        turn = self._turn.get(loop)
        if turn is None:
            turn = self._turn[loop] = []
            loop.call_soon(self._hand_over, loop)
        turn.append(job)

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        jobs = self._turn.pop(loop, None)  # None: close() handed them over already
        if jobs is not None:
            self._jobs.put(jobs)

    def close(self) -> None:
        """Run what is queued (this loop turn's jobs too), then stop the thread and close the connection."""
        for loop in list(self._turn):
            self._hand_over(loop)
        self._jobs.put(None)
        self._thread.join()
        self._db.close()

    def _run(self) -> None:
        held: list[_Job] | None = None
        while True:
            jobs = held or self._jobs.get()
            held = None
            if jobs is None:
                return
            batch = list(jobs)
            stopping = False
            while not batch[0].exclusive:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                if more[0].exclusive:
                    held = more
                    break
                batch += more
            # A caller that timed out (or was cancelled) meanwhile gets nothing run on its behalf.
            batch = [j for j in batch if not j.future.done()]
            if batch:
                _settle(self._transaction(batch) if self._grouped else [self._call(j) for j in batch])
            if stopping:
                return

    def _call(self, job: _Job) -> _Outcome:
        try:
            return job, job.op(self._db), None
        except Exception as exc:
            return job, None, exc

    def _transaction(self, batch: list[_Job]) -> list[_Outcome]:
        try:
            # IMMEDIATE takes the write lock now (waiting up to busy_timeout for another process's), so
            # a batch never fails to upgrade from a stale read snapshot (SQLITE_BUSY_SNAPSHOT).
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            return [(j, None, exc) for j in batch]
        outcomes = [self._call(j) for j in batch]
        failed = batch[0].exclusive and outcomes[0][2] is not None
        try:
            self._db.execute("ROLLBACK" if failed else "COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            return [(j, None, exc) for j in batch]
        return outcomes


def _settle(outcomes: list[_Outcome]) -> None:
    """Hand each outcome to its caller: one wake-up per event loop for the whole batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for outcome in outcomes:
        job = outcome[0]
        if job.loop is None:
            _deliver(outcome)
        else:
            by_loop.setdefault(job.loop, []).append(outcome)
    for loop, mine in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: its callers are gone
            loop.call_soon_threadsafe(_deliver_all, mine)


def _deliver_all(outcomes: list[_Outcome]) -> None:
    for outcome in outcomes:
        _deliver(outcome)


def _deliver(outcome: _Outcome) -> None:
    job, result, error = outcome
    if job.future.done():  # cancelled: the caller timed out or went away
        return
    if error is None:
        job.future.set_result(result)
    else:
        job.future.set_exception(error)


class Database:
    """One SQLite file, with no SQLite call on the event loop.

    Another process holding the file's write lock (a backup, ``gbagw hss add``, a second instance)
    makes a write wait up to ``busy_timeout``: on the event loop that froze every listener (health
    checks, Zn reads, refusals of bad input). Here writes go to a writer thread with its own connection
    (group commit, see _Worker), reads to a reader thread with another one (WAL: a read never waits for
    the write lock); the loop only queues a job and awaits its future, for at most ``busy_timeout`` plus
    a second, then the caller gets sqlite3.OperationalError (the stores' outage error). The cost is a
    thread hop per operation (measured in bench/compare.py, see docs/security.md).
    """

    def __init__(self, path: Path, schema: str, *, busy_timeout: float = BUSY_TIMEOUT, name: str = "sqlite") -> None:
        self.busy_timeout = busy_timeout
        self._wait = busy_timeout + 1.0
        writer = connect(path, schema, busy_timeout)
        try:
            reader = sqlite3.connect(str(path), timeout=busy_timeout, isolation_level=None, check_same_thread=False)
            reader.execute("PRAGMA query_only=1")
        except sqlite3.Error as exc:
            writer.close()
            raise DatabaseOpenError(f"cannot open SQLite database {path}: {exc}") from None
        self._writer = _Worker(writer, f"{name}-writer", grouped=True)
        self._reader = _Worker(reader, f"{name}-reader", grouped=False)
        self._closed = False
        # Per event loop: (deadline, future) in submission order, so deadlines ascend. One timer per
        # loop enforces them all: a timer per operation (asyncio.timeout) cost ~9 µs a write at 50
        # concurrent writers, most of what the threads cost.
        self._deadlines: dict[asyncio.AbstractEventLoop, collections.deque[tuple[float, asyncio.Future[Any]]]] = {}

    async def _await(self, worker: _Worker, op: Op, exclusive: bool) -> Any:
        if self._closed:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        worker.submit(_Job(op, exclusive, loop, future))
        pending = self._deadlines.get(loop)
        if pending is None:
            pending = self._deadlines[loop] = collections.deque()
            loop.call_later(self._wait, self._expire, loop)
        pending.append((loop.time() + self._wait, future))
        return await future

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """Fail the operations of ``loop`` past their deadline (their jobs are then skipped, see _Worker)."""
        pending = self._deadlines[loop]
        now = loop.time()
        while pending and (pending[0][1].done() or pending[0][0] <= now):
            _, future = pending.popleft()
            if not future.done():
                future.set_exception(sqlite3.OperationalError(f"database did not answer within {self._wait:g} s"))
        if pending:
            loop.call_later(pending[0][0] - now, self._expire, loop)
        else:
            del self._deadlines[loop]

    async def write(self, op: Callable[[sqlite3.Connection], T], *, exclusive: bool = False) -> T:
        """``op(connection)`` in the writer's next transaction; its result once committed.
        ``exclusive``: in a transaction of its own, rolled back whole if ``op`` raises."""
        result: T = await self._await(self._writer, op, exclusive)
        return result

    async def read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """``op(connection)`` on the reader's connection (autocommit: each statement sees the last commit)."""
        result: T = await self._await(self._reader, op, False)
        return result

    async def execute(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        """One write statement, group-committed; its rows (RETURNING) once committed."""
        return await self.write(lambda db: db.execute(sql, params).fetchall())

    async def query(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        return await self.read(lambda db: db.execute(sql, params).fetchall())

    def write_blocking(self, op: Callable[[sqlite3.Connection], T]) -> T:
        """``op`` in a transaction of its own, for callers outside an event loop (the CLI)."""
        if self._closed:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._writer.submit(_Job(op, True, None, future))
        return future.result()

    def read_blocking(self, op: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._reader.submit(_Job(op, False, None, future))
        return future.result()

    def close(self) -> None:
        """Finish the queued work (committed), then close both connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        self._reader.close()
