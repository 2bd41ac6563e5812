"""The bad-input table of docs/security.md, Ub and Zn rows, against real `gbagw hss/bsf serve` processes.
Every case checks the answer, and the module ends by checking that the services still serve."""

from __future__ import annotations

import asyncio
import base64
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from gba import diameter as d
from gba import digest, kdf, milenage, ue
from gbagw.ue_client import bootstrap
from gbaio.diameter_node import DiameterServer, NodeIdentity, PeerInfo, connect
from naf.config import NafConfig
from naf.zn_client import ZnClient, ZnRefused
from tests.bsf.test_e2e_ub import IMPI, OPC, K, Lab, _get, _ue
from tests.procs import run_cli

pytestmark = pytest.mark.e2e
NAF_ID = kdf.NafId("naf.gba.test", kdf.UaProtocol.HTTP_DIGEST.value)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, str, int]]:
    lab = Lab(tmp_path_factory.mktemp("bad"))
    assert run_cli(["hss", "add-subscriber", *lab.data, "--impi", IMPI, "--k", K, "--opc", OPC]).returncode == 0
    try:
        lab.start_hss()
        bsf, url = lab.start_bsf()
        zn = int(bsf.wait_for(r"Zn Diameter on [\d.]+:(\d+)").group(1))
        yield lab, url, zn
    finally:
        lab.close()


async def _challenge(url: str) -> tuple[ue.UeClient, str]:
    client = _ue()
    status, headers, _ = await _get(url, client.authorization())
    assert status == 401
    return client, headers["WWW-Authenticate"]


def _with(header: str, **changes: str) -> str:
    """The Authorization header with some parameters replaced (quoted values)."""
    cred = digest.Credentials.parse(header)
    import dataclasses

    return dataclasses.replace(cred, **changes).to_header()  # type: ignore[arg-type]


async def test_ub_missing_duplicate_oversized_garbled(lab: tuple[Lab, str, int]) -> None:
    _, url, _ = lab
    assert (await _get(url, None))[0] == 400  # missing
    async with aiohttp.ClientSession() as s:
        auth = _ue().authorization()
        headers = [("Authorization", auth), ("Authorization", auth)]
        async with s.get(url, headers=headers) as r:
            assert r.status == 400  # duplicate
    assert (await _get(url, 'Digest username="' + "a" * 5000 + '"'))[0] == 400  # oversized
    assert (await _get(url, 'Digest ==, username="unterminated'))[0] == 400  # garbled
    assert (await _get(url, "Basic YTpi"))[0] == 400  # another scheme


async def test_ub_wrong_algorithm_realm_uri_opaque_nc(lab: tuple[Lab, str, int]) -> None:
    _, url, _ = lab
    for change in (
        {"algorithm": "MD5"},
        {"realm": "evil.test"},
        {"uri": "/other"},
        {"opaque": "forged"},
        {"nc": "00000002"},
    ):
        client, www = await _challenge(url)
        answer = _with(client.on_challenge(www), **change)
        status, _, _ = await _get(url, answer)
        assert status == 403, change  # the vector is spent; no B-TID


async def test_ub_bad_nonce_replayed_and_stale(lab: tuple[Lab, str, int]) -> None:
    _, url, _ = lab
    client, www = await _challenge(url)
    answer = client.on_challenge(www)
    forged = _with(answer, nonce="!!not base64!!")
    status, headers, _ = await _get(url, forged)
    assert status == 401 and "stale=true" in headers["WWW-Authenticate"]  # unknown nonce: new vector
    assert (await _get(url, answer))[0] == 200
    status, headers, _ = await _get(url, answer)  # replay of a used nonce
    assert status == 401 and "stale=true" in headers["WWW-Authenticate"]


async def test_ub_huge_body_with_auth_int(lab: tuple[Lab, str, int]) -> None:
    _, url, _ = lab
    client, www = await _challenge(url)
    body = b"x" * (1024 * 1024)
    answer = client.on_challenge(www, body=body)
    async with aiohttp.ClientSession() as s, s.get(url, headers={"Authorization": answer}, data=body) as r:
        assert r.status == 413  # client_max_size; the body never reaches the digest check


async def test_ub_invalid_auts_and_unknown_impi(lab: tuple[Lab, str, int]) -> None:
    _, url, _ = lab
    client, www = await _challenge(url)
    client.usim.seq_ms = [10**6] * ue.IND_SIZE
    answer = client.on_challenge(www)  # carries a real AUTS
    cred = digest.Credentials.parse(answer)
    assert cred.auts is not None
    bad = bytes([cred.auts[0]]) + cred.auts[1:-1] + bytes([cred.auts[-1] ^ 1])
    resp = digest.compute_response(
        password=b"",
        username=cred.username,
        realm=cred.realm,
        method="GET",
        uri=cred.uri,
        nonce=cred.nonce,
        nc="00000001",
        cnonce=cred.cnonce or "",
        qop=cred.qop or "auth-int",
        body=b"",
    )
    status, headers, _ = await _get(url, _with(answer, auts=bad, response=resp))  # type: ignore[arg-type]
    # TS 29.109 4.2 step 2, TS 33.102 6.3.5: the HSS answers a bad MAC-S with a fresh vector and keeps
    # SQN_HE, so the new challenge still carries a SQN the USIM (far ahead) refuses.
    assert status == 401
    again = client.on_challenge(headers["WWW-Authenticate"])
    assert digest.Credentials.parse(again).auts is not None
    status, headers, _ = await _get(url, again)  # the genuine AUTS resynchronises the HSS
    assert status == 401
    final = client.on_challenge(headers["WWW-Authenticate"])
    assert digest.Credentials.parse(final).auts is None
    assert (await _get(url, final))[0] == 200
    status, _, body = await _get(
        url,
        digest.Credentials(username="ghost@ims.test", realm="bsf.gba.test", nonce="", uri="/", response="").to_header(),
    )
    assert status == 403 and b"ghost" not in body


async def _bir(zn_port: int, env: d.Envelope) -> d.Envelope:
    conn = await connect(NodeIdentity("naf.gba.test", "gba.test", (d.APP_ZN,)), "127.0.0.1", zn_port)
    try:
        return await conn.request(env, timeout=5)
    finally:
        await conn.close()


async def test_zn_btid_rows(lab: tuple[Lab, str, int]) -> None:
    _, url, zn_port = lab
    client = ZnClient(NafConfig(bsf_port=zn_port))
    try:
        # The NAF kit routes by the B-TID's realm (TS 29.109 5.2): malformed local parts reach the BSF.
        domain = "@bsf.gba.test"
        for btid in ("AAAAAAAAAAAAAAAAAAAAAA==" + domain, "not-a-btid" + domain, domain, "=" * 300 + domain):
            with pytest.raises(ZnRefused) as exc:
                await client.fetch_key(btid, NAF_ID)
            assert exc.value.code == 5403, btid
        boot = await bootstrap(url, _ue())
        with pytest.raises(ZnRefused) as exc:
            await client.fetch_key(boot.btid, kdf.NafId("other.gba.test", kdf.UaProtocol.HTTP_DIGEST.value))
        assert exc.value.code == 5402  # NAF-Id for another NAF
    finally:
        await client.close()


async def test_zn_missing_avps_wrong_app_oversized(lab: tuple[Lab, str, int]) -> None:
    _, _, zn_port = lab
    base = d.BootstrappingInfoRequest(
        "s;1", "naf.gba.test", "gba.test", "gba.test", "x@bsf.gba.test", NAF_ID.encode()
    ).to_envelope(0, 0)
    missing = d.Envelope(
        base.command_code, base.application_id, base.flags, 0, 0, [a for a in base.avps if a.code != d.Avps.NAF_ID]
    )
    ans = await _bir(zn_port, missing)
    assert ans.result() == (d.ResultCode.MISSING_AVP, None) and d.find(ans.avps, d.Avps.FAILED_AVP) is not None
    wrong_app = d.Envelope(base.command_code, d.APP_ZH, base.flags, 0, 0, base.avps)
    ans = await _bir(zn_port, wrong_app)
    assert ans.result()[0] == d.ResultCode.APPLICATION_UNSUPPORTED and ans.is_error
    big = d.Envelope(
        base.command_code,
        base.application_id,
        base.flags,
        0,
        0,
        [*base.avps, d.vendor_avp(d.Avps.GAA_SERVICE_IDENTIFIER, b"9" * 70_000)],
    )
    with pytest.raises(Exception):  # noqa: B017 - the encoder refuses to build it at all
        big.encode()
    bad_naf_id = d.Envelope(
        base.command_code,
        base.application_id,
        base.flags,
        0,
        0,
        [a for a in base.avps if a.code != d.Avps.NAF_ID] + [d.vendor_avp(d.Avps.NAF_ID, b"\x01")],
    )
    assert (await _bir(zn_port, bad_naf_id)).result()[0] == d.ResultCode.INVALID_AVP_VALUE


async def test_zn_origin_host_other_than_the_connection(lab: tuple[Lab, str, int]) -> None:
    _, url, zn_port = lab
    boot = await bootstrap(url, _ue())
    spoofed = d.BootstrappingInfoRequest(
        "s;2", "naf.gba.test", "gba.test", "gba.test", boot.btid, NAF_ID.encode()
    ).to_envelope(0, 0)
    conn = await connect(NodeIdentity("rogue.gba.test", "gba.test", (d.APP_ZN,)), "127.0.0.1", zn_port)
    try:
        ans = await conn.request(spoofed, timeout=5)
    finally:
        await conn.close()
    assert ans.result() == (None, 5402) and d.find(ans.avps, d.Avps.ME_KEY_MATERIAL, d.VENDOR_3GPP) is None


async def test_zn_garbage_and_oversized_frames_on_the_socket(lab: tuple[Lab, str, int]) -> None:
    _, _, zn_port = lab
    for payload in (b"\xde\xad\xbe\xef" * 16, struct.pack("!I", 0x01FFFFFF) + bytes(16), b"GET / HTTP/1.1\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", zn_port), timeout=5) as s:
            s.sendall(payload)
            s.settimeout(5)
            assert s.recv(100) == b""  # closed, nothing answered


async def test_zh_answer_rows_against_a_broken_hss(tmp_path: Path) -> None:
    """An HSS that answers with wrong lengths, missing CK/IK, or errors: Ub gives 403 or 503, never 500."""
    mode = {"kind": ""}
    mil = milenage.Milenage(bytes.fromhex(K), bytes.fromhex(OPC))

    async def broken(req: d.Envelope, _peer: PeerInfo) -> d.Envelope:
        mar = d.MultimediaAuthRequest.from_envelope(req)
        av = milenage.generate_vector(mil, bytes(16), 99, b"\x80\x00")
        fields = {
            "user_name": mar.user_name,
            "sip_authenticate": av.rand + av.autn,
            "sip_authorization": av.xres,
            "ck": av.ck,
            "ik": av.ik,
        }
        kind = mode["kind"]
        if kind == "short-autn":
            fields["sip_authenticate"] = av.rand + av.autn[:8]
        elif kind == "no-ck":
            fields["ck"] = None
        elif kind == "no-ik":
            fields["ik"] = None
        elif kind in ("busy", "no-route"):
            code = d.ResultCode.TOO_BUSY if kind == "busy" else d.ResultCode.UNABLE_TO_DELIVER
            return req.answer(
                d.MultimediaAuthAnswer(mar.session_id, "hss.gba.test", "gba.test", result_code=code).avps()
            )
        elif kind == "5012":
            return req.answer(
                d.MultimediaAuthAnswer(
                    mar.session_id, "hss.gba.test", "gba.test", result_code=d.ResultCode.UNABLE_TO_COMPLY
                ).avps()
            )
        elif kind == "garbage-guss":
            return req.answer(
                d.MultimediaAuthAnswer(
                    mar.session_id, "hss.gba.test", "gba.test", guss=b"<!DOCTYPE x [<!ENTITY a 'b'>]><guss/>", **fields
                ).avps()
            )
        return req.answer(d.MultimediaAuthAnswer(mar.session_id, "hss.gba.test", "gba.test", **fields).avps())

    hss = DiameterServer(NodeIdentity("hss.gba.test", "gba.test", (d.APP_ZH,)), broken)
    port = await hss.start("127.0.0.1", 0)
    lab = Lab(tmp_path)
    try:
        _bsf, url = lab.start_bsf("bsf", {"GBAGW_BSF_HSS_PORT": str(port)})
        expected = {"short-autn": 403, "no-ck": 403, "no-ik": 403, "5012": 403, "busy": 503, "no-route": 503}
        for kind, status in expected.items():
            mode["kind"] = kind
            assert (await _get(url, _ue().authorization()))[0] == status, kind
        mode["kind"] = "garbage-guss"  # a hostile GUSS is ignored (logged); the challenge still goes out
        assert (await _get(url, _ue().authorization()))[0] == 401
        assert "GUSS of" in _bsf.logs
    finally:
        lab.close()
        await hss.close()


async def test_services_keep_serving_after_all_of_the_above(lab: tuple[Lab, str, int]) -> None:
    _, url, zn_port = lab
    boot = await bootstrap(url, _ue())
    client = ZnClient(NafConfig(bsf_port=zn_port))
    try:
        assert (await client.fetch_key(boot.btid, NAF_ID)).me_key == boot.naf_keys(NAF_ID)[0]
    finally:
        await client.close()
    await asyncio.sleep(0)
    assert base64.b64decode(boot.btid.split("@")[0]) == boot.rand
