"""Diameter Zn over TLS and Zn' through a Zn-Proxy, with real `gbagw hss/bsf/naf serve` processes and
certificates made here.

- RFC 6733 2.1 / 13: TLS from connection start on the BSF's zn_tls_port; 13.1 mutual authentication,
  so a NAF without a client certificate does not get past the handshake.
- TS 33.220 4.4.6, Annex K: a Zn-Proxy relays the BIR of a visited-network NAF over TLS; the BSF serves
  it only when the NAF_Id's FQDN is a subjectAltName dNSName of the proxy's certificate (else 5402),
  and a proxy on plain TCP relays nothing (5402).
"""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gba import diameter as d
from gba import kdf, pki, ue
from gba.ua import answer_challenge
from gbagw.ue_client import bootstrap
from gbaio.diameter_node import DiameterClient, NodeIdentity
from gbaio.tls import client_ssl_context
from naf.config import NafConfig
from naf.zn_client import NafKey, ZnClient, ZnRefused, ZnUnavailable
from tests.procs import Proc, free_port, gbagw_process, run_cli, tshark_capture
from tests.required_tools import require

pytestmark = pytest.mark.e2e

K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OPC = "cd63cb71954a9f4e48a5994e37a02baf"
IMPI = "zn-tls@ims.test"
HOME_NAF = kdf.NafId("naf.gba.test", kdf.UaProtocol.HTTP_DIGEST)
VISITED_NAF = kdf.NafId("naf.visited.test", kdf.UaProtocol.HTTP_DIGEST)
CONFIG = """
[bsf]
zn_proxies = ["proxy.visited.test", "narrow-proxy.visited.test", "plain-proxy.visited.test"]

[[bsf.nafs]]
fqdn = "naf.gba.test"
diameter_host = "naf.gba.test"

[[bsf.nafs]]
fqdn = "naf.visited.test"
diameter_host = "naf.visited.test"
"""


def _write_leaf(folder: Path, ca: pki.Issued, name: str, *dns_names: str) -> None:
    """``name``.pem / .key: a client and server certificate whose subjectAltName lists ``dns_names``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@dataclass
class Lab:
    tmp: Path
    pki: Path
    ub: str
    zn_port: int
    zn_tls_port: int
    bsf: Proc
    naf_url: str

    def naf_config(self, fqdn: str, cert: str | None, *, tls: bool = True) -> NafConfig:
        return NafConfig(
            fqdn=fqdn,
            realm=fqdn.partition(".")[2],
            bsf_port=self.zn_tls_port if tls else self.zn_port,
            bsf_tls=tls,
            tls_ca=self.pki / "ca.pem",
            tls_cert=self.pki / f"{cert}.pem" if cert else None,
            tls_key=self.pki / f"{cert}.key" if cert else None,
            tls_server_name="bsf.gba.test",
        )

    async def fetch(self, config: NafConfig, btid: str, naf_id: kdf.NafId) -> NafKey:
        client = ZnClient(config)
        try:
            return await client.fetch_key(btid, naf_id, ())
        finally:
            await client.close()

    async def relay(self, proxy: str, btid: str, naf_id: kdf.NafId, *, tls: bool = True) -> NafKey:
        """A Zn-Proxy's relay: the BIR keeps the visited NAF's Origin-Host, on the proxy's own connection."""
        naf = self.naf_config("naf.visited.test", None, tls=tls)
        identity = NodeIdentity(proxy, "visited.test", (d.APP_ZN,))
        context = client_ssl_context(self.pki / "ca.pem", self.pki / f"{proxy}.pem", self.pki / f"{proxy}.key")
        connection = DiameterClient(
            identity, "127.0.0.1", naf.bsf_port, tls=context if tls else None, server_name="bsf.gba.test"
        )
        client = ZnClient(naf, connection)
        try:
            return await client.fetch_key(btid, naf_id, ())
        finally:
            await client.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("zntls")
    folder = tmp / "pki"
    folder.mkdir()
    ca = pki.make_ca()
    (folder / "ca.pem").write_bytes(ca.cert_pem)
    _write_leaf(folder, ca, "bsf.gba.test", "bsf.gba.test")
    _write_leaf(folder, ca, "naf.gba.test", "naf.gba.test")
    _write_leaf(folder, ca, "proxy.visited.test", "proxy.visited.test", "naf.visited.test")
    _write_leaf(folder, ca, "narrow-proxy.visited.test", "narrow-proxy.visited.test", "other.visited.test")
    _write_leaf(folder, ca, "plain-proxy.visited.test", "plain-proxy.visited.test", "naf.visited.test")
    (tmp / "gbagw.toml").write_text(CONFIG)
    common = ["--config", str(tmp / "gbagw.toml"), "--data-dir", str(tmp)]
    r = run_cli(["hss", "add-subscriber", *common, "--impi", IMPI, "--k", K, "--opc", OPC])
    assert r.returncode == 0, r.stderr
    hss_port = free_port()
    env = {
        "GBAGW_HSS_ZH_PORT": str(hss_port),
        "GBAGW_BSF_HSS_PORT": str(hss_port),
        "GBAGW_BSF_UB_PORT": "0",
        "GBAGW_BSF_ZN_PORT": "0",
        "GBAGW_BSF_ZN_TLS_CERT": str(folder / "bsf.gba.test.pem"),
        "GBAGW_BSF_ZN_TLS_KEY": str(folder / "bsf.gba.test.key"),
        "GBAGW_BSF_ZN_TLS_CA": str(folder / "ca.pem"),
    }
    with gbagw_process(["hss", "serve", *common], tmp, env, "hss") as hss:
        hss.wait_for("Zh Diameter on")
        with gbagw_process(["bsf", "serve", *common], tmp, env, "bsf") as bsf:
            ub = bsf.wait_for(r"Ub on (http://\S+/)").group(1)
            zn_port = int(bsf.wait_for(r"Zn Diameter on [\d.]+:(\d+)").group(1))
            zn_tls_port = int(bsf.wait_for(r"Zn Diameter over TLS on [\d.]+:(\d+)").group(1))
            # The NAF kit as a process, configured by its keys: Diameter Zn over TLS with its certificate.
            naf_env = {
                **env,
                "GBAGW_NAF_PORT": "0",
                "GBAGW_NAF_BSF_PORT": str(zn_tls_port),
                "GBAGW_NAF_BSF_TLS": "true",
                "GBAGW_NAF_TLS_CERT": str(folder / "naf.gba.test.pem"),
                "GBAGW_NAF_TLS_KEY": str(folder / "naf.gba.test.key"),
                "GBAGW_NAF_TLS_CA": str(folder / "ca.pem"),
                "GBAGW_NAF_TLS_SERVER_NAME": "bsf.gba.test",
            }
            with gbagw_process(["naf", "serve", *common], tmp, naf_env, "naf") as naf:
                naf_url = naf.wait_for(r"demo NAF on (http://\S+/)").group(1)
                yield Lab(tmp, folder, ub, zn_port, zn_tls_port, bsf, naf_url)


def _ue() -> ue.UeClient:
    return ue.UeClient(ue.Usim(bytes.fromhex(K), bytes.fromhex(OPC)), IMPI, "bsf.gba.test")


async def test_a_naf_over_tls_with_its_certificate_gets_the_keys(lab: Lab) -> None:
    boot = await bootstrap(lab.ub, _ue())
    key = await lab.fetch(lab.naf_config("naf.gba.test", "naf.gba.test"), boot.btid, HOME_NAF)
    assert key.me_key == boot.naf_keys(HOME_NAF)[0] and key.impi == IMPI


async def test_the_naf_process_fetches_its_key_over_tls_for_ua_digest(lab: Lab) -> None:
    boot = await bootstrap(lab.ub, _ue())
    ks_naf, _ = boot.naf_keys(HOME_NAF)
    async with aiohttp.ClientSession() as s:
        async with s.get(lab.naf_url + "hello") as r:
            www = r.headers["WWW-Authenticate"]
        cred = answer_challenge(www, boot.btid, ks_naf, method="GET", uri="/hello")
        async with s.get(lab.naf_url + "hello", headers={"Authorization": cred.to_header()}) as r:
            assert r.status == 200, await r.text()


async def test_a_naf_without_a_client_certificate_is_refused(lab: Lab) -> None:
    boot = await bootstrap(lab.ub, _ue())
    with pytest.raises(ZnUnavailable):
        await lab.fetch(lab.naf_config("naf.gba.test", None), boot.btid, HOME_NAF)


async def test_a_naf_whose_certificate_does_not_name_its_origin_host_is_refused(lab: Lab) -> None:
    """The visited NAF's certificate (a trusted CA's) does not make it naf.gba.test."""
    boot = await bootstrap(lab.ub, _ue())
    impostor = lab.naf_config("naf.gba.test", "proxy.visited.test")
    with pytest.raises(ZnRefused) as exc:
        await lab.fetch(impostor, boot.btid, HOME_NAF)
    assert exc.value.code == d.ExperimentalResult.ERROR_NOT_AUTHORIZED
    assert "Origin-Host naf.gba.test is not in the certificate" in lab.bsf.logs


async def test_a_proxy_whose_certificate_lists_the_naf_fqdn_gets_the_keys(lab: Lab) -> None:
    boot = await bootstrap(lab.ub, _ue())
    key = await lab.relay("proxy.visited.test", boot.btid, VISITED_NAF)
    assert key.me_key == boot.naf_keys(VISITED_NAF)[0]


async def test_a_proxy_whose_certificate_lacks_the_naf_fqdn_gets_5402(lab: Lab) -> None:
    boot = await bootstrap(lab.ub, _ue())
    with pytest.raises(ZnRefused) as exc:
        await lab.relay("narrow-proxy.visited.test", boot.btid, VISITED_NAF)
    assert exc.value.code == d.ExperimentalResult.ERROR_NOT_AUTHORIZED
    assert "NAF_Id FQDN naf.visited.test is not in the certificate of Zn-Proxy narrow-proxy" in lab.bsf.logs


async def test_a_proxy_over_plain_tcp_gets_5402(lab: Lab) -> None:
    boot = await bootstrap(lab.ub, _ue())
    with pytest.raises(ZnRefused) as exc:
        await lab.relay("plain-proxy.visited.test", boot.btid, VISITED_NAF, tls=False)
    assert exc.value.code == d.ExperimentalResult.ERROR_NOT_AUTHORIZED
    assert "Zn-Proxy plain-proxy.visited.test relays for naf.visited.test without TLS" in lab.bsf.logs


async def test_on_the_wire_there_is_a_tls_handshake_and_no_key_or_b_tid(lab: Lab, tmp_path: Path) -> None:
    """The TLS comes first (RFC 6733 13): tshark finds the ClientHello; the B-TID and Ks_NAF never cross
    the wire in clear (the plain-TCP tshark Diameter checks stay in tests/naf/test_e2e_zn.py)."""
    boot = await bootstrap(lab.ub, _ue())
    pcap = tmp_path / "zn-tls.pcap"
    with tshark_capture(lab.zn_tls_port, pcap):
        key = await lab.fetch(lab.naf_config("naf.gba.test", "naf.gba.test"), boot.btid, HOME_NAF)
    hellos = subprocess.run(
        [require("tshark"), "-r", str(pcap), "-d", f"tcp.port=={lab.zn_tls_port},tls", "-Y", "tls.handshake.type == 1"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert hellos.strip()
    raw = pcap.read_bytes()
    assert boot.btid.encode() not in raw and key.me_key not in raw
