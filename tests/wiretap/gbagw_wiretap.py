"""Records every Diameter message, Zn SOAP document and Nbsp_GBA JSON body that gbagw code emits.

Loaded in every test subprocess by ``sitecustomize`` (this directory is put on PYTHONPATH by
tests/conftest.py) and in the pytest process by tests/conftest.py itself. It wraps the functions that
produce the bytes, when their module is imported:

- ``gba.diameter.Envelope.encode`` (every Diameter message gbaio sends is built by it), recorded only when
  called from gbagw code, so that a test encoding a deliberately bad message by hand is not recorded;
- ``gba.zn_soap.build_request`` / ``build_response`` / ``build_fault``;
- ``json.dumps`` as seen by ``bsf.zn_sbi`` (the Nbsp_GBA answer bodies).

Each record is appended with one write() to ``<dir>/<kind>-<pid>.tap`` (O_APPEND, unbuffered, so a
process stopped by SIGTERM loses nothing): a header line ``<test id>\\t<length>\\n`` then the bytes. The
files hold keys (BIA, MAA): they live in pytest's tmp dir, and the checks report names, never values.
Standard library only, no import of tests.*: at sitecustomize time the repository is not on sys.path.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import os
import sys
import types
from collections.abc import Callable, Sequence
from typing import Any

ENV_DIR = "PYTEST_GBAGW_WIRETAP"  # not GBAGW_*: gbagw refuses unknown GBAGW_ variables
PROJECT = frozenset({"gba", "gbaio", "bsf", "naf", "hss_stub", "gbagw", "bench"})
_files: dict[str, int] = {}
paused = False  # set by tests/conftest.py around tests marked wiretap_exempt (in-process only)


def _context() -> str:
    test = os.environ.get("PYTEST_CURRENT_TEST", "")
    return test.replace("\t", " ").replace("\n", " ")


def record(kind: str, data: bytes) -> None:
    folder = os.environ.get(ENV_DIR)
    if not folder or paused:
        return
    fd = _files.get(kind)
    if fd is None:
        fd = os.open(os.path.join(folder, f"{kind}-{os.getpid()}.tap"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        _files[kind] = fd
    os.write(fd, f"{_context()}\t{len(data)}\n".encode() + data)


def _from_project(depth: int = 2) -> bool:
    caller = sys._getframe(depth).f_globals.get("__name__", "")
    return caller.partition(".")[0] in PROJECT


# In the pytest process, the envelopes that test code built (fakes of a broken peer, deliberately bad
# requests), by id; the envelope is kept alive with its id so that the id is never reused meanwhile.
_test_made: dict[int, Any] = {}
in_process = False  # set by tests/conftest.py: only there can test code build envelopes


def _built_by_test() -> bool:
    """Whether the first caller outside gba.diameter (the code that asked for the envelope) is a test."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__") == "gba.diameter":
        frame = frame.f_back  # type: ignore[assignment]
    return frame is not None and str(frame.f_globals.get("__name__", "")).startswith("tests.")


def _patch_diameter(mod: types.ModuleType) -> None:
    envelope = mod.Envelope
    if getattr(envelope.encode, "_wiretap", False):
        return
    original = envelope.encode
    original_init = envelope.__init__

    def encode(self: Any) -> bytes:
        data: bytes = original(self)
        if _from_project() and id(self) not in _test_made:
            record("diameter", data)
        return data

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        if in_process and _built_by_test():
            _test_made[id(self)] = self

    envelope.__init__ = init

    encode._wiretap = True  # type: ignore[attr-defined]
    envelope.encode = encode


def _patch_soap(mod: types.ModuleType) -> None:
    for name in ("build_request", "build_response", "build_fault"):
        original = getattr(mod, name)
        if getattr(original, "_wiretap", False):
            continue

        def wrapper(*args: Any, _original: Callable[..., bytes] = original, **kwargs: Any) -> bytes:
            data = _original(*args, **kwargs)
            record("soap", data)
            return data

        wrapper._wiretap = True  # type: ignore[attr-defined]
        setattr(mod, name, wrapper)


def _patch_sbi(mod: types.ModuleType) -> None:
    real = mod.__dict__["json"]
    if getattr(real, "_wiretap", False):
        return
    shim = types.ModuleType("json")
    shim.__dict__.update(real.__dict__)

    def dumps(obj: Any, *args: Any, **kwargs: Any) -> str:
        text: str = real.dumps(obj, *args, **kwargs)
        record("nbsp", text.encode())
        return text

    shim.dumps = dumps  # type: ignore[attr-defined]
    shim._wiretap = True  # type: ignore[attr-defined]
    mod.__dict__["json"] = shim


PATCHES: dict[str, Callable[[types.ModuleType], None]] = {
    "gba.diameter": _patch_diameter,
    "gba.zn_soap": _patch_soap,
    "bsf.zn_sbi": _patch_sbi,
}


class _Finder(importlib.abc.MetaPathFinder):
    """Patches a module of PATCHES right after it executes, before its importer sees it."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in PATCHES:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec = finder.find_spec(fullname, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None and spec.loader is not None:
                loader = spec.loader
                exec_module = loader.exec_module

                def patched(module: types.ModuleType, _exec: Any = exec_module) -> None:
                    _exec(module)
                    PATCHES[module.__name__](module)

                loader.exec_module = patched  # type: ignore[method-assign]
                return spec
        return None


def install() -> None:
    """Patch what is imported already; hook what is imported later."""
    for name, patch in PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


def read(folder: str) -> list[tuple[str, int, str, bytes]]:
    """Every record of a tap directory: (kind, pid, test id, bytes)."""
    out = []
    for entry in sorted(os.listdir(folder)):
        if not entry.endswith(".tap"):
            continue
        kind, _, pid = entry[:-4].rpartition("-")
        with open(os.path.join(folder, entry), "rb") as f:
            blob = f.read()
        pos = 0
        while pos < len(blob):
            nl = blob.index(b"\n", pos)
            ctx, _, length = blob[pos:nl].decode().rpartition("\t")
            start = nl + 1
            out.append((kind, int(pid), ctx, blob[start : start + int(length)]))
            pos = start + int(length)
    return out


__all__ = ["ENV_DIR", "install", "read", "record"]
