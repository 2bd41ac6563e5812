"""SQLite context store (embedded default): WAL, group commit, sealed records, expiry sweep on write."""

from __future__ import annotations

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
# Locked past busy_timeout, I/O error, disk full, read-only; or a record sealed under a KEK not held.
_OUTAGE = unavailable_on(sqlite3.OperationalError, KeyWrapError)


class SqliteStore:
    def __init__(self, path: Path, keys: Keyring) -> None:
        self._keys = keys
        self._db = sqlite.connect(path, _SCHEMA)
        self._writes = sqlite.GroupCommit(self._db)
        self._last_sweep = 0.0

    async def _sweep(self) -> None:
        now = time.time()
        if now - self._last_sweep < SWEEP_INTERVAL:
            return
        self._last_sweep = now
        for table in ("challenges", "contexts", "enrolments", "tmpis"):
            await self._writes.execute(f"DELETE FROM {table} WHERE expires < ?", (now,))  # noqa: S608

    @_OUTAGE
    async def put_challenge(self, challenge: PendingChallenge) -> None:
        blob = seal_record(self._keys, challenge, AAD_CHALLENGE + challenge.nonce)
        await self._sweep()
        await self._writes.execute(
            "INSERT OR REPLACE INTO challenges VALUES (?, ?, ?)", (challenge.nonce, blob, challenge.expires.timestamp())
        )

    @_OUTAGE
    async def take_challenge(self, nonce: str) -> PendingChallenge | None:
        rows = await self._writes.execute("DELETE FROM challenges WHERE nonce = ? RETURNING blob, expires", (nonce,))
        if not rows or rows[0][1] < time.time():
            return None
        return unseal_challenge(self._keys, bytes(rows[0][0]), AAD_CHALLENGE + nonce)

    @_OUTAGE
    async def put_context(self, ctx: BootstrapContext) -> None:
        blob = seal_record(self._keys, ctx, AAD_CONTEXT + ctx.btid)
        await self._sweep()
        # impi is UNIQUE: REPLACE removes the IMPI's previous context in the same statement, which is
        # how a new bootstrap supersedes the old one (TS 33.220 4.5.2).
        await self._writes.execute(
            "INSERT OR REPLACE INTO contexts VALUES (?, ?, ?, ?)", (ctx.btid, ctx.impi, blob, ctx.expires.timestamp())
        )

    @_OUTAGE
    async def get_context(self, btid: str) -> BootstrapContext | None:
        row = self._db.execute("SELECT blob, expires FROM contexts WHERE btid = ?", (btid,)).fetchone()
        if row is None or row[1] < time.time():
            return None
        return unseal_context(self._keys, bytes(row[0]), AAD_CONTEXT + btid)

    @_OUTAGE
    async def context_of(self, impi: str) -> BootstrapContext | None:
        row = self._db.execute("SELECT btid FROM contexts WHERE impi = ?", (impi,)).fetchone()
        return await self.get_context(str(row[0])) if row is not None else None

    @_OUTAGE
    async def delete_context(self, btid: str) -> bool:
        rows = await self._writes.execute("DELETE FROM contexts WHERE btid = ? RETURNING expires", (btid,))
        return bool(rows) and rows[0][0] >= time.time()

    @_OUTAGE
    async def put_tmpi(self, tmpi: str, impi: str, expires: dt.datetime) -> None:
        await self._sweep()
        # impi is UNIQUE: REPLACE drops the IMPI's earlier TMPI in the same statement (TS 33.220 4.5.2).
        await self._writes.execute(
            "INSERT OR REPLACE INTO tmpis VALUES (?, ?, ?)", (tmpi_key(tmpi), impi, expires.timestamp())
        )

    @_OUTAGE
    async def impi_of_tmpi(self, tmpi: str) -> str | None:
        row = self._db.execute("SELECT impi, expires FROM tmpis WHERE tmpi_hash = ?", (tmpi_key(tmpi),)).fetchone()
        return str(row[0]) if row is not None and row[1] >= time.time() else None

    @_OUTAGE
    async def put_enrolment(self, rec: EnrolmentRecord) -> None:
        blob = seal_record(self._keys, rec, AAD_ENROLMENT + rec.keid)
        await self._sweep()
        await self._writes.execute(
            "INSERT OR REPLACE INTO enrolments VALUES (?, ?, ?)", (rec.keid, blob, rec.expires.timestamp())
        )

    @_OUTAGE
    async def get_enrolment(self, keid: str) -> EnrolmentRecord | None:
        row = self._db.execute("SELECT blob, expires FROM enrolments WHERE keid = ?", (keid,)).fetchone()
        if row is None or row[1] < time.time():
            return None
        return unseal_enrolment(self._keys, bytes(row[0]), AAD_ENROLMENT + keid)

    @_OUTAGE
    async def count_contexts(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM contexts WHERE expires >= ?", (time.time(),)).fetchone()[0])

    async def rekey(self, new: Keyring, progress: Callable[[int], None] | None = None) -> int:
        tables = (
            ("challenges", "nonce", AAD_CHALLENGE),
            ("contexts", "btid", AAD_CONTEXT),
            ("enrolments", "keid", AAD_ENROLMENT),
        )
        count = 0
        self._writes.commit()
        # No await from here to COMMIT: no group-commit batch can open inside this transaction.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for table, column, prefix in tables:
                rows = self._db.execute(f"SELECT {column}, blob FROM {table}").fetchall()  # noqa: S608
                for key, blob in rows:
                    fresh = reseal(self._keys, new, bytes(blob), prefix + key)
                    self._db.execute(f"UPDATE {table} SET blob = ? WHERE {column} = ?", (fresh, key))  # noqa: S608
                    count += 1
                    if progress is not None:
                        progress(count)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._keys = new
        return count

    @_OUTAGE
    async def ping(self) -> bool:
        return bool(self._db.execute("SELECT 1").fetchone() == (1,))

    async def close(self) -> None:
        self._writes.commit()
        self._db.close()
