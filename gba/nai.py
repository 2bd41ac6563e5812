"""The IMPI as a Network Access Identifier: ``username@realm`` (TS 23.003 clause 13.3, RFC 4282 2.1)."""

from __future__ import annotations

import re

MAX_NAI_LEN = 253  # RFC 4282 2.2: 253 octets is the recommended supported length
# RFC 4282 2.1: realm = label *("." label), labels of letters, digits and inner hyphens.
_REALM_RE = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?")
# The username: printable ASCII without spaces, '@' or the two characters Digest quoting escapes.
_USER_RE = re.compile(r"[!#-?A-[\]-~]+")


def impi_problem(impi: str) -> str | None:
    """Why ``impi`` is not an NAI of the form username@realm, or None when it is."""
    if len(impi.encode()) > MAX_NAI_LEN:
        return f"longer than {MAX_NAI_LEN} octets"
    user, at, realm = impi.rpartition("@")
    if not at or not user or not realm:
        return "not of the form username@realm"
    if not _USER_RE.fullmatch(user):
        return "the username has spaces, control characters, '\"', '\\' or '@'"
    if not _REALM_RE.fullmatch(realm):
        return "the realm is not a domain name"
    return None
