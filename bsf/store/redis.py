"""Redis context store: sealed records with TTL = remaining lifetime, Cluster-safe key names.

Keys: ``gbagw:{ch:<nonce>}``, ``gbagw:{ctx:<b-tid>}``, ``gbagw:{impi:<impi>}`` (the IMPI's current
B-TID) and ``gbagw:{ke:<keid>}`` (oneM2M enrolments). Each key is a single-key operation so no two keys
need the same hash slot; GETDEL makes a challenge single-use across every BSF instance.
"""

from __future__ import annotations

import time

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


def _bytes(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError("unexpected Redis reply type")
    return value


def _ttl_ms(expires_ts: float) -> int:
    return max(1, int((expires_ts - time.time()) * 1000))


class RedisStore:
    def __init__(self, url: str, keys: Keyring) -> None:
        self._keys = keys
        self._r = aioredis.from_url(url)
        # The Ub/Zn hot path goes through one auto-pipeline (gbaio.redis_pipeline); rekey, ping and
        # the rest use the client directly.
        self._p = AutoPipeline(self._r)

    @_OUTAGE
    async def put_challenge(self, challenge: PendingChallenge) -> None:
        blob = seal_record(self._keys, challenge, AAD_CHALLENGE + challenge.nonce)
        key, ttl = f"gbagw:{{ch:{challenge.nonce}}}", _ttl_ms(challenge.expires.timestamp())
        await self._p.call(lambda p: p.set(key, blob, px=ttl))

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
        ttl = _ttl_ms(ctx.expires.timestamp())
        blob = seal_record(self._keys, ctx, AAD_CONTEXT + ctx.btid)
        impi_key, ctx_key = f"gbagw:{{impi:{ctx.impi}}}", f"gbagw:{{ctx:{ctx.btid}}}"
        btid = ctx.btid.encode()
        # One round trip for both single-key writes (no MULTI: the keys live in different Cluster slots).
        previous, _ = await self._p.call(
            lambda p: p.set(impi_key, btid, px=ttl, get=True), lambda p: p.set(ctx_key, blob, px=ttl)
        )
        if previous is not None and _bytes(previous) != btid:
            # TS 33.220 4.5.2: the new context supersedes the IMPI's previous one.
            old_key = f"gbagw:{{ctx:{_bytes(previous).decode()}}}"
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
        # The IMPI's pointer goes too, unless a newer bootstrap has replaced it meanwhile: compare and
        # delete in one script on that one key (atomic, and Cluster-safe).
        await self._r.eval(_DELETE_IF_EQUAL, 1, f"gbagw:{{impi:{ctx.impi}}}", btid)
        return ctx.expires.timestamp() >= time.time()

    @_OUTAGE
    async def put_enrolment(self, rec: EnrolmentRecord) -> None:
        blob = seal_record(self._keys, rec, AAD_ENROLMENT + rec.keid)
        await self._r.set(f"gbagw:{{ke:{rec.keid}}}", blob, px=_ttl_ms(rec.expires.timestamp()))

    @_OUTAGE
    async def get_enrolment(self, keid: str) -> EnrolmentRecord | None:
        blob = await self._r.get(f"gbagw:{{ke:{keid}}}")
        if blob is None:
            return None
        rec = unseal_enrolment(self._keys, _bytes(blob), AAD_ENROLMENT + keid)
        return rec if rec.expires.timestamp() >= time.time() else None

    async def count_contexts(self) -> int | None:
        return None  # a SCAN over millions of keys is no metric; use Redis' own INFO keyspace

    async def rekey(self, new: Keyring) -> int:
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
        self._keys = new
        return count

    async def ping(self) -> bool:
        return bool(await self._r.ping())

    async def close(self) -> None:
        await self._p.drain()
        await self._r.aclose()
