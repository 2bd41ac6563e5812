"""Issue 27 class 7, crash leftovers: whatever point a BSF is killed at while it stores a new context, no
context of the IMPI is left that the next bootstrap does not retire or that a revocation by IMPI does
not reach (TS 33.220 4.5.2: a new bootstrap's context replaces the IMPI's previous one).

Redis: the instance stops after each command of the write (the commands before it ran, none after:
what a kill -9 leaves in Redis), then a fresh instance checks every context key in the database.
SQLite: a child process writes and os._exit()s before each statement of its transaction, or after it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from bsf.store import BootstrapContext, StoreUnavailable, unseal_context
from bsf.store.redis import RedisStore
from bsf.store.sqlite import SqliteStore
from gba.keywrap import Keyring, KeyWrapError
from tests import private_redis

KEK_BYTES = os.urandom(32)
KEK = Keyring(KEK_BYTES)
REDIS_URL = private_redis.url(13)  # a database no other test writes
ROOT = Path(__file__).resolve().parents[2]


class _Killed(BaseException):
    """The simulated kill: nothing of the write runs after it (a BaseException: no handler catches it)."""


def _context(impi: str, age: int = 0, ttl: int = 600) -> BootstrapContext:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=age)
    return BootstrapContext(
        f"{uuid.uuid4().hex}@bsf.gba.test",
        impi,
        os.urandom(16),
        os.urandom(32),
        now,
        now + dt.timedelta(seconds=ttl),
        False,
        None,
    )


def _dies_after(store: RedisStore, commands: int, between: Callable[[], Awaitable[None]] | None = None) -> None:
    """Make ``store`` run only its next ``commands`` Redis commands, then die (or, with ``between``, run
    that instead of dying and go on: another instance acting at that point)."""
    real = store._p.call
    left = commands

    async def call(*cmds: Any) -> list[Any]:
        nonlocal left
        if len(cmds) <= left:
            left -= len(cmds)
            return await real(*cmds)
        done = await real(*cmds[:left]) if left else []
        if between is None:
            raise _Killed
        await between()
        rest = await real(*cmds[left:])
        left = 1 << 30
        return done + rest

    store._p.call = call  # type: ignore[method-assign]


async def _live_contexts(impi: str) -> dict[str, BootstrapContext]:
    """Every context of ``impi`` in the database that Zn would answer, found by scanning all keys."""
    found = {}
    async with aioredis.from_url(REDIS_URL) as r:
        async for name in r.scan_iter(match="gbagw:{ctx:*", count=1000):
            blob = await r.get(name)
            if not blob:
                continue
            btid = name.decode()[len("gbagw:{ctx:") : -1]
            try:
                ctx = unseal_context(KEK, blob, "context:" + btid)
            except KeyWrapError:  # sealed under another KEK: another test's (GBAGW_TEST_REDIS shared)
                continue
            if ctx.impi == impi:
                found[btid] = ctx
    return found


# put_context with one earlier context: claim + SET NX, then a tombstone + the release script.
REDIS_STEPS = 4


async def _crashed_supersede(commands: int) -> tuple[str, BootstrapContext, BootstrapContext]:
    impi = f"{uuid.uuid4().hex}@ims.test"
    old, new = _context(impi, age=10), _context(impi)
    first = RedisStore(REDIS_URL, KEK)
    await first.put_context(old)
    await first.close()
    crashing = RedisStore(REDIS_URL, KEK)
    _dies_after(crashing, commands)
    try:
        await crashing.put_context(new)
        assert commands >= REDIS_STEPS, "the write needed fewer commands than REDIS_STEPS says"
    except _Killed:
        assert commands < REDIS_STEPS
    # The killed instance's connections are left as they are: nothing more reaches Redis from it.
    return impi, old, new


@pytest.mark.parametrize("commands", range(REDIS_STEPS + 1))
async def test_redis_revocation_by_impi_reaches_every_context_after_a_crash(commands: int) -> None:
    impi, old, new = await _crashed_supersede(commands)
    live = await _live_contexts(impi)
    assert set(live) <= {old.btid, new.btid}
    cli = RedisStore(REDIS_URL, KEK)  # what `gbagw bsf revoke --impi` does
    ctx = await cli.context_of(impi)
    assert (ctx is None) == (not live)
    if ctx is not None:
        assert ctx == max(live.values(), key=lambda c: c.created)
        assert await cli.delete_context(ctx.btid)
    assert await _live_contexts(impi) == {}
    assert await cli.context_of(impi) is None
    await cli.close()


@pytest.mark.parametrize("commands", range(REDIS_STEPS + 1))
async def test_redis_next_bootstrap_retires_every_older_context_after_a_crash(commands: int) -> None:
    impi, old, new = await _crashed_supersede(commands)
    later = RedisStore(REDIS_URL, KEK)
    newest = _context(impi)
    await later.put_context(newest)
    assert await _live_contexts(impi) == {newest.btid: newest}
    assert await later.get_context(old.btid) is None and await later.get_context(new.btid) is None
    assert await later.context_of(impi) == newest
    await later.close()


@pytest.mark.parametrize("commands", range(1, 3))
async def test_redis_crash_during_a_revocation_leaves_it_to_the_next(commands: int) -> None:
    """A revocation killed midway (after its walk, after a tombstone) is finished by the next one."""
    impi, old, new = await _crashed_supersede(2)  # both contexts live, both indexed
    assert set(await _live_contexts(impi)) == {old.btid, new.btid}
    crashing = RedisStore(REDIS_URL, KEK)
    _dies_after(crashing, commands + 1)  # GET of the context, then the walk, then the tombstones
    with pytest.raises(_Killed):
        await crashing.delete_context(new.btid)
    cli = RedisStore(REDIS_URL, KEK)
    ctx = await cli.context_of(impi)
    if ctx is not None:
        await cli.delete_context(ctx.btid)
    assert await _live_contexts(impi) == {}
    await cli.close()


async def test_redis_concurrent_bootstraps_of_one_impi_leave_one_reachable_context() -> None:
    """Instance B bootstraps the IMPI between A's claim and A's write of its context: B retires A's
    B-TID before it exists, so A's SET NX must fail (503, the UE retries) rather than leave a context
    that no index names."""
    impi = f"{uuid.uuid4().hex}@ims.test"
    a_ctx, b_ctx = _context(impi), _context(impi)
    a, b = RedisStore(REDIS_URL, KEK), RedisStore(REDIS_URL, KEK)

    async def b_bootstraps() -> None:
        await b.put_context(b_ctx)

    _dies_after(a, 1, between=b_bootstraps)
    with pytest.raises(StoreUnavailable, match="superseded while being written"):
        await a.put_context(a_ctx)
    assert await _live_contexts(impi) == {b_ctx.btid: b_ctx}
    assert await b.context_of(impi) == b_ctx
    await a.close()
    await b.close()


async def test_redis_tmpi_of_a_crashed_write_is_replaced_by_the_next() -> None:
    impi = f"{uuid.uuid4().hex}@ims.test"
    first, second, third = (f"{uuid.uuid4().hex}@tmpi.bsf.3gppnetwork.org" for _ in range(3))
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=600)
    store = RedisStore(REDIS_URL, KEK)
    await store.put_tmpi(first, impi, expires)
    crashing = RedisStore(REDIS_URL, KEK)
    _dies_after(crashing, 2)  # the claim and the write, not the retirement of the first TMPI
    with pytest.raises(_Killed):
        await crashing.put_tmpi(second, impi, expires)
    await store.put_tmpi(third, impi, expires)
    assert [await store.impi_of_tmpi(t) for t in (first, second, third)] == [None, None, impi]
    await store.close()


# --- SQLite: a child process killed around each statement of its write ----------------------------

_CHILD = """
import asyncio, datetime as dt, os, sys
from pathlib import Path
from bsf.store import BootstrapContext
from bsf.store.sqlite import SqliteStore
from gba.keywrap import Keyring, KeyWrapError

path, kek, impi, btid, die_at = sys.argv[1], bytes.fromhex(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
now = dt.datetime.now(dt.UTC).replace(microsecond=0)
ctx = BootstrapContext(btid, impi, os.urandom(16), os.urandom(32), now, now + dt.timedelta(seconds=600), False, None)

async def main() -> None:
    store = SqliteStore(Path(path), Keyring(kek))
    store._last_sweep = float("inf")  # no sweep: the statements are those of put_context alone
    seen = []

    def trace(sql: str) -> None:
        seen.append(sql)
        if len(seen) > die_at:
            os._exit(9)  # kill -9 before this statement runs

    store._db._writer._db.set_trace_callback(trace)
    await store.put_context(ctx)
    print(len(seen), flush=True)
    os._exit(9)  # after the answer: still no clean close

asyncio.run(main())
"""
# BEGIN IMMEDIATE, INSERT OR REPLACE, COMMIT.
SQLITE_STEPS = 3


def _sqlite_crash(tmp_path: Path, die_at: int) -> tuple[str, BootstrapContext, str]:
    path = tmp_path / "bsf.sqlite"
    impi = f"{uuid.uuid4().hex}@ims.test"
    old = _context(impi, age=10)

    async def put_old() -> None:
        store = SqliteStore(path, KEK)
        await store.put_context(old)
        await store.close()

    asyncio.run(put_old())
    new_btid = f"{uuid.uuid4().hex}@bsf.gba.test"
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), KEK_BYTES.hex(), impi, new_btid, str(die_at)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 9, out.stderr
    if die_at >= SQLITE_STEPS:
        assert out.stdout.strip() == str(SQLITE_STEPS)
    return impi, old, new_btid


@pytest.mark.parametrize("die_at", range(SQLITE_STEPS + 1))
def test_sqlite_crash_at_each_statement_leaves_one_reachable_context(tmp_path: Path, die_at: int) -> None:
    impi, old, new_btid = _sqlite_crash(tmp_path, die_at)

    async def check() -> None:
        store = SqliteStore(tmp_path / "bsf.sqlite", KEK)
        rows = await store._db.query("SELECT btid FROM contexts WHERE impi = ?", (impi,))
        committed = die_at >= SQLITE_STEPS
        assert [r[0] for r in rows] == [new_btid if committed else old.btid]
        ctx = await store.context_of(impi)
        assert ctx is not None and await store.delete_context(ctx.btid)  # revoke --impi
        assert await store._db.query("SELECT count(*) FROM contexts WHERE impi = ?", (impi,)) == [(0,)]
        newest = _context(impi)
        await store.put_context(old)
        await store.put_context(newest)
        assert await store.get_context(old.btid) is None and await store.context_of(impi) == newest
        await store.close()

    asyncio.run(check())
