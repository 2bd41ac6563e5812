"""The strict peers themselves: codec strictness, the rules on hand-built samples, Milenage vectors, the
strict HSS's answers, the wire tap's recording. Hand-built here on purpose: these test the checkers."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.strict import codec as c
from tests.strict.hss import StrictHss, Subscriber
from tests.strict.milenage import Milenage, open_auts, vector
from tests.strict.peer import Identity, capabilities, connect, experimental, origin, read_message, result, vsai
from tests.strict.rules import APP_ZH, APP_ZN, check_message
from tests.wiretap import gbagw_wiretap

DATA = Path(__file__).parents[1] / "data" / "milenage_ts35208.txt"
SHARED = Path("/work/shared/vectors/milenage-ts35208.txt")
K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
ZH = Identity("bsf.unit.test", "gba.test", APP_ZH)


def _sets() -> list[list[str]]:
    return [line.split() for line in DATA.read_text().splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("row", _sets(), ids=lambda r: f"set{r[0]}")
def test_milenage_ts35208(row: list[str]) -> None:
    k, rand, sqn, amf, op, opc, f1, f1s, f2, f5, f3, f4, f5s = (bytes.fromhex(x) for x in row[1:])
    mil = Milenage.with_op(k, op)
    assert mil.opc == opc
    assert mil.f1(rand, sqn, amf) == (f1, f1s)
    assert mil.f2345(rand) == (f2, f3, f4, f5, f5s)


@pytest.mark.skipif(not SHARED.exists(), reason="shared vector file not present")
def test_milenage_shared_set1() -> None:
    v = dict(line.split("=", 1) for line in SHARED.read_text().splitlines() if "=" in line and line[0] != "#")
    mil = Milenage.with_op(bytes.fromhex(v["K"]), bytes.fromhex(v["OP"]))
    rand = bytes.fromhex(v["RAND"])
    assert mil.f1(rand, bytes.fromhex(v["SQN"]), bytes.fromhex(v["AMF"]))[0].hex() == v["f1"]
    assert mil.f2345(rand)[1].hex() == v["f3"]


def test_auts_round_trip_and_mac_s() -> None:
    mil = Milenage(K, OPC)
    rand = os.urandom(16)
    *_, ak_star = mil.f2345(rand)
    sqn_ms = (77 << 5).to_bytes(6, "big")
    auts = bytes(a ^ b for a, b in zip(sqn_ms, ak_star, strict=True)) + mil.f1(rand, sqn_ms, b"\0\0")[1]
    assert open_auts(mil, rand, auts) == 77 << 5
    assert open_auts(mil, rand, auts[:-1] + bytes([auts[-1] ^ 1])) is None


def _mar(*extra: c.Avp, first: c.Avp | None = None) -> c.Message:
    avps = [
        first or c.utf8(263, "bsf;1;2"),
        vsai(APP_ZH),
        c.u32(277, 1),
        *origin(ZH),
        c.utf8(283, "gba.test"),
        c.utf8(1, "u@ims.test"),
        *extra,
    ]
    return c.Message(303, c.FLAG_R | c.FLAG_P, APP_ZH, 1, 2, avps)


def test_codec_is_strict_on_framing() -> None:
    raw = bytearray(_mar().encode())
    assert c.decode(bytes(raw)).encode() == bytes(raw)
    with pytest.raises(c.DecodeError, match="length field"):
        c.decode(bytes(raw) + b"\0\0\0\0")
    bad_pad = bytearray(c.Message(280, c.FLAG_R, 0, 1, 2, [c.utf8(264, "abcde")]).encode())
    bad_pad[-1] = 1
    with pytest.raises(c.DecodeError, match="padding"):
        c.decode(bytes(bad_pad))
    overrun = bytearray(raw)
    overrun[20 + 5 : 20 + 8] = (4000).to_bytes(3, "big")
    with pytest.raises(c.DecodeError, match="runs past"):
        c.decode(bytes(overrun))
    reserved = c.Avp(264, 0x41, 0, b"host")
    assert c.decode(c.Message(280, c.FLAG_R, 0, 1, 2, [reserved]).encode()).avps[0].faults


def test_rules_accept_a_clean_mar_and_name_each_fault() -> None:
    assert check_message(_mar().encode()) == []
    cases = {
        "SIP-Number-Auth-Items with the M bit is not in the ABNF": _mar(c.u32(607, 1, vendor=c.VENDOR_3GPP)),
        "GUSS-Timestamp: flag M MUST NOT be set": _mar(c.u32(409, 1, vendor=c.VENDOR_3GPP, m=True)),
        "Session-Id 2 times, at most 1": _mar(c.utf8(263, "again")),
    }
    for expected, msg in cases.items():
        assert any(expected in v for v in check_message(msg.encode())), expected
    moved = _mar()
    moved.avps.append(moved.avps.pop(0))
    assert any("Session-Id is not the first AVP" in v for v in check_message(moved.encode()))
    cer = c.Message(257, c.FLAG_R, 0, 1, 2, capabilities(ZH))
    assert check_message(cer.encode()) == []
    cer.avps = [c.utf8(269, "x") if a.code == 269 else a for a in cer.avps]
    assert check_message(cer.encode()) == ["CER 257 request: Product-Name: flag M MUST NOT be set (flags 0x40)"]
    dpa = c.Message(282, 0, 0, 1, 2, [result(2001), *origin(ZH), c.u32(278, 5)])
    assert any("Origin-State-Id is not in the ABNF" in v for v in check_message(dpa.encode()))
    both = _mar().answer([c.utf8(263, "s"), vsai(APP_ZH), result(2001), experimental(5401), c.u32(277, 1), *origin(ZH)])
    assert any("Result-Code together with Experimental-Result" in v for v in check_message(both.encode()))
    bia = c.Message(
        310,
        c.FLAG_P,
        APP_ZN,
        1,
        2,
        [c.utf8(263, "s"), vsai(APP_ZN), result(2001), *origin(ZH), c.u32(410, 0, vendor=c.VENDOR_3GPP)],
    )
    found = check_message(bia.encode())
    assert any("GBA-Type 3G GBA (0) sent" in v for v in found)
    assert any("success without ME-Key-Material" in v for v in found)
    # A base AVP outside an open ABNF is recognised by every node: Failed-AVP in an MAA is no fault.
    failed = _mar().answer(
        [c.utf8(263, "s"), vsai(APP_ZH), result(5001), c.u32(277, 1), *origin(ZH), c.grouped(279, [c.u32(607, 1)])]
    )
    assert check_message(failed.encode()) == []
    no_e = _mar().answer([result(3009), *origin(ZH)])
    assert any("without the E bit" in v for v in check_message(no_e.encode()))
    e_req = _mar()
    e_req.flags |= c.FLAG_E
    assert any("E bit set in a request" in v for v in check_message(e_req.encode()))


def _rc(msg: c.Message) -> int | None:
    rc = msg.find(268)
    return None if rc is None else rc.u32()


async def _strict_hss() -> tuple[StrictHss, int]:
    hss = StrictHss()
    hss.subscribers["u@ims.test"] = Subscriber(K, OPC, guss=b"<guss/>")
    return hss, await hss.start()


async def test_strict_hss_refuses_a_cer_with_bad_bits() -> None:
    hss, port = await _strict_hss()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        caps = [c.utf8(269, "x") if a.code == 269 else a for a in capabilities(ZH)]
        writer.write(c.Message(257, c.FLAG_R, 0, 1, 2, caps).encode())
        cea = c.decode(await read_message(reader))
        assert cea.flags & c.FLAG_E and _rc(cea) == 3009
        failed = cea.find(279)
        assert failed is not None and [a.code for a in failed.children()] == [269]
        assert await asyncio.wait_for(reader.read(1), 5) == b""
        writer.close()
    finally:
        await hss.close()


async def test_strict_hss_answers() -> None:
    hss, port = await _strict_hss()
    try:
        link, cea = await connect(ZH, "127.0.0.1", port)
        assert _rc(cea) == 2001
        maa = await link.request(_mar())
        item = maa.find(612, c.VENDOR_3GPP)
        assert item is not None
        m = {a.code: a.data for a in item.children()}
        rand, autn = m[609][:16], m[609][16:]
        mil = Milenage(K, OPC)
        *_, ak, _ = mil.f2345(rand)
        sqn = bytes(a ^ b for a, b in zip(autn[:6], ak, strict=True))
        assert autn[6:8] == b"\0\0" and mil.f1(rand, sqn, b"\0\0")[0] == autn[8:]
        assert m[610] == mil.f2345(rand)[0] and maa.find(400, c.VENDOR_3GPP) is not None
        other = _mar()
        other.avps = [c.utf8(1, "nobody@ims.test") if a.code == 1 else a for a in other.avps]
        er = (await link.request(other)).find(297)
        assert er is not None and [x.u32() for x in er.children() if x.code == 298] == [5401]
        odd = await link.request(_mar(c.u32(607, 1, vendor=c.VENDOR_3GPP)))
        assert _rc(odd) == 5001
        # Resync (TS 33.102 6.3.5): a bad MAC-S leaves SQN_HE; a valid AUTS ahead of SQN_HE moves it.
        seq = hss.subscribers["u@ims.test"].seq
        rand = os.urandom(16)
        *_, ak_star = mil.f2345(rand)
        sqn_ms = (seq + 40 << 5).to_bytes(6, "big")
        auts = bytes(a ^ b for a, b in zip(sqn_ms, ak_star, strict=True)) + mil.f1(rand, sqn_ms, b"\0\0")[1]
        resync = c.grouped(
            612, [c.avp(610, rand + auts[:-1] + bytes([auts[-1] ^ 1]), vendor=c.VENDOR_3GPP)], vendor=c.VENDOR_3GPP
        )
        await link.request(_mar(resync))
        assert hss.resyncs[-1] == "mac-s failed" and hss.subscribers["u@ims.test"].seq == seq + 1
        good = c.grouped(612, [c.avp(610, rand + auts, vendor=c.VENDOR_3GPP)], vendor=c.VENDOR_3GPP)
        ok = await link.request(_mar(good))
        assert hss.resyncs[-1] == "moved" and hss.subscribers["u@ims.test"].seq == seq + 41
        assert _rc(ok) == 2001
        dpa, closed = await link.disconnect(timeout=5)
        assert [a.key for a in dpa.avps] == [(268, 0), (264, 0), (296, 0)] and closed
        assert link.violations == []
        await link.close()
    finally:
        await hss.close()


def test_vector_layout() -> None:
    v = vector(Milenage(K, OPC), bytes(16), 1 << 5, b"\0\0")
    assert len(v.autn) == 16 and len(v.xres) == 8 and len(v.ck) == len(v.ik) == 16


def test_wiretap_records_project_calls_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gba import diameter as d

    monkeypatch.setenv(gbagw_wiretap.ENV_DIR, str(tmp_path))
    monkeypatch.setattr(gbagw_wiretap, "_files", {})
    gbagw_wiretap.install()
    env = d.Envelope(d.CMD_DEVICE_WATCHDOG, 0, d.FLAG_REQUEST, 1, 2, [])
    env.encode()  # from a test module: not recorded
    gbagw_wiretap.record("diameter", b"\x01abc")
    records = gbagw_wiretap.read(str(tmp_path))
    assert [(k, data) for k, _, _, data in records] == [("diameter", b"\x01abc")]
    assert records[0][1] == os.getpid() and "test_wiretap_records_project_calls_only" in records[0][2]
