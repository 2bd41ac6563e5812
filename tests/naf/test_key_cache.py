from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from gba.kdf import NafId, UaProtocol
from naf.key_cache import KeyCache
from naf.zn_client import NafKey, ZnRefused

NAF = NafId("naf.test", UaProtocol.HTTP_DIGEST.value)


class FakeBsf:
    def __init__(self, lifetime: float) -> None:
        self.calls = 0
        self.lifetime = lifetime
        self.now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    async def fetch(self, btid: str, naf_id: NafId) -> NafKey:
        self.calls += 1
        await asyncio.sleep(0.01)
        if btid == "gone":
            raise ZnRefused(5403)
        return NafKey(btid, naf_id, "i", bytes(32), None, self.now + dt.timedelta(seconds=self.lifetime), None, 0, ())


async def test_hits_until_expiry_then_refetches() -> None:
    bsf = FakeBsf(60)
    cache = KeyCache(bsf.fetch, clock=lambda: bsf.now)
    await cache.get("b", NAF)
    await cache.get("b", NAF)
    assert bsf.calls == 1
    bsf.now += dt.timedelta(seconds=61)
    await cache.get("b", NAF)
    assert bsf.calls == 2


async def test_concurrent_misses_share_one_fetch_and_errors_propagate() -> None:
    bsf = FakeBsf(60)
    cache = KeyCache(bsf.fetch, clock=lambda: bsf.now)
    keys = await asyncio.gather(*(cache.get("b", NAF) for _ in range(10)))
    assert bsf.calls == 1 and all(k is keys[0] for k in keys)
    results = await asyncio.gather(*(cache.get("gone", NAF) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, ZnRefused) for r in results)
    assert len(cache) == 1


async def test_bounded_and_forget() -> None:
    bsf = FakeBsf(60)
    cache = KeyCache(bsf.fetch, max_entries=3, clock=lambda: bsf.now)
    for i in range(5):
        await cache.get(f"b{i}", NAF)
    assert len(cache) == 3
    cache.forget("b4")
    assert len(cache) == 2


def test_keys_not_in_repr() -> None:
    key = NafKey("b", NAF, "i", b"\x11" * 32, b"\x22" * 32, dt.datetime(2026, 1, 1, tzinfo=dt.UTC), None, 0, ())
    assert "11" * 8 not in repr(key) and "22" * 8 not in repr(key)


@pytest.mark.parametrize("btid", ["gone"])
async def test_refusal_not_cached(btid: str) -> None:
    bsf = FakeBsf(60)
    cache = KeyCache(bsf.fetch, clock=lambda: bsf.now)
    for _ in range(2):
        with pytest.raises(ZnRefused):
            await cache.get(btid, NAF)
    assert bsf.calls == 2
