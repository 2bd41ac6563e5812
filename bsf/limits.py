"""Abuse limits on Ub: every first request of a bootstrap costs an authentication vector at the HSS, so
vectors are rationed per IMPI and per source address, and the number of live pending challenges of this
process is capped. In-memory and per process: with several BSFs behind a load balancer each enforces its
own share (sized in the configuration).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBuckets:
    """Token bucket per key: ``per_minute`` tokens a minute, bursts up to ``burst``; bounded key count."""

    def __init__(
        self, per_minute: float, burst: int, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float:
        """0 when a token was taken, else the seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.rate
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)  # forget the least recently seen key: it is the fullest anyway
        return wait


class PendingCap:
    """At most ``limit`` unanswered challenges issued by this process (each lives ``lifetime`` seconds).

    A challenge answered at this process is released at once; one answered at another BSF instance (Redis
    behind a load balancer) only when it expires, so size ``limit`` for the answers you expect elsewhere.
    """

    def __init__(self, limit: int, lifetime: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.lifetime = lifetime
        self._clock = clock
        self._live: OrderedDict[str, float] = OrderedDict()  # nonce -> expiry, oldest first

    def admit(self) -> bool:
        now = self._clock()
        while self._live and next(iter(self._live.values())) <= now:
            self._live.popitem(last=False)
        return self.limit <= 0 or len(self._live) < self.limit

    def add(self, nonce: str) -> None:
        if self.limit > 0:
            self._live[nonce] = self._clock() + self.lifetime

    def release(self, nonce: str) -> None:
        self._live.pop(nonce, None)
