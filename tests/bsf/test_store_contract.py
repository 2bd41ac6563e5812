"""One contract suite, run against both context store backends (SQLite and a private redis-server)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import socket
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

from bsf.store import BootstrapContext, ContextStore, EnrolmentRecord, PendingChallenge, StoreUnavailable
from bsf.store.redis import LIVE_KEY, LIVE_MINUTE, RedisStore
from bsf.store.sqlite import SqliteStore
from gba.keywrap import Keyring
from tests import private_redis

KEK_BYTES = os.urandom(32)
KEK = Keyring(KEK_BYTES)
REDIS_URL = private_redis.url(15)


@pytest.fixture(scope="module", autouse=True)
def _empty_redis_db() -> None:
    """The suite's own Redis database, emptied once: records of an earlier run sealed under its random
    KEK would make the rekey test fail for a minute (their TTL)."""
    with redis.Redis.from_url(REDIS_URL) as r:
        r.flushdb()


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ContextStore]:
    s: ContextStore = (
        SqliteStore(tmp_path / "bsf.sqlite", KEK) if request.param == "sqlite" else RedisStore(REDIS_URL, KEK)
    )
    yield s
    await s.close()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _challenge(impi: str, ttl: float = 60) -> PendingChallenge:
    return PendingChallenge(
        impi,
        uuid.uuid4().hex,
        "op",
        os.urandom(16),
        os.urandom(8),
        os.urandom(16),
        os.urandom(16),
        False,
        b"<guss/>",
        _now() + dt.timedelta(seconds=ttl),
    )


def _context(impi: str, ttl: float = 60) -> BootstrapContext:
    rand = os.urandom(16)
    return BootstrapContext(
        f"{uuid.uuid4().hex}@bsf.gba.test",
        impi,
        rand,
        os.urandom(32),
        _now(),
        _now() + dt.timedelta(seconds=ttl),
        True,
        None,
    )


async def test_challenge_is_single_use(store: ContextStore) -> None:
    ch = _challenge("a@ims")
    await store.put_challenge(ch)
    assert await store.take_challenge(ch.nonce) == ch
    assert await store.take_challenge(ch.nonce) is None
    assert await store.take_challenge("never-issued") is None


async def test_expired_challenge_is_refused(store: ContextStore) -> None:
    ch = _challenge("a@ims", ttl=-1)
    await store.put_challenge(ch)
    assert await store.take_challenge(ch.nonce) is None


async def test_context_round_trip_and_supersede(store: ContextStore) -> None:
    impi = f"{uuid.uuid4().hex}@ims"
    first, second = _context(impi), _context(impi)
    await store.put_context(first)
    assert await store.get_context(first.btid) == first
    await store.put_context(second)
    assert await store.get_context(second.btid) == second
    assert await store.get_context(first.btid) is None  # TS 33.220 4.5.2: the new context replaces the old


async def test_expired_context_is_gone(store: ContextStore) -> None:
    ctx = _context("b@ims", ttl=-5)
    await store.put_context(ctx)
    assert await store.get_context(ctx.btid) is None
    assert await store.ping()


async def test_records_are_sealed(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "bsf.sqlite", KEK)
    ctx = _context("c@ims")
    await s.put_context(ctx)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("bsf.sqlite*"))
    assert ctx.ks not in raw and ctx.ks.hex().encode() not in raw
    stranger = Keyring(os.urandom(32))
    other = SqliteStore(tmp_path / "bsf.sqlite", stranger)
    with pytest.raises(StoreUnavailable, match=r"KeyWrapError: sealed under KEK id \w+, which this process does not"):
        await other.get_context(ctx.btid)
    # Online KEK rotation: a store whose new KEK seals still opens what the earlier KEK sealed.
    rotated = SqliteStore(tmp_path / "bsf.sqlite", Keyring(os.urandom(32), [os.urandom(32), KEK_BYTES]))
    assert await rotated.get_context(ctx.btid) == ctx
    await rotated.close()
    await other.close()
    await s.close()


async def test_enrolment_round_trip_and_expiry(store: ContextStore) -> None:
    rec = EnrolmentRecord(
        f"{uuid.uuid4().hex}@mef.gba.test",
        os.urandom(32),
        "CAE-1",
        ("maf.gba.test",),
        "psk",
        _now(),
        _now() + dt.timedelta(seconds=60),
    )
    await store.put_enrolment(rec)
    assert await store.get_enrolment(rec.keid) == rec
    assert await store.get_enrolment("0" * 32 + "@mef.gba.test") is None
    old = EnrolmentRecord(
        f"{uuid.uuid4().hex}@mef.gba.test",
        os.urandom(32),
        "CAE-1",
        (),
        "certificate",
        _now(),
        _now() - dt.timedelta(seconds=1),
    )
    await store.put_enrolment(old)
    assert await store.get_enrolment(old.keid) is None


async def test_rekey_reseals_everything(store: ContextStore) -> None:
    new = Keyring(os.urandom(32))
    ctx, ch = _context(f"{uuid.uuid4().hex}@ims"), _challenge("r@ims")
    rec = EnrolmentRecord(
        f"{uuid.uuid4().hex}@mef.gba.test", os.urandom(32), "CAE", (), "psk", _now(), _now() + dt.timedelta(seconds=60)
    )
    await store.put_context(ctx)
    await store.put_challenge(ch)
    await store.put_enrolment(rec)
    assert await store.rekey(new) >= 3
    # The store now reads with the new KEK; a second store on the old KEK cannot open the records.
    assert await store.get_context(ctx.btid) == ctx
    assert await store.get_enrolment(rec.keid) == rec
    assert await store.take_challenge(ch.nonce) == ch
    await store.rekey(KEK)  # leave shared Redis data readable for the other tests


def _closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return int(s.getsockname()[1])


async def test_an_unreachable_redis_is_store_unavailable() -> None:
    s = RedisStore(f"redis://127.0.0.1:{_closed_port()}/0", KEK)
    ch, ctx = _challenge("down@ims.test"), _context("down@ims.test")
    enrolment = EnrolmentRecord("k@mef.test", os.urandom(32), "C1", ("maf.test",), "psk", _now(), _now())
    for op in (
        s.put_challenge(ch),
        s.take_challenge(ch.nonce),
        s.put_context(ctx),
        s.get_context(ctx.btid),
        s.put_enrolment(enrolment),
        s.get_enrolment(enrolment.keid),
        s.count_contexts(),
    ):
        with pytest.raises(StoreUnavailable, match="ConnectionError"):
            await op
    await s.close()


async def test_a_locked_sqlite_is_store_unavailable_for_writes_only(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "bsf.sqlite", KEK, busy_timeout=0.05)  # instead of 10 s: a short test
    ctx = _context("locked@ims.test")
    await s.put_context(ctx)
    other = sqlite3.connect(tmp_path / "bsf.sqlite", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        for op in (s.put_challenge(_challenge("locked@ims.test")), s.take_challenge("n"), s.put_context(ctx)):
            with pytest.raises(StoreUnavailable, match="database is locked"):
                await op
        assert await s.get_context(ctx.btid) == ctx  # WAL: reads go on under a writer's lock
    finally:
        other.execute("ROLLBACK")
        other.close()
    await s.put_challenge(_challenge("locked@ims.test"))  # the lock gone, writes work again
    await s.close()


async def test_context_of_an_impi_and_revocation(store: ContextStore) -> None:
    impi = f"{uuid.uuid4().hex}@ims"
    first, second = _context(impi), _context(impi)
    assert await store.context_of(impi) is None
    await store.put_context(first)
    assert await store.context_of(impi) == first
    await store.put_context(second)  # supersedes the first
    assert await store.context_of(impi) == second
    assert not await store.delete_context(first.btid)  # already gone: nothing to revoke
    assert await store.context_of(impi) == second  # and the IMPI's current context is untouched
    assert await store.delete_context(second.btid)
    assert await store.get_context(second.btid) is None and await store.context_of(impi) is None
    assert not await store.delete_context(second.btid)
    expired = _context(impi, ttl=-1)
    await store.put_context(expired)
    assert await store.context_of(impi) is None and not await store.delete_context(expired.btid)


async def test_live_contexts_are_counted_through_supersede_revocation_and_expiry(store: ContextStore) -> None:
    if isinstance(store, RedisStore):
        async with aioredis.from_url(REDIS_URL) as r:
            await r.delete(LIVE_KEY)  # the other tests' contexts are in the shared count
    assert await store.count_contexts() == 0
    a, b = f"{uuid.uuid4().hex}@ims", f"{uuid.uuid4().hex}@ims"
    await store.put_context(_context(a))
    await store.put_context(_context(b, ttl=3 * LIVE_MINUTE))
    assert await store.count_contexts() == 2
    newer = _context(a, ttl=2 * LIVE_MINUTE)  # expires in another minute than the context it supersedes
    await store.put_context(newer)
    assert await store.count_contexts() == 2
    assert await store.delete_context(newer.btid)
    assert await store.count_contexts() == 1
    assert not await store.delete_context(newer.btid)  # revoked once, counted off once
    await store.put_context(_context(f"{uuid.uuid4().hex}@ims", ttl=-2 * LIVE_MINUTE))
    assert await store.count_contexts() == 1


async def test_redis_count_prunes_minutes_that_are_over_and_skips_foreign_fields() -> None:
    store = RedisStore(REDIS_URL, KEK)
    now = int(_now().timestamp()) // LIVE_MINUTE
    async with aioredis.from_url(REDIS_URL) as r:
        await r.delete(LIVE_KEY)
        await r.hset(LIVE_KEY, mapping={str(now - 5): 7, "junk": "x", str(now + 10): 2, str(now + 11): -5})
        assert await store.count_contexts() == 0  # the -5 (a miscount) is not shown as a negative count
        assert sorted(await r.hkeys(LIVE_KEY)) == sorted([str(now + 10).encode(), str(now + 11).encode()])
        await r.hset(LIVE_KEY, str(now + 11), 1)
        assert await store.count_contexts() == 3
        await r.delete(LIVE_KEY)
    await store.close()


async def test_redis_count_is_shared_by_instances_and_sent_on_close() -> None:
    a, b = RedisStore(REDIS_URL, KEK), RedisStore(REDIS_URL, KEK)
    async with aioredis.from_url(REDIS_URL) as r:
        await r.delete(LIVE_KEY)
    impi = f"{uuid.uuid4().hex}@ims"
    await a.put_context(_context(impi))
    await b.put_context(_context(impi, ttl=2 * LIVE_MINUTE))  # supersedes a's context: b counts it off
    await b.put_context(_context(f"{uuid.uuid4().hex}@ims"))
    await a.close()  # a's change goes with it
    assert await b.count_contexts() == 2
    assert await b.count_contexts() == 2  # sent once, not again
    await b.close()


async def test_redis_pointers_stay_readable_by_a_release_without_the_count() -> None:
    """Rolling upgrades: the IMPI's pointer is still the bare B-TID, and a pointer and context written by
    an earlier release (relative TTL, no count) are superseded as before."""
    store = RedisStore(REDIS_URL, KEK)
    impi = f"{uuid.uuid4().hex}@ims"
    old = _context(impi)
    async with aioredis.from_url(REDIS_URL) as r:
        await r.set(f"gbagw:{{ctx:{old.btid}}}", b"sealed by the earlier release", px=60_000)
        await r.set(f"gbagw:{{impi:{impi}}}", old.btid.encode(), px=60_000)
        new = _context(impi)
        await store.put_context(new)
        assert await r.get(f"gbagw:{{impi:{impi}}}") == new.btid.encode()
        assert await r.get(f"gbagw:{{ctx:{old.btid}}}") == b""  # retired: a tombstone until its expiry
        assert await r.pexpiretime(f"gbagw:{{ctx:{new.btid}}}") == int(new.expires.timestamp() * 1000)
    assert await store.context_of(impi) == new
    await store.close()


async def test_tmpi_maps_to_impi_is_overwritten_and_expires(store: ContextStore) -> None:
    """TS 33.220 4.5.2 steps 2 and 7: TMPI -> IMPI; the IMPI's new TMPI replaces the earlier one."""
    impi, other = f"{uuid.uuid4().hex}@ims", f"{uuid.uuid4().hex}@ims"
    first, second = f"{uuid.uuid4().hex}@tmpi.bsf.3gppnetwork.org", f"{uuid.uuid4().hex}@tmpi.bsf.3gppnetwork.org"
    assert await store.impi_of_tmpi(first) is None
    await store.put_tmpi(first, impi, _now() + dt.timedelta(seconds=60))
    await store.put_tmpi(f"{uuid.uuid4().hex}@tmpi.bsf.3gppnetwork.org", other, _now() + dt.timedelta(seconds=60))
    assert await store.impi_of_tmpi(first) == impi
    await store.put_tmpi(second, impi, _now() + dt.timedelta(seconds=60))
    assert await store.impi_of_tmpi(second) == impi
    assert await store.impi_of_tmpi(first) is None  # overwritten
    expired = f"{uuid.uuid4().hex}@tmpi.bsf.3gppnetwork.org"
    await store.put_tmpi(expired, other, _now() - dt.timedelta(seconds=1))
    assert await store.impi_of_tmpi(expired) is None


async def test_tmpi_is_stored_hashed(tmp_path: Path) -> None:
    tmpi = "6bFGxEufBZ5OVty4qtD+tOw6QiszLJZK@tmpi.bsf.3gppnetwork.org"
    s = SqliteStore(tmp_path / "bsf.sqlite", KEK)
    await s.put_tmpi(tmpi, "a@ims", _now() + dt.timedelta(seconds=60))
    await s.close()
    raw = b"".join(f.read_bytes() for f in tmp_path.glob("bsf.sqlite*"))
    assert b"a@ims" in raw and b"6bFGxEufBZ5OVty4qtD" not in raw


async def test_challenge_keeps_the_digest_username(store: ContextStore) -> None:
    ch = _challenge("a@ims")
    assert ch.digest_username == "a@ims"
    tm = dataclasses.replace(ch, username="t@tmpi.bsf.3gppnetwork.org")
    await store.put_challenge(tm)
    taken = await store.take_challenge(tm.nonce)
    assert taken is not None and taken.digest_username == "t@tmpi.bsf.3gppnetwork.org" and taken.impi == "a@ims"
