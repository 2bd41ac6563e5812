"""Our BSF, HSS stub and NAF-facing Zn against strict peers written from the specs (issue 23).

(a) the BSF bootstraps our UE through a strict Zh HSS; (b) a GBA_U subscriber bootstraps with no Ub
product token at all and the strict NAF's UICC-Key-Material equals the UE's Ks_int_NAF; (c) our HSS stub
answers a strict Zh client; (d) our BSF's Zn answers a strict NAF; (e) a DPR from a strict peer gets a DPA
of exactly Result-Code/Origin-Host/Origin-Realm and our side then closes the connection.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.procs import Proc, gbagw_process, run_cli
from tests.strict import codec as c
from tests.strict.background import Background
from tests.strict.hss import StrictHss, Subscriber
from tests.strict.naf import StrictNaf
from tests.strict.peer import Identity, Link, connect, vsai
from tests.strict.rules import APP_ZH
from tests.strict.ub_proxy import UbProxy

pytestmark = pytest.mark.e2e

K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OPC = "cd63cb71954a9f4e48a5994e37a02baf"
IMPI = "strict-me@ims.test"
IMPI_U = "strict-u@ims.test"
NAF = "strict-naf.gba.test"
GUSS_U = (
    b'<guss xmlns="urn:3gpp:gba:GBAGUSSSchema-R9:2010-02" id="strict-u@ims.test"><bsfInfo>'
    b"<uiccType>GBA_U</uiccType></bsfInfo><ussList/></guss>"
)
CONFIG = f"""
[bsf]
zn_port = 0
ub_port = 0
hss_reconnect_interval = 0.5

[[bsf.nafs]]
fqdn = "{NAF}"
diameter_host = "{NAF}"
group = "default"
"""


@dataclass
class Lab:
    tmp: Path
    bg: Background
    hss: StrictHss
    bsf: Proc
    ub: str
    zn_port: int
    proxy_port: int

    def wait_zh(self, timeout: float = 10) -> None:
        """Until the BSF's Zh connection is up; a refused CER fails here with the HSS's reason."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.hss.links:
            if self.hss.refused_cers:
                break
            time.sleep(0.05)
        assert self.hss.links, (
            f"the strict HSS refused our BSF's CER with {self.hss.refused_cers}: {self.hss.violations}"
        )


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("strict")
    (tmp / "gbagw.toml").write_text(CONFIG)
    bg = Background()
    hss = StrictHss()
    hss.subscribers[IMPI] = Subscriber(bytes.fromhex(K), bytes.fromhex(OPC))
    hss.subscribers[IMPI_U] = Subscriber(bytes.fromhex(K), bytes.fromhex(OPC), guss=GUSS_U)
    hss_port = bg.run(hss.start())
    env = {"GBAGW_BSF_HSS_PORT": str(hss_port), "GBAGW_BSF_HSS_REALM": hss.ident.realm}
    common = ["--config", str(tmp / "gbagw.toml"), "--data-dir", str(tmp)]
    try:
        with gbagw_process(["bsf", "serve", *common], tmp, env, "bsf") as bsf:
            ub = bsf.wait_for(r"Ub on (http://\S+/)").group(1)
            zn_port = int(bsf.wait_for(r"Zn Diameter on [\d.]+:(\d+)").group(1))
            host, port = ub.removeprefix("http://").rstrip("/").split(":")
            proxy = UbProxy(host, int(port))
            proxy_port = bg.run(proxy.start())
            yield Lab(tmp, bg, hss, bsf, ub, zn_port, proxy_port)
            bg.run(proxy.close())
    finally:
        bg.run(hss.close())
        bg.stop()


def _bootstrap(lab: Lab, impi: str, state: Path, *extra: str, via_proxy: bool = False) -> dict[str, str]:
    url = f"http://127.0.0.1:{lab.proxy_port}/" if via_proxy else lab.ub
    r = run_cli(
        [
            "ue",
            "bootstrap",
            "--bsf",
            url,
            "--impi",
            impi,
            "--k",
            K,
            "--opc",
            OPC,
            "--state",
            str(state),
            "--json",
            *extra,
        ]
    )
    assert r.returncode == 0, f"bootstrap failed: {r.stderr.strip()} (strict HSS saw: {lab.hss.violations})"
    out: dict[str, str] = json.loads(r.stdout)
    return out


def _naf_key(state: Path) -> dict[str, str]:
    r = run_cli(["ue", "naf-key", "--state", str(state), "--naf-fqdn", NAF, "--json"])
    assert r.returncode == 0, r.stderr
    out: dict[str, str] = json.loads(r.stdout)
    return out


def test_a_bsf_bootstraps_through_the_strict_hss(lab: Lab) -> None:
    lab.wait_zh()
    boot = _bootstrap(lab, IMPI, lab.tmp / "ue-me.json")
    assert boot["btid"].endswith("@bsf.gba.test")
    assert lab.hss.violations == [], "\n".join(lab.hss.violations)


def test_b_gba_u_from_the_guss_without_any_ub_token(lab: Lab) -> None:
    lab.wait_zh()
    # `--gba-u` makes the software UE model a GBA-aware UICC (the option is being renamed by helper "ub");
    # the relay removes User-Agent, so the BSF can only have chosen GBA_U from the GUSS (TS 33.220 5.2.2).
    state = lab.tmp / "ue-u.json"
    boot = _bootstrap(lab, IMPI_U, state, "--gba-u", via_proxy=True)
    assert boot["gba_type"] == "GBA_U"
    ue_keys = _naf_key(state)
    naf = StrictNaf(NAF)
    try:
        lab.bg.run(naf.connect(lab.zn_port))
        aware = lab.bg.run(naf.fetch(boot["btid"], NAF, aware=True))
        unaware = lab.bg.run(naf.fetch(boot["btid"], NAF, aware=False))
    finally:
        lab.bg.run(naf.close())
    assert aware.problems == () and unaware.problems == (), [*aware.problems, *unaware.problems]
    assert aware.result == 2001 and aware.uicc_key is not None
    assert aware.uicc_key.hex() == ue_keys["ks_int_naf"]
    assert aware.me_key is not None and aware.me_key.hex() == ue_keys["ks_ext_naf"]
    assert unaware.uicc_key is None and unaware.me_key == aware.me_key


def test_d_bsf_zn_answers_the_strict_naf(lab: Lab) -> None:
    lab.wait_zh()
    state = lab.tmp / "ue-zn.json"
    boot = _bootstrap(lab, IMPI, state)
    ue_keys = _naf_key(state)
    naf = StrictNaf(NAF)
    try:
        cea = lab.bg.run(naf.connect(lab.zn_port))
        assert _rc(cea) == 2001
        keys = lab.bg.run(naf.fetch(boot["btid"], NAF))
        unknown = lab.bg.run(naf.fetch("AAAAAAAAAAAAAAAAAAAAAA==@bsf.gba.test", NAF))
        assert naf.link is not None
        violations = naf.link.violations
    finally:
        lab.bg.run(naf.close())
    assert violations == [], "\n".join(violations)
    assert keys.result == 2001 and keys.me_key is not None and keys.me_key.hex() == ue_keys["ks_naf"]
    assert keys.uicc_key is None and keys.impi == IMPI
    assert unknown.experimental == 5403 and unknown.result is None and unknown.me_key is None


def test_e_dpr_on_zn_gets_a_plain_dpa_and_the_bsf_closes(lab: Lab) -> None:
    naf = StrictNaf(NAF)
    lab.bg.run(naf.connect(lab.zn_port))
    assert naf.link is not None
    link: Link = naf.link
    try:
        dpa, closed = lab.bg.run(link.disconnect(timeout=5))
    finally:
        lab.bg.run(naf.close())
    assert [a.key for a in dpa.avps] == [(268, 0), (264, 0), (296, 0)], dpa.avps
    assert closed, "the BSF kept the Zn connection open after its DPA (RFC 6733 5.6: Rcv-DPR -> Snd-DPA, Disc)"


def test_dwr_on_zh_and_zn_gets_a_valid_dwa(lab: Lab) -> None:
    lab.wait_zh()
    link = lab.hss.links[-1]
    before = len(link.violations)
    dwa = lab.bg.run(lab.hss.send_dwr(link))
    assert _rc(dwa) == 2001 and link.violations[before:] == [], link.violations[before:]
    naf = StrictNaf(NAF)
    try:
        lab.bg.run(naf.connect(lab.zn_port))
        assert naf.link is not None
        dwr = c.Message(280, c.FLAG_R, 0, 0, 0, [c.utf8(264, NAF), c.utf8(296, "gba.test")])
        before = len(naf.link.violations)
        zn_dwa = lab.bg.run(naf.link.request(dwr))
        seen = naf.link.violations[before:]
    finally:
        lab.bg.run(naf.close())
    assert _rc(zn_dwa) == 2001 and seen == [], seen


def test_e_dpr_on_zh_gets_a_plain_dpa_and_the_bsf_closes(lab: Lab) -> None:
    lab.wait_zh()
    link = lab.hss.links[-1]
    dpa, closed = lab.bg.run(lab.hss.send_dpr(link))
    assert [a.key for a in dpa.avps] == [(268, 0), (264, 0), (296, 0)], dpa.avps
    assert closed, "the BSF kept the Zh connection open after its DPA (RFC 6733 5.6: Rcv-DPR -> Snd-DPA, Disc)"


# (c) our HSS stub against a strict Zh client.

STUB_IMPI = "stub-user@ims.test"


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    tmp = tmp_path_factory.mktemp("strict-stub")
    data = ["--data-dir", str(tmp)]
    r = run_cli(["hss", "add-subscriber", *data, "--impi", STUB_IMPI, "--k", K, "--opc", OPC])
    assert r.returncode == 0, r.stderr
    with gbagw_process(["hss", "serve", *data], tmp, {"GBAGW_HSS_ZH_PORT": "0"}, "hss") as proc:
        yield int(proc.wait_for(r"Zh Diameter on [\d.]+:(\d+)").group(1))


def _mar(ident: Identity, impi: str, extra: list[c.Avp] | None = None) -> c.Message:
    """TS 29.109 4.2 step 1, nothing more: no SIP-Auth-Data-Item for the default scheme (NOTE 3)."""
    avps = [
        c.utf8(263, f"{ident.host};strict;{time.monotonic_ns()}"),
        vsai(APP_ZH),
        c.u32(277, 1),
        c.utf8(264, ident.host),
        c.utf8(296, ident.realm),
        c.utf8(283, "gba.test"),
        c.utf8(1, impi),
        *(extra or []),
    ]
    return c.Message(303, c.FLAG_R | c.FLAG_P, APP_ZH, 0, 0, avps)


def _rc(msg: c.Message) -> int | None:
    rc = msg.find(268)
    return None if rc is None else rc.u32()


def _experimental(msg: c.Message) -> int | None:
    er = msg.find(297)
    return None if er is None else next((m.u32() for m in er.children() if m.key == (298, 0)), None)


def _zh(stub: int, *requests: list[c.Avp] | str) -> tuple[list[c.Message], list[list[str]]]:
    """Connect a strict Zh client to the stub, send one MAR per item (an IMPI, or extra AVPs for the
    subscriber); the answers and the violations seen with each (the CEA's with the first)."""
    bg = Background()
    ident = Identity("bsf.strict.test", "gba.test", APP_ZH)
    try:
        link, cea = bg.run(connect(ident, "127.0.0.1", stub))
        assert _rc(cea) == 2001
        answers: list[c.Message] = []
        seen: list[list[str]] = []
        for r in requests:
            before = len(link.violations) if answers else 0
            mar = _mar(ident, r) if isinstance(r, str) else _mar(ident, STUB_IMPI, r)
            answers.append(bg.run(link.request(mar)))
            seen.append(link.violations[before:])
        bg.run(link.close())
        return answers, seen
    finally:
        bg.stop()


def test_c_hss_stub_maa_is_strictly_valid(stub: int) -> None:
    (maa,), (violations,) = _zh(stub, STUB_IMPI)
    assert violations == [], "\n".join(violations)
    assert _rc(maa) == 2001
    item = maa.find(612, c.VENDOR_3GPP)
    assert item is not None
    members = {a.key: a.data for a in item.children()}
    assert members[(608, c.VENDOR_3GPP)] == b"Digest-AKAv1-MD5" and len(members[(609, c.VENDOR_3GPP)]) == 32
    assert len(members[(625, c.VENDOR_3GPP)]) == 16 and len(members[(626, c.VENDOR_3GPP)]) == 16


def test_c_hss_stub_unknown_impi_is_5401(stub: int) -> None:
    (_, unknown), (_, violations) = _zh(stub, STUB_IMPI, "nobody@ims.test")
    assert _rc(unknown) is None and _experimental(unknown) == 5401, (
        f"TS 29.109 4.2 step 2 / 6.2.2.1: unknown IMPI -> Experimental-Result 5401, got {_experimental(unknown)}"
    )
    assert violations == [], "\n".join(violations)


def test_c_hss_stub_refuses_an_unknown_m_bit_avp_with_5001(stub: int) -> None:
    # SIP-Number-Auth-Items carries the M bit and is not in the Zh MAR ABNF (issue 23 items 2 and 4).
    (odd,), _ = _zh(stub, [c.u32(607, 1, vendor=c.VENDOR_3GPP)])
    assert _rc(odd) == 5001, f"RFC 6733 7.5: unknown M-bit AVP -> 5001 with Failed-AVP, got {_rc(odd)}"
    failed = odd.find(279)
    assert failed is not None and [a.key for a in failed.children()] == [(607, c.VENDOR_3GPP)]
    assert odd.find(612, c.VENDOR_3GPP) is None


def test_e_dpr_to_the_hss_stub_gets_a_plain_dpa_and_a_close(stub: int) -> None:
    bg = Background()
    ident = Identity("bsf.strict.test", "gba.test", APP_ZH)
    try:
        link, _ = bg.run(connect(ident, "127.0.0.1", stub))
        dpa, closed = bg.run(link.disconnect(timeout=5))
        bg.run(link.close())
    finally:
        bg.stop()
    assert [a.key for a in dpa.avps] == [(268, 0), (264, 0), (296, 0)], dpa.avps
    assert closed, "the HSS stub kept the connection open after its DPA (RFC 6733 5.6)"
