"""Every Diameter message gbagw emits, on the wire, against the specification tables (issue 23 item 1).

Real `gbagw hss serve` and `gbagw bsf serve` processes, a NAF and bad peers of our own node; a relay in
this test records every message both ways on Zh and Zn. Each message is decoded here with its own
minimal parser (RFC 6733 clause 3 and 4.1) and checked against tables written from the specification
text, not from gba.diameter's dictionary:
- AVP flags: RFC 6733 clause 4.5 table, TS 29.229 Table 6.3.1 (SIP AVPs), TS 29.109 Table 6.3.1 (GBA AVPs);
- message content: the ABNF of RFC 6733 5.3.1/5.3.2 (CER/CEA), 5.4.1/5.4.2 (DPR/DPA), 5.5.1/5.5.2
  (DWR/DWA), 7.2 (answer-message with the E bit), TS 29.109 4.2 (MAR/MAA) and 5.2 (BIR/BIA).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gba import diameter as d
from gba import kdf, ue
from gbagw.ue_client import UbRefused, bootstrap
from gbaio.diameter_node import DiameterClient, NodeIdentity, connect
from naf.config import NafConfig
from naf.zn_client import ZnClient, ZnRefused
from tests.procs import free_port, gbagw_process, run_cli

pytestmark = pytest.mark.e2e

K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OPC = "cd63cb71954a9f4e48a5994e37a02baf"
IMPI = "wire@ims.test"
GUSS = b"<guss><bsfInfo><uiccType>GBA_U</uiccType></bsfInfo><ussList/></guss>"
CONFIG = """
[[bsf.nafs]]
fqdn = "naf.gba.test"
diameter_host = "naf.gba.test"
group = "default"
"""

BAD_SESSION = "deliberately-bad;1"  # the requests this test breaks on purpose: only their answers are checked

V, M = 0x80, 0x40
# (code, vendor) -> the flags the AVP MUST carry (and no other), from the specification tables.
SPEC_FLAGS: dict[tuple[int, int], int] = {
    # RFC 6733 clause 4.5: MUST M, MUST NOT V ...
    **{
        (code, 0): M
        for code in (1, 257, 258, 259, 260, 263, 264, 265, 266, 268, 273, 277, 278, 279, 282, 283, 284, 293, 296)
    },
    (297, 0): M,
    (298, 0): M,
    # ... except these four: MUST NOT V, M.
    (267, 0): 0,  # Firmware-Revision
    (269, 0): 0,  # Product-Name
    (281, 0): 0,  # Error-Message
    (294, 0): 0,  # Error-Reporting-Host
    # TS 29.229 Table 6.3.1: MUST M, V.
    **{(code, 10415): V | M for code in (601, 607, 608, 609, 610, 611, 612, 613, 625, 626)},
    # TS 29.109 Table 6.3.1: MUST M, V; GUSS-Timestamp MUST V, MUST NOT M.
    **{(code, 10415): V | M for code in range(400, 421) if code != 409},
    (409, 10415): V,
}
GROUPED = {(260, 0), (297, 0), (279, 0), (284, 0), (612, 10415)}


@dataclass(frozen=True)
class Rule:
    """A CCF reduced to what this check needs: AVPs that must be there, AVPs that may, and at least one
    of ``one_of`` (Result-Code or Experimental-Result)."""

    required: frozenset[tuple[int, int]]
    optional: frozenset[tuple[int, int]] = frozenset()
    one_of: frozenset[tuple[int, int]] = frozenset()


def _k(*codes: int) -> frozenset[tuple[int, int]]:
    return frozenset((c, 10415 if 400 <= c < 700 else 0) for c in codes)


FAILED, ERRMSG = 279, 281  # *[AVP] of the MAA/BIA lets a 5xxx answer carry them (RFC 6733 7.1.5, 7.5)
RULES: dict[str, Rule] = {
    "CER": Rule(_k(264, 296, 257, 266, 269), _k(278, 265, 258, 299, 259, 260, 267)),
    "CEA": Rule(_k(268, 264, 296, 257, 266, 269), _k(278, 281, 279, 265, 258, 299, 259, 260, 267)),
    "DWR": Rule(_k(264, 296), _k(278)),
    "DWA": Rule(_k(268, 264, 296), _k(281, 279, 278)),
    "DPR": Rule(_k(264, 296, 273)),
    "DPA": Rule(_k(268, 264, 296), _k(281, 279)),
    "answer-message": Rule(_k(264, 296, 268), _k(263, 278, 281, 294, 279, 297, 284)),
    # TS 29.109 4.2 step 1 without SIP-Number-Auth-Items (bsf.zh_sip_number_auth_items is off).
    "MAR": Rule(_k(263, 260, 277, 264, 296, 283), _k(293, 1, 601, 612, 409, 284, 282)),
    "MAA": Rule(_k(263, 260, 277, 264, 296), _k(1, 601, 612, 400, 284, 282, FAILED, ERRMSG), _k(268, 297)),
    "BIR": Rule(_k(263, 260, 264, 296, 283, 401, 402), _k(277, 293, 403, 407, 284, 282)),
    "BIA": Rule(
        _k(263, 260, 264, 296), _k(277, 1, 405, 406, 404, 408, 400, 410, 284, 282, FAILED, ERRMSG), _k(268, 297)
    ),
}
GROUP_MEMBERS = {
    (260, 0): _k(266, 258, 259),  # RFC 6733 6.11
    (297, 0): _k(266, 298),  # RFC 6733 7.6
    (612, 10415): _k(613, 608, 609, 610, 611, 625, 626),  # TS 29.229 6.3.13
}


@dataclass
class Avp:
    code: int
    flags: int
    vendor: int
    members: list[Avp] = field(default_factory=list)


def _parse_avps(data: bytes) -> list[Avp]:
    out, i = [], 0
    while i < len(data):
        code, fl = struct.unpack_from("!II", data, i)
        flags, length = fl >> 24, fl & 0xFFFFFF
        vendor, head = (struct.unpack_from("!I", data, i + 8)[0], 12) if flags & V else (0, 8)
        payload = data[i + head : i + length]
        members = _parse_avps(payload) if (code, vendor) in GROUPED else []
        out.append(Avp(code, flags, vendor, members))
        i += (length + 3) & ~3
    return out


def _kind(msg: bytes) -> str:
    flags, code = msg[4], int.from_bytes(msg[5:8], "big")
    request, error = bool(flags & 0x80), bool(flags & 0x20)
    if error and not request:
        return "answer-message"
    names = {257: "CE", 280: "DW", 282: "DP", 303: "MA", 310: "BI"}
    return names[code] + ("R" if request else "A")


def _check(msg: bytes) -> list[str]:
    kind, problems = _kind(msg), []
    avps = _parse_avps(msg[20:])
    rule = RULES[kind]
    keys = {(a.code, a.vendor) for a in avps}
    if missing := rule.required - keys:
        problems.append(f"{kind}: missing {sorted(missing)}")
    if extra := keys - rule.required - rule.optional - rule.one_of:
        problems.append(f"{kind}: not in its ABNF {sorted(extra)}")
    if rule.one_of and not keys & rule.one_of:
        problems.append(f"{kind}: neither of {sorted(rule.one_of)}")

    def flags(avp: Avp, where: str) -> None:
        key = (avp.code, avp.vendor)
        if key not in SPEC_FLAGS:
            problems.append(f"{where}: AVP {key} is in no table")
        elif avp.flags != SPEC_FLAGS[key]:
            problems.append(f"{where}: AVP {key} flags {avp.flags:#x}, the table says {SPEC_FLAGS[key]:#x}")
        if key in GROUP_MEMBERS and (stray := {(m.code, m.vendor) for m in avp.members} - GROUP_MEMBERS[key]):
            problems.append(f"{where}: {key} holds {sorted(stray)}")
        if key == (279, 0):
            return  # Failed-AVP holds the peer's AVP as it was received (RFC 6733 7.5): not ours to check
        for member in avp.members:
            flags(member, f"{where}/{avp.code}")

    for avp in avps:
        flags(avp, kind)
    return problems


class Recorder:
    """A TCP relay toward ``upstream`` that keeps every Diameter message it carries, both ways."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.messages: list[bytes] = []
        self._server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port)
        return int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = b""
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                buf += data
                while len(buf) >= 4 and len(buf) >= (n := int.from_bytes(buf[1:4], "big")) >= 20:
                    self.messages.append(buf[:n])
                    buf = buf[n:]
        writer.close()

    def close(self) -> None:
        assert self._server is not None
        self._server.close()


@pytest.fixture
def lab_dir(tmp_path: Path) -> Iterator[Path]:
    cfg = tmp_path / "gbagw.toml"
    cfg.write_text(CONFIG)
    (tmp_path / "guss.xml").write_bytes(GUSS)
    common = ["--config", str(cfg), "--data-dir", str(tmp_path)]
    guss = ["--guss", str(tmp_path / "guss.xml")]
    r = run_cli(["hss", "add-subscriber", *common, "--impi", IMPI, "--k", K, "--opc", OPC, *guss])
    assert r.returncode == 0, r.stderr
    yield tmp_path


async def test_every_message_on_zh_and_zn_follows_the_spec_tables(lab_dir: Path) -> None:
    common = ["--config", str(lab_dir / "gbagw.toml"), "--data-dir", str(lab_dir)]
    hss_port, zn_port = free_port(), free_port()
    zh, zn = Recorder(hss_port), Recorder(zn_port)
    zh_relay = await zh.start()
    zn_relay = await zn.start()
    env = {
        "GBAGW_HSS_ZH_PORT": str(hss_port),
        "GBAGW_BSF_HSS_PORT": str(zh_relay),
        "GBAGW_BSF_ZN_PORT": str(zn_port),
        "GBAGW_BSF_UB_PORT": "0",
    }
    naf = NafConfig(bsf_port=zn_relay, zn_timeout=5.0)
    with gbagw_process(["hss", "serve", *common], lab_dir, env, "hss") as hss:
        await asyncio.to_thread(hss.wait_for, "Zh Diameter on")
        with gbagw_process(["bsf", "serve", *common], lab_dir, env, "bsf") as bsf:
            ub = (await asyncio.to_thread(bsf.wait_for, r"Ub on (http://\S+/)")).group(1)
            await asyncio.to_thread(bsf.wait_for, r"Zn Diameter on")
            # Zh: CER/CEA, MAR/MAA with a vector and a GUSS, MAA with an Experimental-Result.
            # A GBA_U subscription: the UICC must be GBA-aware (TS 33.220 5.3.2), or it fails MAC*.
            me = ue.UeClient(ue.Usim(bytes.fromhex(K), bytes.fromhex(OPC)), IMPI, "bsf.gba.test", mode=ue.UeMode.GBA_U)
            boot = await bootstrap(ub, me)
            stranger = ue.UeClient(ue.Usim(bytes(16), bytes(16)), "nobody@ims.test", "bsf.gba.test")
            with pytest.raises(UbRefused):
                await bootstrap(ub, stranger)
            # Zn: BIR/BIA with keys, a BIA with an Experimental-Result; DWR/DWA from a NAF node.
            watchful = DiameterClient(
                NodeIdentity("naf.gba.test", "gba.test", (d.APP_ZN,)), "127.0.0.1", zn_relay, watchdog_interval=0.2
            )
            client = ZnClient(naf, watchful)
            naf_id = kdf.NafId("naf.gba.test", kdf.UaProtocol.HTTP_DIGEST)
            await client.fetch_key(boot.btid, naf_id)
            with pytest.raises(ZnRefused):
                await client.fetch_key("AAAAAAAAAAAAAAAAAAAAAA==@bsf.gba.test", naf_id)
            await asyncio.sleep(0.5)  # a DWR or two each way
            # Requests a strict BSF refuses: its error answers (E bit and not).
            bad = await connect(NodeIdentity("naf.gba.test", "gba.test", (d.APP_ZN,)), "127.0.0.1", zn_relay)
            bir = d.BootstrappingInfoRequest(
                BAD_SESSION, "naf.gba.test", "gba.test", "gba.test", boot.btid, naf_id.encode()
            )
            for extra, flags in (
                ([d.Avp(9999, 0, b"\0\0\0\1", M)], 0),
                ([d.new_avp(d.Avps.SESSION_ID, BAD_SESSION)], 0),
                ([], d.FLAG_ERROR),
                ([d.new_avp(d.Avps.DESTINATION_HOST, b"elsewhere.gba.test")], 0),
            ):
                env_ = bir.to_envelope(0, 0)
                env_.avps += extra
                env_.flags |= flags
                assert (await bad.request(env_, timeout=5)).result() != (d.ResultCode.SUCCESS, None)
            await bad.close()  # DPR from our node, DPA from the BSF
            # The BSF stops: DPR to the HSS and to the NAF, their DPAs.
            await asyncio.to_thread(bsf.stop)
            await client.close()
    zh.close()
    zn.close()
    messages = zh.messages + zn.messages
    kinds = {_kind(m) for m in messages}
    assert kinds >= set(RULES), f"not exercised: {set(RULES) - kinds}"
    ours = [m for m in messages if not (m[4] & 0x80 and BAD_SESSION.encode() in m)]
    problems = [p for m in ours for p in _check(m)]
    assert problems == []
