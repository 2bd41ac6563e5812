"""Logging setup: one JSON object per line (or plain text with the same ids), on stderr.

Services log one INFO event per decision (two per Ub bootstrap in the BSF, one per MAR in the HSS), so
the per-event cost is part of the sizing: see ``setup`` and ``JsonFormatter``.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import time
from contextvars import ContextVar

# The id of the request being handled (Ub request, Zn Session-Id, ...), added to every log event.
request_id: ContextVar[str] = ContextVar("request_id", default="")
# The id of the request the one being handled sent on to a peer (a Ub challenge's Zh MAR, a Ua request's
# Zn lookup), under which the peer logged its own events as their rid: one lookup joins the two logs.
peer_request_id: ContextVar[str] = ContextVar("peer_request_id", default="")


def begin_request(rid: str) -> None:
    """The events from here on belong to request ``rid``, which has sent nothing on yet (one task may
    serve several requests in turn: a keep-alive connection, a Diameter peer)."""
    request_id.set(rid)
    peer_request_id.set("")


def begin_http_request(x_request_id: str | None) -> None:
    """:func:`begin_request` for an HTTP request: the client's X-Request-Id (its first 64 characters;
    JSON escapes whatever it holds), else a random id."""
    begin_request((x_request_id or "")[:64] or os.urandom(6).hex())


class RequestIds:
    """Ids for the requests one client sends: ``origin;start;random;n``, an RFC 6733 8.8 Session-Id
    (DiameterIdentity;high 32 bits;low 32 bits;optional value), used as the Session-Id on Diameter and as
    X-Request-Id on HTTP, so that the peer's events carry it as their rid. The low 32 bits are random,
    not the pid: two replicas of one FQDN started in the same second are both PID 1 in their containers."""

    def __init__(self, origin: str) -> None:
        self._prefix = f"{origin};{int(time.time())};{int.from_bytes(os.urandom(4), 'big')}"
        self._n = itertools.count(1)

    def send_next(self) -> str:
        """The id of the next request this client sends on; the events from here on carry it as their
        peer_rid (until :func:`begin_request`), the peer's own events carry it as their rid."""
        rid = f"{self._prefix};{next(self._n)}"
        peer_request_id.set(rid)
        return rid


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg"[, "rid"][, "peer_rid"][, "exc"]}`` with an RFC 3339 UTC timestamp
    in ms."""

    def __init__(self) -> None:
        super().__init__()
        # One encoder, not json.dumps(ensure_ascii=False), which builds a new encoder per call.
        self._encode = json.JSONEncoder(ensure_ascii=False).encode
        # The formatted second, reused while events arrive within it (gmtime + strftime per event
        # cost as much as the rest of the formatting).
        self._second = -1
        self._second_text = ""

    def _timestamp(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int(record.msecs):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        event = {
            "ts": self._timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            event["rid"] = rid
        peer = peer_request_id.get()
        if peer:
            event["peer_rid"] = peer
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        return self._encode(event)


class TextFormatter(logging.Formatter):
    """For humans at a terminal: ``time LEVEL logger: msg [rid=... peer_rid=...]``, the same ids as JSON."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        pairs = (("rid", request_id.get()), ("peer_rid", peer_request_id.get()))
        ids = " ".join(f"{name}={value}" for name, value in pairs if value)
        return f"{text} [{ids}]" if ids else text


def setup(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request it sends at INFO; the Zn clients log their own decision for each one.
    logging.getLogger("httpx").setLevel(logging.NOTSET if root.level <= logging.DEBUG else logging.WARNING)
    # Neither format shows the caller, thread or process, so the records need not collect them: the
    # Logging HOWTO's "Optimization" settings. The caller lookup alone walks the stack on every event.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
