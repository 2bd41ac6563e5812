"""asyncio's accept loops outlive running out of file descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM):
they stop accepting for a second and try again. But each time they log an error with a traceback, so a
flood that keeps the process at its limit wrote a traceback per listener per second (issue 27 class 2).
Here those are counted and logged once per interval, one line without a traceback."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

log = logging.getLogger("gbagw.listeners")

LOG_INTERVAL = 10.0
_ACCEPT_OUT_OF_RESOURCES = "socket.accept() out of system resource"  # asyncio's message (selector_events)
_throttled: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def throttle_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Log the accept loops' out-of-descriptors errors at most once per LOG_INTERVAL (idempotent); every
    other error goes to the handler there was before."""
    if loop in _throttled:
        return
    _throttled.add(loop)
    previous = loop.get_exception_handler()
    state = {"count": 0, "next": 0.0}

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != _ACCEPT_OUT_OF_RESOURCES:
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        state["count"] += 1
        now = time.monotonic()
        if now < state["next"]:
            return
        log.warning(
            "a listener is out of file descriptors (%s): it stops accepting for a second and tries again "
            "(%d time(s) since the last line); see the open-files limit and the connection caps",
            context.get("exception"),
            state["count"],
        )
        state["count"], state["next"] = 0, now + LOG_INTERVAL

    loop.set_exception_handler(handler)
