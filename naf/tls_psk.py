"""Ua over TLS-PSK (TS 33.222 clause 5.4): PSK identity hint signals GBA, the client's PSK identity
carries the B-TID, PSK = Ks_(ext/int)_NAF for NAF_Id = FQDN || (01,00,01,yy,zz) of the suite in use.

The PSK callbacks run before OpenSSL makes the negotiated suite current, so both sides read it from the
ServerHello (gbaio.tls.install_suite_watch) and derive the key for that suite. oneM2M MAF handshakes
(TS-0003 8.8.2.2: bare KmID = B-TID as identity) use the oneM2M Ua id profile instead, one id for every
suite (gba.onem2m.UA_ID_DEFAULT). TLS 1.2 only (TS 33.222; oneM2M TS-0003 10.2.1; TLS 1.3 has no
identity hint). Blocking sockets: run handshakes in threads.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from OpenSSL import SSL

from gba.kdf import NafId, ua_tls
from gba.ua import PSK_HINT_ME, PSK_HINT_UICC, KeyKind, UaError, parse_psk_identity, psk_identity
from gbaio.tls import (
    TlsError,
    connection_id,
    handshake,
    install_client_psk,
    install_server_psk,
    install_suite_watch,
    peer_names,
    ssl_id,
    tls12_context,
)

log = logging.getLogger("gbagw.naf.tls_psk")

# OpenSSL suite name -> IANA code (RFC 4279, RFC 5487, RFC 6655); the code goes into the Ua id.
PSK_SUITES = {
    "PSK-AES128-CBC-SHA256": 0x00AE,  # oneM2M TS-0003 10.2.2 mandatory for TLS
    "PSK-AES128-GCM-SHA256": 0x00A8,
    "PSK-AES256-GCM-SHA384": 0x00A9,
    "PSK-AES128-CCM": 0xC0A4,
    "PSK-AES128-CCM8": 0xC0A8,  # oneM2M mandatory for DTLS
}
DEFAULT_SUITE = "PSK-AES128-CBC-SHA256"
# TS 33.222 5.4 step 1: the UE offers its PSK suites "and possibly other" suites (certificate-based, 5.3).
CERT_SUITES = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
MAX_PSK_LEN = 64

# (key kind, B-TID, NAF_Id) -> PSK, or None to fail the handshake.
PskLookup = Callable[[KeyKind, str, NafId], bytes | None]


class PskHandshakeError(Exception):
    """The TLS-PSK handshake failed (unknown B-TID, wrong key, wrong suite, peer closed)."""


def _check_suites(suites: Sequence[str]) -> None:
    unknown = [s for s in suites if s not in PSK_SUITES]
    if unknown or not suites:
        raise ValueError(f"unsupported PSK suite {unknown or suites!r}; choose from {', '.join(PSK_SUITES)}")


def naf_id_for(naf_fqdn: str, suite: str) -> NafId:
    _check_suites([suite])
    return NafId(naf_fqdn, ua_tls(PSK_SUITES[suite]))


class _SuiteWatch:
    """The ServerHello suite of each connection of a context, until the PSK callback takes it."""

    def __init__(self, ctx: SSL.Context) -> None:
        self._codes: dict[int, int] = {}
        self._lock = threading.Lock()
        self._handle = install_suite_watch(ctx, self._seen)

    def _seen(self, ssl: Any, code: int) -> None:
        with self._lock:
            self._codes[ssl_id(ssl)] = code

    def take(self, key: int) -> int | None:
        with self._lock:
            return self._codes.pop(key, None)


@dataclass(frozen=True, slots=True)
class PskSession:
    conn: SSL.Connection
    btid: str
    kind: KeyKind
    naf_id: NafId


class PskServer:
    """Server side of a NAF: the hint offers GBA, the callback looks the B-TID's key up for the suite
    the handshake negotiated. ``onem2m_ua_id``: also serve oneM2M MAF handshakes (bare KmID)."""

    def __init__(
        self,
        naf_fqdn: str,
        lookup: PskLookup,
        suites: Sequence[str] = (DEFAULT_SUITE,),
        hints: Sequence[str] = (PSK_HINT_ME,),
        *,
        onem2m_ua_id: bytes | None = None,
    ) -> None:
        _check_suites(suites)
        if not hints or any(h not in (PSK_HINT_ME, PSK_HINT_UICC) for h in hints):
            raise ValueError(f"PSK identity hints are {PSK_HINT_ME!r} and/or {PSK_HINT_UICC!r}")
        self.naf_fqdn = naf_fqdn
        self.suites = tuple(suites)
        self.hints = tuple(hints)
        self.onem2m_ua_id = onem2m_ua_id
        self._lookup = lookup
        self._sessions: dict[int, tuple[KeyKind, str, NafId]] = {}
        self._lock = threading.Lock()
        self.context = tls12_context(":".join(suites))
        self._watch = _SuiteWatch(self.context)
        self._handle = install_server_psk(self.context, self._on_psk, ";".join(hints))

    def _naf_id(self, identity: bytes, code: int | None) -> tuple[KeyKind, str, NafId]:
        kind, btid = parse_psk_identity(identity)
        if b";" not in identity:
            if self.onem2m_ua_id is None:
                raise UaError("a bare PSK identity (oneM2M KmID) and this NAF serves no oneM2M MAF")
            return kind, btid, NafId(self.naf_fqdn, self.onem2m_ua_id)
        prefix = identity.split(b";", 1)[0].decode("ascii")
        if prefix not in self.hints:
            # TS 33.222 5.4 step 3: the identity's prefix is one of the hints this NAF offered.
            raise UaError(f"PSK identity prefix {prefix!r} is not among the offered hints {list(self.hints)}")
        if code not in PSK_SUITES.values():
            raise UaError("no PSK suite negotiated")
        assert code is not None
        return kind, btid, NafId(self.naf_fqdn, ua_tls(code))

    def _on_psk(self, ssl: Any, identity: bytes) -> bytes | None:
        code = self._watch.take(ssl_id(ssl))
        try:
            kind, btid, naf_id = self._naf_id(identity, code)
        except UaError as exc:
            log.info("tls-psk: rejected PSK identity: %s", exc)
            return None
        try:
            key = self._lookup(kind, btid, naf_id)
        except Exception:
            log.exception("tls-psk: key lookup failed")
            return None
        if key is None or len(key) > MAX_PSK_LEN:
            log.info("tls-psk: no key for B-TID %s; failing the handshake", btid)
            return None
        with self._lock:
            self._sessions[ssl_id(ssl)] = (kind, btid, naf_id)
        return key

    def accept(self, sock: socket.socket) -> PskSession:
        """Run the server handshake on a connected socket (blocking)."""
        conn = SSL.Connection(self.context, sock)
        conn.set_accept_state()
        try:
            handshake(conn)
        except TlsError as exc:
            raise PskHandshakeError(str(exc)) from None
        finally:
            self._watch.take(connection_id(conn))
            with self._lock:
                found = self._sessions.pop(connection_id(conn), None)
        if found is None or conn.get_cipher_name() not in self.suites:
            conn.shutdown()
            raise PskHandshakeError("handshake completed without a GBA PSK on an offered suite")
        return PskSession(conn, found[1], found[0], found[2])


class PskClient:
    """UE side: offers its PSK suites and certificate suites (TS 33.222 5.4 step 1), sends
    ``3GPP-bootstrapping[-uicc];<B-TID>`` (or, with ``onem2m_ua_id``, the bare KmID of TS-0003 8.8.2.2)
    and the PSK derived for the suite the NAF chose. A certificate suite needs ``ca`` to verify the NAF."""

    def __init__(
        self,
        naf_fqdn: str,
        btid: str,
        key_for: Callable[[NafId], bytes],
        *,
        suites: Sequence[str] = (DEFAULT_SUITE,),
        kind: KeyKind = KeyKind.ME,
        onem2m_ua_id: bytes | None = None,
        ca: Path | None = None,
    ) -> None:
        _check_suites(suites)
        self.naf_fqdn = naf_fqdn
        self.suites = tuple(suites)
        self.naf_id: NafId | None = None
        self.hint: bytes | None = None
        self._ca = ca
        self.context = tls12_context(":".join((*suites, CERT_SUITES)))
        if ca is not None:
            self.context.load_verify_locations(str(ca))
            self.context.set_verify(SSL.VERIFY_PEER, lambda _c, _x, _e, _d, ok: bool(ok))
        self._watch = _SuiteWatch(self.context)
        self._conn: SSL.Connection | None = None
        identity = btid.encode("ascii") if onem2m_ua_id is not None else psk_identity(btid, kind)
        prefix = (PSK_HINT_UICC if kind is KeyKind.UICC else PSK_HINT_ME).encode("ascii")

        def on_psk(hint: bytes | None) -> tuple[bytes, bytes] | None:
            self.hint = hint
            assert self._conn is not None
            code = self._watch.take(connection_id(self._conn))
            if onem2m_ua_id is not None:
                self.naf_id = NafId(naf_fqdn, onem2m_ua_id)
            else:
                if hint is not None and prefix not in hint.split(b";"):
                    log.info("tls-psk: the NAF's hint %r does not offer %r", hint, prefix)
                    return None
                if code not in PSK_SUITES.values():
                    return None
                assert code is not None
                self.naf_id = NafId(naf_fqdn, ua_tls(code))
            return identity, key_for(self.naf_id)

        self._handle = install_client_psk(self.context, on_psk)

    def connect(self, sock: socket.socket) -> SSL.Connection:
        conn = SSL.Connection(self.context, sock)
        conn.set_tlsext_host_name(self.naf_fqdn.encode("ascii"))  # TS 33.222 5.4: SNI is mandatory
        conn.set_connect_state()
        self._conn = conn
        try:
            handshake(conn)
        except TlsError as exc:
            raise PskHandshakeError(str(exc)) from None
        # A certificate suite (TS 33.222 5.3): the NAF's certificate must be verified and name it.
        if conn.get_cipher_name() not in self.suites and (
            self._ca is None or self.naf_fqdn.lower() not in peer_names(conn)
        ):
            with contextlib.suppress(SSL.Error):  # the peer may be gone already
                conn.shutdown()
            raise PskHandshakeError(
                f"the NAF chose {conn.get_cipher_name()} and its certificate could not be verified for {self.naf_fqdn}"
            )
        return conn
