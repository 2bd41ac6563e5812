"""The sans-IO UE against a BSF side computed with the core's own primitives."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from gba import digest, kdf, milenage, ue
from gba.bootstrapping_info import BootstrappingInfo
from gba.btid import Btid

K = bytes.fromhex("465b5ce8b199b49faa5f0a2ee238a6bc")
OPC = bytes.fromhex("cd63cb71954a9f4e48a5994e37a02baf")
IMPI = "001010123456789@ims.mnc001.mcc001.3gppnetwork.org"
REALM = "bsf.gba.test"


class MiniBsf:
    """Just enough BSF logic to drive the UE: one vector per challenge."""

    def __init__(self, sqn: int, gba_u: bool = False) -> None:
        self.mil = milenage.Milenage(K, OPC)
        self.sqn = sqn
        self.gba_u = gba_u

    def challenge(self) -> tuple[str, milenage.AuthVector]:
        av = milenage.generate_vector(self.mil, os.urandom(16), self.sqn, b"\x80\x00")
        autn = milenage.gba_u_autn(av.autn, av.ik) if self.gba_u else av.autn
        nonce = digest.aka_nonce(av.rand, autn)
        return digest.Challenge(realm=REALM, nonce=nonce, opaque="o1").to_header(), av

    def verify(self, auth: str, av: milenage.AuthVector) -> digest.Credentials:
        c = digest.Credentials.parse(auth)
        xres = milenage.gba_u_expected_res(av.xres) if self.gba_u else av.xres
        password = b"" if c.auts is not None else xres
        assert c.qop and c.nc and c.cnonce
        expected = digest.compute_response(
            password=password,
            username=c.username,
            realm=c.realm,
            method="GET",
            uri=c.uri,
            nonce=c.nonce,
            nc=c.nc,
            cnonce=c.cnonce,
            qop=c.qop,
            body=b"",
        )
        assert digest.responses_equal(expected, c.response)
        return c

    def success(self, c: digest.Credentials, av: milenage.AuthVector) -> tuple[str, bytes]:
        body = BootstrappingInfo(str(Btid(av.rand, REALM)), dt.datetime(2030, 1, 1, tzinfo=dt.UTC)).to_xml()
        xres = milenage.gba_u_expected_res(av.xres) if self.gba_u else av.xres
        assert c.qop and c.nc and c.cnonce
        rsp = digest.compute_rspauth(
            password=xres,
            username=c.username,
            realm=c.realm,
            uri=c.uri,
            nonce=c.nonce,
            nc=c.nc,
            cnonce=c.cnonce,
            qop=c.qop,
            body=body,
        )
        return digest.AuthenticationInfo(rspauth=rsp, qop=c.qop, nc=c.nc, cnonce=c.cnonce).to_header(), body


def test_gba_me_bootstrap_and_naf_key() -> None:
    bsf = MiniBsf(sqn=64)
    client = ue.UeClient(ue.Usim(K, OPC), IMPI, REALM)
    first = digest.Credentials.parse(client.authorization())
    # TS 33.220 4.5.2: on Ub the UE sends 3gpp-gba-tmpi, and no Ua token (TS 24.109 5.2.1).
    assert first.is_initial and digest.product_tokens(client.user_agent) == {"gbagw-ue", "3gpp-gba-tmpi"}
    www, av = bsf.challenge()
    c = bsf.verify(client.on_challenge(www), av)
    assert c.auts is None and c.qop == "auth-int" and c.opaque == "o1"
    info, body = bsf.success(c, av)
    boot = client.on_success(info, body)
    assert boot.ks == av.ck + av.ik and boot.btid.endswith("@" + REALM)
    naf = kdf.NafId("naf.gba.test", kdf.UaProtocol.HTTP_DIGEST)
    me, uicc = boot.naf_keys(naf)
    assert me == kdf.ks_naf(av.ck + av.ik, av.rand, IMPI, naf) and uicc is None


def test_gba_u_bootstrap_gives_both_keys() -> None:
    bsf = MiniBsf(sqn=64, gba_u=True)
    client = ue.UeClient(ue.Usim(K, OPC), IMPI, REALM, mode=ue.UeMode.GBA_U)
    # A GBA_U-aware UICC is not announced on Ub (TS 33.220 5.3.2: the Ub messages are identical).
    assert client.user_agent == ue.UeClient(ue.Usim(K, OPC), IMPI, REALM).user_agent
    www, av = bsf.challenge()
    c = bsf.verify(client.on_challenge(www), av)
    info, body = bsf.success(c, av)
    boot = client.on_success(info, body)
    naf = kdf.NafId("naf.gba.test", kdf.UaProtocol.HTTP_DIGEST)
    me, uicc = boot.naf_keys(naf)
    assert uicc == kdf.ks_int_naf(av.ck + av.ik, av.rand, IMPI, naf) and me != uicc


def test_sync_failure_produces_verifiable_auts() -> None:
    usim = ue.Usim(K, OPC)
    usim.set_sqn_ms(1000 << 5)
    bsf = MiniBsf(sqn=64)
    client = ue.UeClient(usim, IMPI, REALM)
    www, av = bsf.challenge()
    c = bsf.verify(client.on_challenge(www), av)
    assert c.auts is not None and client.resynchronising
    assert milenage.recover_sqn_ms(bsf.mil, av.rand, c.auts) == 1000 << 5
    with pytest.raises(ue.UeError):
        client.on_success(None, b"")


def test_replayed_sqn_is_a_sync_failure() -> None:
    usim = ue.Usim(K, OPC)
    mil = milenage.Milenage(K, OPC)
    rand = os.urandom(16)
    av = milenage.generate_vector(mil, rand, 64, b"\x80\x00")
    assert isinstance(usim.authenticate(rand, av.autn), ue.AkaSuccess)
    assert isinstance(usim.authenticate(rand, av.autn), ue.AkaSyncFailure)
    # A different IND slot with a lower SEQ is still fresh (TS 33.102 C.2.2).
    av2 = milenage.generate_vector(mil, rand, 33, b"\x80\x00")
    assert isinstance(usim.authenticate(rand, av2.autn), ue.AkaSuccess)


def test_mac_failure_stops_the_ue() -> None:
    bsf = MiniBsf(sqn=64)
    client = ue.UeClient(ue.Usim(bytes(16), OPC), IMPI, REALM)
    www, _ = bsf.challenge()
    with pytest.raises(ue.NetworkAuthFailure):
        client.on_challenge(www)


def test_bad_rspauth_rejected() -> None:
    bsf = MiniBsf(sqn=64)
    client = ue.UeClient(ue.Usim(K, OPC), IMPI, REALM)
    www, av = bsf.challenge()
    c = bsf.verify(client.on_challenge(www), av)
    _info, body = bsf.success(c, av)
    forged = digest.AuthenticationInfo(rspauth="0" * 32, qop="auth-int", nc="00000001", cnonce="x").to_header()
    with pytest.raises(ue.UeError):
        client.on_success(forged, body)


@pytest.mark.parametrize(
    "www",
    [
        'Digest realm="r", nonce="AAAA", algorithm=AKAv1-MD5',
        'Digest realm="r", nonce="' + digest.aka_nonce(bytes(16), bytes(16)) + '", algorithm=MD5',
        "Basic realm=x",
    ],
)
def test_malformed_challenges(www: str) -> None:
    client = ue.UeClient(ue.Usim(K, OPC), IMPI, REALM)
    with pytest.raises(ue.UeError):
        client.on_challenge(www)


def test_state_round_trip() -> None:
    usim = ue.Usim(K, OPC)
    usim.set_sqn_ms(77)
    boot = ue.Bootstrap(
        IMPI, "b@bsf.gba.test", dt.datetime(2030, 1, 1, tzinfo=dt.UTC), bytes(16), bytes(32), ue.UeMode.GBA_U
    )
    d = ue.state_to_dict(usim, boot)
    assert ue.bootstrap_from_dict(d) == boot
    assert d["seq_ms"][77 & 31] == 77 >> 5
    assert ue.bootstrap_from_dict({"seq_ms": []}) is None


def test_uicc_context_follows_the_uicc_not_the_bsf() -> None:
    """TS 33.220 Annex G / 5.3.2 step 4: a GBA_U-aware UICC reads MAC*; a plain AUTN then fails its MAC
    check (no fallback), and a UICC that is not GBA_U-aware fails on AUTN*: the UE stops (24.109 4.4)."""
    for uicc, bsf_gba_u in ((ue.UeMode.GBA_U, False), (ue.UeMode.GBA_ME, True)):
        bsf = MiniBsf(sqn=64, gba_u=bsf_gba_u)
        client = ue.UeClient(ue.Usim(K, OPC), IMPI, REALM, mode=uicc)
        www, _ = bsf.challenge()
        with pytest.raises(ue.NetworkAuthFailure):
            client.on_challenge(www)


def test_tmpi_derived_when_the_bsf_signals_it_and_used_next() -> None:
    """TS 33.220 4.5.2 / 5.3.2: TMPI from the Server token, B.4 with the B-TID's BSF name; then the
    username of the next bootstrap; an unknown TMPI makes the UE drop it and use the IMPI."""
    for mode in (ue.UeMode.GBA_ME, ue.UeMode.GBA_U):
        bsf = MiniBsf(sqn=64, gba_u=mode is ue.UeMode.GBA_U)
        client = ue.UeClient(ue.Usim(K, OPC), IMPI, REALM, mode=mode)
        www, av = bsf.challenge()
        c = bsf.verify(client.on_challenge(www), av)
        boot = client.on_success(*bsf.success(c, av), "bsf/1 3gpp-gba-tmpi")
        expected = kdf.tmpi(av.ck + av.ik, av.rand, IMPI, REALM)
        assert boot.tmpi == client.tmpi == expected
        assert ue.bootstrap_from_dict(ue.state_to_dict(client.usim, boot)) == boot
        again = ue.UeClient(ue.Usim(K, OPC), IMPI, REALM, mode=mode, tmpi=boot.tmpi)
        assert digest.Credentials.parse(again.authorization()).username == expected
        bsf.sqn += 32
        www, av = bsf.challenge()
        c = bsf.verify(again.on_challenge(www), av)
        assert c.username == expected  # the digest is over the TMPI username as sent (RFC 2617)
        assert not again.on_refused(503)  # "later" keeps the TMPI
        assert again.on_refused(403) and again.tmpi is None
        assert digest.Credentials.parse(again.authorization()).username == IMPI
        assert not again.on_refused(403)  # with the IMPI a refusal stands


def test_no_tmpi_without_the_server_token() -> None:
    bsf = MiniBsf(sqn=64)
    client = ue.UeClient(ue.Usim(K, OPC), IMPI, REALM, tmpi="old@tmpi.bsf.3gppnetwork.org")
    www, av = bsf.challenge()
    c = bsf.verify(client.on_challenge(www), av)
    boot = client.on_success(*bsf.success(c, av), "other-bsf/2 3gpp-gba")
    assert boot.tmpi is None and client.tmpi is None and "tmpi" not in ue.state_to_dict(client.usim, boot)["bootstrap"]
