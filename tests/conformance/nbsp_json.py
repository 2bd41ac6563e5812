"""The wire tap's checker of Nbsp_GBA answer bodies, which it records without their HTTP status: an answer
with ``status`` and ``cause`` or ``title`` is a ProblemDetails, anything else a BootstrappingInfoResponse
(tests/conformance/nbsp_gba.py does the checking)."""

from __future__ import annotations

import json

from tests.conformance.nbsp_gba import check_nbsp_gba_response


def check_nbsp_json(data: bytes) -> None:
    try:
        doc = json.loads(data)
    except ValueError:
        raise AssertionError("Nbsp_GBA answer is not JSON") from None
    if isinstance(doc, dict) and "status" in doc and ("cause" in doc or "title" in doc):
        check_nbsp_gba_response(int(doc["status"]), "application/problem+json", data)
    else:
        check_nbsp_gba_response(200, "application/json", data)
