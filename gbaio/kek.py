"""Key-encryption-key files: 32 random octets, created with mode 0600 when missing.

Who may read the file (checked on every load, after symlinks, since a Kubernetes Secret volume is a tree of
links): never others, and the group only when root owns the file and the group cannot write it. That second
case is a root-managed secret shared with the service's group, as PostgreSQL allows for its key files:
Kubernetes mounts a Secret with ``defaultMode: 0400`` as 0440 root:fsGroup once the pod has an fsGroup
(kubernetes/kubernetes#57923), and that is how the Helm chart hands the BSF its KEK.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

from gba.keywrap import KEK_LEN
from gbaio.errors import os_reason
from gbaio.private_files import private_dir


class KekFileError(RuntimeError):
    """The KEK file is unreadable, has the wrong size or is readable by others."""


def _create(path: Path) -> None:
    """Write a new KEK to ``path`` unless one appears there first.

    Several processes may start on one missing file (two BSFs on a shared volume, each PID 1 of its
    container): each writes a whole file under a name of its own (random, so a file left by a crash never
    blocks a start), then links it into place, which fails if another was first. So no process reads a
    half-written KEK, and all of them end up with the same one.
    """
    try:
        private_dir(path.parent)
    except OSError as exc:
        raise KekFileError(f"cannot create KEK file {path}: {os_reason(exc, path)}") from None
    # Errors on the temporary file name the KEK file alone: the temporary one is ours, not the operator's.
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)  # mode 0600
    except OSError as exc:
        raise KekFileError(f"cannot create KEK file {path}: {exc.strerror or exc}") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(KEK_LEN))
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    except OSError as exc:
        raise KekFileError(f"cannot create KEK file {path}: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _exposed(st: os.stat_result) -> bool:
    if st.st_mode & stat.S_IRWXO:
        return True
    group = st.st_mode & stat.S_IRWXG
    return bool(group) and (st.st_uid != 0 or group != stat.S_IRGRP)


def load_or_create_kek(path: Path, *, create: bool = True) -> bytes:
    if not path.exists():
        if not create:
            raise KekFileError(f"KEK file {path} does not exist")
        _create(path)
    try:
        if _exposed(path.stat()):
            raise KekFileError(
                f"KEK file {path} must not be accessible by group or others (chmod 600; "
                "or owned by root and readable by the service's group alone: chmod 440)"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise KekFileError(f"cannot read KEK file {path}: {os_reason(exc, path)}") from None
    if len(data) != KEK_LEN:
        raise KekFileError(f"KEK file {path} must hold exactly {KEK_LEN} octets")
    return data
