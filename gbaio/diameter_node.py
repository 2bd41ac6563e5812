"""An asyncio Diameter node on top of the core's codec (RFC 6733 clause 5: CER/CEA, DWR/DWA, DPR/DPA).

python-diameter's own Node runs one select thread plus two threads per connection and one per
request, leaks one entry per client request and takes seconds to shut down; we keep its AVP codec
(via ``gba.diameter``) and replace its transport with this one. TCP, or TLS/TCP from connection start
(RFC 6733 2.1 and 13: the handshake before the CER, no Inband-Security-Id), one connection per peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace

from cryptography import x509

from gba import diameter as d

log = logging.getLogger("gbagw.diameter")

Handler = Callable[[d.Envelope, "PeerInfo"], Awaitable[d.Envelope]]

DISCONNECT_REBOOTING = 0  # Disconnect-Cause (RFC 6733 clause 5.4.3)
DISCONNECT_DO_NOT_WANT_TO_TALK = 2

# A peer decides how often these happen; one log line per interval, with the count, keeps what it can
# make us write bounded (issue 27 class 9: unknown hop-by-hop ids logged per message).
LOG_INTERVAL = 10.0
# RFC 6733 5.6 Closing state: how long the receiver of a DPR waits for its answers in flight before it
# disconnects itself, should the DPR's sender not do so on our DPA (5.4).
DPA_LINGER = 2.0
# Issue 27 class 1: a peer that sends requests and never reads the answers. Reading stops while the
# transport holds more unsent output than its high-water mark (asyncio's default, 64 KiB) or while this
# many of the peer's requests are being handled; a connection blocked that way past ``write_timeout``
# is dropped. Without these a NAF sending BIRs and reading nothing grew the BSF by hundreds of MB.
MAX_IN_FLIGHT = 128
WRITE_TIMEOUT = 10.0  # seconds a connection may stay unable to take our output
# A CER is a few hundred octets: before its sender is known it may not make us buffer a whole message.
MAX_CER_LEN = 8192


class DiameterError(Exception):
    """Base of the transport errors."""


class PeerUnavailable(DiameterError):
    """The peer cannot be reached, closed the connection or refused the capabilities exchange."""


class ConnectionLost(PeerUnavailable):
    """The connection went down under a request that was (or may have been) sent: the peer may have
    seen it, but its answer will not come on this connection."""


class RequestTimeout(DiameterError):
    """No answer within the request timeout."""


@dataclass(frozen=True, slots=True)
class PeerInfo:
    origin_host: str
    origin_realm: str
    address: str
    apps: frozenset[int]
    # The peer's verified TLS certificate (RFC 6733 13.1: mutual authentication); None on plain TCP.
    certificate: x509.Certificate | None = None


@dataclass(slots=True)
class NodeIdentity:
    origin_host: str
    origin_realm: str
    apps: tuple[int, ...]
    host_ip: str = "127.0.0.1"
    origin_state_id: int = field(default_factory=lambda: int(time.time()) & 0xFFFFFFFF)
    extra_realms: tuple[str, ...] = ()  # Destination-Realms served besides origin_realm

    @property
    def served_realms(self) -> tuple[str, ...]:
        """Destination-Realms answered here, others get 3003: our realm, and our own FQDN, which is the
        realm a NAF takes from a B-TID's domain part (TS 29.109 5.2 step 1, TS 33.220 Annex K)."""
        return (self.origin_realm, self.origin_host, *self.extra_realms)


class _Throttled:
    """Counts an event a peer can repeat at will and says when to log it: at most once per
    LOG_INTERVAL, with the number of events since the last line."""

    def __init__(self) -> None:
        self._count = 0
        self._next = 0.0

    def hit(self) -> int | None:
        self._count += 1
        now = time.monotonic()
        if now < self._next:
            return None
        count, self._count, self._next = self._count, 0, now + LOG_INTERVAL
        return count


class _Ids:
    """Hop-by-hop and end-to-end identifiers (RFC 6733 clause 3: E2E high 12 bits from time)."""

    def __init__(self) -> None:
        self._hbh = itertools.count(int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF)
        self._e2e = itertools.count(
            ((int(time.time()) & 0xFFF) << 20) | (int.from_bytes(os.urandom(3), "big") & 0xFFFFF)
        )

    def next(self) -> tuple[int, int]:
        return next(self._hbh) & 0xFFFFFFFF, next(self._e2e) & 0xFFFFFFFF


async def _read_message(reader: asyncio.StreamReader, limit: int = d.MAX_MESSAGE_LEN) -> bytes:
    head = await reader.readexactly(4)
    length = d.message_length(head)
    if length > limit:
        raise d.DiameterDecodeError(f"message length {length} over {limit}")
    return head + await reader.readexactly(length - 4)


def _expire(fut: asyncio.Future[d.Envelope]) -> None:
    if not fut.done():
        fut.set_exception(TimeoutError())


class Connection:
    """One established peer connection (either side). Requests in both directions are supported."""

    def __init__(
        self,
        identity: NodeIdentity,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: PeerInfo,
        handler: Handler | None,
        ids: _Ids,
        watchdog_interval: float,
        *,
        initiator: bool = False,
        write_timeout: float = WRITE_TIMEOUT,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        self.identity = identity
        self.peer = peer
        # RFC 6733 5.6: the capabilities exchange is done when a Connection exists.
        self.state = d.PeerState.I_OPEN if initiator else d.PeerState.R_OPEN
        self._reader = reader
        self._writer = writer
        self._handler = handler
        self._ids = ids
        self._pending: dict[int, asyncio.Future[d.Envelope]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()
        self._watchdog_interval = watchdog_interval
        self._write_timeout = write_timeout
        self._max_in_flight = max_in_flight
        self._slot_free: asyncio.Future[None] | None = None  # set while reading waits for a handler to end
        self._high_water = writer.transport.get_write_buffer_limits()[1]
        self._dropped = False  # dropped for not reading (logged once)
        self._unknown_answers = _Throttled()
        self._undecodable = _Throttled()
        self._refused = _Throttled()
        # A fresh context each: a connection a request opened outlives it, and its events (DPR, watchdog,
        # disconnection) must not carry that request's ids (gbaio.logs).
        self._reader_task = asyncio.create_task(
            self._read_loop(), name=f"diameter-read-{peer.origin_host}", context=contextvars.Context()
        )
        self._watchdog_task = asyncio.create_task(
            self._watchdog(), name=f"diameter-dwr-{peer.origin_host}", context=contextvars.Context()
        )

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @property
    def usable(self) -> bool:
        """Open for new requests: I-Open or R-Open, not Closing (a DPR sent or received, RFC 6733 5.4, 5.6)."""
        return self.state in (d.PeerState.I_OPEN, d.PeerState.R_OPEN) and not self._writer.is_closing()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def _send(self, data: bytes) -> None:
        if self._writer.is_closing():
            raise ConnectionLost(f"connection to {self.peer.origin_host} is closed")
        self._writer.write(data)

    async def request(self, env: d.Envelope, timeout: float, *, retransmission: bool = False) -> d.Envelope:
        """Send a request and wait for its answer. Its ids are assigned here; a retransmission keeps
        its end-to-end id and carries the T flag (RFC 6733 3 and 5.5.4), so the peer can tell it."""
        if not self.usable:
            raise PeerUnavailable(f"connection to {self.peer.origin_host} is closed")
        hop_by_hop, end_to_end = self._ids.next()
        if retransmission:
            env.hop_by_hop, env.flags = hop_by_hop, env.flags | d.FLAG_RETRANSMIT
        else:
            env.hop_by_hop, env.end_to_end = hop_by_hop, end_to_end
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[d.Envelope] = loop.create_future()
        self._pending[env.hop_by_hop] = fut
        # A plain timer on the answer future: asyncio.wait_for wraps it in more futures and callbacks,
        # which showed on the Zh hot path.
        timer = loop.call_later(timeout, _expire, fut)
        try:
            self._send(env.encode())
            await self._writer.drain()
            return await fut
        except TimeoutError:
            raise RequestTimeout(f"no answer from {self.peer.origin_host} within {timeout}s") from None
        except (ConnectionError, OSError) as exc:
            raise ConnectionLost(f"send to {self.peer.origin_host} failed: {exc}") from None
        finally:
            timer.cancel()
            # Every request leaves the table, answered or not (python-diameter's leak, fixed here).
            self._pending.pop(env.hop_by_hop, None)

    async def _backpressure(self) -> None:
        """Wait, before reading the next message, until the peer has taken our output below the
        transport's high-water mark and fewer than ``max_in_flight`` of its requests are in hand; past
        ``write_timeout`` the connection is dropped (issue 27 class 1)."""
        # The usual case costs two comparisons: a timed wait per message cost ~10x a plain drain().
        # asyncio pauses the writer (TCP and TLS transports alike) once the buffer passes the high mark.
        transport = self._writer.transport
        if len(self._tasks) < self._max_in_flight and transport.get_write_buffer_size() <= self._high_water:
            return
        try:
            async with asyncio.timeout(self._write_timeout):
                await self._writer.drain()
                while len(self._tasks) >= self._max_in_flight:
                    self._slot_free = asyncio.get_running_loop().create_future()
                    await self._slot_free
        except TimeoutError:
            self._drop_unread()
            raise ConnectionAbortedError from None

    def _drop_unread(self) -> None:
        """Drop the connection at once, unsent output and all: the peer is not reading it (logged once,
        by whichever wait on the peer's reading ran out first: the read loop's or an answer's)."""
        if not self._dropped:
            self._dropped = True
            log.warning(
                "dropping the connection to %s: it took no answer off the socket for %g s (%d waiting)",
                self.peer.origin_host,
                self._write_timeout,
                len(self._tasks),
            )
        self._writer.transport.abort()  # a graceful close would wait for the peer to read

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._slot_free is not None and not self._slot_free.done():
            self._slot_free.set_result(None)

    async def _read_loop(self) -> None:
        try:
            while True:
                await self._backpressure()
                raw = await _read_message(self._reader)
                try:
                    env = d.Envelope.from_bytes(raw)
                except d.DiameterDecodeError as exc:
                    self._on_undecodable(raw, exc)
                    continue
                if env.is_request:
                    self._dispatch(env)
                else:
                    fut = self._pending.get(env.hop_by_hop)
                    if fut is not None and not fut.done():
                        fut.set_result(env)
                    elif (count := self._unknown_answers.hit()) is not None:
                        # RFC 6733 6.2.1: ignored. The peer picks how many: one line per interval.
                        log.warning(
                            "%d answer(s) with unknown hop-by-hop ids from %s (latest %#x)",
                            count,
                            self.peer.origin_host,
                            env.hop_by_hop,
                        )
        except d.DiameterDecodeError as exc:
            log.warning("closing connection to %s: unframeable data (%s)", self.peer.origin_host, exc)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self._teardown()

    def _on_undecodable(self, raw: bytes, exc: d.DiameterDecodeError) -> None:
        """Framing was intact but the AVPs were not: answer requests with the RFC 6733 code."""
        if (count := self._undecodable.hit()) is not None:
            log.warning("%d undecodable message(s) from %s (latest: %s)", count, self.peer.origin_host, exc)
        if len(raw) >= d.HEADER_LEN and raw[4] & d.FLAG_REQUEST:
            req = d.Envelope(
                int.from_bytes(raw[5:8], "big"),
                int.from_bytes(raw[8:12], "big"),
                raw[4],
                int.from_bytes(raw[12:16], "big"),
                int.from_bytes(raw[16:20], "big"),
            )
            ans = d.error_answer(
                req, exc.result_code, self.identity.origin_host, self.identity.origin_realm, message=str(exc)
            )
            with contextlib.suppress(PeerUnavailable):
                self._send(ans.encode())

    def _dispatch(self, env: d.Envelope) -> None:
        ident = self.identity
        if (bad_header := d.check_header(env)) is not None:
            self._send(self._refusal(env, bad_header).encode())
            return
        if env.command_code == d.CMD_DEVICE_WATCHDOG:
            dwa = d.device_watchdog_answer(env, ident.origin_host, ident.origin_realm, ident.origin_state_id)
            self._send(dwa.encode())
            return
        if env.command_code == d.CMD_DISCONNECT_PEER:
            # RFC 6733 5.4 / 5.6: Rcv-DPR -> Snd-DPA, Closing. The sender of the DPR disconnects on
            # our DPA; what is in flight either way is still answered, new requests go to a new
            # connection, and if the peer does not disconnect we do.
            self._send(d.disconnect_peer_answer(env, ident.origin_host, ident.origin_realm).encode())
            if self.state is not d.PeerState.CLOSING:  # logged once: a peer may repeat its DPR at will
                cause = d.find(env.avps, d.Avps.DISCONNECT_CAUSE)
                log.info(
                    "peer %s sent DPR (Disconnect-Cause %s)", self.peer.origin_host, cause.value if cause else None
                )
                self.state = d.PeerState.CLOSING
                task = asyncio.create_task(self._disconnect_after_dpa())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return
        task = asyncio.create_task(self._handle(env))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    async def _disconnect_after_dpa(self) -> None:
        """The Closing state after our DPA: let the answers in flight both ways arrive (bounded by
        DPA_LINGER), then disconnect unless the peer already has."""
        current = asyncio.current_task()
        deadline = asyncio.get_running_loop().time() + DPA_LINGER
        while not self.closed and asyncio.get_running_loop().time() < deadline:
            if not self._pending and not (self._tasks - {current}):
                break
            await asyncio.sleep(0.01)
        if not self.closed:
            self._writer.close()

    def _refusal(self, env: d.Envelope, error: d.RequestError) -> d.Envelope:
        """The answer to a request refused before any handler (RFC 6733 7.1.3, 7.1.5), logged at most
        once per interval: the peer chooses how many it sends."""
        if (count := self._refused.hit()) is not None:
            log.warning(
                "refused %d request(s) from %s (latest: command %d, result %d, %s)",
                count,
                self.peer.origin_host,
                env.command_code,
                error.result_code,
                error.reason,
            )
        ident = self.identity
        return d.error_answer(
            env,
            error.result_code,
            ident.origin_host,
            ident.origin_realm,
            failed_avp=error.failed_avp,
            message=error.reason,
        )

    async def _handle(self, env: d.Envelope) -> None:
        ident = self.identity
        if env.application_id not in ident.apps:
            ans = d.error_answer(env, d.ResultCode.APPLICATION_UNSUPPORTED, ident.origin_host, ident.origin_realm)
        elif (refused := d.check_request(env, ident.origin_host, ident.served_realms)) is not None:
            ans = self._refusal(env, refused)
        elif self._handler is None:
            ans = d.error_answer(env, d.ResultCode.COMMAND_UNSUPPORTED, ident.origin_host, ident.origin_realm)
        else:
            try:
                ans = await self._handler(env, self.peer)
            except d.MissingAvp as exc:
                ans = d.error_answer(
                    env,
                    exc.result_code,
                    ident.origin_host,
                    ident.origin_realm,
                    failed_avp=d.missing_avp_placeholder(exc.code, exc.vendor),
                    message=str(exc),
                )
            except Exception:
                log.exception("handler failed for command %d from %s", env.command_code, self.peer.origin_host)
                ans = d.error_answer(env, d.ResultCode.UNABLE_TO_COMPLY, ident.origin_host, ident.origin_realm)
        # RFC 6733 6.2: the request's Proxy-Info AVPs go back in the answer, in their order.
        proxy_info = d.find_all(env.avps, d.Avps.PROXY_INFO)
        if proxy_info and not d.find(ans.avps, d.Avps.PROXY_INFO):
            ans.avps.extend(proxy_info)
        with contextlib.suppress(PeerUnavailable, ConnectionError, OSError):
            self._send(ans.encode())
            try:
                async with asyncio.timeout(self._write_timeout):
                    await self._writer.drain()
            except TimeoutError:
                self._drop_unread()

    async def _watchdog(self) -> None:
        """RFC 3539 / RFC 6733 5.5: DWR after Tw of silence; a missing DWA closes the connection."""
        while True:
            await asyncio.sleep(self._watchdog_interval)
            ident = self.identity
            env = d.device_watchdog_request(ident.origin_host, ident.origin_realm, ident.origin_state_id)
            try:
                await self.request(env, timeout=self._watchdog_interval)
            except DiameterError:
                log.warning("watchdog: no DWA from %s, closing", self.peer.origin_host)
                self._writer.close()
                return

    def _teardown(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self.state = d.PeerState.CLOSED
        self._watchdog_task.cancel()
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionLost(f"connection to {self.peer.origin_host} closed"))
        self._writer.close()

    async def _handlers_done(self, timeout: float) -> None:
        """Let the handlers of the peer's requests answer (up to ``timeout``)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def close(self, timeout: float = 2.0) -> None:
        """Graceful DPR/DPA (RFC 6733 5.4), letting in-flight handlers finish first."""
        if self.closed:
            return
        await self._handlers_done(timeout)
        dpr = d.disconnect_peer_request(self.identity.origin_host, self.identity.origin_realm, DISCONNECT_REBOOTING)
        if self.usable:
            with contextlib.suppress(DiameterError):
                await self.request(dpr, timeout=timeout)
        # RFC 6733 5.6: Snd-DPR -> Closing; on the DPA (or its timeout) the sender of the DPR disconnects.
        self.state = d.PeerState.CLOSING
        # A request the peer sent before it read our DPR arrives before its DPA: answer it too, or a
        # NAF's key fetch fails at every rolling restart of the BSFs.
        await self._handlers_done(timeout)
        self._writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), timeout)
        self._reader_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader_task
        self._teardown()


def _cer_envelope(identity: NodeIdentity) -> d.Envelope:
    avps = d.capabilities_avps(
        identity.origin_host, identity.origin_realm, identity.host_ip, identity.apps, identity.origin_state_id
    )
    return d.capabilities_exchange_request(avps)


def _peer_from(env: d.Envelope, address: str) -> PeerInfo:
    host = d.get_str(env.avps, d.Avps.ORIGIN_HOST)
    realm = d.get_str(env.avps, d.Avps.ORIGIN_REALM)
    assert host is not None and realm is not None
    return PeerInfo(host, realm, address, frozenset(d.advertised_apps(env.avps)))


class DiameterServer:
    """Accepts peers: CER/CEA with an optional Origin-Host allowlist, then serves ``handler``.

    At most ``max_connections`` connections at a time, counting those still in their TLS handshake or
    CER: past it a new connection is closed at once, counted in ``refused_connections`` and logged
    once per LOG_INTERVAL, so one flood cannot take every file descriptor of the process (issue 27
    class 2). The handshake and the CER together must be done within ``cer_timeout``.
    """

    def __init__(
        self,
        identity: NodeIdentity,
        handler: Handler,
        *,
        allowed_peers: Iterable[str] | None = None,
        watchdog_interval: float = 30.0,
        cer_timeout: float = 5.0,
        max_connections: int = 4096,
        write_timeout: float = WRITE_TIMEOUT,
        name: str = "diameter",
    ) -> None:
        self.identity = identity
        self.name = name  # in log lines and metrics: which listener
        self._handler = handler
        self._allowed = frozenset(allowed_peers) if allowed_peers is not None else None
        self._watchdog_interval = watchdog_interval
        self._cer_timeout = cer_timeout
        self._write_timeout = write_timeout
        self._tls: ssl.SSLContext | None = None
        self._ids = _Ids()
        self._server: asyncio.Server | None = None
        self.connections: set[Connection] = set()
        self.max_connections = max_connections
        self.open_connections = 0  # accepted and not closed yet, in handshake or CER included
        self.refused_connections = 0
        self._refusals = _Throttled()

    @property
    def serving(self) -> bool:
        """Whether the listener accepts connections (readiness: /readyz)."""
        return self._server is not None and self._server.is_serving()

    async def start(self, host: str, port: int, *, tls: ssl.SSLContext | None = None) -> int:
        """Listen on ``host:port``; with ``tls``, every connection starts with the TLS handshake (RFC 6733 13)."""
        # The handshake starts once the connection is counted against max_connections (in _accept).
        self._tls = tls
        self._server = await asyncio.start_server(self._accept, host, port)
        sock = self._server.sockets[0]
        return int(sock.getsockname()[1])

    def _admit(self, addr: str) -> bool:
        if self.open_connections < self.max_connections:
            return True
        self.refused_connections += 1
        if (count := self._refusals.hit()) is not None:
            log.warning(
                "%s: %d connections open, the limit: refused %d new one(s) (the latest from %s)",
                self.name,
                self.open_connections,
                count,
                addr,
            )
        return False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = writer.get_extra_info("peername")[:2]
        addr = f"{host}:{port}"
        if not self._admit(addr):
            writer.transport.abort()  # nothing read or written: the descriptor is free at once
            return
        self.open_connections += 1
        try:
            await self._serve(reader, writer, addr)
        finally:
            self.open_connections -= 1

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, addr: str) -> None:
        try:
            # asyncio.timeout, not wait_for: start_tls must take the socket over before this task
            # yields, or the first octets of the ClientHello land in the plain stream.
            async with asyncio.timeout(self._cer_timeout):
                if self._tls is not None:
                    await writer.start_tls(self._tls, ssl_handshake_timeout=self._cer_timeout)
                raw = await _read_message(reader, MAX_CER_LEN)
            cer = d.Envelope.from_bytes(raw)
        except (TimeoutError, asyncio.IncompleteReadError, d.DiameterDecodeError, ConnectionError, OSError) as exc:
            log.warning("peer %s: no valid CER (%s), closing", addr, type(exc).__name__)
            writer.transport.abort()
            return
        if cer.command_code != d.CMD_CAPABILITIES_EXCHANGE or not cer.is_request:
            log.warning("peer %s: first message is not a CER, closing", addr)
            writer.transport.abort()
            return
        ident = self.identity
        try:
            peer = _peer_from(cer, addr)
        except d.MissingAvp as exc:
            writer.write(
                d.error_answer(
                    cer, d.ResultCode.MISSING_AVP, ident.origin_host, ident.origin_realm, message=str(exc)
                ).encode()
            )
            await self._close_after_answer(writer)
            return
        peer = replace(peer, certificate=_peer_certificate(writer))
        rc = d.ResultCode.SUCCESS
        if self._allowed is not None and peer.origin_host not in self._allowed:
            rc = d.ResultCode.UNKNOWN_PEER  # RFC 6733 5.3: unknown peers may be refused
        elif not peer.apps & set(ident.apps) and d.APP_RELAY not in peer.apps:
            rc = d.ResultCode.NO_COMMON_APPLICATION  # a relay (0xffffffff) carries every application
        cea_avps = [d.new_avp(d.Avps.RESULT_CODE, rc)]
        cea_avps += d.capabilities_avps(
            ident.origin_host, ident.origin_realm, ident.host_ip, ident.apps, ident.origin_state_id
        )
        writer.write(cer.answer(cea_avps, error=3000 <= rc < 4000).encode())
        if rc != d.ResultCode.SUCCESS:
            log.warning("peer %s (%s) refused in CER: result %d", peer.origin_host, addr, rc)
            await self._close_after_answer(writer)
            return
        log.info("peer %s (%s) connected", peer.origin_host, addr)
        conn = Connection(
            ident,
            reader,
            writer,
            peer,
            self._handler,
            self._ids,
            self._watchdog_interval,
            write_timeout=self._write_timeout,
        )
        self.connections.add(conn)
        await conn.wait_closed()
        self.connections.discard(conn)
        log.info("peer %s (%s) disconnected", peer.origin_host, addr)

    async def _close_after_answer(self, writer: asyncio.StreamWriter) -> None:
        """Close after the CEA leaves: nothing more is read from a refused peer, and the answer gets
        ``write_timeout`` to go before the connection is dropped."""
        writer.close()
        with contextlib.suppress(TimeoutError, ConnectionError, OSError):
            async with asyncio.timeout(self._write_timeout):
                await writer.wait_closed()
        writer.transport.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        await asyncio.gather(*(c.close() for c in list(self.connections)), return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)


def _peer_certificate(writer: asyncio.StreamWriter) -> x509.Certificate | None:
    """The certificate the peer presented and the TLS layer verified, or None (plain TCP, no certificate)."""
    tls = writer.get_extra_info("ssl_object")
    der = tls.getpeercert(binary_form=True) if isinstance(tls, ssl.SSLObject) else None
    return x509.load_der_x509_certificate(der) if der else None


async def connect(
    identity: NodeIdentity,
    host: str,
    port: int,
    *,
    handler: Handler | None = None,
    timeout: float = 5.0,
    watchdog_interval: float = 30.0,
    tls: ssl.SSLContext | None = None,
    server_name: str | None = None,
) -> Connection:
    """Open a connection (with ``tls``: the TLS handshake first, the peer's certificate checked against
    ``server_name`` or ``host``) and run the CER/CEA exchange; raises :class:`PeerUnavailable`."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=tls, server_hostname=(server_name or host) if tls else None),
            timeout,
        )
    except (TimeoutError, ConnectionError, OSError) as exc:  # ssl.SSLError is an OSError
        raise PeerUnavailable(f"cannot connect to {host}:{port}: {exc}") from None
    ids = _Ids()
    cer = _cer_envelope(identity)
    cer.hop_by_hop, cer.end_to_end = ids.next()
    try:
        writer.write(cer.encode())
        await writer.drain()
        cea = d.Envelope.from_bytes(await asyncio.wait_for(_read_message(reader), timeout))
    except (TimeoutError, asyncio.IncompleteReadError, d.DiameterDecodeError, ConnectionError, OSError) as exc:
        writer.close()
        # A TLS server that refuses our certificate says so here, after the handshake (TLS 1.3).
        why = f"{type(exc).__name__}: {exc}" if isinstance(exc, ssl.SSLError) else type(exc).__name__
        raise PeerUnavailable(f"capabilities exchange with {host}:{port} failed: {why}") from None
    rc, _ = cea.result()
    if rc != d.ResultCode.SUCCESS:
        writer.close()
        raise PeerUnavailable(f"{host}:{port} refused the capabilities exchange with result {rc}")
    peer = replace(_peer_from(cea, f"{host}:{port}"), certificate=_peer_certificate(writer))
    return Connection(identity, reader, writer, peer, handler, ids, watchdog_interval, initiator=True)


class DiameterClient:
    """A client toward one peer: it connects for the first request (or at once, with ``keep_connected``)
    and again after a failure."""

    def __init__(
        self,
        identity: NodeIdentity,
        host: str,
        port: int,
        *,
        timeout: float = 5.0,
        watchdog_interval: float = 30.0,
        tls: ssl.SSLContext | None = None,
        server_name: str | None = None,
    ) -> None:
        self.identity = identity
        self.host = host
        self.port = port
        self.timeout = timeout
        self._tls, self._server_name = tls, server_name
        self._watchdog_interval = watchdog_interval
        self._conn: Connection | None = None
        # Connections whose peer sent a DPR: their answers in flight still arrive, then the peer closes them.
        self._draining: set[Connection] = set()
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.usable

    async def _connection(self) -> Connection:
        if self._conn is not None and self._conn.usable:
            return self._conn
        async with self._lock:
            if self._conn is None or not self._conn.usable:
                if self._conn is not None and not self._conn.closed:
                    self._draining.add(self._conn)
                self._draining = {c for c in self._draining if not c.closed}
                # After a DPR (a peer restarting), the next request opens a new connection: behind a
                # load balancer it reaches another instance.
                self._conn = await connect(
                    self.identity,
                    self.host,
                    self.port,
                    timeout=self.timeout,
                    watchdog_interval=self._watchdog_interval,
                    tls=self._tls,
                    server_name=self._server_name,
                )
            return self._conn

    async def ensure_connected(self) -> PeerInfo:
        return (await self._connection()).peer

    async def keep_connected(self, interval: float) -> None:
        """Hold a connection to the peer: open one now and, while there is none, try again every
        ``interval`` seconds (the Tc timer of RFC 6733 clauses 2.1 and 12, 30 s recommended). Without
        it a connection opens only with the first request, so an idle node would report its peer down
        (and the first request after an outage would pay for the connection). Runs until cancelled."""
        failing = False
        while True:
            if not self.connected:
                try:
                    await self.ensure_connected()
                except DiameterError as exc:
                    if not failing:
                        log.warning("%s; trying again every %g s", exc, interval)
                    failing = True
                else:
                    if failing:
                        log.info("peer %s:%d reachable again", self.host, self.port)
                    failing = False
            await asyncio.sleep(interval)

    @property
    def peer(self) -> PeerInfo | None:
        return self._conn.peer if self._conn is not None else None

    async def request(self, env: d.Envelope, timeout: float | None = None) -> d.Envelope:
        """Send ``env`` and wait for its answer. If the connection goes down under it (a peer crashed
        or was killed), it goes once more on a new connection, as a retransmission (RFC 6733 5.5.4):
        behind a load balancer, to another instance. Zh and Zn requests are safe to repeat."""
        timeout = timeout or self.timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            return await (await self._connection()).request(env, timeout)
        except ConnectionLost as exc:
            left = deadline - loop.time()
            if left <= 0:
                raise
            log.info("%s; sending command %d again on a new connection", exc, env.command_code)
        return await (await self._connection()).request(env, left, retransmission=True)

    async def close(self) -> None:
        conns = [*self._draining, *([self._conn] if self._conn is not None else [])]
        self._conn, self._draining = None, set()
        await asyncio.gather(*(c.close() for c in conns))
