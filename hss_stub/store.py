"""Subscriber store of the HSS stub: SQLite (WAL) with K and OPc sealed under a KEK.

SQN follows TS 33.102 Annex C.1.2/C.3 profile 2 with a 5-bit IND: SQN = SEQ || IND; every vector
takes SEQ + 1 and the next IND (cyclic), so the USIM's 32-entry SEQ_MS array accepts vectors used
out of order. The increment is one ``UPDATE ... RETURNING`` statement, so two concurrent requests,
even from two processes, never get the same SQN; increments are group-committed off the event loop
(gbaio.sqlite.Database).
"""

from __future__ import annotations

import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gba.keywrap import Keyring
from gba.milenage import Milenage
from gba.nai import impi_problem
from gbaio import sqlite

IND_BITS = 5
# C.2.1 / C.3.2: the USIM accepts a SEQ at most DELTA above its SEQ_MS; the HE assumes the profile's value.
DELTA = 1 << 28
OPENED_CACHE_SIZE = 100_000  # subscribers whose unsealed keys are kept (~300 bytes each)
SQN_MASK = (1 << 48) - 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscribers (
    impi TEXT PRIMARY KEY,
    k_sealed BLOB NOT NULL,
    opc_sealed BLOB NOT NULL,
    amf BLOB NOT NULL,
    sqn INTEGER NOT NULL,
    guss BLOB,
    guss_timestamp INTEGER,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
"""

# Next SQN: SEQ + 1 with IND + 1 mod 32 (see module docstring), masked to 48 bits.
_NEXT_SQN = f"((((sqn >> {IND_BITS}) + 1) << {IND_BITS}) | (((sqn & 31) + 1) & 31)) & {SQN_MASK}"
# sqn_in_range() in SQL, with the SEQ of SQN_MS bound as parameter ?3.
_NEXT_SEQ = f"(({_NEXT_SQN}) >> {IND_BITS})"
_IN_RANGE = f"({_NEXT_SEQ} > ?3 AND {_NEXT_SEQ} - ?3 <= {DELTA})"


class StoreError(RuntimeError):
    """The subscriber store refused an operation (duplicate or unknown IMPI, bad values)."""


class StoreUnavailable(RuntimeError):
    """The database cannot serve a MAR now (locked past busy_timeout, I/O error, disk full): the Zh
    handler answers DIAMETER_TOO_BUSY, which the BSF turns into 503 + Retry-After for the UE."""


@dataclass(frozen=True, slots=True)
class Subscriber:
    impi: str
    k: bytes = field(repr=False)
    opc: bytes = field(repr=False)
    amf: bytes
    sqn: int
    guss: bytes | None
    guss_timestamp: int | None
    milenage: Milenage = field(repr=False, compare=False)  # keyed with K and OPc


@dataclass(frozen=True, slots=True)
class NewSubscriber:
    impi: str
    k: bytes = field(repr=False)
    opc: bytes = field(repr=False)
    amf: bytes
    sqn: int
    guss: bytes | None = None


@dataclass(frozen=True, slots=True)
class SubscriberSummary:
    """What may be listed: never K or OPc."""

    impi: str
    amf: bytes
    sqn: int
    has_guss: bool


def next_sqn(sqn: int) -> int:
    return ((((sqn >> IND_BITS) + 1) << IND_BITS) | (((sqn & 31) + 1) & 31)) & SQN_MASK


def sqn_in_range(sqn_he: int, sqn_ms: int) -> bool:
    """TS 33.102 6.3.5 step 2: would the USIM that reports ``sqn_ms`` accept the next SQN from ``sqn_he``?

    The HE knows only SQN_MS, the highest SQN the USIM accepted (C.2), not its per-IND array. A SEQ
    above SEQ_MS is fresh in every array slot (C.2.2 a), and at most DELTA above it passes the
    wrap-around check (C.2.1); a SEQ at or below SEQ_MS may be refused, so it counts as out of range.
    """
    seq, seq_ms = next_sqn(sqn_he) >> IND_BITS, sqn_ms >> IND_BITS
    return seq_ms < seq <= seq_ms + DELTA


class SubscriberStore:
    """No SQLite call runs on the event loop (gbaio.sqlite.Database): another process holding the
    file's write lock (``gbagw hss add`` during a bulk import, a backup) delays only the MARs, up to
    ``busy_timeout``, then DIAMETER_TOO_BUSY. The CLI's methods (add, remove, set_guss, list) block."""

    def __init__(self, path: Path, kek: bytes, busy_timeout: float = sqlite.BUSY_TIMEOUT) -> None:
        self._keys = Keyring(kek)  # built once: its AES-GCM and KEK id serve every MAR
        # IMPI, sealed K, sealed OPc -> (K, OPc, Milenage keyed with them): two unseals and an AES key
        # schedule per MAR were a tenth of the HSS's work. Keyed by the sealed values (not secret, and
        # new ones whenever a subscriber is provisioned again); the keys stay in this process's memory,
        # never at rest. Bounded, least recently used out first.
        self._opened: OrderedDict[bytes, tuple[bytes, bytes, Milenage]] = OrderedDict()
        # WAL + NORMAL: see gbaio.sqlite for the durability trade.
        self._db = sqlite.Database(path, _SCHEMA, busy_timeout=busy_timeout, name="hss-store")

    def close(self) -> None:
        self._db.close()

    async def ping(self) -> str | None:
        """None when the database answers a read, else SQLite's error (for /readyz)."""
        try:
            await self._db.query("SELECT count(*) FROM subscribers WHERE 0")
        except sqlite3.Error as exc:
            return str(exc)
        return None

    def add(self, impi: str, k: bytes, opc: bytes, amf: bytes, sqn: int, guss: bytes | None = None) -> None:
        self.add_all([NewSubscriber(impi, k, opc, amf, sqn, guss)])

    def add_all(self, subscribers: Sequence[NewSubscriber], progress: Callable[[int], None] | None = None) -> None:
        """Add every subscriber in one transaction, or none (a duplicate or bad value names its IMPI);
        ``progress`` is told how many are written so far (`gbagw hss import` shows it)."""

        def insert_all(db: sqlite3.Connection) -> None:
            for i, sub in enumerate(subscribers):
                self._insert(db, sub.impi, sub.k, sub.opc, sub.amf, sub.sqn, sub.guss)
                if progress is not None:
                    progress(i + 1)

        self._db.write_blocking(insert_all)

    def _insert(
        self, db: sqlite3.Connection, impi: str, k: bytes, opc: bytes, amf: bytes, sqn: int, guss: bytes | None
    ) -> None:
        if (problem := impi_problem(impi)) is not None:
            raise StoreError(f"IMPI {impi!r}: {problem} (TS 23.003 13.3)")
        if len(k) != 16 or len(opc) != 16 or len(amf) != 2 or not 0 <= sqn <= SQN_MASK:
            raise StoreError(f"{impi}: K and OPc are 16 octets, AMF 2 octets, SQN 48 bits")
        now = int(time.time())
        aad = impi.encode()
        try:
            db.execute(
                "INSERT INTO subscribers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    impi,
                    self._keys.seal(k, aad + b"|K"),
                    self._keys.seal(opc, aad + b"|OPc"),
                    amf,
                    sqn,
                    guss,
                    now if guss is not None else None,
                    now,
                    now,
                ),
            )
        except sqlite3.IntegrityError:
            raise StoreError(f"subscriber {impi} already exists") from None

    def remove(self, impi: str) -> None:
        removed = self._db.write_blocking(
            lambda db: db.execute("DELETE FROM subscribers WHERE impi = ?", (impi,)).rowcount
        )
        if removed == 0:
            raise StoreError(f"no subscriber {impi}")

    def set_guss(self, impi: str, guss: bytes | None) -> None:
        now = int(time.time())
        updated = self._db.write_blocking(
            lambda db: (
                db.execute(
                    "UPDATE subscribers SET guss = ?, guss_timestamp = ?, updated = ? WHERE impi = ?",
                    (guss, now if guss is not None else None, now, impi),
                ).rowcount
            )
        )
        if updated == 0:
            raise StoreError(f"no subscriber {impi}")

    def list(self) -> list[SubscriberSummary]:
        rows = self._db.read_blocking(
            lambda db: db.execute("SELECT impi, amf, sqn, guss IS NOT NULL FROM subscribers ORDER BY impi").fetchall()
        )
        return [SubscriberSummary(r[0], bytes(r[1]), int(r[2]), bool(r[3])) for r in rows]

    def _open(self, row: tuple[Any, ...]) -> Subscriber:
        impi = str(row[0])
        aad = impi.encode()
        k_sealed, opc_sealed = bytes(row[1]), bytes(row[2])
        # With the IMPI in the key, sealed values copied to another subscriber's row are still
        # unsealed under that row's IMPI (their AAD), and refused.
        cache_key = b"%b\0%b%b" % (aad, k_sealed, opc_sealed)
        opened = self._opened.get(cache_key)
        if opened is None:
            k = self._keys.unseal(k_sealed, aad + b"|K")
            opc = self._keys.unseal(opc_sealed, aad + b"|OPc")
            opened = self._opened[cache_key] = (k, opc, Milenage(k, opc))
            if len(self._opened) > OPENED_CACHE_SIZE:
                self._opened.popitem(last=False)
        else:
            self._opened.move_to_end(cache_key)
        k, opc, mil = opened
        return Subscriber(
            impi=impi,
            k=k,
            opc=opc,
            amf=bytes(row[3]),
            sqn=int(row[4]),
            guss=bytes(row[5]) if row[5] is not None else None,
            guss_timestamp=int(row[6]) if row[6] is not None else None,
            milenage=mil,
        )

    async def get(self, impi: str) -> Subscriber | None:
        try:
            rows = await self._db.query(
                "SELECT impi, k_sealed, opc_sealed, amf, sqn, guss, guss_timestamp FROM subscribers WHERE impi = ?",
                (impi,),
            )
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(str(exc)) from exc
        return self._open(rows[0]) if rows else None

    async def take_next_sqn(self, impi: str) -> Subscriber | None:
        """Atomically advance SQN_HE and return the subscriber carrying the SQN to use, once the new
        SQN_HE is committed (group commit: no vector leaves before its SQN is in the WAL)."""
        rows = await self._update(
            f"UPDATE subscribers SET sqn = {_NEXT_SQN} WHERE impi = ? "  # noqa: S608 - constant expression
            "RETURNING impi, k_sealed, opc_sealed, amf, sqn, guss, guss_timestamp",
            (impi,),
        )
        return self._open(rows[0]) if rows else None

    async def reset_to_sqn_ms(self, impi: str, sqn_ms: int) -> Subscriber | None:
        """TS 33.102 6.3.5 steps 2-5, for an AUTS whose MAC-S verified: when SQN_HE is out of range
        (``sqn_in_range``), SQN_HE := SQN_MS and return the subscriber carrying the SQN after it.

        None when SQN_HE is in range (it stays, the caller takes the next SQN as for any vector) or
        the IMPI is unknown. Check and reset are one statement: no concurrent MAR slips in between.
        """
        rows = await self._update(
            f"UPDATE subscribers SET sqn = ?1 WHERE impi = ?2 AND NOT {_IN_RANGE} "  # noqa: S608 - constants
            "RETURNING impi, k_sealed, opc_sealed, amf, sqn, guss, guss_timestamp",
            (next_sqn(sqn_ms & SQN_MASK), impi, (sqn_ms & SQN_MASK) >> IND_BITS),
        )
        return self._open(rows[0]) if rows else None

    async def _update(self, sql: str, params: tuple[object, ...]) -> Sequence[Any]:
        try:
            return await self._db.execute(sql, params)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(str(exc)) from exc
