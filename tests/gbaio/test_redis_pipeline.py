from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from gbaio.redis_pipeline import AutoPipeline

REDIS_URL = os.environ.get("GBAGW_TEST_REDIS", "redis://127.0.0.1:6379/14")


@pytest.fixture
def prefix() -> Iterator[str]:
    yield f"gbagw-test:{os.urandom(4).hex()}:"


def test_concurrent_calls_share_pipelines_and_get_their_own_replies(prefix: str) -> None:
    async def main() -> tuple[list[list[object]], int]:
        client = aioredis.from_url(REDIS_URL)
        pipe = AutoPipeline(client)
        batches = 0
        real = client.pipeline

        def counting(*args: object, **kwargs: object) -> object:
            nonlocal batches
            batches += 1
            return real(*args, **kwargs)  # type: ignore[arg-type]

        client.pipeline = counting  # type: ignore[method-assign]

        async def one(i: int) -> list[object]:
            key = f"{prefix}{i}"
            return await pipe.call(lambda p: p.set(key, str(i), px=10_000), lambda p: p.get(key))

        try:
            replies = await asyncio.gather(*(one(i) for i in range(40)))
        finally:
            await pipe.drain()
            await client.aclose()
        return replies, batches

    replies, batches = asyncio.run(main())
    assert replies == [[True, str(i).encode()] for i in range(40)]
    assert batches == 1


def test_a_failing_command_fails_only_its_caller(prefix: str) -> None:
    async def main() -> list[object]:
        client = aioredis.from_url(REDIS_URL)
        pipe = AutoPipeline(client)
        key = f"{prefix}text"
        try:
            await pipe.call(lambda p: p.set(key, "not a number", px=10_000))
            return await asyncio.gather(
                pipe.call(lambda p: p.incr(key)),
                pipe.call(lambda p: p.get(key)),
                return_exceptions=True,
            )
        finally:
            await pipe.drain()
            await client.aclose()

    incr, get = asyncio.run(main())
    assert isinstance(incr, ResponseError)
    assert get == [b"not a number"]


def test_an_unreachable_redis_fails_every_caller_of_the_batch() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the test talks to it

    async def main() -> list[object]:
        client = aioredis.from_url(f"redis://127.0.0.1:{port}/0")
        pipe = AutoPipeline(client)
        try:
            return await asyncio.gather(*(pipe.call(lambda p: p.get("k")) for _ in range(3)), return_exceptions=True)
        finally:
            await client.aclose()

    results = asyncio.run(main())
    assert len(results) == 3 and all(isinstance(r, RedisConnectionError) for r in results)
