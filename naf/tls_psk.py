"""Ua over TLS-PSK (TS 33.222 clause 5.4): PSK identity hint signals GBA, the client's PSK identity
carries the B-TID, PSK = Ks_(ext/int)_NAF for NAF_Id = FQDN || (01,00,01,yy,zz) of the suite in use.

pyOpenSSL has no PSK API, so this module alone uses its low-level OpenSSL bindings (``OpenSSL._util``).
Those bindings expose no "pending cipher" inside the PSK callbacks, so each context is pinned to one PSK
suite: the negotiated suite is known before the key is derived and is checked again after the handshake.
TLS 1.2 only (TS 33.222 and oneM2M TS-0003 10.2.1; TLS 1.3 has no identity hint). Blocking sockets: run
handshakes in threads.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from OpenSSL import SSL
from OpenSSL._util import ffi, lib

from gba.kdf import NafId, ua_tls
from gba.ua import PSK_HINT_ME, KeyKind, UaError, parse_psk_identity, psk_identity

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


def _ssl_key(ssl: Any) -> int:
    return int(ffi.cast("uintptr_t", ssl))


def _context(suite: str) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_max_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_cipher_list(suite.encode("ascii"))
    return ctx


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
        self.context = _context(suite)
        self._callback = ffi.callback("unsigned int(SSL *, const char *, unsigned char *, unsigned int)", self._on_psk)
        lib.SSL_CTX_set_psk_server_callback(self.context._context, self._callback)
        if lib.SSL_CTX_use_psk_identity_hint(self.context._context, hint.encode("ascii")) != 1:
            raise ValueError("OpenSSL refused the PSK identity hint")

    def _on_psk(self, ssl: Any, identity: Any, psk: Any, max_len: int) -> int:
        # Called by OpenSSL inside the handshake; an exception here must not escape into C.
        try:
            kind, btid = parse_psk_identity(ffi.string(identity))
            key = self._lookup(kind, btid, self.naf_id)
            if key is None or len(key) > min(max_len, MAX_PSK_LEN):
                log.info("tls-psk: no key for B-TID %s; failing the handshake", btid)
                return 0
            ffi.memmove(psk, key, len(key))
            with self._lock:
                self._identities[_ssl_key(ssl)] = (kind, btid)
            return len(key)
        except (UaError, ValueError) as exc:
            log.info("tls-psk: rejected PSK identity: %s", exc)
            return 0
        except Exception:
            log.exception("tls-psk: key lookup failed")
            return 0

    def accept(self, sock: socket.socket) -> PskSession:
        """Run the server handshake on a connected socket (blocking)."""
        conn = SSL.Connection(self.context, sock)
        conn.set_accept_state()
        try:
            conn.do_handshake()
        except SSL.Error as exc:
            raise PskHandshakeError(f"handshake failed: {exc}") from None
        finally:
            with self._lock:
                found = self._identities.pop(_ssl_key(conn._ssl), None)
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
        self._identity = btid.encode("ascii") if bare_identity else psk_identity(btid, kind)
        self._psk = key_for(self.naf_id)
        self.hint: bytes | None = None
        self.context = _context(suite)
        self._callback = ffi.callback(
            "unsigned int(SSL *, const char *, char *, unsigned int, unsigned char *, unsigned int)", self._on_psk
        )
        lib.SSL_CTX_set_psk_client_callback(self.context._context, self._callback)

    def _on_psk(self, _ssl: Any, hint: Any, identity: Any, max_identity: int, psk: Any, max_psk: int) -> int:
        try:
            self.hint = ffi.string(hint) if hint != ffi.NULL else None
            if len(self._identity) + 1 > max_identity or len(self._psk) > max_psk:
                return 0
            ffi.memmove(identity, self._identity + b"\0", len(self._identity) + 1)
            ffi.memmove(psk, self._psk, len(self._psk))
            return len(self._psk)
        except Exception:
            log.exception("tls-psk: client callback failed")
            return 0

    def connect(self, sock: socket.socket) -> SSL.Connection:
        conn = SSL.Connection(self.context, sock)
        conn.set_tlsext_host_name(self.naf_fqdn.encode("ascii"))  # TS 33.222 5.4: SNI is mandatory
        conn.set_connect_state()
        try:
            conn.do_handshake()
        except SSL.Error as exc:
            raise PskHandshakeError(f"handshake failed: {exc}") from None
        return conn
