"""Redis context store: sealed records expiring with their lifetime (PXAT), Cluster-safe key names.

Keys: ``gbagw:{ch:<nonce>}``, ``gbagw:{ctx:<b-tid>}``, ``gbagw:{ke:<keid>}`` (oneM2M enrolments),
``gbagw:{tmpi:<sha-256 of a TMPI>}`` (its IMPI), ``gbagw:{live}`` (the live-context count), and per IMPI
two indexes (hashes: member -> expiry in ms), ``gbagw:{impi:<impi>}:index`` (every B-TID of the IMPI
whose context may still be live) and ``gbagw:{tmpiof:<impi>}:index`` (its TMPI hashes), beside the
pointers of earlier releases, ``gbagw:{impi:<impi>}`` and ``gbagw:{tmpiof:<impi>}`` (the newest B-TID
or TMPI hash; still written, so that an instance of the earlier release supersedes as before during a
rolling upgrade). A script touches only keys of one IMPI (one hash slot); every other command one key.
GETDEL makes a challenge single-use across every BSF instance. Needs Redis 7.0 or newer (PEXPIRETIME).

Crash safety (issue 27 class 7). A new context must retire every older one of the IMPI (TS 33.220
4.5.2), and a revocation by IMPI must reach them all, whatever point a killed instance stopped at. The
context and the IMPI's index are in different slots, so no one command writes both; instead the order
keeps every live context reachable from its IMPI's index:

1. claim: a script on the IMPI's slot adds the new B-TID to the index (and moves the pointer to it),
   and returns the other members;
2. the context is written with SET NX;
3. each other member's context is replaced by a tombstone (an empty value, until that context's own
   expiry), then one script on the IMPI's slot removes those members from the index.

A B-TID enters the index before its context exists and leaves it only after its context is gone, so a
crash between any two commands leaves at worst a member without context (harmless) or an older context
that is still indexed: the next bootstrap or revocation of the IMPI retires it. A tombstone, not a
delete, because a concurrent bootstrap of the same IMPI (another instance) may claim and be retired
before its step 2 reaches Redis: its SET NX then fails (the bootstrap answers 503 and the UE retries)
instead of creating a context that no index names. Tested at every command boundary in
tests/bsf/test_store_crash.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections import Counter
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bsf.store import (
    AAD_CHALLENGE,
    AAD_CONTEXT,
    AAD_ENROLMENT,
    BootstrapContext,
    EnrolmentRecord,
    PendingChallenge,
    StoreUnavailable,
    reseal,
    seal_record,
    tmpi_key,
    unavailable_on,
    unseal_challenge,
    unseal_context,
    unseal_enrolment,
)
from gba.keywrap import Keyring, KeyWrapError
from gbaio.redis_pipeline import AutoPipeline

# Any Redis error on the request path is an outage of the store (connection, timeout, OOM, READONLY);
# so is a record sealed under a KEK this instance does not hold (a KEK rotation half rolled out).
_OUTAGE = unavailable_on(RedisError, OSError, KeyWrapError)

# The value of a retired context or TMPI (see the module docstring, step 3).
TOMBSTONE = b""

# Step 1 and the walk of a revocation. KEYS: the index, the earlier release's pointer. ARGV: the member
# to add ('' for none), its expiry and the pointer's (ms), now (ms). A pointer's member not yet in the
# index (written by the earlier release) joins it; members whose expiry is over leave it (their record
# expired with them). Returns the other members and their expiries, flat.
_CLAIM = """
local now = tonumber(ARGV[3])
local legacy = redis.call('GET', KEYS[2])
if legacy and legacy ~= ARGV[1] then
  local t = redis.call('PEXPIRETIME', KEYS[2])
  if t > 0 then redis.call('HSETNX', KEYS[1], legacy, t) end
end
local entries = redis.call('HGETALL', KEYS[1])
local others, latest = {}, 0
for i = 1, #entries, 2 do
  local expiry = tonumber(entries[i + 1])
  if expiry < now then
    redis.call('HDEL', KEYS[1], entries[i])
  elseif entries[i] ~= ARGV[1] then
    others[#others + 1] = entries[i]
    others[#others + 1] = entries[i + 1]
    if expiry > latest then latest = expiry end
  end
end
if ARGV[1] ~= '' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('SET', KEYS[2], ARGV[1], 'PXAT', ARGV[2])
  if tonumber(ARGV[2]) > latest then latest = tonumber(ARGV[2]) end
end
if latest > 0 and redis.call('PEXPIRETIME', KEYS[1]) < latest then redis.call('PEXPIREAT', KEYS[1], latest) end
return others
"""

# Step 3's end. KEYS: the index, the pointer. ARGV: members whose records are tombstones now. Returns the
# members this call removed (whoever removes a context's member counts it off, see LIVE_KEY).
_RELEASE = """
local gone = {}
for i = 1, #ARGV do
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then gone[#gone + 1] = ARGV[i] end
  if redis.call('GET', KEYS[2]) == ARGV[i] then redis.call('DEL', KEYS[2]) end
end
return gone
"""

# gbagw_bsf_live_contexts without a SCAN over millions of keys: one hash of counters by the minute a
# context expires in. A write adds 1 to its minute; whoever takes a context's member out of its IMPI's
# index subtracts 1 from that context's minute: the bootstrap that superseded it, or the revocation.
# Each instance adds up its own changes in memory and sends them when it counts (every gauge refresh,
# and on close), so a bootstrap sends no extra command. Counting sums the minutes not yet over and
# prunes the rest: a context counts until the end of the minute it expires in, and a miscount (changes
# lost with a killed instance, instances of a release without the count during a rollout) is forgotten
# with its minute. Every instance reports the same shared total.
LIVE_KEY = "gbagw:{live}"
LIVE_MINUTE = 60


def _bytes(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError("unexpected Redis reply type")
    return value


def _pxat(expires_ts: float) -> int:
    """The record's expiry as Redis' absolute PXAT (one in the past deletes the key at once)."""
    return int(expires_ts * 1000)


def _minute(expires_ts: float) -> int:
    return int(expires_ts) // LIVE_MINUTE


def _pairs(flat: list[bytes]) -> list[tuple[str, int]]:
    return [(_bytes(flat[i]).decode(), int(flat[i + 1])) for i in range(0, len(flat), 2)]


class _Family:
    """The key names of one kind of per-IMPI record (contexts, TMPIs) and its index."""

    def __init__(self, record: str, pointer: str) -> None:
        self._record, self._pointer = record, pointer

    def record(self, member: str) -> str:
        return f"gbagw:{{{self._record}:{member}}}"

    def index_keys(self, impi: str) -> tuple[str, str]:
        return f"gbagw:{{{self._pointer}:{impi}}}:index", f"gbagw:{{{self._pointer}:{impi}}}"


_CONTEXTS = _Family("ctx", "impi")
_TMPIS = _Family("tmpi", "tmpiof")


class RedisStore:
    def __init__(self, url: str, keys: Keyring) -> None:
        self._keys = keys
        self._r = aioredis.from_url(url)
        # The Ub/Zn hot path goes through one auto-pipeline (gbaio.redis_pipeline); rekey, ping and
        # the rest use the client directly.
        self._p = AutoPipeline(self._r)
        self._live: Counter[int] = Counter()  # this instance's changes to the live count, by minute

    @_OUTAGE
    async def put_challenge(self, challenge: PendingChallenge) -> None:
        blob = seal_record(self._keys, challenge, AAD_CHALLENGE + challenge.nonce)
        key, pxat = f"gbagw:{{ch:{challenge.nonce}}}", _pxat(challenge.expires.timestamp())
        await self._p.call(lambda p: p.set(key, blob, pxat=pxat))

    @_OUTAGE
    async def take_challenge(self, nonce: str) -> PendingChallenge | None:
        key = f"gbagw:{{ch:{nonce}}}"
        (blob,) = await self._p.call(lambda p: p.getdel(key))
        if blob is None:
            return None
        ch = unseal_challenge(self._keys, _bytes(blob), AAD_CHALLENGE + nonce)
        return ch if ch.expires.timestamp() >= time.time() else None

    async def _put_indexed(
        self, family: _Family, impi: str, member: str, value: bytes, pxat: int
    ) -> tuple[bool, list[tuple[str, int]]]:
        """Steps 1 to 3 of the module docstring: whether the record was written (False: a concurrent
        write of the IMPI retired it first), and the members this call took out of the index, with
        their expiries."""
        index, pointer = family.index_keys(impi)
        now = _pxat(time.time())
        record = family.record(member)
        flat, stored = await self._p.call(
            lambda p: p.eval(_CLAIM, 2, index, pointer, member, pxat, now),
            lambda p: p.set(record, value, pxat=pxat, nx=True),
        )
        others = _pairs(flat)
        return bool(stored), await self._retire(family, index, pointer, others) if others else []

    async def _retire(
        self, family: _Family, index: str, pointer: str, members: list[tuple[str, int]]
    ) -> list[tuple[str, int]]:
        tombstones = [(family.record(m), expiry) for m, expiry in members]
        names = [m for m, _ in members]
        replies = await self._p.call(
            *(lambda p, k=k, e=e: p.set(k, TOMBSTONE, pxat=e) for k, e in tombstones),
            lambda p: p.eval(_RELEASE, 2, index, pointer, *names),
        )
        gone = {_bytes(m).decode() for m in replies[-1]}
        return [(m, expiry) for m, expiry in members if m in gone]

    async def _walk(self, family: _Family, impi: str) -> list[tuple[str, int]]:
        """Every member of the IMPI's index that has not expired (the earlier release's pointer included)."""
        index, pointer = family.index_keys(impi)
        (flat,) = await self._p.call(lambda p: p.eval(_CLAIM, 2, index, pointer, "", 0, _pxat(time.time())))
        return _pairs(flat)

    @_OUTAGE
    async def put_context(self, ctx: BootstrapContext) -> None:
        expires = ctx.expires.timestamp()
        blob = seal_record(self._keys, ctx, AAD_CONTEXT + ctx.btid)
        # TS 33.220 4.5.2: the new context supersedes every earlier one of the IMPI.
        stored, retired = await self._put_indexed(_CONTEXTS, ctx.impi, ctx.btid, blob, _pxat(expires))
        self._live[_minute(expires)] += 1  # indexed, so whoever takes it out of the index counts it off
        for _, expiry_ms in retired:
            self._live[_minute(expiry_ms / 1000)] -= 1
        if not stored:
            # A concurrent bootstrap or revocation of the IMPI retired it before it was written.
            raise StoreUnavailable("context superseded while being written")

    @_OUTAGE
    async def get_context(self, btid: str) -> BootstrapContext | None:
        key = _CONTEXTS.record(btid)
        (blob,) = await self._p.call(lambda p: p.get(key))
        if not blob:  # none, or a tombstone
            return None
        ctx = unseal_context(self._keys, _bytes(blob), AAD_CONTEXT + btid)
        return ctx if ctx.expires.timestamp() >= time.time() else None

    @_OUTAGE
    async def context_of(self, impi: str) -> BootstrapContext | None:
        """The newest live context of the IMPI's index (after a crash there may be two, see above)."""
        live = [ctx for btid, _ in await self._walk(_CONTEXTS, impi) if (ctx := await self.get_context(btid))]
        return max(live, key=lambda c: c.created, default=None)

    @_OUTAGE
    async def delete_context(self, btid: str) -> bool:
        """Revoke the context and every other one its IMPI's index still names (a crash's leftovers)."""
        (blob,) = await self._p.call(lambda p: p.get(_CONTEXTS.record(btid)))
        if not blob:
            return False
        ctx = unseal_context(self._keys, _bytes(blob), AAD_CONTEXT + btid)
        members = await self._walk(_CONTEXTS, ctx.impi)
        if btid not in (m for m, _ in members):
            members.append((btid, _pxat(ctx.expires.timestamp())))
        index, pointer = _CONTEXTS.index_keys(ctx.impi)
        for _, expiry_ms in await self._retire(_CONTEXTS, index, pointer, members):
            self._live[_minute(expiry_ms / 1000)] -= 1
        return ctx.expires.timestamp() >= time.time()

    @_OUTAGE
    async def put_tmpi(self, tmpi: str, impi: str, expires: dt.datetime) -> None:
        # TS 33.220 4.5.2 step 7: the new TMPI overwrites the IMPI's earlier ones.
        stored, _ = await self._put_indexed(_TMPIS, impi, tmpi_key(tmpi), impi.encode(), _pxat(expires.timestamp()))
        if not stored:
            raise StoreUnavailable("TMPI superseded while being written")

    @_OUTAGE
    async def impi_of_tmpi(self, tmpi: str) -> str | None:
        key = _TMPIS.record(tmpi_key(tmpi))
        (impi,) = await self._p.call(lambda p: p.get(key))
        return _bytes(impi).decode() if impi else None

    @_OUTAGE
    async def put_enrolment(self, rec: EnrolmentRecord) -> None:
        blob = seal_record(self._keys, rec, AAD_ENROLMENT + rec.keid)
        await self._r.set(f"gbagw:{{ke:{rec.keid}}}", blob, pxat=_pxat(rec.expires.timestamp()))

    @_OUTAGE
    async def get_enrolment(self, keid: str) -> EnrolmentRecord | None:
        blob = await self._r.get(f"gbagw:{{ke:{keid}}}")
        if blob is None:
            return None
        rec = unseal_enrolment(self._keys, _bytes(blob), AAD_ENROLMENT + keid)
        return rec if rec.expires.timestamp() >= time.time() else None

    @_OUTAGE
    async def count_contexts(self) -> int:
        """Send this instance's changes to the shared count and read the total (see LIVE_KEY)."""
        current = _minute(time.time())
        counts = await self._send_live(current, read=True)
        live, over = 0, []
        for field, value in counts.items():
            try:
                minute, count = int(field), int(value)
            except ValueError:
                over.append(field)  # not ours: counting must not stop on it
                continue
            if minute >= current:
                live += count
            else:
                over.append(field)
        if over:
            await self._r.hdel(LIVE_KEY, *over)
        return max(0, live)  # a miscount (above) may take a minute below zero for a while

    async def _send_live(self, current: int, *, read: bool) -> dict[bytes, bytes]:
        # A minute that is over counts nothing any more: its changes are dropped.
        changes = {minute: change for minute, change in self._live.items() if change and minute >= current}
        self._live = Counter()
        if not changes and not read:
            return {}
        try:
            async with self._r.pipeline(transaction=False) as pipe:
                for minute, change in changes.items():
                    pipe.hincrby(LIVE_KEY, str(minute), change)
                if read:
                    pipe.hgetall(LIVE_KEY)
                replies = await pipe.execute()
        except BaseException:
            self._live.update(changes)  # kept for the next attempt
            raise
        return replies[-1] if read else {}

    async def rekey(self, new: Keyring, progress: Callable[[int], None] | None = None) -> int:
        count = 0
        for kind, prefix in (("ch", AAD_CHALLENGE), ("ctx", AAD_CONTEXT), ("ke", AAD_ENROLMENT)):
            async for raw in self._r.scan_iter(match=f"gbagw:{{{kind}:*", count=1000):
                name = _bytes(raw).decode()
                blob = await self._r.get(name)
                if not blob:  # expired meanwhile, or a tombstone (nothing sealed in it)
                    continue
                key = name[len(f"gbagw:{{{kind}:") : -1]
                await self._r.set(name, reseal(self._keys, new, _bytes(blob), prefix + key), keepttl=True)
                count += 1
                if progress is not None:
                    progress(count)
        self._keys = new
        return count

    @_OUTAGE
    async def ping(self) -> bool:
        return bool(await self._r.ping())

    async def close(self) -> None:
        await self._p.drain()
        with contextlib.suppress(RedisError, OSError):  # Redis gone: the changes are lost, see LIVE_KEY
            await self._send_live(_minute(time.time()), read=False)
        await self._r.aclose()
