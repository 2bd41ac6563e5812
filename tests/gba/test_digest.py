"""Digest AKA parsers, builders and computations (RFC 2617, RFC 3310, TS 24.109)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gba import digest

IMPI = "001010123456789@ims.mnc001.mcc001.3gppnetwork.org"
REALM = "bsf.example.org"
NONCE = "I1U8vpY3qJ0hiuZNrke/NVXzKLQ1d7m5Sp/6w1Tfr7M="
XRES = bytes.fromhex("a54211d5e3ba50bf")


def _resp(password: bytes, qop: str = "auth-int") -> str:
    return digest.compute_response(
        password=password,
        username=IMPI,
        realm=REALM,
        method="GET",
        uri="/",
        nonce=NONCE,
        nc="00000001",
        cnonce="0a4f113b",
        qop=qop,
        body=b"",
    )


def test_response_known_answers() -> None:
    # spec-digest section 7, reproduced independently with fkgi/bag's SetResponse.
    assert _resp(XRES) == "e3e8590f679c1236a0f59120ea0a39ab"
    assert _resp(b"") == "6209c8767c39862ea002fdc2e4738603"


def test_auth_and_auth_int_differ_only_by_body_hash() -> None:
    import hashlib

    ha1 = hashlib.md5(f"{IMPI}:{REALM}:".encode() + XRES).hexdigest()
    ha2 = hashlib.md5(b"GET:/").hexdigest()
    manual = hashlib.md5(f"{ha1}:{NONCE}:00000001:0a4f113b:auth:{ha2}".encode()).hexdigest()
    assert _resp(XRES, "auth") == manual
    assert _resp(XRES, "auth") != _resp(XRES)


def test_rspauth_uses_empty_method_and_response_body() -> None:
    body = b"<BootstrappingInfo/>"
    r = digest.compute_rspauth(
        password=XRES,
        username=IMPI,
        realm=REALM,
        uri="/",
        nonce=NONCE,
        nc="00000001",
        cnonce="c",
        qop="auth-int",
        body=body,
    )
    other = digest.compute_rspauth(
        password=XRES,
        username=IMPI,
        realm=REALM,
        uri="/",
        nonce=NONCE,
        nc="00000001",
        cnonce="c",
        qop="auth-int",
        body=b"",
    )
    assert r != other and len(r) == 32


def test_aka_nonce_round_trip() -> None:
    rand, autn = bytes(range(16)), bytes(range(16, 32))
    n = digest.aka_nonce(rand, autn)
    assert digest.parse_aka_nonce(n) == (rand, autn, b"")
    with pytest.raises(digest.DigestError):
        digest.parse_aka_nonce("not*base64")
    with pytest.raises(digest.DigestError):
        digest.parse_aka_nonce("AAAA")


def test_challenge_round_trip() -> None:
    c = digest.Challenge(realm=REALM, nonce=NONCE, qop=("auth", "auth-int"), opaque='a"b\\c')
    h = c.to_header()
    assert h.startswith("Digest ") and "algorithm=AKAv1-MD5" in h
    assert digest.Challenge.parse(h) == c


def test_credentials_round_trip_with_auts() -> None:
    c = digest.Credentials(
        username=IMPI,
        realm=REALM,
        nonce=NONCE,
        uri="/",
        response="e3e8590f679c1236a0f59120ea0a39ab",
        algorithm="AKAv1-MD5",
        qop="auth-int",
        nc="00000001",
        cnonce="0a4f113b",
        opaque="op",
        auts=bytes.fromhex("ba853f3c121cb55edb820040ab41"),
    )
    parsed = digest.Credentials.parse(c.to_header())
    assert parsed == c
    assert 'auts="uoU/PBIctV7bggBAq0E="' in c.to_header()


def test_initial_request_form() -> None:
    h = f'Digest username="{IMPI}", realm="{REALM}", nonce="", uri="/", response=""'
    c = digest.Credentials.parse(h)
    assert c.is_initial and c.username == IMPI


def test_authentication_info_round_trip() -> None:
    a = digest.AuthenticationInfo(rspauth="0" * 32, qop="auth-int", nc="00000001", cnonce="x", nextnonce="n")
    assert digest.AuthenticationInfo.parse(a.to_header()) == a


@pytest.mark.parametrize(
    "header",
    [
        "Basic dXNlcjpwYXNz",
        'Digest username="a", username="b", realm="r", nonce="", uri="/", response=""',
        'Digest username="a", realm="r", nonce="", uri="/"',
        'Digest username="a, realm="r"',
        'Digest username="a" realm="r"',
        'Digest username=, realm="r"',
        'Digest username="a", realm="r", nonce="n", uri="/", response="zz"',
        'Digest username="a", realm="r", nonce="n", uri="/", response="' + "0" * 32 + '", qop=auth',
        'Digest username="a", realm="r", nonce="n", uri="/", response="' + "0" * 32 + '", qop=auth, nc=1, cnonce="c"',
        'Digest username="a", realm="r", nonce="n", uri="/", response="'
        + "0" * 32
        + '", qop=bogus, nc=00000001, cnonce="c"',
        'Digest username="a", realm="r", nonce="n", uri="/", response="", auts="!!"',
        'Digest username="a", realm="r", nonce="n", uri="/", response="", auts="AAAA"',
        'Digest username="a\x01", realm="r", nonce="", uri="/", response=""',
        "Digest " + ", ".join(f'p{i}="v"' for i in range(40)),
        'Digest username="' + "a" * 9000 + '"',
    ],
)
def test_malformed_credentials_raise_digest_error(header: str) -> None:
    with pytest.raises(digest.DigestError):
        digest.Credentials.parse(header)


def test_unknown_params_are_kept_not_fatal() -> None:
    c = digest.Credentials.parse('Digest username="a", realm="r", nonce="", uri="/", response="", foo=bar')
    assert c.extra == {"foo": "bar"}


def test_case_insensitive_names_and_scheme() -> None:
    c = digest.Credentials.parse('DIGEST UserName="a", REALM="r", Nonce="", URI="/", Response=""')
    assert c.username == "a" and c.realm == "r"


@pytest.mark.parametrize(
    "text",
    [
        'a="x',  # unterminated
        'a="x\\"',  # the closing quote is escaped
        'a="x\\',  # a lone backslash at the end
        'a="x\\\n"',  # a quoted-pair may not carry a control character
        'a="x\x01"',
        'a="x"y',  # text after the closing quote
    ],
)
def test_malformed_quoted_strings_are_refused(text: str) -> None:
    with pytest.raises(digest.DigestError, match="malformed auth-param"):
        digest.parse_auth_params(text)


def test_quoted_pairs_and_tabs_in_quoted_strings() -> None:
    many = '\\"' * 1000  # 1000 escaped quotes, 2000 characters
    assert digest.parse_auth_params(f'a="{many}", b="x\\\\y\tz", c=""') == {"a": '"' * 1000, "b": "x\\y\tz", "c": ""}


@given(st.text(max_size=400))
def test_parsers_never_crash(text: str) -> None:
    for parser in (digest.Credentials.parse, digest.Challenge.parse, digest.AuthenticationInfo.parse):
        with contextlib.suppress(digest.DigestError):
            parser(text)


@given(
    username=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
    realm=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
)
def test_quoting_round_trip(username: str, realm: str) -> None:
    c = digest.Credentials(username=username, realm=realm, nonce="", uri="/", response="")
    assert digest.Credentials.parse(c.to_header()) == c


def test_responses_equal_is_case_insensitive() -> None:
    assert digest.responses_equal("ABCDEF", "abcdef")
    assert not digest.responses_equal("abcdef", "abcdee")


def test_credentials_compute_over_their_own_fields() -> None:
    c = digest.Credentials(
        username=IMPI, realm=REALM, nonce=NONCE, uri="/", response="", qop="auth-int", nc="00000001", cnonce="0a4f113b"
    )
    assert c.expected_response(XRES, "GET", b"") == "e3e8590f679c1236a0f59120ea0a39ab"
    assert c.expected_rspauth(XRES, b"x") == digest.compute_rspauth(
        password=XRES,
        username=IMPI,
        realm=REALM,
        uri="/",
        nonce=NONCE,
        nc="00000001",
        cnonce="0a4f113b",
        qop="auth-int",
        body=b"x",
    )
    with pytest.raises(digest.DigestError):
        digest.Credentials(username=IMPI, realm=REALM, nonce=NONCE, uri="/", response="").expected_response(XRES, "GET")
