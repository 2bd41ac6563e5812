"""`gbagw hss serve` as a real process, driven over TCP Diameter (TS 29.109 Zh)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from gba import diameter as d
from gba import milenage
from gbaio.diameter_node import DiameterClient, NodeIdentity, PeerUnavailable, connect
from hss_stub.store import next_sqn
from tests.pcaptool import decode_with_tshark
from tests.procs import Proc, gbagw_process, run_cli, tshark_capture

pytestmark = pytest.mark.e2e

K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OP = "cdc202d5123e20f62b6d676ac72cb318"
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
IMPI = "001010123456789@ims.mnc001.mcc001.3gppnetwork.org"
IMPI_GUSS = "guss-user@ims.test"
IMPI_CONC = "busy-user@ims.test"
GUSS = (
    b'<guss xmlns="urn:3gpp:gba:GBAGUSSSchema-R9:2010-02">'
    b"<bsfInfo><uiccType>GBA_U</uiccType></bsfInfo><ussList/></guss>"
)


@pytest.fixture(scope="module")
def hss(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proc, int, Path]]:
    tmp = tmp_path_factory.mktemp("hss")
    data = ["--data-dir", str(tmp)]
    guss = tmp / "guss.xml"
    guss.write_bytes(GUSS)
    # The GUSS subscriber last: test_guss_and_timestamp reads its GUSS stamp from the file's mtime.
    for impi, extra in ((IMPI, ["--sqn", "000000000040"]), (IMPI_CONC, []), (IMPI_GUSS, ["--guss", str(guss)])):
        r = run_cli(["hss", "add-subscriber", *data, "--impi", impi, "--k", K, "--op", OP, *extra])
        assert r.returncode == 0, r.stderr
    env = {"GBAGW_HSS_ZH_PORT": "0", "GBAGW_HSS_ALLOWED_PEERS": "bsf.gba.test,other.gba.test"}
    with gbagw_process(["hss", "serve", *data], tmp, env, "hss") as proc:
        m = proc.wait_for(r"Zh Diameter on [\d.]+:(\d+)")
        yield proc, int(m.group(1)), tmp


def _identity(host: str = "bsf.gba.test") -> NodeIdentity:
    return NodeIdentity(host, "gba.test", (d.APP_ZH,))


_session = iter(range(1, 1_000_000))


def _mar(
    impi: str, resync: bytes | None = None, ts: dt.datetime | None = None, scheme: str = d.SCHEME_AKA
) -> d.Envelope:
    return d.MultimediaAuthRequest(
        f"bsf.gba.test;1;{next(_session)}",
        "bsf.gba.test",
        "gba.test",
        "gba.test",
        impi,
        resync_info=resync,
        guss_timestamp=ts,
        scheme=scheme,
    ).to_envelope(0, 0)


async def _ask(client: DiameterClient, env: d.Envelope) -> d.MultimediaAuthAnswer:
    return d.MultimediaAuthAnswer.from_envelope(await client.request(env))


def _check_vector(maa: d.MultimediaAuthAnswer) -> int:
    """Recompute the AV from K/OPc; return the SQN it carries."""
    assert maa.ok and maa.sip_authenticate is not None
    rand, autn = maa.sip_authenticate[:16], maa.sip_authenticate[16:]
    mil = milenage.Milenage(bytes.fromhex(K), OPC)
    check = milenage.open_autn(mil, rand, autn)
    assert check.mac_ok and check.amf == b"\x00\x00"  # the default AMF (TS 33.102 Annex H)
    res, ck, ik, _ = mil.f2345(rand)
    assert (maa.sip_authorization, maa.ck, maa.ik) == (res, ck, ik)
    assert maa.scheme == d.SCHEME_AKA
    return check.sqn


async def test_vector_sqn_resync_and_errors(hss: tuple[Proc, int, Path]) -> None:
    _proc, port, _ = hss
    client = DiameterClient(_identity(), "127.0.0.1", port)
    try:
        first = await _ask(client, _mar(IMPI))
        sqn1 = _check_vector(first)
        assert sqn1 == next_sqn(0x40) and first.user_name == IMPI and first.guss is None
        sqn2 = _check_vector(await _ask(client, _mar(IMPI)))
        assert sqn2 == next_sqn(sqn1) and sqn2 >> 5 == (sqn1 >> 5) + 1

        # Resynchronisation: the USIM is far ahead; AUTS carries its SQN_MS (TS 33.102 6.3.5).
        mil = milenage.Milenage(bytes.fromhex(K), OPC)
        rand = os.urandom(16)
        sqn_ms = 5000 << 5 | 7
        resynced = await _ask(client, _mar(IMPI, rand + milenage.build_auts(mil, rand, sqn_ms)))
        assert _check_vector(resynced) == next_sqn(sqn_ms)

        # MAC-S off by one bit, claiming a USIM further ahead: DIAMETER_SUCCESS with a fresh vector, and
        # SQN_HE stays (TS 29.109 4.2 step 2, TS 33.102 6.3.5).
        good_auts = milenage.build_auts(mil, rand, 9000 << 5)
        bad_auts = good_auts[:-1] + bytes([good_auts[-1] ^ 0x01])
        forged = await _ask(client, _mar(IMPI, rand + bad_auts))
        assert forged.result_code == d.ResultCode.SUCCESS and forged.experimental_result is None
        assert _check_vector(forged) == next_sqn(next_sqn(sqn_ms))
        short = await _ask(client, _mar(IMPI, b"\x00" * 10))
        assert short.result_code == d.ResultCode.UNABLE_TO_COMPLY and short.sip_authenticate is None

        unknown = await _ask(client, _mar("nobody@ims.test"))
        assert unknown.experimental_result == 5401 and unknown.result_code is None
        twog = await _ask(client, _mar(IMPI, scheme=d.SCHEME_AKA_2G))
        assert twog.experimental_result == 5006
    finally:
        await client.close()


async def test_guss_and_timestamp(hss: tuple[Proc, int, Path]) -> None:
    _proc, port, tmp = hss
    client = DiameterClient(_identity(), "127.0.0.1", port)
    try:
        maa = await _ask(client, _mar(IMPI_GUSS))
        assert maa.guss == GUSS
        stale = await _ask(client, _mar(IMPI_GUSS, ts=dt.datetime(2001, 1, 1, tzinfo=dt.UTC)))
        assert stale.guss == GUSS
        # The stub stamps the GUSS when it is stored; the BSF learns that instant from the file mtime here.
        ts = dt.datetime.fromtimestamp(int((tmp / "hss.sqlite").stat().st_mtime), dt.UTC)
        for delta in (0, -1, 1, -2):
            same = await _ask(client, _mar(IMPI_GUSS, ts=ts + dt.timedelta(seconds=delta)))
            if same.guss == b"GUSS TIMESTAMP EQUAL":
                break
        else:
            pytest.fail("the HSS never answered GUSS TIMESTAMP EQUAL for a current timestamp")
    finally:
        await client.close()


async def test_concurrent_mars_never_share_a_sqn(hss: tuple[Proc, int, Path]) -> None:
    _proc, port, _ = hss
    clients = [DiameterClient(_identity(), "127.0.0.1", port) for _ in range(2)]
    try:
        answers = await asyncio.gather(*(_ask(clients[i % 2], _mar(IMPI_CONC)) for i in range(60)))
        sqns = [_check_vector(a) for a in answers]
        assert len(set(sqns)) == 60
    finally:
        for c in clients:
            await c.close()


async def test_peer_allowlist_and_garbage(hss: tuple[Proc, int, Path]) -> None:
    proc, port, _ = hss
    with pytest.raises(PeerUnavailable, match="3010"):
        await connect(_identity("intruder.gba.test"), "127.0.0.1", port)
    # Garbage instead of a CER: the HSS drops the connection and keeps serving.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"\xde\xad\xbe\xef" * 8)
        s.settimeout(5)
        assert s.recv(100) == b""
    # A request with a corrupted AVP length inside a live connection gets a 5014 answer.
    conn = await connect(_identity("other.gba.test"), "127.0.0.1", port)
    try:
        raw = bytearray(_mar(IMPI).encode())
        struct.pack_into("!I", raw, 20 + 4, (0x40 << 24) | 0xFFFF)
        conn._writer.write(bytes(raw))
        good = await conn.request(_mar(IMPI), timeout=5)
        assert d.MultimediaAuthAnswer.from_envelope(good).ok
    finally:
        await conn.close()
    assert proc.popen.poll() is None


async def test_relay_and_foreign_applications_in_cer(hss: tuple[Proc, int, Path]) -> None:
    _proc, port, _ = hss
    # A Diameter relay (e.g. a freeDiameter TLS relay in front of the HSS) advertises 0xffffffff: accepted.
    relay = await connect(NodeIdentity("bsf.gba.test", "gba.test", (d.APP_RELAY,)), "127.0.0.1", port)
    try:
        assert d.MultimediaAuthAnswer.from_envelope(await relay.request(_mar(IMPI), timeout=5)).ok
    finally:
        await relay.close()
    with pytest.raises(PeerUnavailable, match="5010"):  # only Zn advertised: no common application
        await connect(NodeIdentity("bsf.gba.test", "gba.test", (d.APP_ZN,)), "127.0.0.1", port)


async def test_watchdog_keeps_an_idle_connection(hss: tuple[Proc, int, Path]) -> None:
    _proc, port, _ = hss
    # DWR every 0.2 s: a missing DWA would make the client close the connection (RFC 6733 5.5).
    conn = await connect(_identity(), "127.0.0.1", port, watchdog_interval=0.2)
    try:
        await asyncio.sleep(1.2)
        assert not conn.closed
        assert d.MultimediaAuthAnswer.from_envelope(await conn.request(_mar(IMPI), timeout=5)).ok
    finally:
        await conn.close()
    assert conn.closed


async def test_tshark_decodes_live_zh_capture(hss: tuple[Proc, int, Path], tmp_path: Path) -> None:
    _proc, port, _ = hss
    pcap = tmp_path / "zh.pcap"
    with tshark_capture(port, pcap):
        client = DiameterClient(_identity(), "127.0.0.1", port)
        try:
            mil = milenage.Milenage(bytes.fromhex(K), OPC)
            rand = os.urandom(16)
            await _ask(client, _mar(IMPI_GUSS, ts=dt.datetime(2001, 1, 1, tzinfo=dt.UTC)))
            await _ask(client, _mar(IMPI, rand + milenage.build_auts(mil, rand, 9000 << 5)))
            await _ask(client, _mar("nobody@ims.test"))
        finally:
            await client.close()
    avps, problems = decode_with_tshark(pcap, port)
    assert problems == []
    assert avps and all("Unknown" not in a.name for a in avps)
    seen = {(a.code, a.vendor): a.flags for a in avps}
    for key in [(609, 10415), (610, 10415), (612, 10415), (608, 10415), (625, 10415), (626, 10415), (400, 10415)]:
        assert seen.get(key) == 0xC0, key
    assert seen.get((409, 10415)) == 0x80
    assert (297, 0) in seen and (257, 0) in seen  # Experimental-Result and CER Host-IP-Address


def test_keys_never_logged(hss: tuple[Proc, int, Path]) -> None:
    proc, _, _ = hss
    text = proc.logs
    assert "vector for" in text
    assert "hss.allowed_peers is empty" not in text  # this HSS lists its peers
    for secret in (K, OPC.hex()):
        assert secret not in text.lower()


def test_cli_lists_without_keys(hss: tuple[Proc, int, Path]) -> None:
    _proc, _, tmp = hss
    r = run_cli(["hss", "list-subscribers", "--data-dir", str(tmp), "--json"])
    assert r.returncode == 0 and IMPI in r.stdout and K not in r.stdout
    dup = run_cli(["hss", "add-subscriber", "--data-dir", str(tmp), "--impi", IMPI, "--k", K, "--opc", OPC.hex()])
    assert dup.returncode == 2 and "already exists" in dup.stderr
    bad = run_cli(["hss", "add-subscriber", "--data-dir", str(tmp), "--impi", "x@y", "--k", "zz", "--opc", OPC.hex()])
    assert bad.returncode == 2 and "--k must be hex" in bad.stderr
    bad = run_cli(["hss", "add-subscriber", "--data-dir", str(tmp), "--impi", "x y@z", "--k", K, "--opc", OPC.hex()])
    assert bad.returncode == 2 and "--impi 'x y@z': the username has spaces" in bad.stderr
    guss = tmp / "missing-guss.xml"
    args = ["--impi", "g@y", "--k", K, "--opc", OPC.hex(), "--guss", str(guss)]
    bad = run_cli(["hss", "add-subscriber", "--data-dir", str(tmp), *args])
    assert bad.returncode == 2 and f"cannot read GUSS file {guss}" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_import_is_all_or_nothing(hss: tuple[Proc, int, Path]) -> None:
    _proc, _, tmp = hss
    entry = 'impi = "{}"\nk = "{}"\nopc = "{}"\n'
    good, bad_k, dup = (
        entry.format(i, k, OPC.hex()) for i, k in (("new1@ims.test", K), ("new2@ims.test", "zz"), (IMPI, K))
    )
    cases = [
        (good + "\n[[subscriber]]\n" + bad_k, "subscriber #2: k must be hex; nothing imported"),
        (good + "\n[[subscriber]]\n" + dup, f"subscriber {IMPI} already exists; nothing imported"),
        ('impi = "new3@ims.test"\nopc = "00"\n', "subscriber #1: k is missing; nothing imported"),
    ]
    for body, message in cases:
        (tmp / "subs.toml").write_text("[[subscriber]]\n" + body)
        r = run_cli(["hss", "import", str(tmp / "subs.toml"), "--data-dir", str(tmp)])
        assert r.returncode == 2 and message in r.stderr, r.stderr
    listed = run_cli(["hss", "list-subscribers", "--data-dir", str(tmp)]).stdout
    assert "new1@ims.test" not in listed and IMPI in listed
