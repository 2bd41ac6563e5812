"""Ub as TS 24.109 / TS 33.220 profile it, checked by a strict UE written here from the text (its own MD5
digest, MAC*, RES flip and TMPI by hand): GBA_U from the GUSS alone, TMPI, lifetime, the offered qop.

The BSF runs in process on the real SQLite store; the HSS side is a stub Zh client (a unit test of bsf.ub).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import re
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from bsf.config import BsfConfig
from bsf.metrics import BsfMetrics
from bsf.store.sqlite import SqliteStore
from bsf.ub import create_ub_server
from bsf.zh_client import UnknownSubscriber, Vector
from gba.keywrap import Keyring
from gbaio.http_server import HttpServer

REALM = "bsf.gba.test"
GUSS_U = b"<guss><bsfInfo><uiccType>GBA_U</uiccType></bsfInfo><ussList/></guss>"
GUSS_LONG = b"<guss><bsfInfo><uiccType>GBA</uiccType><lifeTime>7200</lifeTime></bsfInfo><ussList/></guss>"
SUBSCRIBERS = {"me@ims.test": None, "u@ims.test": GUSS_U, "long@ims.test": GUSS_LONG}


@dataclass
class Av:
    rand: bytes
    mac: bytes
    xres: bytes
    ck: bytes
    ik: bytes


class StubZh:
    """Random vectors whose parts the test knows (no Milenage needed: the strict UE plays the USIM)."""

    def __init__(self) -> None:
        self.issued: dict[bytes, Av] = {}

    async def fetch_vector(self, impi: str, resync_info: bytes | None = None) -> Vector:
        if impi not in SUBSCRIBERS:
            raise UnknownSubscriber(impi)
        av = Av(os.urandom(16), os.urandom(8), os.urandom(8), os.urandom(16), os.urandom(16))
        self.issued[av.rand] = av
        autn = bytes(6) + b"\x00\x00" + av.mac  # SQN^AK || AMF || MAC
        return Vector(av.rand, autn, av.xres, av.ck, av.ik, SUBSCRIBERS[impi])


def _md5(data: str | bytes) -> str:
    return hashlib.md5(data.encode() if isinstance(data, str) else data).hexdigest()


def _params(header: str) -> dict[str, str]:
    return {k: v1 or v2 for k, v1, v2 in re.findall(r'(\w[\w-]*)=(?:"([^"]*)"|([^,\s]+))', header)}


class StrictUe:
    """RFC 2617 + RFC 3310 + TS 24.109 4.2 by hand: auth-int over the empty body, RES raw as password."""

    def __init__(self, url: str, session: aiohttp.ClientSession, user_agent: str) -> None:
        self.url, self.session, self.user_agent = url, session, user_agent

    async def get(self, authorization: str) -> tuple[int, dict[str, str], bytes]:
        headers = {"Authorization": authorization, "User-Agent": self.user_agent}
        async with self.session.get(self.url, headers=headers) as r:
            return r.status, dict(r.headers), await r.read()

    async def challenge(self, username: str) -> tuple[int, dict[str, str], bytes]:
        return await self.get(f'Digest username="{username}", realm="{REALM}", nonce="", uri="/", response=""')

    def answer(self, username: str, www: str, password: bytes, qop: str = "auth-int") -> str:
        p = _params(www)
        ha1 = _md5(f"{username}:{p['realm']}:".encode() + password)
        ha2 = _md5(f"GET:/:{_md5(b'')}" if qop == "auth-int" else "GET:/")
        response = _md5(f"{ha1}:{p['nonce']}:00000001:0a4f113b:{qop}:{ha2}")
        return (
            f'Digest username="{username}", realm="{p["realm"]}", nonce="{p["nonce"]}", uri="/", qop={qop}, '
            f'nc=00000001, cnonce="0a4f113b", response="{response}", opaque="{p["opaque"]}", algorithm=AKAv1-MD5'
        )


def _nonce_parts(www: str) -> tuple[bytes, bytes]:
    raw = base64.b64decode(_params(www)["nonce"])
    return raw[:16], raw[16:32]


def _tmpi_by_hand(av: Av, impi: str) -> str:
    """TS 33.220 B.4 written out: KDF(CK||IK, FC 01, "gba-me", RAND, IMPI, BSF FQDN || 01 00 00 01 00)."""
    bsf_id = REALM.encode() + bytes.fromhex("0100000100")
    s = b"\x01"
    for part in (b"gba-me", av.rand, impi.encode(), bsf_id):
        s += part + struct.pack(">H", len(part))
    out = hmac.new(av.ck + av.ik, s, hashlib.sha256).digest()
    return base64.b64encode(out[:24]).decode() + "@tmpi.bsf.3gppnetwork.org"


@dataclass
class Bsf:
    url: str
    zh: StubZh
    store: SqliteStore
    session: aiohttp.ClientSession

    def ue(self, user_agent: str = "strict-ue/1.0 3gpp-gba-tmpi") -> StrictUe:
        return StrictUe(self.url, self.session, user_agent)

    async def bootstrap(self, ue: StrictUe, username: str, *, flip: bool = False) -> tuple[Av, dict[str, str], bytes]:
        status, headers, _ = await ue.challenge(username)
        assert status == 401, status
        www = headers["WWW-Authenticate"]
        rand, _ = _nonce_parts(www)
        av = self.zh.issued[rand]
        res = av.xres[:-1] + bytes([av.xres[-1] ^ 1]) if flip else av.xres
        status, headers, body = await ue.get(ue.answer(username, www, res))
        assert status == 200, (status, body)
        return av, headers, body


StartBsf = Callable[..., Awaitable[Bsf]]


@pytest.fixture
async def start_bsf(tmp_path: Path) -> AsyncIterator[StartBsf]:
    opened: list[tuple[HttpServer, SqliteStore, aiohttp.ClientSession]] = []

    async def start(**config: object) -> Bsf:
        store = SqliteStore(tmp_path / f"bsf{len(opened)}.sqlite", Keyring(os.urandom(32)))
        zh = StubZh()
        server = create_ub_server(
            BsfConfig(fqdn=REALM, rate_per_impi=0, rate_per_source=0, **config),  # type: ignore[arg-type]
            store,
            zh,  # type: ignore[arg-type]
            BsfMetrics(),
        )
        port = await server.start("127.0.0.1", 0)
        session = aiohttp.ClientSession()
        opened.append((server, store, session))
        return Bsf(f"http://127.0.0.1:{port}/", zh, store, session)

    yield start
    for server, store, session in opened:
        await session.close()
        await server.close()
        await store.close()


def _lifetime(body: bytes) -> dt.datetime:
    m = re.search(rb"<lifetime>([^<]+)</lifetime>", body)
    assert m is not None
    return dt.datetime.fromisoformat(m.group(1).decode().replace("Z", "+00:00"))


async def test_gba_u_is_chosen_from_the_guss_alone(start_bsf: StartBsf) -> None:
    """TS 33.220 5.2.2 / 5.3.2: a GBA_U subscriber behind an ME that sends only 3gpp-gba-tmpi gets AUTN*
    (MAC* = MAC xor SHA-1(IK)[0..7]) and must answer with RES LSB-flipped; a GBA_ME subscriber whose UE
    sends the Ua token 3gpp-gba-uicc still gets the plain AUTN."""
    bsf: Bsf = await start_bsf()
    ue = bsf.ue("strict-ue/1.0 3gpp-gba-tmpi")
    status, headers, _ = await ue.challenge("u@ims.test")
    assert status == 401 and "3gpp-gba-tmpi" in headers["Server"].split()
    rand, autn = _nonce_parts(headers["WWW-Authenticate"])
    av = bsf.zh.issued[rand]
    mac_star = bytes(a ^ b for a, b in zip(av.mac, hashlib.sha1(av.ik).digest()[:8], strict=True))
    assert autn == bytes(8) + mac_star
    # The plain XRES is refused for GBA_U; a fresh run with the flipped RES bootstraps.
    status, _, _ = await ue.get(ue.answer("u@ims.test", headers["WWW-Authenticate"], av.xres))
    assert status == 403
    av, headers, _ = await bsf.bootstrap(ue, "u@ims.test", flip=True)
    ctx = await bsf.store.context_of("u@ims.test")
    assert ctx is not None and ctx.gba_u and "3gpp-gba-tmpi" in headers["Server"].split()

    me_ue = bsf.ue("strict-ue/1.0 3gpp-gba-uicc 3gpp-gba")
    status, headers, _ = await me_ue.challenge("me@ims.test")
    rand, autn = _nonce_parts(headers["WWW-Authenticate"])
    assert autn[8:] == bsf.zh.issued[rand].mac
    await bsf.bootstrap(me_ue, "me@ims.test")
    ctx = await bsf.store.context_of("me@ims.test")
    assert ctx is not None and not ctx.gba_u


async def test_tmpi_is_issued_mapped_replaced_and_unknown_is_refused(start_bsf: StartBsf) -> None:
    """TS 33.220 4.5.2 steps 1, 2 and 7, B.4; TS 24.109 4.2 a) 1)."""
    bsf: Bsf = await start_bsf()
    ue = bsf.ue()
    av, _, _ = await bsf.bootstrap(ue, "me@ims.test")
    tmpi = _tmpi_by_hand(av, "me@ims.test")
    assert await bsf.store.impi_of_tmpi(tmpi) == "me@ims.test"
    # The next bootstrap with the TMPI as username: challenged for its IMPI, answered over the TMPI.
    av2, _, _ = await bsf.bootstrap(ue, tmpi)
    ctx = await bsf.store.context_of("me@ims.test")
    assert ctx is not None and ctx.rand == av2.rand
    new_tmpi = _tmpi_by_hand(av2, "me@ims.test")
    assert new_tmpi != tmpi and await bsf.store.impi_of_tmpi(new_tmpi) == "me@ims.test"
    # The old TMPI is gone (overwritten): "an appropriate error", after which the UE uses its IMPI.
    status, headers, text = await ue.challenge(tmpi)
    assert status == 403 and b"IMPI" in text and "3gpp-gba-tmpi" in headers["Server"].split()
    # A UE without the token gets no TMPI (4.5.2 step 7 is conditional on it).
    av3, _, _ = await bsf.bootstrap(bsf.ue("old-ue/1.0"), "u@ims.test", flip=True)
    assert await bsf.store.impi_of_tmpi(_tmpi_by_hand(av3, "u@ims.test")) is None


async def test_offered_qop_is_configurable_and_enforced(start_bsf: StartBsf) -> None:
    """TS 24.109 4.2 b): qop "auth-int" by default; bsf.ub_qop may add "auth"; an answer must use an
    offered value."""
    strict: Bsf = await start_bsf()
    ue = strict.ue()
    status, headers, _ = await ue.challenge("me@ims.test")
    www = headers["WWW-Authenticate"]
    assert _params(www)["qop"] == "auth-int"
    av = strict.zh.issued[_nonce_parts(www)[0]]
    status, _, _ = await ue.get(ue.answer("me@ims.test", www, av.xres, qop="auth"))
    assert status == 403

    lenient: Bsf = await start_bsf(ub_qop=("auth-int", "auth"))
    ue = lenient.ue()
    status, headers, _ = await ue.challenge("me@ims.test")
    www = headers["WWW-Authenticate"]
    assert _params(www)["qop"] == "auth-int,auth"
    av = lenient.zh.issued[_nonce_parts(www)[0]]
    status, _, _ = await ue.get(ue.answer("me@ims.test", www, av.xres, qop="auth"))
    assert status == 200


@pytest.mark.parametrize(
    ("impi", "max_key_lifetime", "expected"),
    [
        ("long@ims.test", 0, 7200),  # the GUSS lifeTime replaces the 3600 s default, longer or not
        ("long@ims.test", 5000, 5000),  # bsf.max_key_lifetime bounds it
        ("me@ims.test", 0, 3600),  # no GUSS: the default
        ("me@ims.test", 1000, 1000),
    ],
)
async def test_guss_lifetime_replaces_the_default(
    start_bsf: StartBsf, impi: str, max_key_lifetime: int, expected: int
) -> None:
    """TS 29.109 5.2 step 3 / 5.3: a GUSS lifeTime is used instead of the BSF default; the Ub <lifetime>
    is the context's expiry, the one Zn sends as Key-ExpiryTime."""
    bsf: Bsf = await start_bsf(key_lifetime=3600, max_key_lifetime=max_key_lifetime)
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    _, _, body = await bsf.bootstrap(bsf.ue(), impi)
    lifetime = _lifetime(body)
    assert 0 <= (lifetime - before).total_seconds() - expected <= 2
    ctx = await bsf.store.context_of(impi)
    assert ctx is not None and ctx.expires == lifetime
