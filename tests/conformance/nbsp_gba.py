"""A strict check of Nbsp_GBA bodies (TS 29.309 6.1.6, 6.1.7; RFC 7807) against the OpenAPI document in
docs/openapi/nbsp-gba.yaml (gbaType, Uss and every other schema as in TS29309_Nbsp_GBA.yaml V18.1.0),
with JSON Schema and an RFC 3339 date-time check of its own. The e2e wire taps run it on every request the
NAF kit sent and every answer the BSF gave.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi" / "nbsp-gba.yaml"
# RFC 3339 5.6 date-time, with the time zone it requires.
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


@cache
def _components() -> dict[str, Any]:
    return dict(yaml.safe_load(SPEC.read_text())["components"])


def _validate(doc: Any, schema_name: str, what: str) -> None:
    root = {"$ref": f"#/components/schemas/{schema_name}", "components": _components()}
    errors = sorted(jsonschema.Draft4Validator(root).iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        found = "; ".join(f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5])
        raise AssertionError(f"Nbsp_GBA {what} is not a valid {schema_name} (TS 29.309): {found}")


def _json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise AssertionError(f"Nbsp_GBA {what} is not JSON (TS 29.309 6.1.2.2.2)") from None


def check_nbsp_gba_request(body: bytes) -> None:
    """Raise AssertionError unless ``body`` is a valid BootstrappingInfoRequest."""
    _validate(_json(body, "request"), "BootstrappingInfoRequest", "request")


def check_nbsp_gba_response(status: int, content_type: str, body: bytes) -> None:
    """Raise AssertionError unless this answer is a BootstrappingInfoResponse on 200 (application/json) or
    a ProblemDetails otherwise (application/problem+json, its status the HTTP status)."""
    media = content_type.split(";")[0].strip().lower()
    doc = _json(body, f"{status} answer")
    if status == 200:
        if media != "application/json":
            raise AssertionError(f"Nbsp_GBA 200 answer as {media!r}, not application/json (TS 29.309 6.1.2.2.2)")
        _validate(doc, "BootstrappingInfoResponse", "response")
        for name in ("keyExpiryTime", "bootstrappingInfoCreationTime"):
            if name in doc and not _DATE_TIME.fullmatch(doc[name]):
                raise AssertionError(f"Nbsp_GBA response: {name} {doc[name]!r} is not an RFC 3339 date-time")
        return
    if media != "application/problem+json":
        raise AssertionError(f"Nbsp_GBA {status} answer as {media!r}, not application/problem+json (RFC 7807)")
    _validate(doc, "ProblemDetails", f"{status} answer")
    if doc.get("status", status) != status:
        raise AssertionError(f"Nbsp_GBA ProblemDetails.status {doc['status']} on an HTTP {status} answer")
