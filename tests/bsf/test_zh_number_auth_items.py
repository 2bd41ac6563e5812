"""bsf.zh_sip_number_auth_items: the Zh MAR holds only the TS 29.109 clause 4.2 ABNF unless an operator
turns SIP-Number-Auth-Items on for a Cx-derived HSS that needs it (TS 29.229 clause 6.1.7)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bsf.config import BsfConfig
from bsf.zh_client import HssRefused, ZhClient
from gba import diameter as d
from gbagw import config
from gbaio.diameter_node import DiameterServer, NodeIdentity, PeerInfo


def test_the_option_is_off_by_default_and_validated(tmp_path: Path) -> None:
    assert config.bsf_config(config.load(None, tmp_path, {})).zh_sip_number_auth_items is False
    on = config.load(None, tmp_path, {"GBAGW_BSF_ZH_SIP_NUMBER_AUTH_ITEMS": "true"})
    assert config.bsf_config(on).zh_sip_number_auth_items is True
    bad = tmp_path / "g.toml"
    bad.write_text('[bsf]\nzh_sip_number_auth_items = "yes"\n')
    with pytest.raises(config.ConfigError, match=r"bsf\.zh_sip_number_auth_items"):
        config.bsf_config(config.load(bad, tmp_path, {}))


# The option on sends what a strict peer refuses, on purpose: the wire tap lets that case through.
@pytest.mark.parametrize("option", [False, pytest.param(True, marks=pytest.mark.wiretap_exempt)])
async def test_the_mar_on_the_wire_follows_the_option(option: bool) -> None:
    seen: list[d.Envelope] = []

    async def hss(req: d.Envelope, _peer: PeerInfo) -> d.Envelope:
        seen.append(req)
        return req.answer(d.MultimediaAuthAnswer(req.session_id or "", "hss.gba.test", "gba.test").avps())

    server = DiameterServer(NodeIdentity("hss.gba.test", "gba.test", (d.APP_ZH,)), hss)
    port = await server.start("127.0.0.1", 0)
    cfg = dataclasses.replace(BsfConfig(), hss_port=port, zh_timeout=2.0, zh_sip_number_auth_items=option)
    zh = ZhClient(cfg)
    try:
        # Off: the answer has no vector, only the MAR matters. On: our own Diameter node is a strict Zh
        # server and refuses the Cx AVP before any handler (5001, RFC 6733 7.1.5), which is why the
        # option is off by default and only for a Cx-derived HSS that wants it.
        with pytest.raises(HssRefused) as refused:
            await zh.fetch_vector("001@ims.test")
    finally:
        await zh.close()
        await server.close()
    if option:
        assert refused.value.code == d.ResultCode.AVP_UNSUPPORTED and seen == []
        return
    (mar,) = seen
    assert d.find_all(mar.avps, d.Avps.SIP_NUMBER_AUTH_ITEMS, d.VENDOR_3GPP) == []
    assert d.check_avps(mar, d.MAR_RULES) is None
