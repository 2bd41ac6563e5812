"""Zn routing by the B-TID's realm (TS 29.109 5.2 step 1, 5.3; TS 33.220 Annex K): unit tests of the
route choice and of the Destination-Realm the Diameter client puts in the BIR."""

from __future__ import annotations

import datetime as dt

import pytest

from gba import diameter as d
from gba.kdf import NafId, UaProtocol
from naf.config import BsfRoute, NafConfig
from naf.zn_client import ZnClient, ZnNoRoute, route_for, sbi_url_for, soap_url_for
from naf.zn_http_clients import create_zn_client

NAF_ID = NafId("naf.gba.test", UaProtocol.HTTP_DIGEST.value)
VISITED = BsfRoute("home2.test", "10.0.0.2", 3870, "https://bsf.home2.test", None)
PROXY = BsfRoute("east.home2.test", "10.0.0.3", 3871)
CONFIG = NafConfig(bsf_realm="gba.test", bsf_realms=(VISITED, PROXY))


@pytest.mark.parametrize(
    ("btid", "realm"),
    [
        ("AAAA@bsf.gba.test", "gba.test"),  # the home realm: bsf_host/bsf_port
        ("AAAA@gba.test", "gba.test"),
        ("AAAA@BSF.GBA.TEST", "gba.test"),  # domain names compare case-insensitively
        ("AAAA@bsf.home2.test", "home2.test"),
        ("AAAA@bsf.east.home2.test", "east.home2.test"),  # the closest parent realm wins
    ],
)
def test_the_route_is_the_closest_configured_realm_of_the_btid_domain(btid: str, realm: str) -> None:
    assert route_for(CONFIG, btid).realm == realm


@pytest.mark.parametrize("btid", ["AAAA@bsf.other.test", "AAAA@notgba.test", "no-domain", "AAAA@"])
def test_a_btid_of_an_unknown_realm_has_no_route(btid: str) -> None:
    with pytest.raises(ZnNoRoute, match="no BSF is configured for its realm") as exc:
        route_for(CONFIG, btid)
    assert exc.value.code is None


def test_the_http_flavours_take_the_realm_s_urls() -> None:
    assert sbi_url_for(CONFIG, "AAAA@bsf.gba.test") == CONFIG.sbi_url
    assert soap_url_for(CONFIG, "AAAA@bsf.gba.test") == CONFIG.soap_url
    assert sbi_url_for(CONFIG, "AAAA@bsf.home2.test") == "https://bsf.home2.test"
    with pytest.raises(ZnNoRoute, match="no Zn-WS endpoint"):
        soap_url_for(CONFIG, "AAAA@bsf.home2.test")


class _Peer:
    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self.sent: list[d.BootstrappingInfoRequest] = []
        self.closed = False

    async def request(self, env: d.Envelope) -> d.Envelope:
        self.sent.append(d.BootstrappingInfoRequest.from_envelope(env))
        answer = d.BootstrappingInfoAnswer(
            self.sent[-1].session_id,
            "bsf.test",
            "gba.test",
            result_code=d.ResultCode.SUCCESS,
            me_key_material=bytes(32),
            key_expiry=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
        )
        return env.answer(answer.avps())

    async def close(self) -> None:
        self.closed = True


async def test_the_bir_goes_to_the_realm_s_peer_with_its_destination_realm(monkeypatch: pytest.MonkeyPatch) -> None:
    peers: dict[tuple[str, int], _Peer] = {}

    def connect(self: ZnClient, route: BsfRoute) -> _Peer:
        return peers.setdefault((route.host, route.port), _Peer(route.host, route.port))

    monkeypatch.setattr(ZnClient, "_connect", connect)
    client = ZnClient(CONFIG)
    await client.fetch_key("AAAA@bsf.home2.test", NAF_ID)
    await client.fetch_key("AAAA@bsf.gba.test", NAF_ID)
    await client.fetch_key("BBBB@bsf.home2.test", NAF_ID)
    visited = peers[("10.0.0.2", 3870)]
    home = peers[(CONFIG.bsf_host, CONFIG.bsf_port)]
    assert [b.destination_realm for b in visited.sent] == ["home2.test", "home2.test"]
    assert [b.destination_realm for b in home.sent] == ["gba.test"]
    await client.close()
    assert visited.closed and home.closed


@pytest.mark.parametrize("via", ["diameter", "sbi", "soap"])
async def test_an_unknown_realm_is_refused_before_any_zn_request(via: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_connection(self: ZnClient, route: BsfRoute) -> _Peer:
        if route.realm != CONFIG.bsf_realm:
            raise AssertionError("a peer was opened for an unknown realm")
        return _Peer(route.host, route.port)

    monkeypatch.setattr(ZnClient, "_connect", no_connection)
    client = create_zn_client(NafConfig(zn_via=via, bsf_realms=(VISITED,)))
    try:
        with pytest.raises(ZnNoRoute, match=r"B-TID 'AAAA@bsf\.other\.test': no BSF is configured"):
            await client.fetch_key("AAAA@bsf.other.test", NAF_ID)
    finally:
        await client.close()
