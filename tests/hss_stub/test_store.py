from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from gba.keywrap import KeyWrapError
from hss_stub.app import create_hss
from hss_stub.config import HssConfig
from hss_stub.store import NewSubscriber, StoreError, SubscriberStore, next_sqn

KEK = bytes(range(32))
K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")


def test_keys_are_sealed_at_rest(tmp_path: Path) -> None:
    s = SubscriberStore(tmp_path / "h.sqlite", KEK)
    s.add("a@ims", K, OPC, b"\x80\x00", 0)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("h.sqlite*"))
    s.close()
    raw += (tmp_path / "h.sqlite").read_bytes()
    assert K not in raw and OPC not in raw
    got = asyncio.run(SubscriberStore(tmp_path / "h.sqlite", KEK).get("a@ims"))
    assert got is not None and got.k == K and got.opc == OPC
    with pytest.raises(KeyWrapError):
        asyncio.run(SubscriberStore(tmp_path / "h.sqlite", bytes(32)).get("a@ims"))


def test_sealed_key_bound_to_its_row(tmp_path: Path) -> None:
    s = SubscriberStore(tmp_path / "h.sqlite", KEK)
    s.add("a@ims", K, OPC, b"\x80\x00", 0)
    s.add("b@ims", bytes(16), bytes(16), b"\x80\x00", 0)
    db = sqlite3.connect(tmp_path / "h.sqlite")
    db.execute(
        "UPDATE subscribers SET k_sealed = (SELECT k_sealed FROM subscribers WHERE impi='a@ims') WHERE impi='b@ims'"
    )
    db.commit()
    with pytest.raises(KeyWrapError):
        asyncio.run(s.get("b@ims"))


def test_sqn_sequence_and_sql_matches_python(tmp_path: Path) -> None:
    s = SubscriberStore(tmp_path / "h.sqlite", KEK)
    s.add("a@ims", K, OPC, b"\x80\x00", 31)
    expected = 31
    for _ in range(70):
        expected = next_sqn(expected)
        sub = asyncio.run(s.take_next_sqn("a@ims"))
        assert sub is not None and sub.sqn == expected
    assert next_sqn((1 << 48) - 1) < (1 << 48)
    assert asyncio.run(s.take_next_sqn("nobody")) is None


def test_group_committed_sqns_are_durable_for_other_connections(tmp_path: Path) -> None:
    """Concurrent MARs share one commit; each caller returns only once its SQN is visible elsewhere."""
    path = tmp_path / "h.sqlite"
    s = SubscriberStore(path, KEK)
    s.add("a@ims", K, OPC, b"\x80\x00", 0)
    other = SubscriberStore(path, KEK)

    async def one() -> int:
        sub = await s.take_next_sqn("a@ims")
        assert sub is not None
        seen = await other.get("a@ims")
        assert seen is not None and seen.sqn >= sub.sqn
        return sub.sqn

    async def many() -> list[int]:
        return await asyncio.gather(*(one() for _ in range(20)))

    sqns = asyncio.run(many())
    final = asyncio.run(other.get("a@ims"))
    assert len(set(sqns)) == 20 and final is not None and max(sqns) == final.sqn


def test_concurrent_increments_from_threads_are_unique(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    SubscriberStore(path, KEK).add("a@ims", K, OPC, b"\x80\x00", 0)
    seen: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        store = SubscriberStore(path, KEK)

        async def take() -> None:
            for _ in range(50):
                sub = await store.take_next_sqn("a@ims")
                assert sub is not None
                with lock:
                    seen.append(sub.sqn)

        asyncio.run(take())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 200 and len(set(seen)) == 200


def test_crud_errors(tmp_path: Path) -> None:
    s = SubscriberStore(tmp_path / "h.sqlite", KEK)
    s.add("a@ims", K, OPC, b"\x80\x00", 0)
    with pytest.raises(StoreError):
        s.add("a@ims", K, OPC, b"\x80\x00", 0)
    with pytest.raises(StoreError):
        s.add("c@ims", K[:8], OPC, b"\x80\x00", 0)
    with pytest.raises(StoreError):
        s.remove("zz")
    with pytest.raises(StoreError):
        s.set_guss("zz", b"<guss/>")
    s.set_guss("a@ims", b"<guss/>")
    assert [x.has_guss for x in s.list()] == [True]
    s.remove("a@ims")
    assert s.list() == []


def test_add_all_stores_every_subscriber_or_none(tmp_path: Path) -> None:
    s = SubscriberStore(tmp_path / "h.sqlite", KEK)
    s.add("a@ims", K, OPC, b"\x80\x00", 0)
    batch = [NewSubscriber("b@ims", K, OPC, b"\x80\x00", 0), NewSubscriber("a@ims", K, OPC, b"\x80\x00", 0)]
    with pytest.raises(StoreError, match="a@ims already exists"):
        s.add_all(batch)
    with pytest.raises(StoreError, match="IMPI 'c d@ims': the username has spaces"):
        s.add_all([NewSubscriber("c@ims", K, OPC, b"\x80\x00", 0), NewSubscriber("c d@ims", K, OPC, b"\x80\x00", 0)])
    assert [sub.impi for sub in s.list()] == ["a@ims"]
    s.add_all(batch[:1])
    assert [sub.impi for sub in s.list()] == ["a@ims", "b@ims"]
    assert "465b" not in repr(batch[0])  # K and OPc stay out of reprs
    s.close()


def test_cached_keys_stay_bound_to_their_row_and_follow_reprovisioning(tmp_path: Path) -> None:
    """The unsealed-key cache: sealed values copied whole to another row still do not open there, and a
    subscriber provisioned again with another K is served with the new one."""
    s = SubscriberStore(tmp_path / "h.sqlite", KEK)
    s.add("a@ims", K, OPC, b"\x80\x00", 0)
    s.add("b@ims", bytes(16), bytes(16), b"\x80\x00", 0)
    a = asyncio.run(s.get("a@ims"))
    assert a is not None and a.k == K  # now cached
    db = sqlite3.connect(tmp_path / "h.sqlite")
    db.execute(
        "UPDATE subscribers SET (k_sealed, opc_sealed) = "
        "(SELECT k_sealed, opc_sealed FROM subscribers WHERE impi='a@ims') WHERE impi='b@ims'"
    )
    db.commit()
    db.close()
    with pytest.raises(KeyWrapError):
        asyncio.run(s.get("b@ims"))
    s.remove("a@ims")
    s.add("a@ims", bytes(range(16)), OPC, b"\x80\x00", 0)
    again = asyncio.run(s.get("a@ims"))
    assert again is not None and again.k == bytes(range(16))
    assert again.milenage.f2345(bytes(16)) != a.milenage.f2345(bytes(16))
    s.close()


async def test_readiness_names_a_subscriber_store_that_does_not_answer(tmp_path: Path) -> None:
    store = SubscriberStore(tmp_path / "h.sqlite", KEK)
    assert await store.ping() is None
    hss = create_hss(HssConfig(zh_port=0), store)
    await hss.start()
    try:
        assert await hss.readiness() is None
        store.close()  # what a database gone from under the process looks like to its next query
        assert await hss.readiness() == "subscriber store does not answer (Cannot operate on a closed database.)"
    finally:
        await hss.stop()
