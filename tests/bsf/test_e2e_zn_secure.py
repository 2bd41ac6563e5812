"""Nbsp_GBA over TLS (ALPN h2) with OAuth2 bearer tokens, and Zn SOAP over HTTPS with NAF client
certificates: the NAF identity comes from the token / the certificate and meets the same NAF policy."""

from __future__ import annotations

import json
import ssl
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from gba import kdf, ue
from gbagw.ue_client import bootstrap
from naf.config import NafConfig
from naf.zn_client import ZnRefused, ZnUnavailable
from naf.zn_http_clients import SoapZnClient
from tests.conformance.zn_http_tap import ZnHttpTap, zn_http_tap
from tests.procs import Proc, free_port, run_cli, start_gbagw

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def zn_tap(monkeypatch: pytest.MonkeyPatch) -> Iterator[ZnHttpTap]:
    """Every SOAP and Nbsp_GBA message crossing TLS in these tests is checked against TS 29.109 Annex D /
    TS 29.309 (tests/conformance)."""
    with zn_http_tap(monkeypatch) as tap:
        yield tap


K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OPC = "cd63cb71954a9f4e48a5994e37a02baf"
IMPI = "secure-zn@ims.test"
NAF_ID = kdf.NafId("naf.gba.test", kdf.UaProtocol.HTTP_DIGEST.value)


class SecureLab:
    def __init__(
        self, tmp: Path, ub: str, sbi: int, soap: int, signing_key: ec.EllipticCurvePrivateKey, admin: str
    ) -> None:
        self.tmp, self.ub, self.sbi, self.soap, self.key, self.admin = tmp, ub, sbi, soap, signing_key, admin
        self.pki = tmp / "pki"

    def token(self, sub: str = "naf.gba.test", scope: str = "nbsp-gba") -> str:
        claims = {"sub": sub, "scope": scope, "exp": int(time.time()) + 300, "iss": "nrf.gba.test"}
        return jwt.encode(claims, self.key, algorithm="ES256", headers={"kid": "lab"})

    def tls(self, client: str = "naf.gba.test") -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.pem"))
        ctx.load_cert_chain(str(self.pki / f"{client}.pem"), str(self.pki / f"{client}.key"))
        return ctx


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureLab]:
    tmp = tmp_path_factory.mktemp("znsec")
    r = run_cli(
        [
            "mef",
            "gen-test-pki",
            "--out",
            str(tmp / "pki"),
            "--mef-fqdn",
            "bsf.gba.test",
            "--maf",
            "naf.gba.test",
            "--maf",
            "intruder.gba.test",
        ]
    )
    assert r.returncode == 0, r.stderr
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    (tmp / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "lab", "use": "sig", "alg": "ES256"}]}))
    assert (
        run_cli(["hss", "add-subscriber", "--data-dir", str(tmp), "--impi", IMPI, "--k", K, "--opc", OPC]).returncode
        == 0
    )
    hss_port = free_port()
    env = {
        "GBAGW_HSS_ZH_PORT": str(hss_port),
        "GBAGW_BSF_HSS_PORT": str(hss_port),
        "GBAGW_BSF_UB_PORT": "0",
        "GBAGW_BSF_ZN_PORT": "0",
        "GBAGW_BSF_ZN_TLS_CERT": str(tmp / "pki" / "mef.pem"),
        "GBAGW_BSF_ZN_TLS_KEY": str(tmp / "pki" / "mef.key"),
        "GBAGW_BSF_ZN_TLS_CA": str(tmp / "pki" / "ca.pem"),
        "GBAGW_BSF_SBI_OAUTH_JWKS": str(tmp / "jwks.json"),
    }
    procs: list[Proc] = []
    try:
        procs.append(start_gbagw(["hss", "serve", "--data-dir", str(tmp)], tmp, env, "hss"))
        procs[0].wait_for("Zh Diameter on")
        procs.append(start_gbagw(["bsf", "serve", "--data-dir", str(tmp)], tmp, env, "bsf"))
        ub = procs[1].wait_for(r"Ub on (http://\S+/)").group(1)
        m = procs[1].wait_for(r"Zn Nbsp_GBA on [\d.]+:(\d+), Zn SOAP on [\d.]+:(\d+)")
        admin = procs[1].wait_for(r"admin: (http://\S+)/metrics").group(1)
        yield SecureLab(tmp, ub, int(m.group(1)), int(m.group(2)), key, admin)
    finally:
        for p in procs:
            p.stop()


def _ue() -> ue.UeClient:
    return ue.UeClient(ue.Usim(bytes.fromhex(K), bytes.fromhex(OPC)), IMPI, "bsf.gba.test")


async def test_nbsp_gba_over_tls_h2_with_bearer_tokens(lab: SecureLab) -> None:
    boot = await bootstrap(lab.ub, _ue())
    url = f"https://127.0.0.1:{lab.sbi}/nbsp-gba/v1/bootstrapping-info-retrieval"
    body = {"btId": boot.btid, "nafId": {"nafFqdn": "naf.gba.test", "uaSecProtId": "0100000002"}}
    sni = {"sni_hostname": "bsf.gba.test"}
    async with httpx.AsyncClient(http2=True, verify=lab.tls()) as client:

        async def post(token: str | None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return await client.post(url, json=body, headers=headers, extensions=sni)

        ok = await post(lab.token())
        assert ok.status_code == 200 and ok.http_version == "HTTP/2"
        assert ok.json()["meKeyMaterial"] == boot.naf_keys(NAF_ID)[0].hex()
        missing = await post(None)
        assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
        assert (await post(lab.token(scope="nnrf-disc"))).status_code == 403
        assert (await post(lab.token() + "x")).status_code == 401
        foreign = await post(lab.token(sub="intruder.gba.test"))
        assert foreign.status_code == 403 and foreign.json()["cause"] == "NAF_NOT_AUTHORIZED"


async def test_soap_over_https_with_naf_certificates(lab: SecureLab, zn_tap: ZnHttpTap) -> None:
    boot = await bootstrap(lab.ub, _ue())
    p = lab.pki

    def client(name: str | None) -> SoapZnClient:
        return SoapZnClient(
            NafConfig(
                soap_url=f"https://127.0.0.1:{lab.soap}/GBAService",
                tls_ca=p / "ca.pem",
                tls_server_name="bsf.gba.test",
                tls_cert=p / f"{name}.pem" if name else None,
                tls_key=p / f"{name}.key" if name else None,
            )
        )

    good = client("naf.gba.test")
    try:
        key = await good.fetch_key(boot.btid, NAF_ID, ())
        assert key.me_key == boot.naf_keys(NAF_ID)[0] and key.impi == IMPI
    finally:
        await good.close()
    intruder = client("intruder.gba.test")  # a trusted certificate, but its NAF may not use naf.gba.test
    try:
        with pytest.raises(ZnRefused) as exc:
            await intruder.fetch_key(boot.btid, NAF_ID, ())
        assert exc.value.code == 5402
    finally:
        await intruder.close()
    anonymous = client(None)
    try:
        with pytest.raises(ZnUnavailable):
            await anonymous.fetch_key(boot.btid, NAF_ID, ())
    finally:
        await anonymous.close()
    assert zn_tap.soap == 4  # two requests and their answer and fault, checked against Annex D


def test_the_admin_listener_shows_when_the_zn_certificate_expires(lab: SecureLab) -> None:
    with urllib.request.urlopen(lab.admin + "/metrics", timeout=10) as r:  # noqa: S310 - loopback test URL
        metrics = r.read().decode()
    expiry = x509.load_pem_x509_certificate((lab.pki / "mef.pem").read_bytes()).not_valid_after_utc
    sample = 'gbagw_tls_certificate_expiry_timestamp_seconds{key="bsf.zn_tls_cert"}'
    (line,) = [line for line in metrics.splitlines() if line.startswith(sample)]
    assert float(line.split()[-1]) == expiry.timestamp()
    assert "bsf.ub_tls_cert" not in metrics  # Ub is plain HTTP here: nothing presented, nothing to expire


async def test_tls_without_a_naf_identity_fails_closed(lab: SecureLab) -> None:
    """TLS listeners without tokens (Nbsp_GBA) or client certificates (SOAP) cannot tell which NAF asks:
    they refuse every request instead of assuming one."""
    boot = await bootstrap(lab.ub, _ue())
    p = lab.pki
    env = {
        "GBAGW_BSF_UB_PORT": "0",
        "GBAGW_BSF_ZN_PORT": "0",
        "GBAGW_BSF_HSS_PORT": "1",
        "GBAGW_BSF_ZN_TLS_CERT": str(p / "mef.pem"),
        "GBAGW_BSF_ZN_TLS_KEY": str(p / "mef.key"),
    }
    proc = start_gbagw(["bsf", "serve", "--data-dir", str(lab.tmp)], lab.tmp, env, "bsf-no-identity")
    try:
        m = proc.wait_for(r"Zn Nbsp_GBA on [\d.]+:(\d+), Zn SOAP on [\d.]+:(\d+)")
        sbi, soap = int(m.group(1)), int(m.group(2))
        url = f"https://127.0.0.1:{sbi}/nbsp-gba/v1/bootstrapping-info-retrieval"
        body = {"btId": boot.btid, "nafId": {"nafFqdn": "naf.gba.test", "uaSecProtId": "0100000002"}}
        async with httpx.AsyncClient(http2=True, verify=lab.tls()) as client:
            r = await client.post(url, json=body, extensions={"sni_hostname": "bsf.gba.test"})
        assert r.status_code == 403 and r.json()["cause"] == "NAF_NOT_AUTHORIZED"
        assert "no NAF identity" in proc.logs
        soap_client = SoapZnClient(
            NafConfig(
                soap_url=f"https://127.0.0.1:{soap}/GBAService", tls_ca=p / "ca.pem", tls_server_name="bsf.gba.test"
            )
        )
        try:
            with pytest.raises(ZnRefused) as exc:
                await soap_client.fetch_key(boot.btid, NAF_ID, ())
            assert exc.value.code == 5402
        finally:
            await soap_client.close()
    finally:
        proc.stop()
