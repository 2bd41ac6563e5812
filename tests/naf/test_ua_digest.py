"""The NAF kit's Ua digest (naf.ua_digest + naf.app) against the software UE (gbagw.ue_client.ua_get), over
real HTTP and HTTPS; Zn is replaced by a recording key source built from the UE's own bootstrap."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import aiohttp
import pytest

from gba import digest, pki, ue
from gba.kdf import NafId, UaProtocol
from gba.ua import KeyKind, answer_challenge, naf_realm
from gba.uss import Uss
from gbagw.ue_client import ua_get
from naf.app import NafService, create_naf
from naf.config import NafConfig
from naf.zn_client import NafKey, ZnRefused
from tests.pki_files import write_pair

FQDN = "naf.gba.test"


class FakeZn:
    """Answers Zn as a BSF would for one bootstrap: the keys for whatever NAF_Id the NAF asks for."""

    def __init__(self, boot: ue.Bootstrap, uss: tuple[Uss, ...] = (), aware: bool = True) -> None:
        self.boot, self.uss, self.aware = boot, uss, aware
        self.asked: list[NafId] = []

    async def fetch_key(self, btid: str, naf_id: NafId, gsids: Sequence[str] | None = None) -> NafKey:
        self.asked.append(naf_id)
        if btid != self.boot.btid:
            raise ZnRefused(5403)
        me, uicc = self.boot.naf_keys(naf_id)
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        return NafKey(btid, naf_id, self.boot.impi, me, uicc if self.aware else None, expires, None, 0, self.uss)

    async def close(self) -> None:
        pass


def _boot(mode: ue.UeMode) -> ue.Bootstrap:
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    return ue.Bootstrap(
        "u@ims.test", "AAAAAAAAAAAAAAAAAAAAAA==@bsf.gba.test", expires, os.urandom(16), os.urandom(32), mode
    )


Start = Callable[..., Awaitable[tuple[NafService, str]]]


@pytest.fixture
async def naf() -> AsyncIterator[Start]:
    services: list[NafService] = []

    async def start(zn: FakeZn, **config: object) -> tuple[NafService, str]:
        service = create_naf(NafConfig(fqdn=FQDN, port=0, **config), zn)  # type: ignore[arg-type]
        services.append(service)
        port = await service.start()
        return service, f"{service.scheme}://127.0.0.1:{port}/hello"

    yield start
    for s in services:
        await s.stop()


async def test_plain_http_digest_uses_0100000002(naf: Start) -> None:
    boot = _boot(ue.UeMode.GBA_ME)
    zn = FakeZn(boot)
    _, url = await naf(zn)
    status, _ = await ua_get(url, boot, naf_fqdn=FQDN)
    assert status == 200 and zn.asked == [NafId(FQDN, UaProtocol.HTTP_DIGEST.value)]


async def test_digest_behind_https_uses_the_negotiated_suite_ua_id(naf: Start, tmp_path: Path) -> None:
    """TS 33.222 5.3, TS 33.220 Annex H.3: inside server-authenticated TLS, NAF_Id = FQDN || 01 00 01 yy zz
    of the suite in use (0100000002 is for digest without TLS); UE and NAF derive the same key."""
    ca = pki.make_ca()
    cert, key = write_pair(tmp_path, FQDN, ca)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    boot = _boot(ue.UeMode.GBA_ME)
    zn = FakeZn(boot)
    _, url = await naf(zn, ua_tls_cert=cert, ua_tls_key=key)
    assert url.startswith("https://")
    client_tls = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    client_tls.check_hostname = False  # the URL holds an address; the name is given as naf_fqdn
    status, body = await ua_get(url, boot, naf_fqdn=FQDN, tls=client_tls)
    assert status == 200, body
    (asked,) = zn.asked
    assert asked.fqdn == FQDN and asked.ua_id[:3] == b"\x01\x00\x01"
    codes = {c["name"]: c["id"] & 0xFFFF for c in client_tls.get_ciphers()}
    port = int(url.split(":")[2].split("/")[0])
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_tls)  # a handshake of its own
    name = writer.get_extra_info("ssl_object").cipher()[0]
    writer.close()
    assert asked.ua_id[3:] == codes[name].to_bytes(2, "big") and asked.ua_id != UaProtocol.HTTP_DIGEST.value


UICC_ONLY = (Uss("1000001", 0, key_choice="UICC-based-key"),)


async def test_a_uss_asking_for_the_uicc_key_gets_ks_int_naf_only(naf: Start) -> None:
    """TS 33.220 4.4.6 / 5.3.3 (USS keyChoice, TS 29.109 Annex A): the ME-key answer is challenged again
    with 3GPP-bootstrapping-uicc; the UE then answers with Ks_int_NAF and gets in."""
    boot = _boot(ue.UeMode.GBA_U)
    _, url = await naf(FakeZn(boot, UICC_ONLY), gba_u_aware=True)
    realms: list[str] = []
    async with aiohttp.ClientSession() as s:
        async with s.get(url) as r:
            www = r.headers["WWW-Authenticate"]
        realms.append(digest.Challenge.parse(www).realm)
        me, uicc = boot.naf_keys(NafId(FQDN, UaProtocol.HTTP_DIGEST.value))
        cred = answer_challenge(www, boot.btid, me, method="GET", uri="/hello")
        async with s.get(url, headers={"Authorization": cred.to_header()}) as r:
            assert r.status == 401  # the ME-based key is never accepted
            www = r.headers["WWW-Authenticate"]
        realms.append(digest.Challenge.parse(www).realm)
        assert uicc is not None
        cred = answer_challenge(www, boot.btid, uicc, method="GET", uri="/hello")
        async with s.get(url, headers={"Authorization": cred.to_header()}) as r:
            assert r.status == 200
    assert realms == [naf_realm(FQDN, KeyKind.ME), naf_realm(FQDN, KeyKind.UICC)]
    status, _ = await ua_get(url, boot, naf_fqdn=FQDN)  # the software UE follows the second challenge
    assert status == 200


def realms_www(realm: str, www: str) -> str:
    ch = digest.Challenge.parse(www)
    return digest.Challenge(
        realm=realm, nonce=ch.nonce, algorithm=ch.algorithm, qop=ch.qop, opaque=ch.opaque
    ).to_header()


async def test_a_nonce_answers_only_for_the_realm_it_was_issued_with(naf: Start) -> None:
    """A UE may not pick the UICC realm on a nonce the NAF issued for the ME realm: the nonce binds the kind."""
    boot = _boot(ue.UeMode.GBA_U)
    _, url = await naf(FakeZn(boot), gba_u_aware=True)
    async with aiohttp.ClientSession() as s:
        async with s.get(url) as r:
            www = r.headers["WWW-Authenticate"]
        _, uicc = boot.naf_keys(NafId(FQDN, UaProtocol.HTTP_DIGEST.value))
        assert uicc is not None
        forged = realms_www(naf_realm(FQDN, KeyKind.UICC), www)
        cred = answer_challenge(forged, boot.btid, uicc, method="GET", uri="/hello")
        async with s.get(url, headers={"Authorization": cred.to_header()}) as r:
            assert r.status == 401 and r.headers["WWW-Authenticate"]


@pytest.mark.parametrize("case", ["gba_me_subscriber", "naf_not_gba_u_aware"])
async def test_a_uicc_key_choice_that_cannot_be_met_is_refused(naf: Start, case: str) -> None:
    boot = _boot(ue.UeMode.GBA_ME if case == "gba_me_subscriber" else ue.UeMode.GBA_U)
    _, url = await naf(FakeZn(boot, UICC_ONLY, aware=case != "naf_not_gba_u_aware"))
    status, body = await ua_get(url, boot, naf_fqdn=FQDN)
    assert status == 403 and b"key choice cannot be met" in body


async def test_an_me_key_choice_keeps_the_me_key(naf: Start) -> None:
    boot = _boot(ue.UeMode.GBA_U)
    _, url = await naf(FakeZn(boot, (Uss("1", 0, key_choice="ME-based-key"),)), gba_u_aware=True)
    assert (await ua_get(url, boot, naf_fqdn=FQDN))[0] == 200
