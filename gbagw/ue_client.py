"""Runs the sans-IO UE (gba.ue, gba.ua) over real HTTP: Ub against a BSF, Ua against a NAF."""

from __future__ import annotations

import ipaddress
import ssl
from urllib.parse import urlsplit

import aiohttp

from gba import digest
from gba.btid import is_fqdn
from gba.kdf import NafId, UaProtocol
from gba.ua import (
    KeyKind,
    UaError,
    answer_challenge,
    digest_password,
    parse_naf_realm,
    ua_https_id,
    ua_product_tokens,
)
from gba.ue import Bootstrap, UeClient, UeMode

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


async def ua_get(
    url: str,
    boot: Bootstrap,
    timeout: float = 10.0,
    *,
    naf_fqdn: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    """GET a NAF resource over Ua HTTP Digest with the bootstrapped keys (TS 24.109 clause 5.2), behind
    HTTPS too (TS 33.222 5.3). ``naf_fqdn``: the NAF's name when the URL holds an address (default: the
    URL's host); a challenge for any other NAF is refused."""
    if naf_fqdn is None:
        naf_fqdn = urlsplit(url).hostname or ""
        if not is_fqdn(naf_fqdn) or _is_address(naf_fqdn):
            raise UaRefused(f"the URL holds no NAF FQDN ({naf_fqdn or 'none'}): name the NAF with --naf-fqdn")
    try:
        return await _ua_get(url, boot, timeout, naf_fqdn, tls)
    except aiohttp.ClientError as exc:
        raise _unreachable(exc) from None
    except (digest.DigestError, UaError) as exc:
        raise UaRefused(f"the NAF's Digest headers are not GBA's or do not parse: {exc}") from None


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _ua_protocol_id(resp: aiohttp.ClientResponse, tls: ssl.SSLContext | None) -> bytes:
    """0100000002 for Ua digest over HTTP; behind HTTPS, (01,00,01,yy,zz) of the negotiated suite
    (TS 33.220 Annex H.3; TS 33.222 5.3)."""
    # aiohttp hands a fully read response's connection back to its pool (resp.connection is then None);
    # the protocol it ran on still knows the TLS session.
    protocol = getattr(resp, "_protocol", None)
    transport = protocol.transport if protocol is not None else None
    tls_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if tls_object is None:
        return UaProtocol.HTTP_DIGEST.value
    cipher = tls_object.cipher()
    if cipher is None:
        raise UaRefused("the TLS session with the NAF has no cipher suite")
    return ua_https_id(cipher[0], (tls or ssl.create_default_context()).get_ciphers())


async def _ua_get(
    url: str, boot: Bootstrap, timeout: float, naf_fqdn: str, tls: ssl.SSLContext | None
) -> tuple[int, bytes]:
    parts = urlsplit(url)
    uri = parts.path or "/"
    if parts.query:
        uri += "?" + parts.query
    # TS 24.109 5.2.1: product tokens telling the NAF which GBA keys this UE can use.
    offered = ua_product_tokens(*((KeyKind.UICC, KeyKind.ME) if boot.mode is UeMode.GBA_U else (KeyKind.ME,)))
    connector = aiohttp.TCPConnector(ssl=tls) if tls is not None else None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout), connector=connector) as session:
        async with session.get(url, headers={"User-Agent": offered}) as resp:
            if resp.status != 401:
                return resp.status, await resp.read()
            www = resp.headers.get("WWW-Authenticate", "")
            ua_id = _ua_protocol_id(resp, tls)
        answered: set[str] = set()
        while True:
            ch = digest.Challenge.parse(www)
            kind, fqdn = parse_naf_realm(ch.realm)
            if fqdn.lower() != naf_fqdn.lower():
                # TS 24.109 5.2.2.1: the realm must name the NAF the UE is talking to; otherwise this NAF
                # relays another NAF's challenge and would get a response keyed for that other NAF.
                raise UaRefused(f"the challenge is for NAF {fqdn!r}, not {naf_fqdn!r} that this request goes to")
            me, uicc = boot.naf_keys(NafId(fqdn, ua_id))
            key = uicc if kind is KeyKind.UICC else me
            if key is None:
                raise UaRefused("the NAF asks for a UICC key but this bootstrap is GBA_ME")
            answered.add(ch.realm)
            cred = answer_challenge(www, boot.btid, key, method="GET", uri=uri)
            headers = {"Authorization": cred.to_header(), "User-Agent": ua_product_tokens(kind)}
            async with session.get(url, headers=headers) as resp:
                body = await resp.read()
                www = resp.headers.get("WWW-Authenticate", "")
                if resp.status == 200:
                    info = digest.AuthenticationInfo.parse(resp.headers.get("Authentication-Info", ""))
                    if not digest.responses_equal(cred.expected_rspauth(digest_password(key), body), info.rspauth):
                        raise UaRefused("rspauth from the NAF does not verify")
            # One more answer when the NAF asks for the other key (USS keyChoice, TS 24.109 5.2.2);
            # the same realm again means this key failed (bootstrap again), never answered twice.
            if resp.status != 401 or not www or digest.Challenge.parse(www).realm in answered:
                return resp.status, body
