"""A wire tap for the HTTP Zn flavours of the in-process NAF kit clients (naf/zn_http_clients.py use
httpx): every request and answer that crosses the wire to a SOAP endpoint (TS 29.109 Annex D) or to the
Nbsp_GBA operation (TS 29.309) is recorded and checked by the strict checkers of this package.

Requests are checked when the NAF kit sent them (they carry its X-Request-Id), not the malformed ones a
test sends on purpose; every answer is checked, since every answer is the BSF's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from gba.zn_sbi import OPERATION_PATH
from tests.conformance.nbsp_gba import check_nbsp_gba_request, check_nbsp_gba_response
from tests.conformance.zn_soap import check_zn_soap

SOAP_PATH = "/GBAService"


@dataclass
class ZnHttpTap:
    soap: int = 0  # messages checked, per flavour
    sbi: int = 0
    problems: list[str] = field(default_factory=list)

    def record(self, request: httpx.Request, response: httpx.Response) -> None:
        path = request.url.path
        from_naf_kit = "x-request-id" in request.headers
        try:
            if path.endswith(SOAP_PATH):
                if from_naf_kit:
                    check_zn_soap(request.content)
                    self.soap += 1
                check_zn_soap(response.content)
                self.soap += 1
            elif path.endswith(OPERATION_PATH):
                if from_naf_kit:
                    check_nbsp_gba_request(request.content)
                    self.sbi += 1
                media = response.headers.get("content-type", "")
                check_nbsp_gba_response(response.status_code, media, response.content)
                self.sbi += 1
        except AssertionError as exc:
            self.problems.append(f"{request.method} {request.url}: {exc}")


@contextmanager
def zn_http_tap(monkeypatch: pytest.MonkeyPatch) -> Iterator[ZnHttpTap]:
    """Record and check every Zn HTTP exchange of in-process httpx clients; fail with every violation."""
    tap = ZnHttpTap()
    send = httpx.AsyncClient.send

    async def recording_send(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = await send(self, request, **kwargs)
        if not kwargs.get("stream"):  # a streamed body is not read yet; Zn clients never stream
            tap.record(request, response)
        return response

    monkeypatch.setattr(httpx.AsyncClient, "send", recording_send)
    yield tap
    assert not tap.problems, "\n".join(tap.problems)
