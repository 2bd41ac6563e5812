"""The BSF/MEF shared state: pending Ub challenges, bootstrapping contexts and oneM2M enrolments.

Both records are stored sealed (AES-GCM under the BSF KEK, bound to their key), so the backends only
ever see opaque bytes. Any number of BSF instances sharing one store can serve either request of a
bootstrap, and Zn for any B-TID.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import struct
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeVar

from gba.keywrap import Keyring

P = ParamSpec("P")
R = TypeVar("R")


class StoreUnavailable(Exception):
    """The store cannot be reached or cannot write right now (Redis down, SQLite locked or disk full),
    or holds a record this instance cannot open (sealed under a KEK it does not hold: the message
    names the KEK id, see gba.keywrap).

    Nothing was decided: Ub answers 503 with Retry-After, Zn DIAMETER_TOO_BUSY (3004) or HTTP 503, so
    the UE or NAF retries, here or at another BSF instance. The message carries the backend's error,
    never a key or record.
    """


def unavailable_on(
    *errors: type[Exception],
) -> Callable[[Callable[P, Coroutine[Any, Any, R]]], Callable[P, Coroutine[Any, Any, R]]]:
    """Turn a backend's outage errors, raised by one store operation, into :class:`StoreUnavailable`."""

    def wrap(op: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
        @functools.wraps(op)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return await op(*args, **kwargs)
            except errors as exc:
                raise StoreUnavailable(f"{op.__name__}: {type(exc).__name__}: {exc}") from exc

        return guarded

    return wrap


async def store_problem(store: ContextStore) -> str | None:
    """A readiness check's answer: None when the store answers, else why, with the backend's error."""
    try:
        return None if await store.ping() else "context store does not answer"
    except StoreUnavailable as exc:
        return f"context store does not answer ({exc})"


# Associated-data prefixes of the sealed records, by record kind (see seal_record callers).
AAD_CHALLENGE = "challenge:"
AAD_CONTEXT = "context:"
AAD_ENROLMENT = "enrolment:"


@dataclass(frozen=True, slots=True)
class PendingChallenge:
    """What the second Ub request is checked against (one authentication vector, used once)."""

    impi: str
    nonce: str
    opaque: str
    rand: bytes
    xres: bytes  # the expected RES (already LSB-flipped for GBA_U)
    ck: bytes
    ik: bytes
    gba_u: bool
    guss: bytes | None
    expires: dt.datetime
    # The digest username the UE used when it is not the IMPI: a TMPI (TS 33.220 4.5.2 step 1).
    # Last, with a default: records written before it existed open with the IMPI as username.
    username: str = ""

    @property
    def digest_username(self) -> str:
        return self.username or self.impi


@dataclass(frozen=True, slots=True)
class BootstrapContext:
    """TS 33.220 clause 4.5.2: B-TID, IMPI, RAND, Ks, lifetime, GBA type and GUSS."""

    btid: str
    impi: str
    rand: bytes
    ks: bytes
    created: dt.datetime
    expires: dt.datetime
    gba_u: bool
    guss: bytes | None


@dataclass(frozen=True, slots=True)
class EnrolmentRecord:
    """oneM2M MEF state after a direct-framework enrolment (TS-0003 8.3.2.1/8.3.2.2): (Ke, KeID)."""

    keid: str
    ke: bytes
    enrolee_id: str  # the Enrolee's assigned CSE-ID / AE-ID
    targets: tuple[str, ...]  # authorized Enrolment Targets (MAF FQDNs)
    framework: str  # "psk" | "certificate"
    created: dt.datetime
    expires: dt.datetime


# Record plaintext, before sealing. Written: ``00`` then each field in slot order as a tagged value:
# ``n`` None, ``T``/``F`` a bool, ``b``/``s`` + u32 length + octets (bytes, UTF-8 str), ``d`` + a big-endian
# double (a datetime's POSIX time, read back in UTC), ``l`` + u32 count + that many ``s`` values (a
# tuple of str). Read: that, or the JSON object of earlier releases (it starts with ``{``), so records
# written before an upgrade still open.
_BINARY = b"\x00"
_U32 = struct.Struct("!I")
_DOUBLE = struct.Struct("!d")


def _pack_value(v: object, out: list[bytes]) -> None:
    if v is None:
        out.append(b"n")
    elif v is True:
        out.append(b"T")
    elif v is False:
        out.append(b"F")
    elif isinstance(v, bytes):
        out += (b"b", _U32.pack(len(v)), v)
    elif isinstance(v, str):
        e = v.encode()
        out += (b"s", _U32.pack(len(e)), e)
    elif isinstance(v, dt.datetime):
        out += (b"d", _DOUBLE.pack(v.timestamp()))
    elif isinstance(v, tuple):
        out += (b"l", _U32.pack(len(v)))
        for item in v:
            _pack_value(str(item), out)
    else:
        raise TypeError(f"cannot store a {type(v).__name__}")


def _read_value(data: bytes, i: int) -> tuple[Any, int]:
    """The tagged value at ``data[i]`` and the offset after it (the record is authenticated: it is
    one that we wrote)."""
    tag = data[i]
    i += 1
    if tag == 0x6E:  # n
        return None, i
    if tag == 0x54:  # T
        return True, i
    if tag == 0x46:  # F
        return False, i
    if tag in (0x62, 0x73):  # b, s
        (n,) = _U32.unpack_from(data, i)
        raw = data[i + 4 : i + 4 + n]
        return (raw if tag == 0x62 else raw.decode()), i + 4 + n
    if tag == 0x64:  # d
        return dt.datetime.fromtimestamp(_DOUBLE.unpack_from(data, i)[0], dt.UTC), i + 8
    if tag == 0x6C:  # l
        (n,) = _U32.unpack_from(data, i)
        i += 4
        items = []
        for _ in range(n):
            item, i = _read_value(data, i)
            items.append(item)
        return tuple(items), i
    raise ValueError(f"unknown field tag {tag:#x} in a stored record")


def _unpack_values(data: bytes) -> list[Any]:
    """The field values of a binary record (its first octet already checked)."""
    values = []
    i = 1
    while i < len(data):
        value, i = _read_value(data, i)
        values.append(value)
    return values


def _json_value(v: Any) -> Any:
    """A field of a record in the JSON format of earlier releases."""
    if isinstance(v, dict) and "h" in v:
        return bytes.fromhex(str(v["h"]))
    if isinstance(v, dict) and "t" in v:
        return dt.datetime.fromtimestamp(float(v["t"]), dt.UTC)
    if isinstance(v, dict) and "l" in v:
        return tuple(v["l"])
    return v


_Record = TypeVar("_Record", PendingChallenge, BootstrapContext, EnrolmentRecord)


def _open_record(cls: type[_Record], plain: bytes) -> _Record:
    if plain[:1] == b"{":
        return cls(**{k: _json_value(v) for k, v in json.loads(plain).items()})
    if plain[:1] != _BINARY:
        raise ValueError("stored record has an unknown format")
    return cls(*_unpack_values(plain))


def tmpi_key(tmpi: str) -> str:
    """A TMPI is stored as its SHA-256 only (hex): the store holds no list of usable usernames."""
    return hashlib.sha256(tmpi.encode()).hexdigest()


def seal_record(keys: Keyring, record: PendingChallenge | BootstrapContext | EnrolmentRecord, key: str) -> bytes:
    out = [_BINARY]
    for name in record.__slots__:
        _pack_value(getattr(record, name), out)
    return keys.seal(b"".join(out), key.encode())


def unseal_challenge(keys: Keyring, blob: bytes, key: str) -> PendingChallenge:
    return _open_record(PendingChallenge, keys.unseal(blob, key.encode()))


def unseal_context(keys: Keyring, blob: bytes, key: str) -> BootstrapContext:
    return _open_record(BootstrapContext, keys.unseal(blob, key.encode()))


def unseal_enrolment(keys: Keyring, blob: bytes, key: str) -> EnrolmentRecord:
    return _open_record(EnrolmentRecord, keys.unseal(blob, key.encode()))


def reseal(old: Keyring, new: Keyring, blob: bytes, key: str) -> bytes:
    """The same record sealed under ``new`` (KEK rotation); raises KeyWrapError if ``old`` cannot open it."""
    return new.seal(old.unseal(blob, key.encode()), key.encode())


class ContextStore(Protocol):
    """One small async interface; SQLite and Redis implement it and share one contract test suite."""

    async def put_challenge(self, challenge: PendingChallenge) -> None: ...

    async def take_challenge(self, nonce: str) -> PendingChallenge | None:
        """Remove and return the challenge for ``nonce`` (single use); None if unknown or expired."""
        ...

    async def put_context(self, ctx: BootstrapContext) -> None:
        """Store a context; it supersedes any earlier context of the same IMPI (TS 33.220 4.5.2)."""
        ...

    async def get_context(self, btid: str) -> BootstrapContext | None: ...

    async def context_of(self, impi: str) -> BootstrapContext | None:
        """The IMPI's current (live) context, if any: what an operator looks up, and revokes."""
        ...

    async def delete_context(self, btid: str) -> bool:
        """Revoke a context: Zn answers 5403 for it from now on. False if there was none."""
        ...

    async def put_tmpi(self, tmpi: str, impi: str, expires: dt.datetime) -> None:
        """Store the IMPI's new TMPI; it replaces the IMPI's earlier one (TS 33.220 4.5.2 step 7)."""
        ...

    async def impi_of_tmpi(self, tmpi: str) -> str | None:
        """The IMPI a live TMPI stands for (TS 33.220 4.5.2 step 2); None if unknown or expired."""
        ...

    async def put_enrolment(self, rec: EnrolmentRecord) -> None: ...

    async def get_enrolment(self, keid: str) -> EnrolmentRecord | None: ...

    async def count_contexts(self) -> int:
        """Live contexts (Redis: kept as a count by expiry minute, see bsf.store.redis)."""
        ...

    async def ping(self) -> bool:
        """True when the store answers; StoreUnavailable (with the backend's error) when it cannot."""
        ...

    async def rekey(self, new: Keyring, progress: Callable[[int], None] | None = None) -> int:
        """Re-seal every stored record under ``new`` (offline KEK rotation); returns the count.
        ``progress`` is told the count so far (`gbagw bsf rotate-kek` shows it)."""
        ...

    async def close(self) -> None: ...
