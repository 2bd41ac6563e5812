"""One MEF TLS listener under asyncio: its own accept loop, so that hostile clients meet a bound everywhere.

- Connection cap (``mef.max_connections``, per listener): past it a new connection is closed at once,
  counted and logged at most once per interval; the other listeners are not affected.
- Deadlines on the wall clock, not per read: the whole handshake (``mef.handshake_timeout``), then the whole
  request and answer (``mef.request_timeout``). A peer trickling one octet at a time is cut at the deadline.
- Out of file descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM on accept): back off and accept again later, one
  log line per interval; readiness says "starved" meanwhile.
- Any other accept failure ends the loop: the listener says "down" (readiness, ``gbagw_mef_listener_up``),
  binds its port again after a delay, and serves again.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from OpenSSL import SSL

from bsf.mef.metrics import MefMetrics
from gbaio.tls import PeerClosed, TlsError, TlsSession

log = logging.getLogger("gbagw.mef")

# accept(2) errors that mean "no resources now", not "this socket is broken": wait and accept again.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# accept(2) errors about the one connection being accepted (it went away first): accept the next.
PEER_ERRNOS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EAGAIN})
LOG_INTERVAL = 10.0  # seconds between two log lines about the same condition of one listener


@dataclass(frozen=True, slots=True)
class Limits:
    max_connections: int
    handshake_timeout: float
    request_timeout: float
    accept_backoff: float = 0.5  # out of file descriptors: wait this long before accepting again
    restart_delay: float = 1.0  # a listener whose accept loop failed binds again after this long


class _Throttled:
    """Log a condition at most once per interval, with how often it happened in between."""

    def __init__(self) -> None:
        self._last = -LOG_INTERVAL
        self._count = 0

    def __call__(self, level: int, msg: str, *args: Any) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._last >= LOG_INTERVAL:
            log.log(level, msg + " (%d time(s) since the previous such line)", *args, self._count)
            self._last, self._count = now, 0


class TlsListener:
    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        ctx: SSL.Context,
        serve: Callable[[TlsSession], Awaitable[None]],
        limits: Limits,
        metrics: MefMetrics,
        ended: Callable[[SSL.Connection], None] = lambda _conn: None,
    ) -> None:
        self.name, self.host, self.port = name, host, port
        self._ctx = ctx
        self._serve_session = serve
        self._ended_session = ended  # whatever the handshake callbacks kept about the connection
        self.limits = limits
        self._metrics = metrics
        self._sock: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._problem: str | None = "not started"
        self._log_full = _Throttled()
        self._log_starved = _Throttled()
        self._log_down = _Throttled()
        self._log_deadline = _Throttled()
        self._log_gone = _Throttled()
        metrics.listener_up.labels(name).set(0)
        metrics.connections.labels(name).set(0)

    # --- lifecycle --------------------------------------------------------------------------------

    def _bind(self) -> socket.socket:
        sock = socket.create_server((self.host, self.port))
        sock.setblocking(False)
        return sock

    async def start(self) -> int:
        self._sock = self._bind()
        self.port = int(self._sock.getsockname()[1])  # port 0: the same port again after a restart
        self._set_problem(None)
        self._task = asyncio.create_task(self._supervise(), name=f"mef-{self.name}")
        return self.port

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._close_socket()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    def problem(self) -> str | None:
        """None while the listener accepts; else why not (for /readyz)."""
        problem = "stopped" if self._task is not None and self._task.done() else self._problem
        return None if problem is None else f"MEF {self.name} listener on :{self.port}: {problem}"

    @property
    def listening_socket(self) -> socket.socket | None:
        return self._sock

    def _set_problem(self, problem: str | None) -> None:
        self._problem = problem
        self._metrics.listener_up.labels(self.name).set(1 if problem is None else 0)

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # --- accept ------------------------------------------------------------------------------------

    async def _supervise(self) -> None:
        while True:
            try:
                if self._sock is None:
                    self._sock = self._bind()
                    log.info("mef: %s listener bound again on %s:%d", self.name, self.host, self.port)
                self._set_problem(None)
                await self._accept_loop(self._sock)
            except Exception as exc:  # OSError from accept(); anything else is a bug, but must not end the listener
                self._set_problem(f"down ({exc or type(exc).__name__})")
                self._metrics.listener_restarts.labels(self.name).inc()
                self._log_down(
                    logging.ERROR,
                    "mef: %s listener on %s:%d failed (%s); binding it again in %.1f s",
                    self.name,
                    self.host,
                    self.port,
                    exc,
                    self.limits.restart_delay,
                )
                self._close_socket()
                await asyncio.sleep(self.limits.restart_delay)

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                client, addr = await loop.sock_accept(sock)
            except OSError as exc:
                if exc.errno in PEER_ERRNOS:
                    continue
                if exc.errno not in RESOURCE_ERRNOS:
                    raise
                # The pending connection stays in the kernel's backlog: accept it once descriptors are free.
                self._set_problem(f"starved ({exc.strerror})")
                self._metrics.accept_errors.labels(self.name, errno.errorcode.get(exc.errno, "?")).inc()
                self._log_starved(
                    logging.WARNING,
                    "mef: %s listener cannot accept: %s; accepting again in %.1f s",
                    self.name,
                    exc.strerror,
                    self.limits.accept_backoff,
                )
                await asyncio.sleep(self.limits.accept_backoff)
                continue
            if self._problem is not None:
                log.info("mef: %s listener accepts again (%s before)", self.name, self._problem)
                self._set_problem(None)
            if len(self._connections) >= self.limits.max_connections:
                client.close()  # refused fast: no TLS, no buffer, no task
                self._metrics.connections_refused.labels(self.name).inc()
                self._log_full(
                    logging.WARNING,
                    "mef: %s listener at its cap of %d connections (mef.max_connections); refusing new ones",
                    self.name,
                    self.limits.max_connections,
                )
                continue
            # Each write is a whole TLS flight: Nagle would only hold it back (measured: 2x the latency).
            with contextlib.suppress(OSError):  # a peer already gone fails later, in its own task
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = asyncio.create_task(self._connection(client, addr))
            self._connections.add(task)
            self._metrics.connections.labels(self.name).set(len(self._connections))
            task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._connections.discard(task)
        self._metrics.connections.labels(self.name).set(len(self._connections))

    # --- one connection ----------------------------------------------------------------------------

    async def _connection(self, client: socket.socket, addr: Any) -> None:
        peer = f"{addr[0]}:{addr[1]}"
        phase = "handshake"
        session: TlsSession | None = None
        try:
            session = TlsSession(self._ctx, client)
            async with asyncio.timeout(self.limits.handshake_timeout):
                await session.handshake()
            phase = "request"
            async with asyncio.timeout(self.limits.request_timeout):
                await self._serve_session(session)
                await session.close()
        except TimeoutError:
            # What a flood of idle or trickling clients causes: counted each time, logged once per interval.
            self._metrics.deadline_closed.labels(self.name, phase).inc()
            self._log_deadline(
                logging.INFO, "mef: %s connection from %s closed: %s deadline passed", self.name, peer, phase
            )
        except PeerClosed:
            self._log_gone(logging.INFO, "mef: %s connection from %s closed before the handshake", self.name, peer)
        except TlsError as exc:
            if phase == "handshake":
                self._metrics.tls_refused.labels(self.name).inc()
            log.info("mef: %s from %s refused: %s", self.name, peer, exc)
        except (OSError, SSL.Error) as exc:
            self._log_gone(logging.INFO, "mef: %s connection from %s ended: %s", self.name, peer, exc)
        except Exception:  # a bug in serving one connection must not go unseen, nor touch the others
            log.exception("mef: %s connection from %s failed", self.name, peer)
        finally:
            if session is not None:
                self._ended_session(session.conn)
            client.close()
