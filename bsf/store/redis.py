"""Redis context store: sealed records expiring with their lifetime (PXAT), Cluster-safe key names.

Keys: ``gbagw:{ch:<nonce>}``, ``gbagw:{ctx:<b-tid>}``, ``gbagw:{impi:<impi>}`` (the IMPI's current
B-TID), ``gbagw:{ke:<keid>}`` (oneM2M enrolments), ``gbagw:{tmpi:<sha-256 of a TMPI>}`` (its IMPI) with
``gbagw:{tmpiof:<impi>}`` (the IMPI's current TMPI hash) and ``gbagw:{live}`` (the live-context count). Each
key is a single-key operation so no two keys need the same hash slot; GETDEL makes a challenge
single-use across every BSF instance. Needs Redis 7.0 or newer (PEXPIRETIME).
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


_DELETE_IF_EQUAL = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"

# The IMPI's pointer is swapped in one step that also reads its expiry (its context's: both expire at
# the same PXAT), so the bootstrap that supersedes a context knows which minute to count it off.
_SWAP_POINTER = """
local expiry = redis.call('PEXPIRETIME', KEYS[1])
return {redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2], 'GET'), expiry}
"""

# gbagw_bsf_live_contexts without a SCAN over millions of keys: one hash of counters by the minute a
# context expires in. A write adds 1 to its minute; whoever takes an IMPI's pointer off a context
# subtracts 1 from that context's minute: the bootstrap whose swap replaced the pointer, or the
# revocation whose script deleted it. Each instance adds up its own changes in memory and sends them
# when it counts (every gauge refresh, and on close), so a bootstrap sends no extra command. Counting
# sums the minutes not yet over and prunes the rest: a context counts until the end of the minute it
# expires in, and a miscount (changes lost with a killed instance, instances of a release without the
# count during a rollout) is forgotten with its minute. Every instance reports the same shared total.
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

    @_OUTAGE
    async def put_context(self, ctx: BootstrapContext) -> None:
        expires = ctx.expires.timestamp()
        pxat = _pxat(expires)
        blob = seal_record(self._keys, ctx, AAD_CONTEXT + ctx.btid)
        impi_key, ctx_key = f"gbagw:{{impi:{ctx.impi}}}", f"gbagw:{{ctx:{ctx.btid}}}"
        btid = ctx.btid.encode()
        # One round trip for the single-key writes (no MULTI: the keys live in different Cluster slots).
        (previous, previous_expiry_ms), _ = await self._p.call(
            lambda p: p.eval(_SWAP_POINTER, 1, impi_key, btid, pxat),
            lambda p: p.set(ctx_key, blob, pxat=pxat),
        )
        self._live[_minute(expires)] += 1
        if previous is None:
            return
        # TS 33.220 4.5.2: the new context supersedes the IMPI's previous one.
        if isinstance(previous_expiry_ms, int) and previous_expiry_ms > 0:
            self._live[_minute(previous_expiry_ms // 1000)] -= 1
        if (old_btid := _bytes(previous)) != btid:
            old_key = f"gbagw:{{ctx:{old_btid.decode()}}}"
            await self._p.call(lambda p: p.unlink(old_key))

    @_OUTAGE
    async def get_context(self, btid: str) -> BootstrapContext | None:
        key = f"gbagw:{{ctx:{btid}}}"
        (blob,) = await self._p.call(lambda p: p.get(key))
        if blob is None:
            return None
        ctx = unseal_context(self._keys, _bytes(blob), AAD_CONTEXT + btid)
        return ctx if ctx.expires.timestamp() >= time.time() else None

    @_OUTAGE
    async def context_of(self, impi: str) -> BootstrapContext | None:
        (btid,) = await self._p.call(lambda p: p.get(f"gbagw:{{impi:{impi}}}"))
        return await self.get_context(_bytes(btid).decode()) if btid is not None else None

    @_OUTAGE
    async def delete_context(self, btid: str) -> bool:
        key = f"gbagw:{{ctx:{btid}}}"
        (blob,) = await self._p.call(lambda p: p.getdel(key))
        if blob is None:
            return False
        ctx = unseal_context(self._keys, _bytes(blob), AAD_CONTEXT + btid)
        # The IMPI's pointer goes too, unless a newer bootstrap has replaced it meanwhile (and taken
        # the context off the live count): compare and delete in one script on that one key (atomic,
        # and Cluster-safe).
        if await self._r.eval(_DELETE_IF_EQUAL, 1, f"gbagw:{{impi:{ctx.impi}}}", btid):
            self._live[_minute(ctx.expires.timestamp())] -= 1
        return ctx.expires.timestamp() >= time.time()

    @_OUTAGE
    async def put_tmpi(self, tmpi: str, impi: str, expires: dt.datetime) -> None:
        pxat, digest = _pxat(expires.timestamp()), tmpi_key(tmpi)
        tmpi_name, pointer = f"gbagw:{{tmpi:{digest}}}", f"gbagw:{{tmpiof:{impi}}}"
        _, previous = await self._p.call(
            lambda p: p.set(tmpi_name, impi, pxat=pxat),
            lambda p: p.set(pointer, digest, pxat=pxat, get=True),
        )
        # TS 33.220 4.5.2 step 7: the new TMPI overwrites the IMPI's earlier one.
        if previous is not None and (old := _bytes(previous).decode()) != digest:
            await self._p.call(lambda p: p.unlink(f"gbagw:{{tmpi:{old}}}"))

    @_OUTAGE
    async def impi_of_tmpi(self, tmpi: str) -> str | None:
        (impi,) = await self._p.call(lambda p: p.get(f"gbagw:{{tmpi:{tmpi_key(tmpi)}}}"))
        return _bytes(impi).decode() if impi is not None else None

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
                if blob is None:  # expired meanwhile
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
