"""Zn latency as the context store grows to 1,000,000 bootstrapping contexts, per backend, and the bytes
one context costs in Redis (MEMORY USAGE).

Run: python bench/scale.py [--count 1000000] [--store sqlite|redis|both]
Contexts are written in bulk in the store's own sealed format (the same seal_record the BSF uses), then a
real `gbagw bsf serve` answers Zn for a freshly bootstrapped B-TID while the store holds 1k, 100k, 1M.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sqlite3
import statistics
import sys
import time
from pathlib import Path

import redis as redis_sync

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bootstrap import gbagw_lab  # noqa: E402
from bench.zn import bootstrap_one  # noqa: E402
from bsf.store import AAD_CONTEXT, BootstrapContext, seal_record  # noqa: E402
from gba import kdf  # noqa: E402
from gba.keywrap import Keyring  # noqa: E402
from gbagw.cli_common import Progress  # noqa: E402
from naf.config import NafConfig  # noqa: E402
from naf.zn_client import ZnClient  # noqa: E402

REDIS = "redis://127.0.0.1:6379/12"
BATCH = 20_000


def _contexts(kek: bytes, start: int, stop: int) -> list[tuple[str, str, bytes, float]]:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    expires = now + dt.timedelta(hours=2)
    keys = Keyring(kek)
    out = []
    for i in range(start, stop):
        btid = f"{i:022d}==@bsf.gba.test"
        ctx = BootstrapContext(btid, f"bulk{i}@ims.bench", os.urandom(16), os.urandom(32), now, expires, False, None)
        out.append((btid, ctx.impi, seal_record(keys, ctx, AAD_CONTEXT + btid), expires.timestamp()))
    return out


def load_sqlite(path: Path, kek: bytes, start: int, stop: int) -> None:
    db = sqlite3.connect(path, timeout=30)
    with Progress("sqlite: contexts loaded", stop) as progress:
        for lo in range(start, stop, BATCH):
            rows = _contexts(kek, lo, min(stop, lo + BATCH))
            with db:
                db.executemany("INSERT OR REPLACE INTO contexts VALUES (?, ?, ?, ?)", rows)
            progress(min(stop, lo + BATCH))
    db.close()


def load_redis(kek: bytes, start: int, stop: int) -> None:
    r = redis_sync.Redis.from_url(REDIS)
    with Progress("redis: contexts loaded", stop) as progress:
        for lo in range(start, stop, BATCH):
            pipe = r.pipeline(transaction=False)
            for btid, impi, blob, _exp in _contexts(kek, lo, min(stop, lo + BATCH)):
                pipe.set(f"gbagw:{{impi:{impi}}}", btid.encode(), px=7_200_000)
                pipe.set(f"gbagw:{{ctx:{btid}}}", blob, px=7_200_000)
            pipe.execute()
            progress(min(stop, lo + BATCH))
    r.close()


async def zn_latency(zn_port: int, btid: str, n: int = 1000) -> tuple[float, float]:
    client = ZnClient(NafConfig(bsf_port=zn_port, zn_timeout=30))
    naf_id = kdf.NafId("naf.gba.test", kdf.UaProtocol.HTTP_DIGEST)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await client.fetch_key(btid, naf_id)
        samples.append(time.perf_counter() - t0)
    await client.close()
    q = statistics.quantiles(samples, n=100)
    return q[49] * 1000, q[98] * 1000


def run(store: str, count: int) -> list[str]:
    lines = []
    steps = [s for s in (1_000, 100_000, 1_000_000) if s <= count] or [count]
    url = REDIS if store == "redis" else None
    if url:
        redis_sync.Redis.from_url(REDIS).flushdb()
    with gbagw_lab(url) as (urls, zn_ports, tmp, _bsfs, _others):
        kek = (Path(tmp) / "kek").read_bytes()
        btid = bootstrap_one(urls[0])
        loaded = 0
        for step in steps:
            t0 = time.perf_counter()
            if store == "redis":
                load_redis(kek, loaded, step)
            else:
                load_sqlite(Path(tmp) / "bsf.sqlite", kek, loaded, step)
            load_s = time.perf_counter() - t0
            loaded = step
            p50, p99 = asyncio.run(zn_latency(zn_ports[0], btid))
            lines.append(
                f"{store:>6} {step:>10,} contexts  Zn p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  (loaded in {load_s:5.1f} s)"
            )
        if store == "redis":
            r = redis_sync.Redis.from_url(REDIS)
            ctx_bytes = r.memory_usage(f"gbagw:{{ctx:{0:022d}==@bsf.gba.test}}") or 0
            impi_bytes = r.memory_usage("gbagw:{impi:bulk0@ims.bench}") or 0
            used = int(r.info("memory")["used_memory"])
            lines.append(
                f"redis bytes per context: {ctx_bytes} (context key) + {impi_bytes} (IMPI index key) = "
                f"{ctx_bytes + impi_bytes}; used_memory {used / loaded:,.0f} bytes per context overall"
            )
            r.flushdb()
        else:
            size = sum(p.stat().st_size for p in Path(tmp).glob("bsf.sqlite*"))
            lines.append(f"sqlite file size {size / loaded:,.0f} bytes per context")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--store", choices=("sqlite", "redis", "both"), default="both")
    args = ap.parse_args()
    out = []
    for store in ("sqlite", "redis") if args.store == "both" else (args.store,):
        out += run(store, args.count)
    print("\n".join(out))


if __name__ == "__main__":
    main()
