"""Zh/Zn codec: round trips, strict framing, and tshark as the independent decoder."""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gba import diameter as d
from tests.pcaptool import decode_with_tshark, write_pcap
from tests.required_tools import require

NOW = dt.datetime(2026, 11, 29, 12, 0, 0, tzinfo=dt.UTC)


def _mar(resync: bytes | None = None, number_auth_items: int | None = None) -> d.Envelope:
    return d.MultimediaAuthRequest(
        "bsf.gba.test;1;1",
        "bsf.gba.test",
        "gba.test",
        "gba.test",
        "001@ims.test",
        resync_info=resync,
        guss_timestamp=NOW,
        sip_number_auth_items=number_auth_items,
    ).to_envelope(7, 8)


def _maa(req: d.Envelope) -> d.Envelope:
    return req.answer(
        d.MultimediaAuthAnswer(
            "bsf.gba.test;1;1",
            "hss.gba.test",
            "gba.test",
            user_name="001@ims.test",
            sip_authenticate=bytes(range(32)),
            sip_authorization=b"\x01" * 8,
            ck=b"\x02" * 16,
            ik=b"\x03" * 16,
            guss=b"<guss/>",
        ).avps()
    )


def _bir() -> d.Envelope:
    return d.BootstrappingInfoRequest(
        "naf.gba.test;1;1",
        "naf.gba.test",
        "gba.test",
        "gba.test",
        "I1U8vpY3qJ0hiuZNrke/NQ==@bsf.gba.test",
        b"naf.gba.test\x01\x00\x00\x00\x02",
        gsids=("1", "4242"),
        gba_u_aware=True,
    ).to_envelope(9, 10)


def _bia(req: d.Envelope) -> d.Envelope:
    return req.answer(
        d.BootstrappingInfoAnswer(
            "naf.gba.test;1;1",
            "bsf.gba.test",
            "gba.test",
            user_name="001@ims.test",
            me_key_material=b"\x04" * 32,
            uicc_key_material=b"\x05" * 32,
            key_expiry=NOW,
            bootstrap_creation=NOW,
            uss=b"<ussList/>",
            gba_type=0,
        ).avps()
    )


def test_mar_round_trip() -> None:
    env = _mar(bytes(30))
    raw = env.encode()
    back = d.Envelope.from_bytes(raw)
    assert back.is_request and back.command_code == 303 and back.application_id == d.APP_ZH
    mar = d.MultimediaAuthRequest.from_envelope(back)
    assert mar.user_name == "001@ims.test" and mar.resync_info == bytes(30) and mar.guss_timestamp == NOW


def test_maa_round_trip() -> None:
    raw = _maa(_mar()).encode()
    env = d.Envelope.from_bytes(raw)
    assert not env.is_request and env.hop_by_hop == 7 and env.end_to_end == 8
    maa = d.MultimediaAuthAnswer.from_envelope(env)
    assert maa.ok and maa.ck == b"\x02" * 16 and maa.sip_authenticate == bytes(range(32)) and maa.guss == b"<guss/>"


def test_bir_bia_round_trip() -> None:
    bir = d.BootstrappingInfoRequest.from_envelope(d.Envelope.from_bytes(_bir().encode()))
    assert bir.gsids == ("1", "4242") and bir.gba_u_aware and bir.naf_id.endswith(b"\x01\x00\x00\x00\x02")
    bia = d.BootstrappingInfoAnswer.from_envelope(d.Envelope.from_bytes(_bia(_bir()).encode()))
    assert bia.ok and bia.key_expiry == NOW and bia.uicc_key_material == b"\x05" * 32 and bia.gba_type == 0


def test_experimental_result_has_no_result_code() -> None:
    req = _bir()
    env = req.answer(
        d.BootstrappingInfoAnswer("s", "bsf", "gba.test", result_code=None, experimental_result=5403).avps()
    )
    back = d.Envelope.from_bytes(env.encode())
    assert back.result() == (None, 5403)
    assert d.find(back.avps, d.Avps.RESULT_CODE) is None


def test_flags_per_ts29109() -> None:
    env = d.Envelope.from_bytes(_bia(_bir()).encode())
    for a in env.avps:
        if a.vendor_id == d.VENDOR_3GPP:
            assert a.flags == 0xC0, a.code
    mar = d.Envelope.from_bytes(_mar().encode())
    ts = d.find(mar.avps, d.Avps.GUSS_TIMESTAMP, d.VENDOR_3GPP)
    assert ts is not None and ts.flags == 0x80  # TS 29.109 Table 6.3.1: V only, M must not be set


def test_ntp_time_conversion() -> None:
    t = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert d.to_ntp(t) == 0xED003780  # spec-digest section 4.2
    assert d.from_ntp(0xED003780) == t
    after_2036 = dt.datetime(2040, 1, 1, tzinfo=dt.UTC)
    assert d.from_ntp(d.to_ntp(after_2036)) == after_2036
    with pytest.raises(ValueError, match="aware"):
        d.to_ntp(dt.datetime(2026, 1, 1))


def test_missing_mandatory_avp() -> None:
    env = _bir()
    env.avps = [a for a in env.avps if a.code != d.Avps.TRANSACTION_IDENTIFIER]
    with pytest.raises(d.MissingAvp) as exc:
        d.BootstrappingInfoRequest.from_envelope(d.Envelope.from_bytes(env.encode()))
    assert exc.value.code == d.Avps.TRANSACTION_IDENTIFIER and exc.value.result_code == d.ResultCode.MISSING_AVP


def test_error_answer_sets_e_bit_for_protocol_errors() -> None:
    req = _bir()
    ans = d.error_answer(req, d.ResultCode.APPLICATION_UNSUPPORTED, "bsf", "gba.test", message="nope")
    back = d.Envelope.from_bytes(ans.encode())
    assert back.is_error and back.result() == (3007, None)
    ans = d.error_answer(
        req, d.ResultCode.MISSING_AVP, "bsf", "gba.test", failed_avp=d.missing_avp_placeholder(401, d.VENDOR_3GPP)
    )
    back = d.Envelope.from_bytes(ans.encode())
    assert not back.is_error and d.find(back.avps, d.Avps.FAILED_AVP) is not None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x01\x00\x00",
        b"\x02\x00\x00\x14" + bytes(16),
        b"\x01\x00\x00\x10" + bytes(12),
        b"\x01\x00\x00\x18" + bytes(16) + b"\x00\x00\x01\x07",
        b"\x01\x00\x00\x1c" + bytes(16) + b"\x00\x00\x01\x07\x40\x00\x00\x04",
        b"\x01\x00\x00\x1c" + bytes(16) + b"\x00\x00\x01\x07\x40\x00\x00\xff",
        b"\x01\xff\xff\xff" + bytes(16),
    ],
)
def test_garbage_is_rejected_cleanly(raw: bytes) -> None:
    with pytest.raises(d.DiameterDecodeError):
        d.Envelope.from_bytes(raw)


def test_bad_grouped_content_rejected() -> None:
    good = _maa(_mar()).encode()
    # Corrupt the inner length of the first AVP inside SIP-Auth-Data-Item.
    idx = good.index((612).to_bytes(4, "big")) + 12
    bad = good[: idx + 5] + b"\xff\xff\xff" + good[idx + 8 :]
    with pytest.raises(d.DiameterDecodeError):
        d.Envelope.from_bytes(bad)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_decoder_never_crashes(raw: bytes) -> None:
    with contextlib.suppress(d.DiameterDecodeError):
        d.Envelope.from_bytes(raw)


@settings(max_examples=200)
@given(pos=st.integers(min_value=0, max_value=10_000), byte=st.integers(min_value=0, max_value=255))
def test_mutated_messages_never_crash(pos: int, byte: int) -> None:
    raw = bytearray(_bia(_bir()).encode())
    raw[pos % len(raw)] = byte
    try:
        env = d.Envelope.from_bytes(bytes(raw))
        d.BootstrappingInfoAnswer.from_envelope(env)
    except (d.DiameterDecodeError, d.MissingAvp):
        pass


def test_capabilities_exchange_apps() -> None:
    avps = d.capabilities_avps("hss.gba.test", "gba.test", "127.0.0.1", [d.APP_ZH], 1)
    env = d.Envelope(d.CMD_CAPABILITIES_EXCHANGE, 0, d.FLAG_REQUEST, 1, 1, avps)
    back = d.Envelope.from_bytes(env.encode())
    assert d.advertised_apps(back.avps) == {d.APP_ZH}


EXPECTED = {
    # (code, vendor): flags, per TS 29.109 Table 6.3.1 and TS 29.229 Table 6.3.1 / RFC 6733.
    (400, 10415): 0xC0,
    (401, 10415): 0xC0,
    (402, 10415): 0xC0,
    (403, 10415): 0xC0,
    (404, 10415): 0xC0,
    (405, 10415): 0xC0,
    (406, 10415): 0xC0,
    (407, 10415): 0xC0,
    (408, 10415): 0xC0,
    (409, 10415): 0x80,
    (410, 10415): 0xC0,
    (607, 10415): 0xC0,
    (608, 10415): 0xC0,
    (609, 10415): 0xC0,
    (610, 10415): 0xC0,
    (612, 10415): 0xC0,
    (613, 10415): 0xC0,
    (625, 10415): 0xC0,
    (626, 10415): 0xC0,
}


def test_tshark_decodes_mar_maa_bir_bia(tmp_path: Path) -> None:
    require("tshark")
    mar, bir = _mar(bytes(30)), _bir()
    cx_style = _mar(number_auth_items=1)  # the bsf.zh_sip_number_auth_items option
    err = bir.answer(
        d.BootstrappingInfoAnswer("s", "bsf", "gba.test", result_code=None, experimental_result=5402).avps()
    )
    pcap = tmp_path / "zh_zn.pcap"
    messages = [mar, _maa(mar), cx_style, bir, _bia(bir), err]
    write_pcap(pcap, [m.encode() for m in messages])
    avps, problems = decode_with_tshark(pcap)
    assert problems == []
    assert all("Unknown" not in a.name for a in avps), [a.name for a in avps if "Unknown" in a.name]
    seen = {(a.code, a.vendor): a.flags for a in avps}
    for key, flags in EXPECTED.items():
        assert key in seen, f"AVP {key} not on the wire"
        assert seen[key] == flags, f"AVP {key}: flags {seen[key]:#x}, expected {flags:#x}"


def test_mar_carries_only_the_zh_abnf_by_default() -> None:
    """TS 29.109 4.2 step 1: no SIP-Number-Auth-Items (a strict HSS answers 5001 for it, M bit set);
    a normal bootstrap sends no SIP-Auth-Data-Item either (NOTE 3)."""
    env = d.Envelope.from_bytes(_mar().encode())
    assert d.find(env.avps, d.Avps.SIP_NUMBER_AUTH_ITEMS, d.VENDOR_3GPP) is None
    assert d.find(env.avps, d.Avps.SIP_AUTH_DATA_ITEM, d.VENDOR_3GPP) is None
    assert d.check_avps(env, d.MAR_RULES) is None
    with_option = d.Envelope.from_bytes(_mar(number_auth_items=1).encode())
    item = d.find(with_option.avps, d.Avps.SIP_NUMBER_AUTH_ITEMS, d.VENDOR_3GPP)
    assert item is not None and item.flags == 0xC0 and item.payload == b"\0\0\0\1"


def _with(env: d.Envelope, *avps: d.Avp) -> d.Envelope:
    return d.Envelope.from_bytes(
        d.Envelope(env.command_code, env.application_id, env.flags, 1, 1, [*env.avps, *avps]).encode()
    )


def _raw_avp(code: int, flags: int, vendor: int = 0, payload: bytes = b"\0\0\0\1") -> d.Avp:
    return d.Avp(code, vendor, payload, flags)


@pytest.mark.parametrize(
    ("extra", "result"),
    [
        ((_raw_avp(9999, 0x40),), d.ResultCode.AVP_UNSUPPORTED),  # unknown base AVP with M
        ((_raw_avp(3999, 0xC0, d.VENDOR_3GPP),), d.ResultCode.AVP_UNSUPPORTED),  # unknown 3GPP AVP with M
        ((_raw_avp(9999, 0x00), _raw_avp(3999, 0x80, d.VENDOR_3GPP)), None),  # without M: ignored
        ((d.new_avp(d.Avps.RESULT_CODE, 2001),), d.ResultCode.AVP_NOT_ALLOWED),  # understood, not in the BIR
        ((d.vendor_avp(d.Avps.ME_KEY_MATERIAL, bytes(32)),), d.ResultCode.AVP_NOT_ALLOWED),
        ((d.new_avp(d.Avps.SESSION_ID, "second"),), d.ResultCode.AVP_OCCURS_TOO_MANY_TIMES),
        ((d.vendor_avp(d.Avps.NAF_ID, b"x\1\0\0\0\2"),), d.ResultCode.AVP_OCCURS_TOO_MANY_TIMES),
        ((d.vendor_avp(d.Avps.GAA_SERVICE_IDENTIFIER, b"7"),) * 3, None),  # *[GAA-Service-Identifier]
    ],
)
def test_bir_checked_against_its_abnf(extra: tuple[d.Avp, ...], result: int | None) -> None:
    """RFC 6733 7.1.5 against the TS 29.109 5.2 BIR ABNF; Failed-AVP is the offending AVP itself (7.5)."""
    env = _with(_bir(), *extra)
    error = d.check_request(env, "bsf.gba.test", ("gba.test",))
    if result is None:
        assert error is None
        return
    assert error is not None and error.result_code == result
    assert error.failed_avp is not None and error.failed_avp.code == extra[0].code
    if result == d.ResultCode.AVP_OCCURS_TOO_MANY_TIMES:
        assert error.failed_avp.payload == extra[0].payload  # the first instance past the maximum


def test_mar_checked_against_its_abnf() -> None:
    mar = _mar(bytes(30))
    assert d.check_request(mar, "hss.gba.test", ("gba.test",)) is None
    # A Cx-derived BSF's SIP-Number-Auth-Items: a Cx AVP with M that Zh does not support (TS 29.109 4.2
    # has no such AVP), so 5001 with the AVP in Failed-AVP, as a strict Zh HSS answers (RFC 6733 7.1.5).
    cx = d.check_request(_mar(number_auth_items=1), "hss.gba.test", ("gba.test",))
    assert cx is not None and cx.result_code == d.ResultCode.AVP_UNSUPPORTED
    assert cx.failed_avp is not None and cx.failed_avp.code == 607
    missing = d.Envelope(mar.command_code, mar.application_id, mar.flags, 1, 1, [a for a in mar.avps if a.code != 277])
    error = d.check_request(missing, "hss.gba.test", ("gba.test",))
    assert error is not None and error.result_code == d.ResultCode.MISSING_AVP
    assert error.failed_avp is not None and error.failed_avp.code == 277 and error.failed_avp.payload == bytes(4)
    zn_avp = _with(mar, d.vendor_avp(d.Avps.TRANSACTION_IDENTIFIER, b"btid@bsf"))  # Zn's, not Zh's
    error = d.check_request(zn_avp, "hss.gba.test", ("gba.test",))
    assert error is not None and error.result_code == d.ResultCode.AVP_UNSUPPORTED
    answer_avp = _with(mar, d.new_avp(d.Avps.RESULT_CODE, 2001))  # Zh's own, but only in answers
    error = d.check_request(answer_avp, "hss.gba.test", ("gba.test",))
    assert error is not None and error.result_code == d.ResultCode.AVP_NOT_ALLOWED


def test_request_header_and_routing_checks() -> None:
    """RFC 6733 7.1.3: E bit in a request -> 3008; 6.1.4: foreign Destination-Host -> 3002, foreign
    Destination-Realm -> 3003; identities compare without case."""
    bir = _bir()
    flagged = d.Envelope(bir.command_code, bir.application_id, bir.flags | d.FLAG_ERROR, 1, 1, bir.avps)
    assert (e := d.check_request(flagged, "bsf.gba.test", ("gba.test",))) and e.result_code == 3008
    assert d.check_request(bir, "BSF.gba.test", ("GBA.Test",)) is None
    assert (e := d.check_request(bir, "bsf.gba.test", ("other.test",))) and e.result_code == 3003
    to_host = _with(bir, d.new_avp(d.Avps.DESTINATION_HOST, b"bsf.gba.test"))
    assert d.check_request(to_host, "bsf.gba.test", ("gba.test",)) is None
    assert (e := d.check_request(to_host, "bsf2.gba.test", ("gba.test",))) and e.result_code == 3002
    no_realm = d.Envelope(
        bir.command_code, bir.application_id, bir.flags, 1, 1, [a for a in to_host.avps if a.code != 283]
    )
    assert (e := d.check_request(no_realm, "bsf.gba.test", ("gba.test",))) and e.result_code == 3002


def test_base_messages_follow_their_abnf() -> None:
    """RFC 6733 5.4.2: the DPA carries exactly Result-Code, Origin-Host, Origin-Realm; 5.5: DWR/DWA."""
    dpr = d.disconnect_peer_request("a.test", "test", 0)
    assert [a.code for a in dpr.avps] == [264, 296, 273] and dpr.is_request
    dpa = d.Envelope.from_bytes(d.disconnect_peer_answer(dpr, "b.test", "test").encode())
    assert [a.code for a in dpa.avps] == [268, 264, 296] and not dpa.is_request and not dpa.is_error
    dwr = d.device_watchdog_request("a.test", "test", 7)
    assert [a.code for a in dwr.avps] == [264, 296, 278]
    dwa = d.device_watchdog_answer(dwr, "b.test", "test", 8)
    assert [a.code for a in dwa.avps] == [268, 264, 296, 278]


def test_permanent_error_answer_keeps_the_command_abnf() -> None:
    """RFC 6733 7.1.5: 5xxx go in the command's own answer (E clear), so a BIA/MAA error keeps
    Vendor-Specific-Application-Id and Auth-Session-State; 3xxx use the answer-message CCF (7.2)."""
    ans = d.error_answer(_bir(), d.ResultCode.AVP_UNSUPPORTED, "bsf", "gba.test", failed_avp=_raw_avp(9999, 0x40))
    codes = [a.code for a in d.Envelope.from_bytes(ans.encode()).avps]
    assert not ans.is_error and codes == [263, 260, 277, 264, 296, 268, 279]
    ans = d.error_answer(_bir(), d.ResultCode.REALM_NOT_SERVED, "bsf", "gba.test", message="no")
    assert ans.is_error and [a.code for a in ans.avps] == [263, 264, 296, 268, 281]
    assert d.find(ans.avps, d.Avps.ERROR_MESSAGE).flags == 0  # type: ignore[union-attr]
