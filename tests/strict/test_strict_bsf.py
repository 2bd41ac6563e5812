"""The NAF kit against a strict Zn BSF written from TS 29.109 5.2 and RFC 6733 (issue 23).

(1) ``gbagw naf fetch-key`` routes by the B-TID's realm to the strict BSF and prints the Ks_NAF the
strict BSF derived itself (TS 33.220 Annex B); the CER, BIR and DPR it sent break no rule.
(2) An unknown B-TID (Experimental-Result 5403) is reported as a refusal, exit 3; a B-TID of a realm
without a BSF is refused without any Zn request. (3) ``gbagw naf serve`` authenticates a UE that speaks
Ua HTTP Digest (RFC 2617, written here: username B-TID, password base64(Ks_NAF)) with the key of the strict
BSF. (4) A DPR from the strict BSF gets a DPA of exactly Result-Code/Origin-Host/Origin-Realm, the kit
closes, and the next key request opens a new connection.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.procs import Proc, free_port, gbagw_process, run_cli
from tests.strict import codec as c
from tests.strict.background import Background
from tests.strict.bsf import Context, StrictBsf, naf_key, running
from tests.strict.peer import Identity, connect, vsai
from tests.strict.rules import APP_ZN, check_message

pytestmark = pytest.mark.e2e

KIT = "kit.strict.test"  # the NAF kit's FQDN: its Origin-Host on Zn, and the NAF of `naf serve`
APP = "app.strict.test"  # another NAF FQDN for `naf fetch-key`
UA_HTTP_DIGEST = bytes.fromhex("0100000002")  # TS 33.220 Annex H: Ua security protocol id of 24.109 digest


def test_kdf_matches_the_worked_vector() -> None:
    """TS 33.220 Annex B.3 on the worked example of spec-digest 7 (Milenage set 1, IMPI, NAF FQDN)."""
    ks = bytes.fromhex("b40ba9a3c58b2a05bbf0d987b21bf8cbf769bcd751044604127672711c6d3441")
    rand = bytes.fromhex("23553cbe9637a89d218ae64dae47bf35")
    impi = "001010123456789@ims.mnc001.mcc001.3gppnetwork.org"
    nid = b"naf.example.org" + UA_HTTP_DIGEST
    assert naf_key(ks, rand, impi, nid).hex() == "7a205ce786b14dad6f28d1f8b39d74aba2a172a3c134043bb036912e2036b610"
    assert naf_key(ks, rand, impi, nid, uicc=True).hex() == (
        "3e9f04a7de64efd1db6843a0a5f1c5677b7f7cc3fb7a37b7c53dcb4b2806b19c"
    )
    tls = b"naf.example.org" + bytes.fromhex("01000100AE")
    assert naf_key(ks, rand, impi, tls).hex() == "97949f98ad77c5d61cd5f98280f077cf5ff3615e164c2d4d25a74f8d8f525d9d"


def _context(impi: str, *, gba_u: bool = False, lifetime: int = 3600, gba_type: int | None = None) -> Context:
    rand = os.urandom(16)
    now = int(time.time())
    btid = base64.b64encode(rand).decode() + "@bsf.strict.test"  # TS 33.220 4.5.2: base64(RAND)@BSF name
    return Context(btid, impi, os.urandom(32), rand, now + lifetime, now, gba_u=gba_u, gba_type=gba_type)


@dataclass
class Lab:
    tmp: Path
    bg: Background
    bsf: StrictBsf
    config: Path
    me: Context
    u: Context

    def cli(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        r = run_cli(["naf", *args, "--config", str(self.config), "--data-dir", str(self.tmp)], env)
        return r.returncode, r.stdout, r.stderr

    def wait(self, what: str, done: object, timeout: float = 5) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if callable(done) and done():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; strict BSF saw: {self.bsf.violations}")

    def assert_conformant(self, since: int = 0) -> None:
        """No violation was recorded after the first ``since`` (the count only grows; the list is kept
        per connection, so a new one may sit among older ones: all are shown)."""
        found = self.bsf.violations
        assert len(found) == since, "the NAF kit sent non-conformant Diameter:\n" + "\n".join(found)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("strict-bsf")
    bg = Background()
    bsf = StrictBsf()
    me, u = _context("kit-me@ims.strict.test"), _context("kit-u@ims.strict.test", gba_u=True)
    bsf.contexts = {me.btid: me, u.btid: u}
    port = bg.run(bsf.start())
    # The home realm points at a port nothing listens on: a key for a strict.test B-TID can only come
    # from the strict BSF if the kit routes by the B-TID's realm (TS 29.109 5.2 step 1, 5.3).
    config = tmp / "gbagw.toml"
    config.write_text(
        f"""
[naf]
fqdn = "{KIT}"
realm = "naf.strict.test"
bsf_host = "127.0.0.1"
bsf_port = {free_port()}
bsf_realm = "gba.test"
zn_timeout = 3.0

[[naf.bsf_realms]]
realm = "{bsf.ident.realm}"
host = "127.0.0.1"
port = {port}
"""
    )
    try:
        yield Lab(tmp, bg, bsf, config, me, u)
    finally:
        bg.run(bsf.close())
        bg.stop()


def test_1_fetch_key_gets_the_strict_bsfs_ks_naf(lab: Lab) -> None:
    before_v, before_dpr = len(lab.bsf.violations), len(lab.bsf.received(282))
    rc, out, err = lab.cli("fetch-key", "--btid", lab.me.btid, "--naf-fqdn", APP, "--json")
    assert rc == 0, f"fetch-key failed ({rc}): {err.strip()}; strict BSF saw: {lab.bsf.violations}"
    key = json.loads(out)
    want = naf_key(lab.me.ks, lab.me.rand, lab.me.impi, APP.encode() + UA_HTTP_DIGEST)
    assert key["ks_naf"] == want.hex(), "the kit's Ks_NAF is not the strict BSF's (TS 33.220 Annex B.3)"
    assert key["impi"] == lab.me.impi and key["gba_type"] == "GBA_ME"
    served = lab.bsf.served[-1]
    assert served.btid == lab.me.btid and served.naf_id == APP.encode() + UA_HTTP_DIGEST and not served.aware
    # RFC 6733 5.4: the kit says goodbye with a DPR before it exits.
    lab.wait("the kit's DPR", lambda: len(lab.bsf.received(282)) > before_dpr)
    bir = lab.bsf.received(310)[-1]
    dest_realm = bir.find(283)
    assert dest_realm is not None and dest_realm.data == lab.bsf.ident.realm.encode()
    lab.assert_conformant(before_v)


def test_1_gba_u_aware_kit_gets_both_keys(lab: Lab) -> None:
    before = len(lab.bsf.violations)
    env = {"GBAGW_NAF_GBA_U_AWARE": "true"}
    rc, out, err = lab.cli("fetch-key", "--btid", lab.u.btid, "--naf-fqdn", APP, "--json", env=env)
    assert rc == 0, err
    key = json.loads(out)
    nid = APP.encode() + UA_HTTP_DIGEST
    assert key["gba_type"] == "GBA_U"
    assert key["ks_ext_naf"] == naf_key(lab.u.ks, lab.u.rand, lab.u.impi, nid).hex()
    assert key["ks_int_naf"] == naf_key(lab.u.ks, lab.u.rand, lab.u.impi, nid, uicc=True).hex()
    assert lab.bsf.served[-1].aware, "GBA_U-Awareness-Indicator YES was not sent (TS 29.109 5.2 step 1)"
    lab.assert_conformant(before)


def test_2_unknown_btid_is_a_refusal(lab: Lab) -> None:
    before, served = len(lab.bsf.violations), len(lab.bsf.served)
    rc, _, err = lab.cli("fetch-key", "--btid", "AAAAAAAAAAAAAAAAAAAAAA==@bsf.strict.test", "--naf-fqdn", APP)
    assert rc == 3, f"5403 must be a refusal (exit 3), got {rc}: {err.strip()}"
    assert "5403" in err
    assert [s.code for s in lab.bsf.served[served:]] == [5403]
    lab.assert_conformant(before)


def test_2_a_gba_type_the_kit_does_not_support_is_refused(lab: Lab) -> None:
    # TS 29.109 5.2 step 3: a NAF that gets a GBA-Type it does not support stops (here: 2G GBA, 1).
    ctx = _context("kit-2g@ims.strict.test", gba_type=1)
    lab.bsf.contexts[ctx.btid] = ctx
    before = len(lab.bsf.violations)
    rc, out, err = lab.cli("fetch-key", "--btid", ctx.btid, "--naf-fqdn", APP, "--json")
    assert rc == 3 and out == "", f"a 2G GBA key was accepted ({rc}): {out or err}"
    lab.assert_conformant(before)


def test_2_unknown_realm_is_refused_without_zn(lab: Lab) -> None:
    birs = len(lab.bsf.received(310))
    rc, _, err = lab.cli("fetch-key", "--btid", "AAAAAAAAAAAAAAAAAAAAAA==@bsf.elsewhere.test", "--naf-fqdn", APP)
    assert rc == 3 and "realm" in err, err
    assert len(lab.bsf.received(310)) == birs, "a B-TID of an unknown realm reached a BSF (issue 23 item 6)"


# (3) and (4): the demo NAF, driven by a minimal RFC 2617 client.


@pytest.fixture(scope="module")
def naf(lab: Lab) -> Iterator[tuple[Proc, int]]:
    args = ["naf", "serve", "--config", str(lab.config), "--data-dir", str(lab.tmp)]
    with gbagw_process(args, lab.tmp, {"GBAGW_NAF_PORT": "0"}, "naf") as proc:
        port = int(proc.wait_for(r"demo NAF on http://[\d.]+:(\d+)/").group(1))
        yield proc, port


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _params(header: str) -> dict[str, str]:
    """The auth-params of a Digest challenge or Authentication-Info (RFC 2617 3.2.1, 3.2.3)."""
    body = header.split(" ", 1)[1] if header.lower().startswith("digest ") else header
    return {k.lower(): v1 if v1 else v2 for k, v1, v2 in re.findall(r'(\w+)=(?:"([^"]*)"|([^\s,]+))', body)}


@dataclass
class UaResult:
    status: int
    body: str
    realms: list[str]  # the realm of every challenge met, in order
    rspauth_ok: bool | None


ME_REALM, UICC_REALM = f"3GPP-bootstrapping@{KIT}", f"3GPP-bootstrapping-uicc@{KIT}"


def _ua_get(port: int, btid: str, ks_naf: bytes, ks_int_naf: bytes | None = None, path: str = "/whoami") -> UaResult:
    """GET behind Ua digest (TS 24.109 5.2.2): each 401's challenge is answered with qop=auth and MD5 as
    RFC 2617 3.2.2 computes it, with Ks_(ext_)NAF for the realm 3GPP-bootstrapping@ and Ks_int_NAF for
    3GPP-bootstrapping-uicc@ (until a challenge repeats a realm); rspauth checked (3.2.3)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    keys = {ME_REALM: ks_naf, **({UICC_REALM: ks_int_naf} if ks_int_naf is not None else {})}
    realms: list[str] = []
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read().decode()
        while resp.status == 401:
            ch = _params(resp.getheader("WWW-Authenticate", ""))
            realm = ch.get("realm", "")
            if realm in realms or realm not in keys:
                realms.append(realm)
                break
            realms.append(realm)
            assert "auth" in [q.strip() for q in ch.get("qop", "").split(",")], ch
            password = base64.b64encode(keys[realm]).decode()
            cnonce, nc = os.urandom(8).hex(), "00000001"
            ha1 = _md5(f"{btid}:{realm}:{password}")
            response = _md5(f"{ha1}:{ch['nonce']}:{nc}:{cnonce}:auth:{_md5(f'GET:{path}')}")
            fields = {
                "username": btid,
                "realm": realm,
                "nonce": ch["nonce"],
                "uri": path,
                "response": response,
                "cnonce": cnonce,
                "opaque": ch.get("opaque", ""),
            }
            auth = "Digest " + ", ".join(f'{k}="{v}"' for k, v in fields.items())
            conn.request("GET", path, headers={"Authorization": auth + f", algorithm=MD5, qop=auth, nc={nc}"})
            resp = conn.getresponse()
            body = resp.read().decode()
        rspauth_ok = None
        info = resp.getheader("Authentication-Info")
        if info is not None and resp.status == 200:
            want = _md5(f"{ha1}:{ch['nonce']}:{nc}:{cnonce}:auth:{_md5(f':{path}')}")
            rspauth_ok = _params(info).get("rspauth") == want
        return UaResult(resp.status, body, realms, rspauth_ok)
    finally:
        conn.close()


def test_3_demo_naf_authenticates_a_ua_digest_ue(lab: Lab, naf: tuple[Proc, int]) -> None:
    proc, port = naf
    before = len(lab.bsf.violations)
    ks_naf = naf_key(lab.me.ks, lab.me.rand, lab.me.impi, KIT.encode() + UA_HTTP_DIGEST)
    got = _ua_get(port, lab.me.btid, ks_naf)
    assert got.status == 200, f"Ua digest refused ({got.status}: {got.body.strip()}); NAF log: {proc.logs[-1500:]}"
    assert json.loads(got.body)["impi"] == lab.me.impi
    assert got.rspauth_ok, "Authentication-Info rspauth is not RFC 2617 3.2.3's"
    assert lab.bsf.served[-1].naf_id == KIT.encode() + UA_HTTP_DIGEST
    # A wrong password (another NAF's key) is not accepted.
    other = naf_key(lab.u.ks, lab.u.rand, lab.u.impi, KIT.encode() + UA_HTTP_DIGEST)
    assert _ua_get(port, lab.u.btid, naf_key(lab.u.ks, lab.u.rand, lab.u.impi, APP.encode())).status == 401
    assert _ua_get(port, lab.u.btid, other).status == 200
    # 5403 at the BSF: the UE is challenged again, i.e. told to bootstrap anew (TS 24.109 5.2.2.1).
    unknown = _ua_get(port, "AAAAAAAAAAAAAAAAAAAAAA==@bsf.strict.test", ks_naf)
    assert unknown.status == 401 and unknown.realms == [ME_REALM, ME_REALM], unknown.realms
    lab.assert_conformant(before)


def test_3_demo_naf_stops_using_an_expired_key(lab: Lab, naf: tuple[Proc, int]) -> None:
    # TS 24.109 B.2.1: the BSF gives the NAF the session's expiry; once it passes, the NAF stops using
    # the key and the UE is told to bootstrap again (a fresh 401), whatever the NAF has cached.
    _, port = naf
    ctx = _context("kit-short@ims.strict.test", lifetime=2)
    lab.bsf.contexts[ctx.btid] = ctx
    ks_naf = naf_key(ctx.ks, ctx.rand, ctx.impi, KIT.encode() + UA_HTTP_DIGEST)
    assert _ua_get(port, ctx.btid, ks_naf).status == 200
    time.sleep(max(0.0, ctx.expires - time.time()) + 0.5)
    late = _ua_get(port, ctx.btid, ks_naf)
    assert late.status == 401, f"the NAF served a key past its Key-ExpiryTime ({late.status})"
    assert [s.code for s in lab.bsf.served if s.btid == ctx.btid] == [2001, 5403]


# TS 29.109 Annex A: a <ussList> whose USS asks for the UICC-based key.
USS_UICC = (
    b'<ussList xmlns="urn:3gpp:gba:GBAGUSSSchema-R9:2010-02"><uss id="1" type="1"><uids><uid>sip:kit@strict.test'
    b"</uid></uids><flags/><Extension><keyChoice>UICC-based-key</keyChoice></Extension></uss></ussList>"
)


def test_3_uss_key_choice_decides_the_ua_key(lab: Lab, naf: tuple[Proc, int]) -> None:
    # TS 33.220 4.4.6, 5.3.3; 33.222 5.3 (issue 23 item 15): a USS asking for the UICC-based key admits
    # Ks_int_NAF only. A GBA_U-aware NAF challenges again with the -uicc realm and takes Ks_int_NAF; a
    # NAF that is not GBA_U aware never gets Ks_int_NAF, so it refuses.
    _, plain_port = naf
    ctx = _context("kit-uicc@ims.strict.test", gba_u=True)
    ctx = Context(ctx.btid, ctx.impi, ctx.ks, ctx.rand, ctx.expires, ctx.created, gba_u=True, uss=USS_UICC)
    lab.bsf.contexts[ctx.btid] = ctx
    nid = KIT.encode() + UA_HTTP_DIGEST
    ext, int_ = naf_key(ctx.ks, ctx.rand, ctx.impi, nid), naf_key(ctx.ks, ctx.rand, ctx.impi, nid, uicc=True)
    before = len(lab.bsf.violations)
    refused = _ua_get(plain_port, ctx.btid, ext, int_)
    assert refused.status == 403, f"a NAF without Ks_int_NAF served a UICC-based-key USS ({refused.status})"
    args = ["naf", "serve", "--config", str(lab.config), "--data-dir", str(lab.tmp)]
    env = {"GBAGW_NAF_PORT": "0", "GBAGW_NAF_GBA_U_AWARE": "true"}
    with gbagw_process(args, lab.tmp, env, "naf-aware") as aware:
        port = int(aware.wait_for(r"demo NAF on http://[\d.]+:(\d+)/").group(1))
        me_only = _ua_get(port, ctx.btid, ext)
        both = _ua_get(port, ctx.btid, ext, int_)
    assert me_only.status == 401 and me_only.realms == [ME_REALM, UICC_REALM], me_only.realms
    assert both.status == 200 and both.realms == [ME_REALM, UICC_REALM] and both.rspauth_ok, both
    assert [s.aware for s in lab.bsf.served if s.btid == ctx.btid] == [False, True]
    lab.assert_conformant(before)


def test_4_dpr_from_the_strict_bsf_gets_a_plain_dpa_and_a_close(lab: Lab, naf: tuple[Proc, int]) -> None:
    _, port = naf
    ks_naf = naf_key(lab.me.ks, lab.me.rand, lab.me.impi, KIT.encode() + UA_HTTP_DIGEST)
    if not lab.bsf.open_links():
        assert _ua_get(port, lab.me.btid, ks_naf).status == 200
    links = [link for link in lab.bsf.open_links() if link.received[0].find(264) is not None]
    kit = [link for link in links if link.received[0].find(264).data == KIT.encode()]  # type: ignore[union-attr]
    assert kit, "the demo NAF holds no Zn connection to the strict BSF"
    link = kit[-1]
    before = len(lab.bsf.violations)
    dwa = lab.bg.run(lab.bsf.send_dwr(link))
    assert [a.key for a in dwa.avps][:3] == [(268, 0), (264, 0), (296, 0)], dwa.avps
    dpa, closed = lab.bg.run(lab.bsf.send_dpr(link))
    assert [a.key for a in dpa.avps] == [(268, 0), (264, 0), (296, 0)], (
        f"RFC 6733 5.4.2 / issue 23 item 3: DPA must hold exactly Result-Code, Origin-Host, Origin-Realm: {dpa.avps}"
    )
    assert closed, "the kit kept the Zn connection open after its DPA (RFC 6733 5.6: Rcv-DPR -> Snd-DPA, Disc)"
    lab.assert_conformant(before)
    # The next key the NAF needs goes over a new connection (a new CER) to the same BSF.
    cers = len(lab.bsf.received(257))
    fresh = _context("kit-late@ims.strict.test")
    lab.bsf.contexts[fresh.btid] = fresh
    late = naf_key(fresh.ks, fresh.rand, fresh.impi, KIT.encode() + UA_HTTP_DIGEST)
    assert _ua_get(port, fresh.btid, late).status == 200
    assert len(lab.bsf.received(257)) == cers + 1
    lab.assert_conformant(before)


# The strict BSF itself: its refusals, on hand-built BIRs (these test the checker, not the product).


def _bir(*extra: c.Avp, realm: str = "strict.test", drop: int | None = None, flags: int = 0) -> c.Message:
    btid = "AAAAAAAAAAAAAAAAAAAAAA==@bsf.strict.test"
    avps = [
        c.utf8(263, "probe.strict.test;1;2"),
        vsai(APP_ZN),
        c.u32(277, 1),
        c.utf8(264, "probe.strict.test"),
        c.utf8(296, "strict.test"),
        c.utf8(283, realm),
        c.avp(401, btid.encode(), vendor=c.VENDOR_3GPP),
        c.avp(402, APP.encode() + UA_HTTP_DIGEST, vendor=c.VENDOR_3GPP),
        *extra,
    ]
    if drop is not None:
        avps = [a for a in avps if a.code != drop]
    return c.Message(310, c.FLAG_R | c.FLAG_P | flags, APP_ZN, 0, 0, avps)


def _probe(*birs: c.Message) -> tuple[list[c.Message], list[str]]:
    """The strict BSF's answers to hand-built BIRs, and the violations it recorded."""

    async def go() -> tuple[list[c.Message], list[str]]:
        bsf = StrictBsf()
        async with running(bsf) as port:
            link, cea = await connect(Identity("probe.strict.test", "strict.test", APP_ZN), "127.0.0.1", port)
            assert cea.find(268) is not None and cea.find(268).u32() == 2001  # type: ignore[union-attr]
            answers = [await link.request(b) for b in birs]
            await link.close()
            return answers, bsf.violations

    bg = Background()
    try:
        return bg.run(go())
    finally:
        bg.stop()


def _code(msg: c.Message) -> int | None:
    rc = msg.find(268)
    if rc is not None:
        return rc.u32()
    er = msg.find(297)
    return None if er is None else next((m.u32() for m in er.children() if m.key == (298, 0)), None)


def test_strict_bsf_refuses_what_rfc_6733_names() -> None:
    answers, seen = _probe(
        _bir(),
        _bir(c.u32(607, 1, vendor=c.VENDOR_3GPP)),  # an M-bit AVP the BIR ABNF does not name
        _bir(drop=402),  # no {NAF-Id}
        _bir(c.avp(401, b"x@bsf.strict.test", vendor=c.VENDOR_3GPP)),  # two Transaction-Identifiers
        _bir(c.utf8(263, "again")),  # two Session-Ids
        _bir(realm="elsewhere.test"),
        _bir(c.avp(402, b"x", vendor=c.VENDOR_3GPP, m=False)),  # NAF-Id without its M bit
    )
    codes = [_code(a) for a in answers]
    assert codes == [5403, 5001, 5005, 5009, 5009, 3003, 3009], codes
    failed = [a.find(279) for a in answers[1:5]]
    assert [f.children()[0].key if f else None for f in failed] == [
        (607, c.VENDOR_3GPP),
        (402, c.VENDOR_3GPP),
        (401, c.VENDOR_3GPP),
        (263, 0),
    ]
    assert all(a.flags & c.FLAG_E for a in answers[5:]) and not any(a.flags & c.FLAG_E for a in answers[:5])
    for a in answers:
        assert check_message(a.encode()) == [], check_message(a.encode())
    assert not any("8.8" in v for v in seen), seen


def test_strict_bsf_records_a_session_id_not_led_by_the_sender() -> None:
    bir = _bir()
    bir.avps[0] = c.utf8(263, "someone.else;1;2")
    (answer,), seen = _probe(bir)
    assert _code(answer) == 5403
    assert any("RFC 6733 8.8" in v for v in seen), seen
