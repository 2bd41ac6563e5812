"""A software USIM and a sans-IO UE for Ub bootstrapping (TS 33.220 clause 4.5.2, TS 24.109 4.3-4.5).

The caller moves the HTTP messages; this module turns a 401 challenge into the next Authorization
header, a 200 OK into a bootstrapped state, and derives the NAF keys from that state.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

from gba import digest, kdf, milenage
from gba.bootstrapping_info import BootstrappingInfo

# TS 33.102 Annex C.1/C.3.2: SQN = SEQ || IND with a 5-bit IND; the USIM keeps one SEQ per IND value.
IND_BITS = 5
IND_SIZE = 1 << IND_BITS
DELTA = 1 << 28  # C.2.1: the recommended limit on how far ahead an accepted SEQ may be


class UeError(Exception):
    """The UE cannot continue (malformed challenge, failed network authentication, bad 200 OK)."""


class NetworkAuthFailure(UeError):
    """MAC in AUTN did not verify: the network is not authentic and the UE stops (TS 24.109 4.4)."""


class UeMode(enum.Enum):
    """What the UICC can do, not something announced on Ub (TS 33.220 5.2.2, 5.3.2: the BSF decides from
    the GUSS alone and the Ub messages are the same). A GBA_U-aware UICC is always asked in the GBA
    security context (TS 33.220 Annex G, TS 31.102 AUTHENTICATE): it unmasks MAC* and flips RES."""

    GBA_ME = "GBA_ME"
    GBA_U = "GBA_U"


USER_AGENT = "gbagw-ue/1.0 " + digest.TMPI_PRODUCT


@dataclass(frozen=True, slots=True)
class AkaSuccess:
    res: bytes
    ck: bytes
    ik: bytes


@dataclass(frozen=True, slots=True)
class AkaSyncFailure:
    auts: bytes


@dataclass
class Usim:
    """USIM with Milenage and the SEQ/IND array of TS 33.102 Annex C.2.2 (profile 2)."""

    k: bytes
    opc: bytes
    seq_ms: list[int] = field(default_factory=lambda: [0] * IND_SIZE)

    def __post_init__(self) -> None:
        self._mil = milenage.Milenage(self.k, self.opc)

    @property
    def sqn_ms(self) -> int:
        """The highest accepted SQN (C.3.4: what AUTS reports)."""
        # The highest SEQ, and the highest IND among equal ones.
        seq, ind = max(zip(self.seq_ms, range(IND_SIZE), strict=True))
        return (seq << IND_BITS) | ind

    def set_sqn_ms(self, sqn: int) -> None:
        """Pretend the USIM has already accepted ``sqn`` (used to exercise resynchronisation)."""
        self.seq_ms[sqn & (IND_SIZE - 1)] = sqn >> IND_BITS

    def authenticate(self, rand: bytes, autn: bytes, *, gba_u: bool = False) -> AkaSuccess | AkaSyncFailure:
        """AUTHENTICATE; ``gba_u`` = the GBA security context of a GBA_U-aware UICC (TS 33.220 Annex G).

        In that context the UICC always reads the MAC field as MAC*: there is no fallback to a plain
        MAC, so a GBA_ME challenge fails here with NetworkAuthFailure (TS 24.109 4.4: the UE stops).
        """
        res, ck, ik, ak = self._mil.f2345(rand)
        if gba_u:
            # TS 33.220 5.3.2 step 4: the UICC recovers MAC from MAC* = MAC xor SHA-1(IK)[0..63].
            autn = milenage.gba_u_autn(autn, ik)
        check = milenage.open_autn(self._mil, rand, autn, ak)
        if not check.mac_ok:
            raise NetworkAuthFailure("MAC in AUTN does not verify")
        seq, ind = check.sqn >> IND_BITS, check.sqn & (IND_SIZE - 1)
        highest_seq = self.sqn_ms >> IND_BITS
        if seq <= self.seq_ms[ind] or seq - highest_seq > DELTA:
            return AkaSyncFailure(milenage.build_auts(self._mil, rand, self.sqn_ms))
        self.seq_ms[ind] = seq
        if gba_u:
            res = milenage.gba_u_expected_res(res)
        return AkaSuccess(res=res, ck=ck, ik=ik)


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """What the UE holds after a successful run: B-TID, Ks lifetime, RAND, Ks (TS 33.220 4.5.2)."""

    impi: str
    btid: str
    lifetime: dt.datetime
    rand: bytes
    ks: bytes
    mode: UeMode
    tmpi: str | None = None  # TS 33.220 4.5.2: derived when the BSF's Server header carried 3gpp-gba-tmpi

    def naf_keys(self, naf_id: kdf.NafId) -> tuple[bytes, bytes | None]:
        """(Ks_NAF or Ks_ext_NAF, Ks_int_NAF or None) for NAF_Id (TS 33.220 4.5.2, 5.3.2)."""
        ext = kdf.ks_naf(self.ks, self.rand, self.impi, naf_id)
        if self.mode is UeMode.GBA_U:
            return ext, kdf.ks_int_naf(self.ks, self.rand, self.impi, naf_id)
        return ext, None


@dataclass(frozen=True, slots=True)
class _Pending:
    """The answer sent to the last challenge and what it was computed from."""

    cred: digest.Credentials
    rand: bytes
    password: bytes
    ck: bytes
    ik: bytes


class UeClient:
    """Sans-IO Ub client: ``authorization()`` → request, ``on_challenge()`` → request, ``on_success()``."""

    def __init__(
        self,
        usim: Usim,
        impi: str,
        realm: str,
        *,
        mode: UeMode = UeMode.GBA_ME,
        uri: str = "/",
        qop: str = digest.QOP_AUTH_INT,
        cnonce_factory: Any = None,
        tmpi: str | None = None,
    ) -> None:
        self.usim = usim
        self.impi = impi
        self.realm = realm
        self.mode = mode
        self.tmpi = tmpi  # the TMPI stored with this IMPI by an earlier bootstrap (TS 33.220 4.4.13)
        self.uri = uri
        self.qop = qop  # preferred; TS 24.109 4.3 mandates auth-int, auth is accepted for interop
        self._cnonce = cnonce_factory or (lambda: os.urandom(8).hex())
        self._pending: _Pending | None = None
        self.bootstrap: Bootstrap | None = None

    @property
    def user_agent(self) -> str:
        """User-Agent on Ub: always ``3gpp-gba-tmpi`` (TS 33.220 4.5.2). ``3gpp-gba`` / ``3gpp-gba-uicc``
        are Ua tokens (TS 24.109 5.2.1) and GBA_U is not announced on Ub (TS 33.220 5.3.2)."""
        return USER_AGENT

    @property
    def username(self) -> str:
        """TS 24.109 4.2 a): the TMPI associated with the IMPI if there is one, else the IMPI."""
        return self.tmpi or self.impi

    def authorization(self) -> str:
        """The first request's header: empty nonce and response (TS 24.109 clause 4.2 a)."""
        return digest.Credentials(
            username=self.username, realm=self.realm, nonce="", uri=self.uri, response=""
        ).to_header()

    def on_refused(self, status: int) -> bool:
        """A final error answer to a request sent with a TMPI: TS 33.220 4.5.2 step 2, the BSF did not
        know it; the UE deletes the TMPI and tries again with the IMPI. True when the caller should
        start again with :meth:`authorization`; False when the refusal stands (the IMPI was used, or
        the answer only says "later": 429, 503)."""
        if self.tmpi is None or status in (429, 503):
            return False
        self.tmpi = None
        self._pending = None
        return True

    @property
    def resynchronising(self) -> bool:
        return self._pending is not None and self._pending.cred.auts is not None

    def on_challenge(self, www_authenticate: str, method: str = "GET", body: bytes = b"") -> str:
        """Answer a 401: the Authorization header with RES, or with AUTS after a SQN failure."""
        try:
            ch = digest.Challenge.parse(www_authenticate)
        except digest.DigestError as exc:
            raise UeError(f"malformed challenge: {exc}") from exc
        if ch.algorithm.lower() != digest.AKA_ALGORITHM.lower():
            raise UeError(f"unsupported algorithm {ch.algorithm!r}")
        try:
            rand, autn, _ = digest.parse_aka_nonce(ch.nonce)
        except digest.DigestError as exc:
            raise UeError(str(exc)) from exc
        result = self.usim.authenticate(rand, autn, gba_u=self.mode is UeMode.GBA_U)
        if self.qop in ch.qop or not ch.qop:
            qop = self.qop
        else:
            qop = digest.QOP_AUTH_INT if digest.QOP_AUTH_INT in ch.qop else digest.QOP_AUTH
        nc, cnonce = "00000001", self._cnonce()
        if isinstance(result, AkaSyncFailure):
            password, auts, ck, ik = b"", result.auts, b"", b""  # RFC 3310 3.4: empty password with AUTS
        else:
            password, auts, ck, ik = result.res, None, result.ck, result.ik
        unsigned = digest.Credentials(
            username=self.username,
            realm=ch.realm,
            nonce=ch.nonce,
            uri=self.uri,
            response="",
            algorithm=ch.algorithm,
            qop=qop,
            nc=nc,
            cnonce=cnonce,
            opaque=ch.opaque,
            auts=auts,
        )
        cred = dataclasses.replace(unsigned, response=unsigned.expected_response(password, method, body))
        self._pending = _Pending(cred, rand, password, ck, ik)
        self.realm = ch.realm
        return cred.to_header()

    def on_success(self, authentication_info: str | None, body: bytes, server: str | None = None) -> Bootstrap:
        """Check rspauth (mutual authentication, RFC 2617 3.2.3) and keep the bootstrap state.

        ``server`` is the 200 OK's Server header: with ``3gpp-gba-tmpi`` in it the UE derives the next
        TMPI (TS 33.220 4.5.2, B.4) and uses it as username from then on."""
        p = self._pending
        if p is None or p.cred.auts is not None:
            raise UeError("200 OK without a successful challenge answer")
        if authentication_info is None:
            raise UeError("200 OK lacks Authentication-Info")
        try:
            info = digest.AuthenticationInfo.parse(authentication_info)
        except digest.DigestError as exc:
            raise UeError(f"malformed Authentication-Info: {exc}") from exc
        # The rspauth must be over our own request's qop/nc/cnonce, whatever the header echoes.
        expected = p.cred.expected_rspauth(p.password, body)
        if not digest.responses_equal(expected, info.rspauth):
            raise UeError("rspauth does not verify: the BSF is not authentic")
        try:
            bi = BootstrappingInfo.parse(body)
        except ValueError as exc:
            raise UeError(f"malformed BootstrappingInfo: {exc}") from exc
        ks = p.ck + p.ik
        # B.4: BSF_Id is the BSF name as used in the B-TID, which is the B-TID's domain part.
        bsf_name = bi.btid.rpartition("@")[2]
        self.tmpi = (
            kdf.tmpi(ks, p.rand, self.impi, bsf_name)
            if digest.TMPI_PRODUCT in digest.product_tokens(server) and bsf_name
            else None
        )
        self.bootstrap = Bootstrap(
            impi=self.impi, btid=bi.btid, lifetime=bi.lifetime, rand=p.rand, ks=ks, mode=self.mode, tmpi=self.tmpi
        )
        self._pending = None
        return self.bootstrap


def state_to_dict(usim: Usim, boot: Bootstrap | None) -> dict[str, Any]:
    """Serialisable UE state (SQN array, last bootstrap) for the CLI's state file."""
    d: dict[str, Any] = {"seq_ms": list(usim.seq_ms)}
    if boot is not None:
        d["bootstrap"] = {
            "impi": boot.impi,
            "btid": boot.btid,
            "lifetime": boot.lifetime.isoformat(),
            "rand": boot.rand.hex(),
            "ks": boot.ks.hex(),
            "mode": boot.mode.value,
        }
        if boot.tmpi is not None:
            # TS 33.220 4.4.13: the ME keeps the (TMPI, IMPI) pair in non-volatile memory.
            d["bootstrap"]["tmpi"] = boot.tmpi
    return d


def bootstrap_from_dict(d: dict[str, Any]) -> Bootstrap | None:
    b = d.get("bootstrap")
    if not b:
        return None
    return Bootstrap(
        impi=b["impi"],
        btid=b["btid"],
        lifetime=dt.datetime.fromisoformat(b["lifetime"]),
        rand=bytes.fromhex(b["rand"]),
        ks=bytes.fromhex(b["ks"]),
        mode=UeMode(b["mode"]),
        tmpi=b.get("tmpi"),
    )


def key_fingerprint(key: bytes) -> str:
    """A short, non-reversible tag of a key for logs and CLI output (never the key itself)."""
    return hashlib.sha256(b"gbagw-fp" + key).hexdigest()[:12]
