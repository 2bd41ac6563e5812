"""Limits of the hypercorn listeners (Nbsp_GBA), set in one place (issue 27 classes 1 and 2).

hypercorn awaits the transport's drain after every write, so a client that never reads holds at most the
transport's high-water mark (64 KiB) and blocks its own connection only; what bounds how long it holds
it, and what it may make the server buffer before a request is whole, is set here.
"""

from __future__ import annotations

from hypercorn.config import Config

# A request's head over HTTP/1.1 (h11 buffers it whole before it is parsed); HTTP/2 header lists too.
MAX_HEAD = 16 * 1024
# HTTP/2 streams one connection may have open at a time (RFC 9113 6.5.2); hypercorn's default is 100.
MAX_STREAMS = 32


def apply_limits(hc: Config, *, read_timeout: float, handshake_timeout: float = 10.0) -> None:
    """Set the limits on ``hc``: a connection that sends nothing for ``read_timeout`` seconds is closed
    (a client that stops reading with a request in hand, or trickles octets, holds it no longer); an
    idle keep-alive connection after hypercorn's ``keep_alive_timeout`` (5 s); a TLS handshake must be
    done within ``handshake_timeout``."""
    hc.read_timeout = max(1, round(read_timeout))
    hc.keep_alive_timeout = 5.0
    hc.ssl_handshake_timeout = handshake_timeout
    hc.h11_max_incomplete_size = MAX_HEAD
    hc.h2_max_header_list_size = MAX_HEAD
    hc.h2_max_concurrent_streams = MAX_STREAMS
    hc.max_app_queue_size = 10  # request body chunks queued for the application, per stream
