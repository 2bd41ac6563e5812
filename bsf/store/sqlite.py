"""SQLite context store (embedded default): WAL, group commit, sealed records, expiry sweep on write."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from bsf.store import (
    AAD_CHALLENGE,
    AAD_CONTEXT,
    AAD_ENROLMENT,
    BootstrapContext,
    EnrolmentRecord,
    PendingChallenge,
    reseal,
    seal_record,
    tmpi_key,
    unavailable_on,
    unseal_challenge,
    unseal_context,
    unseal_enrolment,
)
from gba.keywrap import Keyring, KeyWrapError
from gbaio import sqlite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS challenges (nonce TEXT PRIMARY KEY, blob BLOB NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS contexts (
    btid TEXT PRIMARY KEY, impi TEXT NOT NULL, blob BLOB NOT NULL, expires REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS contexts_impi_unique ON contexts (impi);
CREATE INDEX IF NOT EXISTS contexts_expires ON contexts (expires);
CREATE TABLE IF NOT EXISTS enrolments (keid TEXT PRIMARY KEY, blob BLOB NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tmpis (tmpi_hash TEXT PRIMARY KEY, impi TEXT NOT NULL UNIQUE, expires REAL NOT NULL);
"""
SWEEP_INTERVAL = 30.0
# Locked past busy_timeout, I/O error, disk full, read-only, no answer in time (gbaio.sqlite.Database);
# or a record sealed under a KEK not held.
_OUTAGE = unavailable_on(sqlite3.OperationalError, KeyWrapError)


def _sweep_expired(db: sqlite3.Connection) -> None:
    now = time.time()
    for table in ("challenges", "contexts", "enrolments", "tmpis"):
        db.execute(f"DELETE FROM {table} WHERE expires < ?", (now,))  # noqa: S608


class SqliteStore:
    """Every call runs off the event loop (gbaio.sqlite.Database): a writer holding the file's lock in
    another process delays only this store's writes, up to ``busy_timeout``, then StoreUnavailable.

    Each write is one statement, so one transaction: a crash (kill -9) leaves it whole or absent. The
    IMPI is unique among contexts and TMPIs, so the statement that stores a new one removes the IMPI's
    earlier one with it (TS 33.220 4.5.2): no crash point leaves an old context live beside a new one.
    """

    def __init__(self, path: Path, keys: Keyring, busy_timeout: float = sqlite.BUSY_TIMEOUT) -> None:
        self._keys = keys
        self._db = sqlite.Database(path, _SCHEMA, busy_timeout=busy_timeout, name="bsf-store")
        self._last_sweep = 0.0

    async def _sweep(self) -> None:
        now = time.time()
        if now - self._last_sweep < SWEEP_INTERVAL:
            return
        self._last_sweep = now
        await self._db.write(_sweep_expired)

    @_OUTAGE
    async def put_challenge(self, challenge: PendingChallenge) -> None:
        blob = seal_record(self._keys, challenge, AAD_CHALLENGE + challenge.nonce)
        await self._sweep()
        await self._db.execute(
            "INSERT OR REPLACE INTO challenges VALUES (?, ?, ?)", (challenge.nonce, blob, challenge.expires.timestamp())
        )

    @_OUTAGE
    async def take_challenge(self, nonce: str) -> PendingChallenge | None:
        rows = await self._db.execute("DELETE FROM challenges WHERE nonce = ? RETURNING blob, expires", (nonce,))
        if not rows or rows[0][1] < time.time():
            return None
        return unseal_challenge(self._keys, bytes(rows[0][0]), AAD_CHALLENGE + nonce)

    @_OUTAGE
    async def put_context(self, ctx: BootstrapContext) -> None:
        blob = seal_record(self._keys, ctx, AAD_CONTEXT + ctx.btid)
        await self._sweep()
        # impi is UNIQUE: REPLACE removes the IMPI's previous context in the same statement, which is
        # how a new bootstrap supersedes the old one (TS 33.220 4.5.2).
        await self._db.execute(
            "INSERT OR REPLACE INTO contexts VALUES (?, ?, ?, ?)", (ctx.btid, ctx.impi, blob, ctx.expires.timestamp())
        )

    @_OUTAGE
    async def get_context(self, btid: str) -> BootstrapContext | None:
        rows = await self._db.query("SELECT blob, expires FROM contexts WHERE btid = ?", (btid,))
        if not rows or rows[0][1] < time.time():
            return None
        return unseal_context(self._keys, bytes(rows[0][0]), AAD_CONTEXT + btid)

    @_OUTAGE
    async def context_of(self, impi: str) -> BootstrapContext | None:
        rows = await self._db.query("SELECT btid FROM contexts WHERE impi = ?", (impi,))
        return await self.get_context(str(rows[0][0])) if rows else None

    @_OUTAGE
    async def delete_context(self, btid: str) -> bool:
        # impi is UNIQUE: the IMPI has no other context, this one was all of them.
        rows = await self._db.execute("DELETE FROM contexts WHERE btid = ? RETURNING expires", (btid,))
        return bool(rows) and rows[0][0] >= time.time()

    @_OUTAGE
    async def put_tmpi(self, tmpi: str, impi: str, expires: dt.datetime) -> None:
        await self._sweep()
        # impi is UNIQUE: REPLACE drops the IMPI's earlier TMPI in the same statement (TS 33.220 4.5.2).
        await self._db.execute(
            "INSERT OR REPLACE INTO tmpis VALUES (?, ?, ?)", (tmpi_key(tmpi), impi, expires.timestamp())
        )

    @_OUTAGE
    async def impi_of_tmpi(self, tmpi: str) -> str | None:
        rows = await self._db.query("SELECT impi, expires FROM tmpis WHERE tmpi_hash = ?", (tmpi_key(tmpi),))
        return str(rows[0][0]) if rows and rows[0][1] >= time.time() else None

    @_OUTAGE
    async def put_enrolment(self, rec: EnrolmentRecord) -> None:
        blob = seal_record(self._keys, rec, AAD_ENROLMENT + rec.keid)
        await self._sweep()
        await self._db.execute(
            "INSERT OR REPLACE INTO enrolments VALUES (?, ?, ?)", (rec.keid, blob, rec.expires.timestamp())
        )

    @_OUTAGE
    async def get_enrolment(self, keid: str) -> EnrolmentRecord | None:
        rows = await self._db.query("SELECT blob, expires FROM enrolments WHERE keid = ?", (keid,))
        if not rows or rows[0][1] < time.time():
            return None
        return unseal_enrolment(self._keys, bytes(rows[0][0]), AAD_ENROLMENT + keid)

    @_OUTAGE
    async def count_contexts(self) -> int:
        rows = await self._db.query("SELECT count(*) FROM contexts WHERE expires >= ?", (time.time(),))
        return int(rows[0][0])

    async def rekey(self, new: Keyring, progress: Callable[[int], None] | None = None) -> int:
        tables = (
            ("challenges", "nonce", AAD_CHALLENGE),
            ("contexts", "btid", AAD_CONTEXT),
            ("enrolments", "keid", AAD_ENROLMENT),
        )

        def reseal_all(db: sqlite3.Connection) -> int:
            count = 0
            for table, column, prefix in tables:
                rows = db.execute(f"SELECT {column}, blob FROM {table}").fetchall()  # noqa: S608
                for key, blob in rows:
                    fresh = reseal(self._keys, new, bytes(blob), prefix + key)
                    db.execute(f"UPDATE {table} SET blob = ? WHERE {column} = ?", (fresh, key))  # noqa: S608
                    count += 1
                    if progress is not None:
                        progress(count)  # from the writer thread: Progress only writes to stderr
            return count

        # One transaction of its own: every record under the new KEK, or (on any error) none.
        count = await self._db.write(reseal_all, exclusive=True)
        self._keys = new
        return count

    @_OUTAGE
    async def ping(self) -> bool:
        return await self._db.query("SELECT 1") == [(1,)]

    async def close(self) -> None:
        # Queued writes are committed first; the threads end with it (bounded by busy_timeout).
        await asyncio.to_thread(self._db.close)
