"""TLS 1.2 on pyOpenSSL shared by the MEF, the MAF client, the Enrolee and the NAF kit.

- PSK: pyOpenSSL has no PSK API, so this module alone reaches its low-level OpenSSL bindings
  (``OpenSSL._util``) to install the RFC 4279 callbacks.
- Certificates: mutual-TLS contexts whose peer name is checked after the handshake (SAN dNSName, else CN),
  and a stdlib ``ssl`` client context for asyncio clients (Diameter over TLS).
- One HTTP/1.1 exchange per connection with h11 (sans-IO), for small JSON APIs over a secured session:
  blocking on the client side, under asyncio (memory BIOs, :class:`TlsSession`) on the serving side.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import h11
from cryptography import x509
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from OpenSSL._util import ffi, lib

from gbaio.errors import os_reason

MAX_HTTP_BYTES = 16 * 1024
ServerPskCallback = Callable[[Any, bytes, Any, int], int]
ClientPskCallback = Callable[[Any, bytes | None, Any, int, Any, int], int]


class TlsError(Exception):
    """A handshake, peer-name check or HTTP exchange over TLS failed."""


class PeerClosed(TlsError):
    """The peer closed the connection before the handshake ended (not a refusal by either side)."""


def tls12_context(cipher_list: str) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_max_proto_version(SSL.TLS1_2_VERSION)  # TS 33.222 / oneM2M TS-0003 10.2.1: (D)TLS 1.2
    ctx.set_cipher_list(cipher_list.encode("ascii"))
    return ctx


# --- PSK (RFC 4279) through the low-level bindings -------------------------------------------------


def ssl_id(ssl: Any) -> int:
    """A stable key for the C ``SSL *`` of a connection (to match callbacks with connections)."""
    return int(ffi.cast("uintptr_t", ssl))


def connection_id(conn: SSL.Connection) -> int:
    return ssl_id(conn._ssl)


def install_server_psk(ctx: SSL.Context, on_psk: Callable[[Any, bytes], bytes | None], hint: str | None) -> Any:
    """``on_psk(ssl, identity) -> key | None``; returns the cffi handle, which must stay referenced."""

    def callback(ssl: Any, identity: Any, psk: Any, max_len: int) -> int:
        try:
            key = on_psk(ssl, ffi.string(identity))
        except Exception:  # an exception must never unwind into OpenSSL
            return 0
        if key is None or len(key) > max_len:
            return 0
        ffi.memmove(psk, key, len(key))
        return len(key)

    handle = ffi.callback("unsigned int(SSL *, const char *, unsigned char *, unsigned int)", callback)
    lib.SSL_CTX_set_psk_server_callback(ctx._context, handle)
    if hint is not None and lib.SSL_CTX_use_psk_identity_hint(ctx._context, hint.encode("ascii")) != 1:
        raise TlsError("OpenSSL refused the PSK identity hint")
    return handle


def install_client_psk(ctx: SSL.Context, on_psk: Callable[[bytes | None], tuple[bytes, bytes] | None]) -> Any:
    """``on_psk(hint) -> (identity, key) | None``; returns the cffi handle, which must stay referenced."""

    def callback(_ssl: Any, hint: Any, identity: Any, max_identity: int, psk: Any, max_psk: int) -> int:
        try:
            found = on_psk(ffi.string(hint) if hint != ffi.NULL else None)
        except Exception:
            return 0
        if found is None:
            return 0
        ident, key = found
        if len(ident) + 1 > max_identity or len(key) > max_psk:
            return 0
        ffi.memmove(identity, ident + b"\0", len(ident) + 1)
        ffi.memmove(psk, key, len(key))
        return len(key)

    handle = ffi.callback(
        "unsigned int(SSL *, const char *, char *, unsigned int, unsigned char *, unsigned int)", callback
    )
    lib.SSL_CTX_set_psk_client_callback(ctx._context, handle)
    return handle


def install_suite_watch(ctx: SSL.Context, on_suite: Callable[[Any, int], None]) -> Any:
    """``on_suite(ssl, code)`` with the IANA code of the suite in the ServerHello, sent or received:
    the PSK callbacks run before OpenSSL makes that suite current, and a key that depends on the suite
    (TS 33.222 5.4: NAF_Id = FQDN || 01 00 01 yy zz) needs it there. Returns the cffi handle to keep."""

    def callback(_write_p: int, _version: int, content_type: int, buf: Any, length: int, ssl: Any, _arg: Any) -> None:
        if content_type != 22 or length < 39:  # handshake record; ServerHello: type, len(3), version(2), random(32)
            return
        data = bytes(ffi.buffer(buf, length))
        at = 39 + data[38]  # past the session id
        if data[0] == 2 and len(data) >= at + 2:
            try:
                on_suite(ssl, int.from_bytes(data[at : at + 2], "big"))
            except Exception:  # an exception must never unwind into OpenSSL
                return

    handle = ffi.callback("void(int, int, int, const void *, size_t, SSL *, void *)", callback)
    lib.SSL_CTX_set_msg_callback(ctx._context, handle)
    return handle


# --- certificates ---------------------------------------------------------------------------------


def cert_context(
    cipher_list: str, cert_file: Path, key_file: Path, ca_file: Path, *, require_peer: bool
) -> SSL.Context:
    """Mutual-TLS context: our certificate, trust anchors, and (server side) a mandatory client certificate."""
    ctx = tls12_context(cipher_list)
    loads: tuple[tuple[str, Path, Callable[[str], object]], ...] = (
        ("certificate chain", cert_file, ctx.use_certificate_chain_file),
        ("private key", key_file, ctx.use_privatekey_file),
        ("CA file", ca_file, ctx.load_verify_locations),
    )
    for what, path, load in loads:
        try:
            with path.open("rb"):  # OpenSSL reports a missing file as a "system lib" error; say which
                pass
            load(str(path))
        except OSError as exc:
            raise TlsError(f"cannot read the {what} {path}: {os_reason(exc, path)}") from None
        except SSL.Error:
            # OpenSSL checks the key against the certificate as it loads it.
            of = f" matching {cert_file}, unencrypted" if path == key_file else ""
            raise TlsError(f"{path} is not a PEM {what}{of}") from None
    mode = SSL.VERIFY_PEER | (SSL.VERIFY_FAIL_IF_NO_PEER_CERT if require_peer else 0)
    ctx.set_verify(mode, lambda _conn, _cert, _errno, _depth, ok: bool(ok))
    return ctx


def peer_names(conn: SSL.Connection) -> set[str]:
    """SAN dNSNames (or the CN when there are none) of the verified peer certificate, lower-cased."""
    cert = conn.get_peer_certificate(as_cryptography=True)
    return cert_names(cert) if cert is not None else set()


def san_dns_names(cert: x509.Certificate) -> set[str]:
    """The dNSName entries of a certificate's subjectAltName, lower-cased (no CN fallback)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {n.lower() for n in san.get_values_for_type(x509.DNSName)}


def cert_names(cert: x509.Certificate) -> set[str]:
    """SAN dNSNames of a certificate (or its CN when there are none), lower-cased."""
    names = san_dns_names(cert)
    if not names:
        names = {str(a.value).lower() for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)}
    return names


def client_ssl_context(ca_file: Path | None, cert_file: Path | None, key_file: Path | None) -> ssl.SSLContext:
    """A stdlib (asyncio) TLS client context: the server checked against ``ca_file`` (else the system's
    trust anchors) and its name, and our certificate for a server that asks for one (RFC 6733 13.1 mutual
    authentication on Diameter)."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None and key_file is not None:
        ctx.load_cert_chain(str(cert_file), str(key_file))
    return ctx


def set_io_timeout(sock: socket.socket, seconds: float) -> None:
    """Blocking socket with kernel-level send/receive timeouts.

    pyOpenSSL needs a blocking socket: Python's ``settimeout`` makes it non-blocking underneath, and
    OpenSSL then fails at once with WantRead. SO_RCVTIMEO/SO_SNDTIMEO bound each read and write instead.
    """
    sock.settimeout(None)
    tv = struct.pack("ll", int(seconds), int((seconds % 1) * 1_000_000))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)


def handshake(conn: SSL.Connection) -> None:
    try:
        conn.do_handshake()
    except SSL.Error as exc:
        raise TlsError(f"TLS handshake failed: {exc}") from None


def connect(ctx: SSL.Context, host: str, port: int, server_name: str, timeout: float = 10.0) -> SSL.Connection:
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise ConnectionError(f"cannot reach {host}:{port}: {exc}") from None
    set_io_timeout(sock, timeout)
    conn = SSL.Connection(ctx, sock)
    conn.set_tlsext_host_name(server_name.encode("ascii"))  # SNI is mandatory (TS-0003 10.2.1, TS 33.222)
    conn.set_connect_state()
    try:
        handshake(conn)
    except TlsError:
        sock.close()
        raise
    return conn


# --- one HTTP/1.1 exchange with h11 ---------------------------------------------------------------


def _recv(conn: SSL.Connection) -> bytes:
    try:
        return bytes(conn.recv(4096))
    except SSL.ZeroReturnError:
        return b""
    except SSL.Error as exc:
        raise TlsError(f"TLS read failed: {exc}") from None


def _read_event(conn: SSL.Connection, h: h11.Connection, budget: list[int]) -> Any:
    while True:
        event = h.next_event()
        if event is not h11.NEED_DATA:
            return event
        data = _recv(conn)
        budget[0] -= len(data)
        if budget[0] < 0:
            raise TlsError("HTTP message too large")
        h.receive_data(data)


def request_json(conn: SSL.Connection, method: str, target: str, host: str, body: bytes = b"") -> tuple[int, Any]:
    """Send one request and read the JSON answer."""
    h = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HTTP_BYTES)
    headers = [("Host", host), ("Content-Length", str(len(body))), ("Content-Type", "application/json")]
    out = h.send(h11.Request(method=method, target=target, headers=headers)) or b""
    out += (h.send(h11.Data(data=body)) if body else b"") or b""
    out += h.send(h11.EndOfMessage()) or b""
    try:
        conn.sendall(out)
    except SSL.Error as exc:
        raise TlsError(f"TLS write failed: {exc}") from None
    budget = [MAX_HTTP_BYTES]
    resp = _read_event(conn, h, budget)
    if not isinstance(resp, h11.Response):
        raise TlsError("no HTTP response")
    data = b""
    while True:
        ev = _read_event(conn, h, budget)
        if isinstance(ev, h11.Data):
            data += ev.data
        elif isinstance(ev, h11.EndOfMessage | h11.ConnectionClosed):
            break
    try:
        return resp.status_code, json.loads(data or b"null")
    except ValueError:
        raise TlsError("the answer is not JSON") from None


def _check_framing(req: h11.Request) -> None:
    """Content-Length beside Transfer-Encoding, which h11 frames by the latter, is refused as the Ub
    server refuses it (RFC 9112 6.1: the request-smuggling shape, where a front end and this server may
    frame the body differently). h11 itself refuses a missing or repeated Host (RFC 9112 3.2)."""
    names = [name for name, _ in req.headers]
    if b"transfer-encoding" in names and b"content-length" in names:
        raise h11.RemoteProtocolError("both Content-Length and Transfer-Encoding")


# --- serving: pyOpenSSL over memory BIOs under asyncio ---------------------------------------------


class TlsSession:
    """The server side of one TLS connection: pyOpenSSL keeps the TLS state in memory BIOs (no socket
    of its own) and the records travel over a non-blocking socket with the loop's ``sock_recv`` /
    ``sock_sendall``. No thread per connection; nothing is read before TLS needs it (one read of at
    most READ_SIZE octets, no transport buffer); a peer that does not read stalls ``sock_sendall``; and
    every wait is an ``await`` that the caller's deadline (``asyncio.timeout``) ends, however slowly the
    peer trickles."""

    READ_SIZE = 16 * 1024

    def __init__(self, ctx: SSL.Context, sock: socket.socket) -> None:
        self.conn = SSL.Connection(ctx, None)  # None: memory BIOs
        self.conn.set_accept_state()
        self._sock = sock
        self._loop = asyncio.get_running_loop()

    async def _flush(self) -> None:
        """Send what OpenSSL has queued."""
        out = bytearray()
        while True:
            try:
                chunk = self.conn.bio_read(self.READ_SIZE)
            except SSL.WantReadError:
                break
            if not chunk:
                break
            out += chunk
        if out:
            await self._loop.sock_sendall(self._sock, bytes(out))

    async def _feed(self) -> bool:
        data = await self._loop.sock_recv(self._sock, self.READ_SIZE)
        if not data:
            self.conn.bio_shutdown()
            return False
        self.conn.bio_write(data)
        return True

    async def handshake(self) -> None:
        while True:
            try:
                self.conn.do_handshake()
                break
            except SSL.WantReadError:
                await self._flush()
                if not await self._feed():
                    raise PeerClosed("TLS handshake failed: the peer closed the connection") from None
            except SSL.Error as exc:
                with contextlib.suppress(OSError, SSL.Error):
                    await self._flush()  # the alert, so the peer learns why
                raise TlsError(f"TLS handshake failed: {exc}") from None
        await self._flush()

    async def recv(self) -> bytes:
        """Up to 4 KiB of application data; b"" at the peer's close_notify or end of stream."""
        while True:
            try:
                return bytes(self.conn.recv(4096))
            except SSL.WantReadError:
                await self._flush()
                if not await self._feed():
                    return b""
            except SSL.ZeroReturnError:
                return b""
            except SSL.Error as exc:
                raise TlsError(f"TLS read failed: {exc}") from None

    async def send_last(self, data: bytes) -> None:
        """The last data of the connection and close_notify, in one write to the socket."""
        self.conn.sendall(data)  # into the memory BIO: never blocks
        await self.close()

    async def close(self) -> None:
        """close_notify, once (best effort); the owner of the socket closes it."""
        if self.conn.get_shutdown() & SSL.SENT_SHUTDOWN:
            return
        with contextlib.suppress(OSError, SSL.Error):
            self.conn.shutdown()
            await self._flush()


async def _read_event_async(session: TlsSession, h: h11.Connection, budget: list[int]) -> Any:
    while True:
        event = h.next_event()
        if event is not h11.NEED_DATA:
            return event
        data = await session.recv()
        budget[0] -= len(data)
        if budget[0] < 0:
            raise TlsError("HTTP message too large")
        h.receive_data(data)


async def _send_json(session: TlsSession, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    reason = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed"}
    head = (
        f"HTTP/1.1 {status} {reason.get(status, 'Error')}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    )
    await session.send_last(head.encode("ascii") + data)  # Connection: close


JsonHandler = Callable[[str, str, bytes], Awaitable[tuple[int, dict[str, Any]]]]


async def serve_json(session: TlsSession, handle: JsonHandler) -> None:
    """Read one request (parsed by h11, at most MAX_HTTP_BYTES), answer
    ``await handle(method, target, body) -> (status, json)`` and close the TLS session; the caller closes
    the socket."""
    h = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HTTP_BYTES)
    budget = [MAX_HTTP_BYTES]
    try:
        req = await _read_event_async(session, h, budget)
        if not isinstance(req, h11.Request):
            return
        body = b""
        while not isinstance(ev := await _read_event_async(session, h, budget), h11.EndOfMessage):
            if not isinstance(ev, h11.Data):
                return
            body += ev.data
        _check_framing(req)
    except h11.RemoteProtocolError as exc:
        await _send_json(session, 400, {"status": False, "errorString": f"malformed HTTP request: {exc}"})
        return
    status, payload = await handle(req.method.decode("ascii"), req.target.decode("ascii", "replace"), body)
    await _send_json(session, status, payload)
