"""HTTP Digest for AKA (RFC 3310, AKAv1-MD5) as profiled by 3GPP TS 24.109, on RFC 2617 / RFC 7616.

Strict, bounded parsers for ``WWW-Authenticate``, ``Authorization`` and ``Authentication-Info``;
builders for the same headers; response / rspauth computation for qop ``auth`` and ``auth-int``.
Every parser either returns a typed value or raises :class:`DigestError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass, field

MAX_HEADER_LEN = 8192
MAX_PARAMS = 32
MAX_VALUE_LEN = 4096
AKA_ALGORITHM = "AKAv1-MD5"
QOP_AUTH = "auth"
QOP_AUTH_INT = "auth-int"
QOPS = (QOP_AUTH, QOP_AUTH_INT)
# TS 24.109 4.2 / TS 33.220 4.5.2: the one product token of Ub, in User-Agent (UE) and Server (BSF).
TMPI_PRODUCT = "3gpp-gba-tmpi"


def product_tokens(header: str | None) -> frozenset[str]:
    """The product names in a User-Agent or Server header (RFC 9110 10.1.5, 10.2.4), lower case."""
    words = (header or "").replace(";", " ").split()
    return frozenset(w.split("/")[0].strip().lower() for w in words if not w.startswith("("))


_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEX32_RE = re.compile(r"[0-9a-fA-F]{32}")
_NC_RE = re.compile(r"[0-9a-fA-F]{8}")


class DigestError(ValueError):
    """A Digest header is malformed or violates the AKA profile."""


# --- generic auth-param lexer (RFC 7235 clause 2.1, RFC 7230 clause 3.2.6) ---------------------


_TCHAR = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
# One auth-param and its list separator (RFC 7235 2.1, RFC 7230 3.2.6 and 7): empty list elements are
# tolerated; a quoted-string allows quoted-pairs but no control characters other than HTAB. The
# quoted-string is written as an unrolled loop (a run of plain characters, then quoted-pairs each
# followed by such a run): every character has one way to match, so the engine runs one class loop
# instead of an alternation per character (the lexing of a Ub Authorization: 11 -> 4.6 µs).
_LEAD = r"[ \t]*(?:,[ \t]*)*"
_QDTEXT = r"""[^"\\\x00-\x08\x0a-\x1f\x7f]"""
_QUOTED = rf"""{_QDTEXT}*(?:\\[^\x00-\x08\x0a-\x1f\x7f]{_QDTEXT}*)*"""
_PARAM_RE = re.compile(rf"""{_LEAD}({_TCHAR}+)[ \t]*=[ \t]*(?:"({_QUOTED})"|({_TCHAR}+))[ \t]*(?:,|$)""")
# The whole list at once, the same params without groups: one pass in the regex engine validates it
# and findall then yields the params (a match per param from Python cost more than the digest check).
_LIST_RE = re.compile(rf"""(?:{_LEAD}{_TCHAR}+[ \t]*=[ \t]*(?:"{_QUOTED}"|{_TCHAR}+)[ \t]*(?:,|$))*[ \t,]*""")
_QUOTED_PAIR_RE = re.compile(r"\\(.)", re.S)


def _malformed_offset(text: str) -> int:
    """Where a list that does not parse stops parsing (for the error message)."""
    end = 0
    while (m := _PARAM_RE.match(text, end)) is not None:
        end = m.end()
    return end


def parse_auth_params(text: str) -> dict[str, str]:
    """Parse ``name=value, name="quoted"`` lists. Names are case-insensitive; duplicates are errors."""
    if len(text) > MAX_HEADER_LEN:
        raise DigestError("header too long")
    # The params must be contiguous: the list as a whole must match, not just some params in it.
    if not _LIST_RE.fullmatch(text):
        raise DigestError(f"malformed auth-param at offset {_malformed_offset(text)}")
    found = _PARAM_RE.findall(text)
    if len(found) > MAX_PARAMS:
        raise DigestError("too many parameters")
    params: dict[str, str] = {}
    for name, quoted, token in found:
        name = name.lower()
        # Only quoted-pairs need the substitution; most quoted values have no backslash.
        value = token or (_QUOTED_PAIR_RE.sub(r"\1", quoted) if "\\" in quoted else quoted)
        if len(value) > MAX_VALUE_LEN:
            raise DigestError(f"parameter {name!r} is too long")
        if name in params:
            raise DigestError(f"duplicate parameter {name!r}")
        params[name] = value
    return params


def _split_scheme(header: str) -> dict[str, str]:
    if len(header) > MAX_HEADER_LEN:
        raise DigestError("header too long")
    header = header.strip(" \t")
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != "digest":
        raise DigestError("authentication scheme is not Digest")
    return parse_auth_params(rest)


_CONTROL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def quote(value: str) -> str:
    if _CONTROL_RE.search(value):
        raise DigestError("control character in a header value")
    if '"' in value or "\\" in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + value + '"'


def _join(params: list[tuple[str, str, bool]]) -> str:
    return ", ".join(f"{k}={quote(v) if q else v}" for k, v, q in params)


def _token(value: str, what: str) -> str:
    if not _TOKEN_RE.fullmatch(value):
        raise DigestError(f"{what} must be a token")
    return value


# --- AKA nonce (RFC 3310 clause 3.2) -------------------------------------------------------------


def aka_nonce(rand: bytes, autn: bytes, server_data: bytes = b"") -> str:
    """nonce = base64(RAND || AUTN || server specific data) (RFC 3310 clause 3.2)."""
    if len(rand) != 16 or len(autn) != 16:
        raise DigestError("RAND and AUTN must be 16 octets each")
    return base64.b64encode(rand + autn + server_data).decode("ascii")


def parse_aka_nonce(nonce: str) -> tuple[bytes, bytes, bytes]:
    """(RAND, AUTN, server data) from an AKA nonce."""
    raw = b64decode_strict(nonce, "nonce")
    if len(raw) < 32:
        raise DigestError("AKA nonce shorter than RAND || AUTN")
    return raw[:16], raw[16:32], raw[32:]


def b64decode_strict(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise DigestError(f"{what} is not valid base64") from exc


# --- typed headers ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Challenge:
    """``WWW-Authenticate: Digest ...`` (RFC 2617 clause 3.2.1, RFC 3310 clause 3.2)."""

    realm: str
    nonce: str
    algorithm: str = AKA_ALGORITHM
    qop: tuple[str, ...] = (QOP_AUTH_INT,)
    opaque: str | None = None
    stale: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def to_header(self) -> str:
        params: list[tuple[str, str, bool]] = [("realm", self.realm, True), ("nonce", self.nonce, True)]
        params.append(("algorithm", _token(self.algorithm, "algorithm"), False))
        if self.qop:
            params.append(("qop", ",".join(self.qop), True))
        if self.opaque is not None:
            params.append(("opaque", self.opaque, True))
        if self.stale:
            params.append(("stale", "true", False))
        return "Digest " + _join(params)

    @classmethod
    def parse(cls, header: str) -> Challenge:
        p = _split_scheme(header)
        try:
            realm, nonce = p.pop("realm"), p.pop("nonce")
        except KeyError as exc:
            raise DigestError(f"challenge lacks {exc.args[0]}") from None
        qop = tuple(q.strip() for q in p.pop("qop", "").split(",") if q.strip())
        return cls(
            realm=realm,
            nonce=nonce,
            algorithm=p.pop("algorithm", "MD5"),
            qop=qop,
            opaque=p.pop("opaque", None),
            stale=p.pop("stale", "false").lower() == "true",
            extra=p,
        )


@dataclass(frozen=True, slots=True)
class Credentials:
    """``Authorization: Digest ...`` (RFC 2617 clause 3.2.2, RFC 3310 clause 3.3/3.4)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str | None = None
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None
    auts: bytes | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def is_initial(self) -> bool:
        """The first Ub request carries an empty nonce and response (TS 24.109 clause 4.2)."""
        return self.nonce == "" and self.response == ""

    def to_header(self) -> str:
        params: list[tuple[str, str, bool]] = [
            ("username", self.username, True),
            ("realm", self.realm, True),
            ("nonce", self.nonce, True),
            ("uri", self.uri, True),
            ("response", self.response, True),
        ]
        if self.algorithm is not None:
            params.append(("algorithm", _token(self.algorithm, "algorithm"), False))
        if self.qop is not None:
            params += [("qop", _token(self.qop, "qop"), False), ("nc", self.nc or "", False)]
            params.append(("cnonce", self.cnonce or "", True))
        if self.opaque is not None:
            params.append(("opaque", self.opaque, True))
        if self.auts is not None:
            params.append(("auts", base64.b64encode(self.auts).decode("ascii"), True))
        return "Digest " + _join(params)

    @classmethod
    def parse(cls, header: str) -> Credentials:
        p = _split_scheme(header)
        try:
            username, realm, nonce, uri = p.pop("username"), p.pop("realm"), p.pop("nonce"), p.pop("uri")
            response = p.pop("response")
        except KeyError as exc:
            raise DigestError(f"credentials lack {exc.args[0]}") from None
        if response and not _HEX32_RE.fullmatch(response):
            raise DigestError("response must be 32 hex digits")
        qop, nc, cnonce = p.pop("qop", None), p.pop("nc", None), p.pop("cnonce", None)
        if qop is not None:
            if qop not in QOPS:
                raise DigestError(f"unsupported qop {qop!r}")
            if nc is None or cnonce is None:
                raise DigestError("qop requires nc and cnonce")
            if not _NC_RE.fullmatch(nc):
                raise DigestError("nc must be 8 hex digits")
        elif nc is not None or cnonce is not None:
            raise DigestError("nc/cnonce without qop")
        auts_text = p.pop("auts", None)
        auts = None
        if auts_text is not None:
            auts = b64decode_strict(auts_text, "auts")
            if len(auts) != 14:
                raise DigestError("AUTS must be 14 octets")
        return cls(
            username=username,
            realm=realm,
            nonce=nonce,
            uri=uri,
            response=response.lower(),
            algorithm=p.pop("algorithm", None),
            qop=qop,
            nc=nc.lower() if nc else None,
            cnonce=cnonce,
            opaque=p.pop("opaque", None),
            auts=auts,
            extra=p,
        )

    def _digest_fields(self) -> tuple[str, str, str]:
        if self.qop is None or self.nc is None or self.cnonce is None:
            raise DigestError("a digest over these credentials needs qop, nc and cnonce")
        return self.qop, self.nc, self.cnonce

    def expected_response(self, password: bytes, method: str, body: bytes | None = None) -> str:
        """The request-digest these credentials must carry for ``password`` (RFC 2617 3.2.2.1)."""
        qop, nc, cnonce = self._digest_fields()
        return compute_response(
            password=password,
            username=self.username,
            realm=self.realm,
            method=method,
            uri=self.uri,
            nonce=self.nonce,
            nc=nc,
            cnonce=cnonce,
            qop=qop,
            body=body,
        )

    def expected_rspauth(self, password: bytes, body: bytes | None = None) -> str:
        """The server's rspauth for a response carrying ``body`` (RFC 2617 3.2.3)."""
        qop, nc, cnonce = self._digest_fields()
        return compute_rspauth(
            password=password,
            username=self.username,
            realm=self.realm,
            uri=self.uri,
            nonce=self.nonce,
            nc=nc,
            cnonce=cnonce,
            qop=qop,
            body=body,
        )


@dataclass(frozen=True, slots=True)
class AuthenticationInfo:
    """``Authentication-Info`` (RFC 2617 clause 3.2.3)."""

    rspauth: str
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    nextnonce: str | None = None

    def to_header(self) -> str:
        params: list[tuple[str, str, bool]] = []
        if self.nextnonce is not None:
            params.append(("nextnonce", self.nextnonce, True))
        if self.qop is not None:
            params.append(("qop", _token(self.qop, "qop"), False))
        params.append(("rspauth", self.rspauth, True))
        if self.cnonce is not None:
            params.append(("cnonce", self.cnonce, True))
        if self.nc is not None:
            params.append(("nc", _token(self.nc, "nc"), False))
        return _join(params)

    @classmethod
    def parse(cls, header: str) -> AuthenticationInfo:
        p = parse_auth_params(header)
        rspauth = p.get("rspauth")
        if rspauth is None or not _HEX32_RE.fullmatch(rspauth):
            raise DigestError("Authentication-Info lacks a valid rspauth")
        return cls(
            rspauth=rspauth.lower(),
            qop=p.get("qop"),
            nc=p.get("nc"),
            cnonce=p.get("cnonce"),
            nextnonce=p.get("nextnonce"),
        )


# --- computations (RFC 2617 clause 3.2.2.1-3.2.2.3; RFC 3310 clause 3.3: password = RES octets) --


def _md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _ha2(method: str, uri: str, qop: str, body: bytes | None) -> str:
    a2 = f"{method}:{uri}".encode()
    if qop == QOP_AUTH_INT:
        a2 += b":" + _md5_hex(body or b"").encode("ascii")
    elif qop != QOP_AUTH:
        raise DigestError(f"unsupported qop {qop!r}")
    return _md5_hex(a2)


def compute_response(
    *,
    password: bytes,
    username: str,
    realm: str,
    method: str,
    uri: str,
    nonce: str,
    nc: str,
    cnonce: str,
    qop: str,
    body: bytes | None = None,
) -> str:
    """request-digest; for AKAv1 the password is RES as raw octets, empty for AUTS (RFC 3310 3.4)."""
    ha1 = _md5_hex(f"{username}:{realm}:".encode() + password)
    ha2 = _ha2(method, uri, qop, body)
    return _md5_hex(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode())


def compute_rspauth(
    *,
    password: bytes,
    username: str,
    realm: str,
    uri: str,
    nonce: str,
    nc: str,
    cnonce: str,
    qop: str,
    body: bytes | None = None,
) -> str:
    """rspauth: as the response but with an empty method, over the response body (RFC 2617 3.2.3)."""
    return compute_response(
        password=password,
        username=username,
        realm=realm,
        method="",
        uri=uri,
        nonce=nonce,
        nc=nc,
        cnonce=cnonce,
        qop=qop,
        body=body,
    )


def responses_equal(expected: str, received: str) -> bool:
    """Constant-time comparison of two hex digests."""
    return hmac.compare_digest(expected.lower().encode("ascii"), received.lower().encode("ascii", "replace"))
