"""The session-end check of the wire tap: every recorded message through its conformance checker."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any

from tests.strict.rules import check_message, name_of
from tests.wiretap.gbagw_wiretap import read

Checker = Callable[[bytes], list[str]]


def _optional(module: str, name: str) -> Checker | None:
    """A checker another helper provides (tests/conformance/...), None while it does not exist."""
    try:
        fn: Any = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None

    def run(data: bytes) -> list[str]:
        try:
            found = fn(data)
        except Exception as exc:  # a checker that raises instead of returning: its message is the violation
            return [f"{type(exc).__name__}: {exc}"]
        if found is False:
            return [f"{name} rejected the document"]
        return [str(v) for v in found] if isinstance(found, list | tuple) else []

    return run


def _check_json(data: bytes) -> list[str]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        return [f"not JSON: {exc}"]
    return [] if isinstance(doc, dict) else ["the body is not a JSON object"]


def _soap_name(data: bytes) -> str:
    head = data[:400].decode("utf-8", "replace")
    for tag in ("requestBootstrappingInfoRequest", "requestBootstrappingInfoResponse", "Fault"):
        if tag in head or tag.encode() in data:
            return f"SOAP {tag}"
    return "SOAP document"


def checkers() -> dict[str, tuple[Checker | None, Callable[[bytes], str]]]:
    nbsp = _optional("tests.conformance.nbsp_json", "check_nbsp_json") or _check_json
    return {
        "diameter": (check_message, name_of),
        "soap": (_optional("tests.conformance.zn_soap", "check_zn_soap"), _soap_name),
        "nbsp": (nbsp, lambda data: "Nbsp_GBA JSON body"),
    }


def violations(folder: str, limit: int = 60) -> tuple[dict[str, int], list[str]]:
    """(records per kind, one line per distinct violation with the first message and test that showed it)."""
    counts: dict[str, int] = {}
    seen: dict[str, str] = {}
    table = checkers()
    for kind, pid, ctx, data in read(folder):
        counts[kind] = counts.get(kind, 0) + 1
        check, name = table.get(kind, (None, str))
        if check is None:
            continue
        for v in check(data):
            if v not in seen:
                seen[v] = f"{name(data)} from pid {pid} (test running at its start: {ctx or '-'}): {v}"
    lines = list(seen.values())
    if len(lines) > limit:
        lines = [*lines[:limit], f"... and {len(lines) - limit} more distinct violations"]
    return counts, lines
