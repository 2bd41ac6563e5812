from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from gbaio.redis_pipeline import AutoPipeline
from tests import private_redis
from tests.procs import free_port

REDIS_URL = private_redis.url(14)


@pytest.fixture
def prefix() -> Iterator[str]:
    yield f"gbagw-test:{os.urandom(4).hex()}:"


class PipelineWatch:
    """Counts the pipelines a client opens and the most that were executing at once."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.batches = self.out = self.most_out = 0
        self._real = client.pipeline
        client.pipeline = self._pipeline  # type: ignore[method-assign]

    def _pipeline(self, *args: object, **kwargs: object) -> object:
        self.batches += 1
        pipe = self._real(*args, **kwargs)  # type: ignore[arg-type]
        execute = pipe.execute

        async def tracked(*a: object, **kw: object) -> object:
            self.out += 1
            self.most_out = max(self.most_out, self.out)
            try:
                return await execute(*a, **kw)  # type: ignore[arg-type]
            finally:
                self.out -= 1

        pipe.execute = tracked  # type: ignore[method-assign]
        return pipe


def test_concurrent_calls_share_pipelines_and_get_their_own_replies(prefix: str) -> None:
    async def main() -> tuple[list[list[object]], int]:
        client = aioredis.from_url(REDIS_URL)
        pipe = AutoPipeline(client)
        watch = PipelineWatch(client)

        async def one(i: int) -> list[object]:
            key = f"{prefix}{i}"
            return await pipe.call(lambda p: p.set(key, str(i), px=10_000), lambda p: p.get(key))

        try:
            replies = await asyncio.gather(*(one(i) for i in range(40)))
        finally:
            await pipe.drain()
            await client.aclose()
        return replies, watch.batches

    replies, batches = asyncio.run(main())
    assert replies == [[True, str(i).encode()] for i in range(40)]
    assert batches == 1


def test_calls_made_while_a_pipeline_is_out_wait_for_the_next_one(prefix: str) -> None:
    async def main() -> tuple[list[list[object]], int, int]:
        client = aioredis.from_url(REDIS_URL)
        pipe = AutoPipeline(client, max_in_flight=1)
        watch = PipelineWatch(client)
        calls = []
        try:
            for i in range(30):
                key = f"{prefix}{i}"
                calls.append(asyncio.ensure_future(pipe.call(lambda p, key=key: p.incr(key))))
                await asyncio.sleep(0)  # every call in a loop turn of its own
            replies = await asyncio.gather(*calls)
        finally:
            await pipe.drain()
            await client.aclose()
        return replies, watch.batches, watch.most_out

    replies, batches, most_out = asyncio.run(main())
    assert replies == [[1]] * 30
    assert most_out == 1 and batches < 30


def test_a_call_cancelled_before_its_turn_is_never_sent(prefix: str) -> None:
    async def main() -> object:
        client = aioredis.from_url(REDIS_URL)
        pipe = AutoPipeline(client, max_in_flight=1)
        key = f"{prefix}counter"
        try:
            # A blocking pop on an empty list keeps the only pipeline slot busy for 0.3 s.
            busy = asyncio.ensure_future(pipe.call(lambda p: p.blpop([f"{prefix}empty"], timeout=0.3)))
            await asyncio.sleep(0.05)
            waiting = asyncio.ensure_future(pipe.call(lambda p: p.incr(key)))
            await asyncio.sleep(0.05)
            waiting.cancel()
            await busy
            await pipe.drain()
            return await client.get(key)
        finally:
            await client.aclose()

    assert asyncio.run(main()) is None


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
    port = free_port()  # nobody listening when the test talks to it

    async def main() -> list[object]:
        client = aioredis.from_url(f"redis://127.0.0.1:{port}/0")
        pipe = AutoPipeline(client)
        try:
            return await asyncio.gather(*(pipe.call(lambda p: p.get("k")) for _ in range(3)), return_exceptions=True)
        finally:
            await client.aclose()

    results = asyncio.run(main())
    assert len(results) == 3 and all(isinstance(r, RedisConnectionError) for r in results)
