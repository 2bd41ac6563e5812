"""Key-encryption-key files: 32 random octets, created with mode 0600 when missing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from gba.keywrap import KEK_LEN
from gbaio.errors import os_reason


class KekFileError(RuntimeError):
    """The KEK file is unreadable, has the wrong size or is readable by others."""


def load_or_create_kek(path: Path, *, create: bool = True) -> bytes:
    if not path.exists():
        if not create:
            raise KekFileError(f"KEK file {path} does not exist")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise KekFileError(f"cannot create KEK file {path}: {os_reason(exc, path)}") from None
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(KEK_LEN))
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KekFileError(f"KEK file {path} must not be accessible by group or others (chmod 600)")
        data = path.read_bytes()
    except OSError as exc:
        raise KekFileError(f"cannot read KEK file {path}: {os_reason(exc, path)}") from None
    if len(data) != KEK_LEN:
        raise KekFileError(f"KEK file {path} must hold exactly {KEK_LEN} octets")
    return data
