"""Directories and files that hold key material or subscriber data: owner-only from their creation.

Modes are given at creation (mkdir/open), never fixed afterwards, so there is no moment in which another
user can open them. pathlib's mkdir(parents=True) gives missing parents the umask's mode, not ``mode``:
every missing component is created here one by one instead.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path


def private_dir(path: Path) -> None:
    """Create ``path`` and any missing parent 0700; an existing directory is left as its owner set it."""
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    if not p.is_dir():  # a/b/c where a is a file: name a, not c
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(p))
    for d in reversed(missing):
        d.mkdir(mode=0o700, exist_ok=True)


def create_private_file(path: Path) -> None:
    """Create an empty file 0600 (in a private directory) unless it exists."""
    private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
