"""JSON from peers with a size and a nesting-depth cap, checked before the parser runs.

Python's json module recurses once per level: a body of 100,000 '[' raised RecursionError, which a
server turned into a 500. The depth is counted on the raw text first (strings skipped), so a hostile
body is refused as a client error in linear time and never reaches the recursive parser.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 32  # Nbsp_GBA and MEF bodies nest 4 levels at most

# A string (unrolled: no alternation per character) or a bracket.
_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.S)


class JsonError(ValueError):
    """A body is too large, nested too deeply, or not JSON."""


def loads(data: bytes, max_len: int, max_depth: int = MAX_DEPTH) -> Any:
    if len(data) > max_len:
        raise JsonError(f"JSON body larger than {max_len} octets")
    depth = 0
    for m in _TOKENS.finditer(data):
        c = m.group()[0]
        if c in b"[{":
            depth += 1
            if depth > max_depth:
                raise JsonError(f"JSON nested deeper than {max_depth} levels")
        elif c in b"]}":
            depth -= 1
    try:
        return json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise JsonError(f"body is not JSON: {exc}") from None
