"""A bounded cache of NAF keys that never serves a key past its Key-ExpiryTime."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from gba.kdf import NafId
from naf.zn_client import NafKey

Fetch = Callable[[str, NafId], Awaitable[NafKey]]


class KeyCache:
    def __init__(self, fetch: Fetch, max_entries: int = 10_000, clock: Callable[[], dt.datetime] | None = None) -> None:
        self._fetch = fetch
        self._max = max_entries
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._entries: OrderedDict[tuple[str, bytes], NafKey] = OrderedDict()
        self._inflight: dict[tuple[str, bytes], asyncio.Future[NafKey]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, btid: str, naf_id: NafId) -> NafKey:
        """The cached key, or one fetched over Zn (concurrent callers for the same key share one fetch)."""
        k = (btid, naf_id.encode())
        hit = self._entries.get(k)
        if hit is not None:
            if hit.expires > self._clock():
                self._entries.move_to_end(k)
                return hit
            del self._entries[k]
        pending = self._inflight.get(k)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[NafKey] = asyncio.get_running_loop().create_future()
        self._inflight[k] = fut
        try:
            key = await self._fetch(btid, naf_id)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: waiters re-raise it, nobody else must
            raise
        finally:
            self._inflight.pop(k, None)
        fut.set_result(key)
        if key.expires > self._clock():
            self._entries[k] = key
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return key

    def forget(self, btid: str) -> None:
        for k in [k for k in self._entries if k[0] == btid]:
            del self._entries[k]
