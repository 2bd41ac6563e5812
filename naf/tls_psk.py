"""Ua over TLS-PSK (TS 33.222 clause 5.4): PSK identity hint signals GBA, the client's PSK identity
carries the B-TID, PSK = Ks_(ext/int)_NAF for NAF_Id = FQDN || (01,00,01,yy,zz) of the suite in use.

OpenSSL's bindings (see gbaio.tls) expose no "pending cipher" inside the PSK callbacks, so each context
is pinned to one PSK suite: the negotiated suite is known before the key is derived and is checked again
after the handshake. TLS 1.2 only (TS 33.222; oneM2M TS-0003 10.2.1; TLS 1.3 has no identity hint).
Blocking sockets: run handshakes in threads.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from OpenSSL import SSL

from gba.kdf import NafId, ua_tls
from gba.ua import PSK_HINT_ME, KeyKind, UaError, parse_psk_identity, psk_identity
from gbaio.tls import TlsError, connection_id, handshake, install_client_psk, install_server_psk, ssl_id, tls12_context

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
MAX_PSK_LEN = 64

# (key kind, B-TID, NAF_Id) -> PSK, or None to fail the handshake.
PskLookup = Callable[[KeyKind, str, NafId], bytes | None]


class PskHandshakeError(Exception):
    """The TLS-PSK handshake failed (unknown B-TID, wrong key, wrong suite, peer closed)."""


def naf_id_for(naf_fqdn: str, suite: str) -> NafId:
    try:
        return NafId(naf_fqdn, ua_tls(PSK_SUITES[suite]))
    except KeyError:
        raise ValueError(f"unsupported PSK suite {suite!r}; choose one of {', '.join(PSK_SUITES)}") from None


@dataclass(frozen=True, slots=True)
class PskSession:
    conn: SSL.Connection
    btid: str
    kind: KeyKind
    naf_id: NafId


class PskServer:
    """Server side of a NAF: the hint offers GBA, the callback looks the B-TID's key up."""

    def __init__(self, naf_fqdn: str, lookup: PskLookup, suite: str = DEFAULT_SUITE, hint: str = PSK_HINT_ME) -> None:
        self.naf_id = naf_id_for(naf_fqdn, suite)
        self.suite = suite
        self._lookup = lookup
        self._identities: dict[int, tuple[KeyKind, str]] = {}
        self._lock = threading.Lock()
        self.context = tls12_context(suite)
        self._handle = install_server_psk(self.context, self._on_psk, hint)

    def _on_psk(self, ssl: Any, identity: bytes) -> bytes | None:
        try:
            kind, btid = parse_psk_identity(identity)
        except UaError as exc:
            log.info("tls-psk: rejected PSK identity: %s", exc)
            return None
        try:
            key = self._lookup(kind, btid, self.naf_id)
        except Exception:
            log.exception("tls-psk: key lookup failed")
            return None
        if key is None or len(key) > MAX_PSK_LEN:
            log.info("tls-psk: no key for B-TID %s; failing the handshake", btid)
            return None
        with self._lock:
            self._identities[ssl_id(ssl)] = (kind, btid)
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
            with self._lock:
                found = self._identities.pop(connection_id(conn), None)
        if found is None or conn.get_cipher_name() != self.suite:
            conn.shutdown()
            raise PskHandshakeError("handshake completed without a GBA PSK on the pinned suite")
        return PskSession(conn, found[1], found[0], self.naf_id)


class PskClient:
    """UE side: sends ``3GPP-bootstrapping;<B-TID>`` (or the bare KmID for oneM2M) and the derived PSK."""

    def __init__(
        self,
        naf_fqdn: str,
        btid: str,
        key_for: Callable[[NafId], bytes],
        *,
        suite: str = DEFAULT_SUITE,
        kind: KeyKind = KeyKind.ME,
        bare_identity: bool = False,
    ) -> None:
        self.naf_fqdn = naf_fqdn
        self.naf_id = naf_id_for(naf_fqdn, suite)
        self.suite = suite
        identity = btid.encode("ascii") if bare_identity else psk_identity(btid, kind)
        psk = key_for(self.naf_id)
        self.hint: bytes | None = None
        self.context = tls12_context(suite)

        def on_psk(hint: bytes | None) -> tuple[bytes, bytes]:
            self.hint = hint
            return identity, psk

        self._handle = install_client_psk(self.context, on_psk)

    def connect(self, sock: socket.socket) -> SSL.Connection:
        conn = SSL.Connection(self.context, sock)
        conn.set_tlsext_host_name(self.naf_fqdn.encode("ascii"))  # TS 33.222 5.4: SNI is mandatory
        conn.set_connect_state()
        try:
            handshake(conn)
        except TlsError as exc:
            raise PskHandshakeError(str(exc)) from None
        return conn
