"""Ua over HTTP Digest (TS 24.109 clause 5): aiohttp middleware that authenticates a UE by B-TID.

realm = ``3GPP-bootstrapping@<NAF FQDN>``, username = B-TID, password = base64(Ks_NAF). An unknown or
expired B-TID (Zn 5403) gets a fresh 401 with the same realm, which tells the UE to bootstrap again.
When the USSs ask for the UICC-based key, the UE is challenged again with ``3GPP-bootstrapping-uicc@``
and only Ks_int_NAF is accepted (TS 33.220 4.4.6, 5.3.3; TS 24.109 5.2.2). NAF_Id carries 0100000002
on plain HTTP and (01,00,01,yy,zz) of the negotiated suite behind HTTPS (TS 33.220 Annex H.3, TS 33.222 5.3).
"""

from __future__ import annotations

import base64
import logging
import os
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from gba import digest
from gba.kdf import NafId, UaProtocol
from gba.ua import KeyKind, UaError, allowed_key_kinds, digest_password, naf_realm, ua_https_id
from gba.uss import Uss
from gbaio import logs
from naf.config import NafConfig
from naf.key_cache import KeyCache
from naf.metrics import NafMetrics
from naf.zn_client import ZnNoRoute, ZnRefused, ZnUnavailable

log = logging.getLogger("gbagw.naf.ua")

MAX_NONCES = 100_000


@dataclass(frozen=True, slots=True)
class GbaIdentity:
    """What a handler learns about an authenticated UE."""

    btid: str
    impi: str | None
    uss: tuple[Uss, ...]


IDENTITY_KEY = web.RequestKey("gba_identity", GbaIdentity)


@dataclass(slots=True)
class _Nonce:
    expires: float
    opaque: str
    realm: str  # the realm this nonce was issued with: the answer must be for the same key kind
    last_nc: int = 0


class UaDigestAuth:
    def __init__(
        self, config: NafConfig, keys: KeyCache, metrics: NafMetrics, tls: ssl.SSLContext | None = None
    ) -> None:
        self.config = config
        self.keys = keys
        self._responses = metrics.ua
        self.naf_id = NafId(config.fqdn, UaProtocol.HTTP_DIGEST.value)
        self.realm = naf_realm(config.fqdn, KeyKind.ME)
        self._realms = {naf_realm(config.fqdn, k): k for k in KeyKind}
        self._tls_ciphers = tls.get_ciphers() if tls is not None else []
        self._nonces: OrderedDict[str, _Nonce] = OrderedDict()

    def naf_id_for(self, request: web.Request) -> NafId:
        """NAF_Id for this request: the Ua id of digest over HTTP, or of the TLS suite it came over."""
        tls_object = request.transport.get_extra_info("ssl_object") if request.transport is not None else None
        if tls_object is None:
            return self.naf_id
        cipher = tls_object.cipher()
        if cipher is None:
            raise UaError("the TLS session has no cipher suite")
        return NafId(self.config.fqdn, ua_https_id(cipher[0], self._tls_ciphers))

    def _challenge(
        self, stale: bool = False, reason: str = "authentication required", kind: KeyKind = KeyKind.ME
    ) -> web.Response:
        now = time.time()
        while self._nonces and (len(self._nonces) >= MAX_NONCES or next(iter(self._nonces.values())).expires < now):
            self._nonces.popitem(last=False)
        nonce = base64.b64encode(os.urandom(24)).decode("ascii")
        opaque = base64.b64encode(os.urandom(12)).decode("ascii")
        realm = naf_realm(self.config.fqdn, kind)
        self._nonces[nonce] = _Nonce(now + self.config.nonce_lifetime, opaque, realm)
        header = digest.Challenge(
            realm=realm,
            nonce=nonce,
            algorithm="MD5",
            qop=(digest.QOP_AUTH_INT, digest.QOP_AUTH),
            opaque=opaque,
            stale=stale,
        ).to_header()
        return web.Response(status=401, text=reason + "\n", headers={"WWW-Authenticate": header})

    def _check_nonce(self, cred: digest.Credentials) -> str | None:
        entry = self._nonces.get(cred.nonce)
        if entry is None or entry.expires < time.time():
            return "stale"
        if cred.opaque != entry.opaque:
            return "opaque mismatch"
        if cred.realm != entry.realm:
            return "realm differs from the challenge"
        nc = int(cred.nc or "0", 16)
        if nc <= entry.last_nc:
            return "nonce count replayed"
        entry.last_nc = nc
        return None

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        logs.begin_http_request(request.headers.get("X-Request-Id"))
        response = await self._authenticate(request, handler)
        self._responses.labels(str(response.status)).inc()
        return response

    async def _authenticate(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        values = request.headers.getall("Authorization", [])
        if not values:
            return self._challenge()
        if len(values) != 1:
            return web.Response(status=400, text="duplicate Authorization headers\n")
        try:
            cred = digest.Credentials.parse(values[0])
        except digest.DigestError as exc:
            return web.Response(status=400, text=f"malformed Authorization: {exc}\n")
        kind = self._realms.get(cred.realm)
        if kind is None or cred.qop is None:
            return self._challenge(reason="wrong realm or missing qop")
        if cred.uri != request.path_qs:
            return web.Response(status=400, text="digest uri does not match the request\n")
        problem = self._check_nonce(cred)
        if problem is not None:
            return self._challenge(stale=problem == "stale", reason=problem, kind=kind)
        try:
            key = await self.keys.get(cred.username, self.naf_id_for(request))
        except UaError as exc:
            log.warning("ua: %s", exc)
            return web.Response(status=403, text="TLS suite unknown to this NAF\n")
        except ZnNoRoute as exc:
            log.info("ua: %s", exc)
            return web.Response(status=403, text="B-TID of a realm this NAF has no BSF for\n")
        except ZnRefused as exc:
            if exc.code == 5403:
                log.info("ua: B-TID %s unknown or expired at the BSF: asking the UE to re-bootstrap", cred.username)
                self.keys.forget(cred.username)
                return self._challenge(reason="bootstrapping required")
            log.info("ua: BSF refused the key for %s (code %s)", cred.username, exc.code)
            return web.Response(status=403, text="not authorized\n")
        except ZnUnavailable:
            return web.Response(status=503, text="BSF unavailable, retry later\n", headers={"Retry-After": "5"})
        ks_naf = key.uicc_key if kind is KeyKind.UICC else key.me_key
        if ks_naf is None:
            log.info("ua: B-TID %s answered for Ks_int_NAF, which the BSF did not give this NAF", cred.username)
            return web.Response(status=403, text="no UICC-based key for this B-TID\n")
        password = digest_password(ks_naf)
        body = await request.read()
        if not digest.responses_equal(cred.expected_response(password, request.method, body), cred.response):
            log.info("ua: wrong digest response for B-TID %s", cred.username)
            return self._challenge(reason="wrong credentials", kind=kind)
        allowed = allowed_key_kinds(u.key_choice for u in key.uss)
        if kind not in allowed:
            # TS 33.220 4.4.6, 5.3.3: the USS keyChoice decides; the realm tells the UE which key to use.
            if not allowed or (KeyKind.UICC in allowed and key.uicc_key is None):
                log.info("ua: the USSs of B-TID %s ask for a key this NAF cannot use; refused", cred.username)
                return web.Response(status=403, text="the service's key choice cannot be met\n")
            other = next(iter(allowed))
            log.info("ua: the USS of B-TID %s asks for the %s-based key; challenging again", cred.username, other.name)
            return self._challenge(reason=f"this service requires the {other.name}-based key", kind=other)
        log.info("ua: authenticated B-TID %s (impi %s)", cred.username, key.impi)
        request[IDENTITY_KEY] = GbaIdentity(key.btid, key.impi, key.uss)
        response: web.StreamResponse = await handler(request)
        if isinstance(response, web.Response):
            resp_body = response.body if isinstance(response.body, bytes) else b""
            info = digest.AuthenticationInfo(
                rspauth=cred.expected_rspauth(password, resp_body), qop=cred.qop, nc=cred.nc, cnonce=cred.cnonce
            )
            response.headers["Authentication-Info"] = info.to_header()
        return response


def identity(request: web.Request) -> GbaIdentity:
    return request[IDENTITY_KEY]
