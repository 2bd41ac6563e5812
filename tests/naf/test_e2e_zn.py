"""Zn and Ua end to end: `gbagw hss serve` + `gbagw bsf serve` + `gbagw naf serve` as real processes."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from OpenSSL import SSL

from gba import digest, kdf, onem2m, pki, ue
from gba.ua import KeyKind, answer_challenge, digest_password, psk_identity
from gbagw.ue_client import bootstrap
from gbaio import logs
from gbaio.tls import TlsError, cert_context, install_client_psk
from gbaio.tls import handshake as tls_handshake
from gbaio.tls import tls12_context as tls_context
from naf.config import BsfRoute, NafConfig
from naf.tls_psk import PskClient, PskHandshakeError, PskServer
from naf.zn_client import NafKey, ZnClient, ZnKeySource, ZnNoRoute, ZnRefused
from naf.zn_http_clients import create_zn_client
from tests.conformance.zn_http_tap import ZnHttpTap, zn_http_tap
from tests.pcaptool import decode_with_tshark
from tests.pki_files import write_pair
from tests.procs import Proc, free_port, gbagw_process, run_cli, tshark_capture

pytestmark = pytest.mark.e2e

K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OPC = "cd63cb71954a9f4e48a5994e37a02baf"
IMPI = "001010123456789@ims.mnc001.mcc001.3gppnetwork.org"
IMPI_U = "gba-u@ims.test"
IMPI_SHORT = "short-lived@ims.test"
GUSS_U = (
    b'<guss xmlns="urn:3gpp:gba:GBAGUSSSchema-R9:2010-02"><bsfInfo><uiccType>GBA_U</uiccType></bsfInfo><ussList>'
    b'<uss id="1000001" type="0" nafGroup="default"><uids><uid>sip:u@ims.test</uid></uids><flags/></uss>'
    b'<uss id="1000001" type="0" nafGroup="other"><uids><uid>sip:other@ims.test</uid></uids><flags/></uss>'
    b'<uss id="1000002" type="0"><uids/><flags/></uss>'  # no public identity: no Nbsp_GBA form
    b"</ussList></guss>"
)
GUSS_SHORT = b"<guss><bsfInfo><lifeTime>2</lifeTime></bsfInfo><ussList/></guss>"
API_PREFIX = "/operator/bsf-1"  # the path part of the Nbsp_GBA {apiRoot} (TS 29.501 4.4.1)
CONFIG = f"""
[bsf]
zn_port = 0
ub_port = 0
sbi_api_prefix = "{API_PREFIX}"

[[bsf.nafs]]
fqdn = "naf.gba.test"
diameter_host = "naf.gba.test"
group = "default"

[[bsf.nafs]]
fqdn = "naf-u.gba.test"
diameter_host = "naf-u.gba.test"
group = "default"

[[bsf.nafs]]
fqdn = "strict.gba.test"
diameter_host = "strict.gba.test"
required_gsids = ["777"]

[[bsf.nafs]]
fqdn = "anon.gba.test"
diameter_host = "anon.gba.test"
send_impi = false

[[bsf.nafs]]
fqdn = "limited.gba.test"
diameter_host = "limited.gba.test"
group = "default"
allowed_gsids = [1000001]
"""


class Lab:
    def __init__(self, tmp: Path, ub: str, zn_port: int, naf_url: str, bsf: Proc, sbi: int, soap: int) -> None:
        self.tmp, self.ub, self.zn_port, self.naf_url, self.bsf = tmp, ub, zn_port, naf_url, bsf
        self.sbi_url, self.soap_url = f"http://127.0.0.1:{sbi}{API_PREFIX}", f"http://127.0.0.1:{soap}/GBAService"

    def zn(self, fqdn: str = "naf.gba.test", gba_u_aware: bool = False, via: str = "diameter") -> ZnKeySource:
        cfg = NafConfig(
            fqdn=fqdn,
            bsf_port=self.zn_port,
            gba_u_aware=gba_u_aware,
            zn_via=via,
            sbi_url=self.sbi_url,
            soap_url=self.soap_url,
        )
        return create_zn_client(cfg)

    async def fetch(
        self,
        btid: str,
        naf_id: kdf.NafId,
        host: str = "naf.gba.test",
        aware: bool = False,
        gsids: tuple[str, ...] = (),
        via: str = "diameter",
    ) -> NafKey:
        client = self.zn(host, aware, via)
        try:
            return await client.fetch_key(btid, naf_id, gsids)
        finally:
            await client.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("zn")
    cfg = tmp / "gbagw.toml"
    cfg.write_text(CONFIG)
    common = ["--config", str(cfg), "--data-dir", str(tmp)]
    for impi, guss in ((IMPI, None), (IMPI_U, GUSS_U), (IMPI_SHORT, GUSS_SHORT)):
        extra = []
        if guss is not None:
            (tmp / f"{impi}.xml").write_bytes(guss)
            extra = ["--guss", str(tmp / f"{impi}.xml")]
        r = run_cli(["hss", "add-subscriber", *common, "--impi", impi, "--k", K, "--opc", OPC, *extra])
        assert r.returncode == 0, r.stderr
    hss_port = free_port()
    env = {"GBAGW_HSS_ZH_PORT": str(hss_port), "GBAGW_BSF_HSS_PORT": str(hss_port)}
    with gbagw_process(["hss", "serve", *common], tmp, env, "hss") as hss:
        hss.wait_for("Zh Diameter on")
        with gbagw_process(["bsf", "serve", *common], tmp, env, "bsf") as bsf:
            ub = bsf.wait_for(r"Ub on (http://\S+/)").group(1)
            zn_port = int(bsf.wait_for(r"Zn Diameter on [\d.]+:(\d+)").group(1))
            http = bsf.wait_for(r"Zn Nbsp_GBA on [\d.]+:(\d+), Zn SOAP on [\d.]+:(\d+)")
            naf_env = {**env, "GBAGW_NAF_PORT": "0", "GBAGW_NAF_BSF_PORT": str(zn_port)}
            with gbagw_process(["naf", "serve", *common], tmp, naf_env, "naf") as naf:
                naf_url = naf.wait_for(r"demo NAF on (http://\S+/)").group(1)
                yield Lab(tmp, ub, zn_port, naf_url, bsf, int(http.group(1)), int(http.group(2)))
                assert hss.popen.poll() is None and naf.popen.poll() is None


@pytest.fixture(autouse=True)
def zn_tap(monkeypatch: pytest.MonkeyPatch) -> Iterator[ZnHttpTap]:
    """Every SOAP and Nbsp_GBA message the NAF kit and the BSF exchange in these tests is checked against
    TS 29.109 Annex D / TS 29.309 (tests/conformance)."""
    with zn_http_tap(monkeypatch) as tap:
        yield tap


def _ue(impi: str = IMPI, mode: ue.UeMode = ue.UeMode.GBA_ME) -> ue.UeClient:
    return ue.UeClient(ue.Usim(bytes.fromhex(K), bytes.fromhex(OPC)), impi, "bsf.gba.test", mode=mode)


DIGEST_NAF = kdf.NafId("naf.gba.test", kdf.UaProtocol.HTTP_DIGEST)


async def test_ua_digest_with_the_demo_naf(lab: Lab) -> None:
    boot = await bootstrap(lab.ub, _ue())
    ks_naf, _ = boot.naf_keys(DIGEST_NAF)
    async with aiohttp.ClientSession() as s:
        async with s.get(lab.naf_url + "hello") as r:
            assert r.status == 401
            www = r.headers["WWW-Authenticate"]
        assert 'realm="3GPP-bootstrapping@naf.gba.test"' in www
        cred = answer_challenge(www, boot.btid, ks_naf, method="GET", uri="/hello")
        async with s.get(lab.naf_url + "hello", headers={"Authorization": cred.to_header()}) as r:
            body = await r.read()
            assert r.status == 200, body
            info = digest.AuthenticationInfo.parse(r.headers["Authentication-Info"])
            assert digest.responses_equal(cred.expected_rspauth(digest_password(ks_naf), body), info.rspauth)
            assert (await r.json())["impi"] == IMPI
        # A wrong key gets a fresh challenge, not the resource.
        bad = answer_challenge(www, boot.btid, bytes(32), method="GET", uri="/hello")
        async with s.get(lab.naf_url + "hello", headers={"Authorization": bad.to_header()}) as r:
            assert r.status == 401
    # The NAF's key came over Zn; the UE's local derivation equals the BIA's ME-Key-Material.
    key = await lab.fetch(boot.btid, DIGEST_NAF)
    assert key.me_key == ks_naf and key.uicc_key is None and key.impi == IMPI
    assert key.expires == boot.lifetime


async def test_unknown_btid_asks_the_ue_to_bootstrap(lab: Lab) -> None:
    btid = "AAAAAAAAAAAAAAAAAAAAAA==@bsf.gba.test"
    async with aiohttp.ClientSession() as s:
        async with s.get(lab.naf_url) as r:
            www = r.headers["WWW-Authenticate"]
        cred = answer_challenge(www, btid, bytes(32), method="GET", uri="/")
        async with s.get(lab.naf_url, headers={"Authorization": cred.to_header()}) as r:
            assert r.status == 401 and "3GPP-bootstrapping@naf.gba.test" in r.headers["WWW-Authenticate"]
            assert "bootstrapping required" in await r.text()


async def test_gba_u_keys_and_uss(lab: Lab) -> None:
    boot = await bootstrap(lab.ub, _ue(IMPI_U, ue.UeMode.GBA_U))
    naf_id = kdf.NafId("naf-u.gba.test", kdf.UaProtocol.HTTP_DIGEST)
    ext, internal = boot.naf_keys(naf_id)
    aware = await lab.fetch(boot.btid, naf_id, "naf-u.gba.test", aware=True, gsids=("1000001",))
    assert aware.me_key == ext and aware.uicc_key == internal and internal is not None
    assert [u.uids for u in aware.uss] == [("sip:u@ims.test",)]  # only the USS of the NAF's group
    unaware = await lab.fetch(boot.btid, naf_id, "naf-u.gba.test", aware=False)
    assert unaware.me_key == ext and unaware.uicc_key is None and unaware.uss == ()


INTRUDER = kdf.NafId("intruder.gba.test", kdf.UaProtocol.HTTP_DIGEST)


async def test_zn_refusals(lab: Lab) -> None:
    boot = await bootstrap(lab.ub, _ue())
    cases = [
        ("AAAAAAAAAAAAAAAAAAAAAA==@bsf.gba.test", DIGEST_NAF, "naf.gba.test", 5403),  # unknown B-TID
        ("not a b-tid@bsf.gba.test", DIGEST_NAF, "naf.gba.test", 5403),
        (boot.btid, INTRUDER, "intruder.gba.test", 5402),
        # Issue 27 class 10: an unconfigured NAF learns nothing of whether a B-TID exists (was 5403 here).
        ("AAAAAAAAAAAAAAAAAAAAAA==@bsf.gba.test", INTRUDER, "intruder.gba.test", 5402),
        (boot.btid, kdf.NafId("naf-u.gba.test", kdf.UaProtocol.HTTP_DIGEST), "naf.gba.test", 5402),  # other FQDN
        (boot.btid, kdf.NafId("strict.gba.test", kdf.UaProtocol.HTTP_DIGEST), "strict.gba.test", 5402),  # no USS
    ]
    for btid, naf_id, host, code in cases:
        with pytest.raises(ZnRefused) as exc:
            await lab.fetch(btid, naf_id, host)
        assert exc.value.code == code, (btid, naf_id, host)
    anon = await lab.fetch(boot.btid, kdf.NafId("anon.gba.test", kdf.UaProtocol.HTTP_DIGEST), "anon.gba.test")
    assert anon.impi is None and len(anon.me_key) == 32
    logs = (lab.tmp / "bsf.stderr.log").read_text()
    assert "is not an authorized NAF" in logs and "may not ask for keys for FQDN" in logs and "required USS 777" in logs


async def test_expired_btid(lab: Lab) -> None:
    boot = await bootstrap(lab.ub, _ue(IMPI_SHORT))
    naf_id = kdf.NafId("naf.gba.test", kdf.UaProtocol.HTTP_DIGEST)
    assert (await lab.fetch(boot.btid, naf_id)).me_key == boot.naf_keys(naf_id)[0]
    await asyncio.sleep(2.5)
    with pytest.raises(ZnRefused) as exc:
        await lab.fetch(boot.btid, naf_id)
    assert exc.value.code == 5403


async def test_tls_psk_ua_handshake(lab: Lab, tmp_path: Path) -> None:
    """TS 33.222 5.4: the UE offers PSK and certificate suites (step 1), the PSK is the key for
    NAF_Id = FQDN || 01 00 01 yy zz of the suite the NAF chose, and an identity prefix must be one of the
    hints the NAF offered (step 3). oneM2M bare KmIDs use one Ua id whatever the suite (gba.onem2m)."""
    boot = await bootstrap(lab.ub, _ue())
    loop = asyncio.get_running_loop()
    zn = lab.zn()
    assert isinstance(zn, ZnClient)
    asked: list[kdf.NafId] = []

    def lookup(kind: KeyKind, btid: str, naf_id: kdf.NafId) -> bytes | None:
        asked.append(naf_id)
        try:
            return asyncio.run_coroutine_threadsafe(zn.fetch_key(btid, naf_id), loop).result(10).me_key
        except ZnRefused:
            return None

    suites = ("PSK-AES128-GCM-SHA256", "PSK-AES128-CBC-SHA256")
    server = PskServer("naf.gba.test", lookup, suites, onem2m_ua_id=onem2m.UA_ID_DEFAULT)

    def run(connect: Callable[[socket.socket], SSL.Connection]) -> tuple[bytes | None, str | None]:
        a, b = socket.socketpair()
        result: dict[str, object] = {}

        def serve() -> None:
            try:
                sess = server.accept(a)
                result["btid"] = sess.btid
                sess.conn.sendall(sess.conn.recv(100).upper())
            except PskHandshakeError as exc:
                result["error"] = str(exc)
            finally:
                a.close()

        t = threading.Thread(target=serve)
        t.start()
        try:
            conn = connect(b)
            conn.sendall(b"ping")
            reply: bytes | None = conn.recv(100)
        except (PskHandshakeError, TlsError, SSL.Error):
            reply = None
        finally:
            b.close()
            t.join(15)
        return reply, result.get("btid")  # type: ignore[return-value]

    def handshake(key_for: Callable[[kdf.NafId], bytes], **options: Any) -> tuple[bytes | None, str | None]:
        client = PskClient("naf.gba.test", boot.btid, key_for, **options)
        reply = run(client.connect)
        assert reply[0] is None or client.hint == b"3GPP-bootstrapping"
        return reply

    def me_key(naf_id: kdf.NafId) -> bytes:
        return boot.naf_keys(naf_id)[0]

    try:
        for offered, code in ((suites[1:], "00ae"), (suites[:1], "00a8")):
            asked.clear()
            reply, btid = await asyncio.to_thread(handshake, me_key, suites=offered)
            assert reply == b"PING" and btid == boot.btid
            assert asked == [kdf.NafId("naf.gba.test", bytes.fromhex("010001" + code))]
        # oneM2M MAF handshakes send the bare KmID (= B-TID): one Ua id (profile) for every suite.
        for offered in (suites[:1], suites[1:]):
            asked.clear()
            reply, _ = await asyncio.to_thread(handshake, me_key, suites=offered, onem2m_ua_id=onem2m.UA_ID_DEFAULT)
            assert reply == b"PING" and asked == [kdf.NafId("naf.gba.test", bytes(5))]
        # PSK derived for the HTTP digest Ua id instead of TLS (01 00 01 yy zz): wrong key, no session.
        reply, btid = await asyncio.to_thread(handshake, lambda _naf_id: me_key(DIGEST_NAF))
        assert reply is None and btid is None

        # A client that ignores the hint and sends the -uicc prefix the NAF did not offer: refused before Zn.
        def uicc_identity(sock: socket.socket) -> SSL.Connection:
            ctx = tls_context(suites[1])
            handle = install_client_psk(ctx, lambda _hint: (psk_identity(boot.btid, KeyKind.UICC), bytes(32)))
            conn = SSL.Connection(ctx, sock)
            conn.set_connect_state()
            conn.set_app_data(handle)
            tls_handshake(conn)
            return conn

        asked.clear()
        assert await asyncio.to_thread(run, uicc_identity) == (None, None) and asked == []
    finally:
        await zn.close()

    # Step 1: certificate suites are offered too; a NAF that picks one must prove its name with a
    # certificate the UE can verify, else no session (never an unauthenticated one).
    ca = pki.make_ca()
    cert, key = write_pair(tmp_path, "naf.gba.test", ca)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    probe = PskClient("naf.gba.test", boot.btid, me_key)
    offered_names = SSL.Connection(probe.context, None).get_cipher_list()
    assert "PSK-AES128-CBC-SHA256" in offered_names and "ECDHE-ECDSA-AES128-GCM-SHA256" in offered_names
    cert_ctx = cert_context("ECDHE-ECDSA-AES128-GCM-SHA256", cert, key, tmp_path / "ca.pem", require_peer=False)

    def cert_naf(ca_file: Path | None) -> str:
        a, b = socket.socketpair()

        def serve() -> None:
            conn = SSL.Connection(cert_ctx, a)
            conn.set_accept_state()
            try:
                tls_handshake(conn)
                conn.sendall(b"hi")
            except (TlsError, SSL.Error):
                pass
            finally:
                a.close()

        t = threading.Thread(target=serve)
        t.start()
        try:
            conn = PskClient("naf.gba.test", boot.btid, me_key, ca=ca_file).connect(b)
            return str(conn.get_cipher_name())
        except PskHandshakeError as exc:
            return str(exc)
        finally:
            b.close()
            t.join(15)

    assert "could not be verified for naf.gba.test" in await asyncio.to_thread(cert_naf, None)
    assert await asyncio.to_thread(cert_naf, tmp_path / "ca.pem") == "ECDHE-ECDSA-AES128-GCM-SHA256"


async def test_tshark_decodes_live_zn_capture(lab: Lab, tmp_path: Path) -> None:
    boot = await bootstrap(lab.ub, _ue(IMPI_U, ue.UeMode.GBA_U))
    pcap = tmp_path / "zn.pcap"
    naf_id = kdf.NafId("naf-u.gba.test", kdf.UaProtocol.HTTP_DIGEST)
    with tshark_capture(lab.zn_port, pcap):
        await lab.fetch(boot.btid, naf_id, "naf-u.gba.test", aware=True, gsids=("1000001",))
        with pytest.raises(ZnRefused):
            await lab.fetch("AAAAAAAAAAAAAAAAAAAAAA==@bsf.gba.test", naf_id, "naf-u.gba.test")
    avps, problems = decode_with_tshark(pcap, lab.zn_port)
    assert problems == []
    assert avps and all("Unknown" not in a.name for a in avps)
    seen = {(a.code, a.vendor): a.flags for a in avps}
    for code in (400, 401, 402, 403, 404, 405, 406, 407, 408):
        assert seen.get((code, 10415)) == 0xC0, code
    assert (410, 10415) not in seen  # GBA-Type: only if other than 3G GBA (TS 29.109 5.2 step 3)
    assert (297, 0) in seen


def test_fetch_key_cli(lab: Lab) -> None:
    boot = asyncio.run(bootstrap(lab.ub, _ue()))
    env = {"GBAGW_NAF_BSF_PORT": str(lab.zn_port)}
    r = run_cli(["naf", "fetch-key", "--btid", boot.btid, "--naf-fqdn", "naf.gba.test", "--json"], env=env)
    assert r.returncode == 0, r.stderr
    assert boot.naf_keys(DIGEST_NAF)[0].hex() in r.stdout and IMPI in r.stdout
    r = run_cli(
        ["naf", "fetch-key", "--btid", "AAAAAAAAAAAAAAAAAAAAAA==@bsf.gba.test", "--naf-fqdn", "naf.gba.test"], env=env
    )
    assert r.returncode == 3 and "5403 (DIAMETER_ERROR_TRANSACTION_IDENTIFIER_INVALID" in r.stderr
    assert "the UE must bootstrap again" in r.stderr
    r = run_cli(
        ["naf", "fetch-key", "--btid", boot.btid, "--naf-fqdn", "naf.gba.test"],
        env={"GBAGW_NAF_BSF_PORT": str(free_port())},
    )
    assert r.returncode == 4


def test_no_key_material_in_logs(lab: Lab) -> None:
    boot = asyncio.run(bootstrap(lab.ub, _ue()))
    naf_key = boot.naf_keys(DIGEST_NAF)[0]
    asyncio.run(lab.fetch(boot.btid, DIGEST_NAF))
    logs = "".join(f.read_text() for f in lab.tmp.glob("*.stderr.log"))
    assert "zn/diameter: naf.gba.test for naf.gba.test" in logs
    import base64

    for secret in (boot.ks, naf_key, bytes.fromhex(K), bytes.fromhex(OPC)):
        assert secret.hex() not in logs.lower() and base64.b64encode(secret).decode() not in logs


def test_ue_cli_bootstrap_then_ua_get(lab: Lab) -> None:
    state = lab.tmp / "ue-cli.json"
    creds = ["--impi", IMPI, "--k", K, "--opc", OPC]
    r = run_cli(["ue", "bootstrap", "--bsf", lab.ub, *creds, "--state", str(state)])
    assert r.returncode == 0, r.stderr
    r = run_cli(
        ["ue", "ua-get", "--state", str(state), "--url", lab.naf_url + "hello?x=1", "--naf-fqdn", "naf.gba.test"]
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["impi"] == IMPI and r.stdout.endswith("}\n")  # the demo NAF's answer, a line
    assert oct(state.stat().st_mode & 0o777) == "0o600"  # the state file holds Ks
    # A second bootstrap replaces the state whole (write, then rename): the USIM's SQN moved on.
    first = json.loads(state.read_text())
    r = run_cli(["ue", "bootstrap", "--bsf", lab.ub, *creds, "--state", str(state)])
    assert r.returncode == 0, r.stderr
    second = json.loads(state.read_text())
    assert second["bootstrap"]["btid"] != first["bootstrap"]["btid"] and max(second["seq_ms"]) > max(first["seq_ms"])
    assert [p.name for p in lab.tmp.glob("ue-cli.json*")] == ["ue-cli.json"]


def test_onem2m_km_over_gba_is_one_profile_at_enrolee_and_maf(lab: Lab) -> None:
    """TS-0003 8.3.2.3: Km = Ks_NAF for NAF_Id = MAF-FQDN || Ua id. No Ua id is registered for oneM2M
    (TS 33.220 Annex H), so both ends take the profile's (default 0000000000, one for every suite)."""
    state = lab.tmp / "enrolee.json"
    r = run_cli(["ue", "bootstrap", "--bsf", lab.ub, "--impi", IMPI, "--k", K, "--opc", OPC, "--state", str(state)])
    assert r.returncode == 0, r.stderr
    kms = []
    for ua_id in ("", "ff00000001"):
        enrolee_args = ["--onem2m-ua-id", ua_id] if ua_id else []
        r = run_cli(
            [
                "enrolee",
                "gba-km",
                "--state",
                str(state),
                "--maf",
                "naf.gba.test",
                "--show-keys",
                "--json",
                *enrolee_args,
            ]
        )
        assert r.returncode == 0, r.stderr
        enrolee = json.loads(r.stdout)
        assert enrolee["ua_id"] == (ua_id or "0000000000")
        env = {"GBAGW_NAF_BSF_PORT": str(lab.zn_port), **({"GBAGW_NAF_ONEM2M_UA_ID": ua_id} if ua_id else {})}
        cmd = ["naf", "fetch-key", "--btid", enrolee["kmid"], "--naf-fqdn", "naf.gba.test", "--onem2m", "--json"]
        r = run_cli(cmd, env=env)
        assert r.returncode == 0, r.stderr
        maf = json.loads(r.stdout)
        assert maf["kmid"] == enrolee["kmid"] and maf["ks_naf"] == enrolee["km"]
        kms.append(enrolee["km"])
    assert kms[0] != kms[1]


VIAS = ("diameter", "sbi", "soap")


async def test_all_zn_flavours_give_the_same_keys(lab: Lab, zn_tap: ZnHttpTap) -> None:
    boot = await bootstrap(lab.ub, _ue(IMPI_U, ue.UeMode.GBA_U))
    naf_id = kdf.NafId("naf-u.gba.test", kdf.UaProtocol.HTTP_DIGEST)
    ext, internal = boot.naf_keys(naf_id)
    keys = {via: await lab.fetch(boot.btid, naf_id, "naf-u.gba.test", True, ("1000001",), via) for via in VIAS}
    for via, key in keys.items():
        assert key.me_key == ext and key.uicc_key == internal, via
        assert key.impi == IMPI_U and key.expires == boot.lifetime, via
        assert [u.uids for u in key.uss] == [("sip:u@ims.test",)], via
    unaware = await lab.fetch(boot.btid, naf_id, "naf-u.gba.test", False, (), "sbi")
    assert unaware.uicc_key is None and unaware.me_key == ext
    assert zn_tap.soap == 2 and zn_tap.sbi == 4  # the tap saw (and checked) each request and answer


@pytest.mark.parametrize("via", VIAS)
async def test_the_bsf_logs_each_zn_lookup_under_the_id_the_naf_sent(lab: Lab, via: str) -> None:
    """After a lookup, the NAF's events carry peer_rid = the lookup's Session-Id or X-Request-Id, and the
    BSF's decision event has it as its rid: one grep joins the NAF's log to the BSF's."""
    boot = await bootstrap(lab.ub, _ue())
    logs.begin_request("ua-request")
    await lab.fetch(boot.btid, DIGEST_NAF, via=via)
    sent = logs.peer_request_id.get()
    assert sent.startswith("naf.gba.test;")
    events = [json.loads(line) for line in (lab.tmp / "bsf.stderr.log").read_text().splitlines()]
    (decision,) = [e for e in events if e.get("rid") == sent]
    assert (
        decision["msg"]
        == f"zn/{via}: naf.gba.test for naf.gba.test btid={boot.btid}: authorized (group default, 0 USS, uicc=False)"
    )


@pytest.mark.parametrize("via", VIAS)
async def test_zn_goes_to_the_bsf_of_the_btid_realm(lab: Lab, via: str) -> None:
    """TS 29.109 5.2/5.3, 33.220 Annex K: a NAF whose home BSF is elsewhere (a closed port here) reaches
    the BSF of the B-TID's realm (bsf.gba.test is in gba.test) through naf.bsf_realms, whatever the flavour;
    a B-TID of a realm nobody configured is refused without any Zn request."""
    boot = await bootstrap(lab.ub, _ue())
    closed = free_port()
    cfg = NafConfig(
        bsf_realm="home.test",
        bsf_port=closed,
        sbi_url=f"http://127.0.0.1:{closed}",
        soap_url=f"http://127.0.0.1:{closed}/GBAService",
        zn_via=via,
        bsf_realms=(BsfRoute("gba.test", "127.0.0.1", lab.zn_port, lab.sbi_url, lab.soap_url),),
    )
    client = create_zn_client(cfg)
    try:
        key = await client.fetch_key(boot.btid, DIGEST_NAF)
        assert key.me_key == boot.naf_keys(DIGEST_NAF)[0]
        with pytest.raises(ZnNoRoute, match="no BSF is configured for its realm"):
            await client.fetch_key("AAAAAAAAAAAAAAAAAAAAAA==@bsf.elsewhere.test", DIGEST_NAF)
    finally:
        await client.close()


@pytest.mark.parametrize("via", ["sbi", "soap"])
async def test_http_zn_refusals(lab: Lab, via: str) -> None:
    boot = await bootstrap(lab.ub, _ue())
    cases = [
        ("AAAAAAAAAAAAAAAAAAAAAA==@bsf.gba.test", "naf.gba.test", 5403),
        (boot.btid, "intruder.gba.test", 5402),
        (boot.btid, "strict.gba.test", 5402),
    ]
    for btid, fqdn, code in cases:
        with pytest.raises(ZnRefused) as exc:
            await lab.fetch(btid, kdf.NafId(fqdn, kdf.UaProtocol.HTTP_DIGEST.value), fqdn, via=via)
        assert exc.value.code == code, (via, fqdn)


@pytest.mark.parametrize("via", VIAS)
async def test_per_naf_uss_authorization(lab: Lab, via: str) -> None:
    """TS 29.109 5.2 step 2, TS 33.220 4.4.6: a NAF asking for a GSID outside bsf.nafs[].allowed_gsids gets
    5402 (403 on Nbsp_GBA, a 5402 fault on SOAP); a NAF in no group gets no USS of a NAF group."""
    boot = await bootstrap(lab.ub, _ue(IMPI_U, ue.UeMode.GBA_U))
    limited = kdf.NafId("limited.gba.test", kdf.UaProtocol.HTTP_DIGEST)
    key = await lab.fetch(boot.btid, limited, "limited.gba.test", gsids=("1000001",), via=via)
    assert [u.uids for u in key.uss] == [("sip:u@ims.test",)]
    with pytest.raises(ZnRefused) as exc:
        await lab.fetch(boot.btid, limited, "limited.gba.test", gsids=("1000001", "777"), via=via)
    assert exc.value.code == 5402
    anon = kdf.NafId("anon.gba.test", kdf.UaProtocol.HTTP_DIGEST)
    assert (await lab.fetch(boot.btid, anon, "anon.gba.test", gsids=("1000001",), via=via)).uss == ()


@pytest.mark.parametrize("via", VIAS)
async def test_a_uss_without_public_identity(lab: Lab, via: str) -> None:
    """Diameter and SOAP carry it as it is; Nbsp_GBA's Uss needs ueIds (TS 29.309), so the BSF leaves it
    out there rather than invent an empty ueId."""
    boot = await bootstrap(lab.ub, _ue(IMPI_U, ue.UeMode.GBA_U))
    naf_id = kdf.NafId("naf-u.gba.test", kdf.UaProtocol.HTTP_DIGEST)
    key = await lab.fetch(boot.btid, naf_id, "naf-u.gba.test", gsids=("1000002",), via=via)
    assert [(u.gsid, u.uids) for u in key.uss] == ([] if via == "sbi" else [("1000002", ())])


async def test_nbsp_gba_is_served_under_the_configured_api_root_only(lab: Lab) -> None:
    boot = await bootstrap(lab.ub, _ue())
    body = {"btId": boot.btid, "nafId": {"nafFqdn": "naf.gba.test", "uaSecProtId": "0100000002"}}
    async with httpx.AsyncClient(http1=False, http2=True) as h2:
        bare = lab.sbi_url.removesuffix(API_PREFIX) + "/nbsp-gba/v1/bootstrapping-info-retrieval"
        assert (await h2.post(bare, json=body)).status_code == 404
        assert (await h2.post(lab.sbi_url + "/nbsp-gba/v1/bootstrapping-info-retrieval", json=body)).status_code == 200


async def test_nbsp_gba_speaks_http2_and_http11(lab: Lab) -> None:
    boot = await bootstrap(lab.ub, _ue())
    body = {"btId": boot.btid, "nafId": {"nafFqdn": "naf.gba.test", "uaSecProtId": "0100000002"}}
    url = lab.sbi_url + "/nbsp-gba/v1/bootstrapping-info-retrieval"
    async with httpx.AsyncClient(http1=False, http2=True) as h2:  # h2c with prior knowledge
        r = await h2.post(url, json=body)
        assert r.http_version == "HTTP/2" and r.status_code == 200
        assert r.json()["meKeyMaterial"] == boot.naf_keys(DIGEST_NAF)[0].hex()
        bad = await h2.post(url, json={"nafId": {}})
        assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
        assert bad.json()["cause"] == "MANDATORY_IE_MISSING"
        assert (await h2.post(url, content=b"x", headers={"content-type": "text/plain"})).status_code == 415
        assert (await h2.get(url)).status_code == 405
    async with httpx.AsyncClient() as h1:
        r = await h1.post(url, json=body)
        assert r.http_version == "HTTP/1.1" and r.status_code == 200


async def test_nbsp_gba_refuses_deep_json_and_smuggling_framing(lab: Lab) -> None:
    """Issue 27 classes 5 and 6: a deeply nested body was a 500 (RecursionError); Content-Length beside
    Transfer-Encoding over HTTP/1.1 was answered and the connection kept for the next request."""
    url = lab.sbi_url + "/nbsp-gba/v1/bootstrapping-info-retrieval"
    async with httpx.AsyncClient(http1=False, http2=True) as h2:
        deep = await h2.post(url, content=b"[" * 10_000, headers={"content-type": "application/json"})
        assert deep.status_code == 400 and deep.headers["content-type"] == "application/problem+json"
        assert "nested deeper" in deep.text
    path = API_PREFIX + "/nbsp-gba/v1/bootstrapping-info-retrieval"
    reader, writer = await asyncio.open_connection("127.0.0.1", int(lab.sbi_url.split(":")[2].split("/")[0]))
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: bsf\r\nContent-Type: application/json\r\nContent-Length: 4\r\n"
        "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n".encode()
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)  # all of it: the server closes after its answer
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"both Content-Length and Transfer-Encoding" in answer


def test_schemathesis_against_nbsp_gba(lab: Lab) -> None:
    spec = Path(__file__).resolve().parents[2] / "docs" / "openapi" / "nbsp-gba.yaml"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            str(spec),
            "--url",
            lab.sbi_url + "/nbsp-gba/v1",
            "--checks",
            "all",
            "--max-examples",
            "60",
            "--suppress-health-check",
            "all",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]


def test_fetch_key_cli_via_each_flavour(lab: Lab) -> None:
    boot = asyncio.run(bootstrap(lab.ub, _ue()))
    env = {"GBAGW_NAF_BSF_PORT": str(lab.zn_port), "GBAGW_NAF_SBI_URL": lab.sbi_url, "GBAGW_NAF_SOAP_URL": lab.soap_url}
    for via in VIAS:
        r = run_cli(
            ["naf", "fetch-key", "--btid", boot.btid, "--naf-fqdn", "naf.gba.test", "--via", via, "--json"], env=env
        )
        assert r.returncode == 0, (via, r.stderr)
        assert boot.naf_keys(DIGEST_NAF)[0].hex() in r.stdout
        assert '"logger": "httpx"' not in r.stderr  # one line per request at INFO: not at the default level
