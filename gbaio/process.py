"""Process-wide protection of the key material a gbagw process holds in memory.

Every gbagw process has K, OPc, CK, IK, Ks or Ks_NAF in its heap at some point; a core dump or a
ptrace attach by another process of the same user would hand them out in clear. So each process,
before it reads any key: sets RLIMIT_CORE to 0 (no core file, whatever the shell's ulimit or the
kernel's core_pattern says) and clears the dumpable attribute (Linux prctl PR_SET_DUMPABLE: no core
dump through a pipe handler either, no ptrace by the same uid, /proc/<pid>/mem closed to it).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import resource
import sys

log = logging.getLogger("gbagw.process")

_PR_SET_DUMPABLE = 4  # <linux/prctl.h>
_PR_GET_DUMPABLE = 3


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name, use_errno=True) if name else None


def forbid_core_dumps() -> None:
    """No core file and no dumpable flag for this process (and the children it forks)."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    libc = _libc()
    if libc is not None and libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        # Never expected on Linux; the rlimit above still stops core files.
        log.warning("process: prctl(PR_SET_DUMPABLE, 0) failed (errno %d)", ctypes.get_errno())


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard limit; returns the soft limit now in force.

    The common default soft limit, 1,024, is what a flood of idle connections exhausted (every listener
    then failed to accept); the hard limit (systemd: LimitNOFILE=) is the operator's real ceiling.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # kept as it was: the start-up check of the listeners' caps says so
    return soft


def dumpable() -> bool | None:
    """The kernel's dumpable flag of this process (None where there is no prctl)."""
    libc = _libc()
    return None if libc is None else bool(libc.prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0))
