"""Runs the sans-IO UE (gba.ue, gba.ua) over real HTTP: Ub against a BSF, Ua against a NAF."""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit

import aiohttp

from gba import digest
from gba.kdf import NafId, UaProtocol
from gba.ua import KeyKind, UaError, answer_challenge, digest_password, parse_naf_realm
from gba.ue import Bootstrap, UeClient

# Initial, challenge answer, one more after a resynchronisation, and a restart with the IMPI when the BSF
# did not know the TMPI (TS 33.220 4.5.2 step 2).
MAX_ROUNDS = 4


class UbRefused(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"BSF answered {status}: {text.strip()}")
        self.status = status


class UaRefused(Exception):
    """The NAF's Ua exchange cannot complete: not a GBA challenge, a wrong key kind, a bad rspauth."""


def _unreachable(exc: aiohttp.ClientError) -> ConnectionError:
    """aiohttp's errors past the connect (a peer that hangs up, a reply that is not HTTP) as the
    ConnectionError callers already handle; the connect errors are OSErrors already."""
    return ConnectionError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


async def bootstrap(url: str, ue: UeClient, timeout: float = 10.0, tls: ssl.SSLContext | None = None) -> Bootstrap:
    """Run Ub (https:// URLs are verified with ``tls`` or the system trust store)."""
    try:
        return await _bootstrap(url, ue, timeout, tls)
    except aiohttp.ClientError as exc:
        raise _unreachable(exc) from None


async def _bootstrap(url: str, ue: UeClient, timeout: float, tls: ssl.SSLContext | None) -> Bootstrap:
    path = urlsplit(url).path or "/"
    ue.uri = path
    headers = {"Authorization": ue.authorization(), "User-Agent": ue.user_agent}
    connector = aiohttp.TCPConnector(ssl=tls) if tls is not None else None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout), connector=connector) as session:
        for _ in range(MAX_ROUNDS):
            async with session.get(url, headers=headers) as resp:
                body = await resp.read()
                if resp.status == 401:
                    if "WWW-Authenticate" not in resp.headers:
                        raise UbRefused(401, "401 without a WWW-Authenticate challenge")
                    headers = {
                        "Authorization": ue.on_challenge(resp.headers["WWW-Authenticate"]),
                        "User-Agent": ue.user_agent,
                    }
                    continue
                if resp.status == 200:
                    return ue.on_success(resp.headers.get("Authentication-Info"), body, resp.headers.get("Server"))
                if ue.on_refused(resp.status):
                    headers = {"Authorization": ue.authorization(), "User-Agent": ue.user_agent}
                    continue
                raise UbRefused(resp.status, body.decode("utf-8", "replace")[:200])
    raise UbRefused(401, "too many challenges")


async def ua_get(url: str, boot: Bootstrap, timeout: float = 10.0) -> tuple[int, bytes]:
    """GET a NAF resource over Ua HTTP Digest with the bootstrapped keys (TS 24.109 clause 5.2)."""
    try:
        return await _ua_get(url, boot, timeout)
    except aiohttp.ClientError as exc:
        raise _unreachable(exc) from None
    except (digest.DigestError, UaError) as exc:
        raise UaRefused(f"the NAF's Digest headers are not GBA's or do not parse: {exc}") from None


async def _ua_get(url: str, boot: Bootstrap, timeout: float) -> tuple[int, bytes]:
    parts = urlsplit(url)
    uri = parts.path or "/"
    if parts.query:
        uri += "?" + parts.query
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        async with session.get(url) as resp:
            if resp.status != 401:
                return resp.status, await resp.read()
            www = resp.headers.get("WWW-Authenticate", "")
        kind, fqdn = parse_naf_realm(digest.Challenge.parse(www).realm)
        me, uicc = boot.naf_keys(NafId(fqdn, UaProtocol.HTTP_DIGEST.value))
        key = uicc if kind is KeyKind.UICC else me
        if key is None:
            raise UaRefused("the NAF asks for a UICC key but this bootstrap is GBA_ME")
        cred = answer_challenge(www, boot.btid, key, method="GET", uri=uri)
        async with session.get(url, headers={"Authorization": cred.to_header()}) as resp:
            body = await resp.read()
            if resp.status == 200:
                info = digest.AuthenticationInfo.parse(resp.headers.get("Authentication-Info", ""))
                if not digest.responses_equal(cred.expected_rspauth(digest_password(key), body), info.rspauth):
                    raise UaRefused("rspauth from the NAF does not verify")
            return resp.status, body
