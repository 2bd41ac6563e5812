"""A small HTTP/1.1 origin server on httptools (llhttp) for the UE-facing Ub port.

Ub is two short requests per bootstrap, so the HTTP layer is a large share of the BSF's work: aiohttp's
server spent about 2x the CPU of this one per request pair here (see docs/benchmarks.md). What it does
(RFC 9112 unless noted):

- persistent connections and pipelining: requests of one connection are answered in order, one at a
  time; reading pauses while more than ``MAX_QUEUED`` parsed requests wait, and past ``MAX_PIPELINED``
  the connection is answered 429 and closed;
- strict parsing by llhttp (obsolete line folding, duplicate Content-Length, Content-Length beside
  Transfer-Encoding: 400), chunked bodies, ``Expect: 100-continue`` (RFC 9110 10.1.1);
- limits: request line + headers at most ``max_header_bytes`` (431), ``max_headers`` fields (431), a
  body of at most ``max_body`` octets (413: the rest of the body is read and dropped, up to
  ``MAX_DISCARD``, so the client sees the answer instead of a reset);
- timeouts: a request must arrive whole within ``request_timeout`` of its first octet (408, against
  slow senders), an idle persistent connection is closed after ``idle_timeout``, and one whose client
  has not taken an answer off the socket within ``request_timeout`` is dropped (a client that pipelines
  and never reads holds at most the transport's high-water mark and ``MAX_QUEUED`` requests, and not
  for long);
- at most ``max_connections`` connections: past it a new connection is closed at once, counted in
  ``refused_connections`` and logged once per ``REFUSAL_LOG_INTERVAL``, so one flood cannot take every
  file descriptor of the process;
- no protocol upgrade: a request asking for one is answered, then the connection closes;
- graceful close: listening stops, idle connections close, in-flight requests get their answer.

Handlers take an :class:`HttpRequest` and return an :class:`HttpResponse`; an exception in a handler is
logged and answered 500 without detail.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import ssl
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import cast

import httptools

log = logging.getLogger("gbagw.http")

MAX_QUEUED = 8  # pipelined requests parsed ahead of their answers before reading pauses
# One read can hold thousands of small requests, all parsed before reading pauses: past this many
# waiting for their answers, the rest of the connection is refused (429, then close).
MAX_PIPELINED = 64
MAX_DISCARD = 8 * 1024 * 1024  # octets of an oversized body read and dropped before the connection closes
SWEEP_INTERVAL = 1.0  # how often timeouts are checked (seconds)
REFUSAL_LOG_INTERVAL = 10.0  # seconds between log lines about refused connections


def _first_value(headers: list[tuple[str, str]], name: str) -> str | None:
    for n, v in headers:
        if n == name:
            return v
    return None


@dataclass(slots=True)
class HttpRequest:
    method: str
    target: str  # the request-target as sent (origin-form: path and query)
    headers: list[tuple[str, str]]  # (lower-cased name, value) in arrival order
    body: bytes
    remote: str  # peer IP address
    scheme: str  # "http" or "https"

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower case), or None."""
        return _first_value(self.headers, name)

    def header_values(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n == name]

    @property
    def url(self) -> str:
        """The absolute URL of an origin-form request (RFC 9112 3.3), from the Host header."""
        if not self.target.startswith("/"):
            return self.target
        return f"{self.scheme}://{self.header('host') or ''}{self.target}"


@dataclass(slots=True)
class HttpResponse:
    status: int
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    content_type: str | None = None


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]

_REASONS = {s.value: s.phrase for s in HTTPStatus}
_NO_BODY = frozenset({204, 304})


class _HttpDate:
    """The Date header value (RFC 9110 6.6.1), formatted once per second."""

    __slots__ = ("_second", "_text")

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._text = email.utils.formatdate(second, usegmt=True)
            self._second = second
        return self._text


class _Reject(Exception):
    """A request refused before it reaches the handler (a limit, or bytes that are not HTTP/1.1)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class _Connection(asyncio.Protocol):
    """One client connection: llhttp callbacks build requests, a task answers them in order."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._remote = ""
        self._queue: deque[HttpRequest | _Reject] = deque()
        self._task: asyncio.Task[None] | None = None
        self._write_resumed: asyncio.Future[None] | None = None
        self._write_blocked_since = 0.0  # monotonic time writing paused; 0 while it flows
        self._reading_paused = False
        self._keep_alive = True  # False once the connection is to close after the queued answers
        self._closed = False
        # The request being parsed.
        self._started = 0.0  # monotonic time of its first octet; 0 between requests
        self._url: list[bytes] = []
        self._headers: list[tuple[str, str]] = []
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_len = 0
        self._discarding = False  # its body is over the limit: read and drop the rest
        self.idle_since = time.monotonic()

    # --- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Any stream transport: those of other event loops (uvloop) need not subclass asyncio.Transport.
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._remote = str(peer[0]) if peer else ""
        if not self._server.admit(self._remote):
            self._keep_alive = False
            self._transport.abort()  # nothing was read or written: free the descriptor at once
            return
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._server.connections.discard(self)
        if self._write_resumed is not None and not self._write_resumed.done():
            self._write_resumed.set_result(None)

    def data_received(self, data: bytes) -> None:
        if not self._keep_alive and not self._discarding:
            return  # closing: whatever follows the last answered request is not read
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._keep_alive = False  # the request before the upgrade is answered, then the connection closes
        except httptools.HttpParserCallbackError as exc:
            reject = exc.__context__ if isinstance(exc.__context__, _Reject) else _Reject(400, "malformed request")
            self._refuse(reject)
        except httptools.HttpParserError as exc:
            self._refuse(_Reject(400, f"malformed request: {exc}"))
        self._schedule()

    def pause_writing(self) -> None:
        self._write_resumed = self._loop.create_future()
        self._write_blocked_since = time.monotonic()

    def resume_writing(self) -> None:
        if self._write_resumed is not None and not self._write_resumed.done():
            self._write_resumed.set_result(None)
        self._write_resumed = None
        self._write_blocked_since = 0.0

    # --- llhttp callbacks ------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._started = time.monotonic()
        self._url.clear()
        self._headers = []
        self._header_bytes = 0
        self._body = []
        self._body_len = 0

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._count_header_bytes(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value) + 4)
        if len(self._headers) >= self._server.max_headers:
            raise _Reject(431, "too many header fields")
        # Field values are octets; latin-1 keeps each one as one character (RFC 9110 5.5).
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def _count_header_bytes(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self._server.max_header_bytes:
            raise _Reject(431, "request header fields too large")

    def on_headers_complete(self) -> None:
        if self._transport is not None and self._wants_continue():
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _wants_continue(self) -> bool:
        expect = _first_value(self._headers, "expect")
        return expect is not None and expect.lower() == "100-continue" and self._parser.get_http_version() == "1.1"

    def on_body(self, body: bytes) -> None:
        self._body_len += len(body)
        if self._discarding:
            if self._body_len > MAX_DISCARD:
                self.abort()
            return
        if self._body_len > self._server.max_body:
            # Answered now; the rest of the body is read and dropped, then the connection closes.
            self._discarding = True
            self._keep_alive = False
            self._body = []
            self._queue.append(_Reject(413, "request body too large"))
            self._schedule()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._started = 0.0
        if self._discarding:
            self._discarding = False  # its 413 is queued or written already
            self._close_when_done()
            return
        if not self._keep_alive:
            return  # after a Connection: close, an upgrade or a refusal nothing more is answered
        if len(self._queue) >= MAX_PIPELINED:
            self._refuse(_Reject(429, "too many pipelined requests"))
            return
        parser = self._parser
        if not parser.should_keep_alive():
            self._keep_alive = False
        self._queue.append(
            HttpRequest(
                parser.get_method().decode("ascii"),
                b"".join(self._url).decode("latin-1"),
                self._headers,
                b"".join(self._body),
                self._remote,
                self._server.scheme,
            )
        )
        if len(self._queue) > MAX_QUEUED and self._transport is not None and not self._reading_paused:
            self._transport.pause_reading()
            self._reading_paused = True

    # --- answering -------------------------------------------------------------------------------

    def _refuse(self, reject: _Reject) -> None:
        """Bytes that cannot be parsed further: answer (after any queued requests) and close."""
        self._keep_alive = False
        self._discarding = False
        self._started = 0.0
        self._queue.append(reject)

    def _schedule(self) -> None:
        if self._task is None and self._queue:
            self._task = self._loop.create_task(self._serve())

    async def _serve(self) -> None:
        """Answer queued requests in order (one task per burst of requests, not per request)."""
        try:
            while self._queue and not self._closed:
                item = self._queue.popleft()
                if self._reading_paused and len(self._queue) <= MAX_QUEUED // 2 and self._transport is not None:
                    self._transport.resume_reading()
                    self._reading_paused = False
                if isinstance(item, _Reject):
                    self._write(text_response(item.status, item.text), head=False)
                    if item.status != 413:  # an oversized body is still being read and dropped
                        self._close()
                    continue
                response = await self._server.answer(item)
                self._write(response, head=item.method == "HEAD")
                if self._write_resumed is not None:
                    await self._write_resumed
        finally:
            self._task = None
        self.idle_since = time.monotonic()
        self._close_when_done()

    def _close_when_done(self) -> None:
        if not self._keep_alive and not self._discarding and self._task is None and not self._queue:
            self._close()

    def _write(self, response: HttpResponse, *, head: bool) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        try:
            data = self._encode(response, head)
        except ValueError as exc:
            log.error("http: refusing to send a malformed response (%s); 500 instead", exc)
            data = self._encode(text_response(500, "internal server error"), False)
        self._transport.write(data)

    def _encode(self, response: HttpResponse, head: bool) -> bytes:
        status = response.status
        lines = [
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}\r\nDate: {self._server.date.now()}\r\n",
        ]
        for name, value in response.headers:
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise ValueError(f"header {name[:40]!r} carries a line break")  # no response splitting
            lines.append(f"{name}: {value}\r\n")
        body = response.body
        if status not in _NO_BODY:
            if response.content_type is not None:
                lines.append(f"Content-Type: {response.content_type}\r\n")
            lines.append(f"Content-Length: {len(body)}\r\n")
        if not self._keep_alive and not self._queue:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        head_bytes = "".join(lines).encode("latin-1")
        return head_bytes if head or status in _NO_BODY else head_bytes + body

    def _close(self) -> None:
        self._keep_alive = False
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()  # after what was written is flushed

    def abort(self) -> None:
        self._keep_alive = False
        if self._transport is not None:
            self._transport.abort()

    # --- timeouts and shutdown (called by the server) --------------------------------------------

    def check(self, now: float) -> None:
        if self._write_blocked_since and now - self._write_blocked_since > self._server.request_timeout:
            log.info("http: dropping a connection from %s that reads no answers", self._remote)
            self.abort()
            return
        if self._started and now - self._started > self._server.request_timeout:
            if self._discarding:
                self.abort()
                return
            self._refuse(_Reject(408, "request not received in time"))
            self._schedule()
        elif self.idle and now - self.idle_since > self._server.idle_timeout:
            self._close()

    @property
    def idle(self) -> bool:
        return self._task is None and not self._queue and not self._started

    def shutdown(self) -> None:
        """Close once idle: now if nothing is in flight, else after the answers already owed."""
        self._keep_alive = False
        if self.idle:
            self._close()


def text_response(status: int, text: str, headers: Sequence[tuple[str, str]] = ()) -> HttpResponse:
    """A plain-text answer: ``text`` and a newline."""
    return HttpResponse(status, headers, (text + "\n").encode(), "text/plain; charset=utf-8")


class HttpServer:
    """Serves ``handler`` on one listening address (``start``), with the limits described above."""

    def __init__(
        self,
        handler: Handler,
        *,
        max_header_bytes: int = 16 * 1024,
        max_headers: int = 64,
        max_body: int = 64 * 1024,
        request_timeout: float = 30.0,
        idle_timeout: float = 75.0,
        max_connections: int = 4096,
        name: str = "http",
    ) -> None:
        self.handler = handler
        self.name = name  # in log lines: which listener
        self.max_connections = max_connections
        self.refused_connections = 0
        self._refusal_logged = -REFUSAL_LOG_INTERVAL
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.max_body = max_body
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self.scheme = "http"
        self.connections: set[_Connection] = set()
        self.date = _HttpDate()
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> int:
        """Listen; returns the bound port (``port`` 0 picks a free one)."""
        loop = asyncio.get_running_loop()
        self.scheme = "https" if ssl_context is not None else "http"
        self._server = await loop.create_server(lambda: _Connection(self), host, port, ssl=ssl_context)
        self._sweeper = loop.call_later(SWEEP_INTERVAL, self._sweep)
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def serving(self) -> bool:
        """Whether the listener accepts connections (readiness: /readyz)."""
        return self._server is not None and self._server.is_serving()

    def admit(self, remote: str) -> bool:
        """Whether a new connection fits under ``max_connections`` (counted and logged when it does not)."""
        if len(self.connections) < self.max_connections:
            return True
        self.refused_connections += 1
        now = time.monotonic()
        if now - self._refusal_logged >= REFUSAL_LOG_INTERVAL:
            self._refusal_logged = now
            log.warning(
                "%s: %d connections open, the limit: refusing new ones (%d so far, the latest from %s)",
                self.name,
                len(self.connections),
                self.refused_connections,
                remote,
            )
        return False

    async def answer(self, request: HttpRequest) -> HttpResponse:
        try:
            return await self.handler(request)
        except Exception:
            log.exception("http: handler failed for %s %s", request.method, request.target[:200])
            return text_response(500, "internal server error")

    def _sweep(self) -> None:
        now = time.monotonic()
        for conn in list(self.connections):
            conn.check(now)
        self._sweeper = asyncio.get_running_loop().call_later(SWEEP_INTERVAL, self._sweep)

    async def close(self, grace: float = 10.0) -> None:
        """Stop listening, let in-flight requests be answered (up to ``grace`` seconds), close the rest."""
        if self._server is None:
            return
        self._server.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for conn in list(self.connections):
            conn.shutdown()
        deadline = time.monotonic() + grace
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            for conn in list(self.connections):
                if conn.idle:
                    conn.shutdown()
        for conn in list(self.connections):
            conn.abort()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()
        self._server = None
