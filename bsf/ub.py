"""Ub: HTTP Digest AKA bootstrapping (RFC 3310 as profiled by TS 24.109 clause 4, TS 33.220 4.5.2).

Stateless per request: the pending challenge and the resulting context live in the store, so any BSF
instance sharing it can take either request of a bootstrap.

Status codes (the specs leave them open): 400 malformed Authorization; 401 challenge (also a fresh one,
``stale=true``, when the nonce is unknown, used or expired); 403 wrong response, unknown IMPI or
refused resynchronisation (final, the vector is spent); 403 for an unknown TMPI too (TS 33.220 4.5.2
step 2 asks for "an appropriate error message", after which the UE deletes its TMPI and retries with the
IMPI); 429 + Retry-After past the per-IMPI or per-source vector rate; 503 + Retry-After when the HSS
cannot be asked or too many challenges are pending.

GBA_U or GBA_ME is decided from the GUSS alone (TS 33.220 5.2.2); no product token plays a part in it.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import math
import os

from bsf.config import BsfConfig
from bsf.limits import PendingCap, TokenBuckets
from bsf.metrics import BsfMetrics, Timed
from bsf.store import BootstrapContext, ContextStore, PendingChallenge, StoreUnavailable
from bsf.zh_client import HssRefused, HssUnavailable, UnknownSubscriber, ZhClient
from gba import digest, kdf, milenage
from gba.bootstrapping_info import CONTENT_TYPE, BootstrappingInfo
from gba.btid import Btid
from gba.safexml import XmlError
from gba.uss import Guss, UiccType, parse_guss
from gbaio import logs
from gbaio.http_server import HttpRequest, HttpResponse, HttpServer, text_response

log = logging.getLogger("gbagw.bsf.ub")

MAX_AUTHORIZATION_LEN = 4096
MAX_BODY = 64 * 1024  # Ub bodies are empty in practice; auth-int digests whatever is sent, up to this
# TS 33.220 4.5.2 / TS 24.109 4.2: the BSF always sends 3gpp-gba-tmpi in Server over Ub.
SERVER_PRODUCT = "gbagw-bsf/0.1 " + digest.TMPI_PRODUCT


def _guss(raw: bytes | None, impi: str) -> Guss | None:
    if raw is None:
        return None
    try:
        return parse_guss(raw)
    except XmlError as exc:
        log.error("ub: GUSS of %s from the HSS is unusable (%s); ignoring it", impi, exc)
        return None


class UbHandler:
    def __init__(self, config: BsfConfig, store: ContextStore, zh: ZhClient, metrics: BsfMetrics) -> None:
        self.config = config
        self.store = store
        self.zh = zh
        self._outcomes = metrics.ub
        self._latency = {step: metrics.ub_latency.labels(step) for step in ("challenge", "answer")}
        self._per_impi = TokenBuckets(config.rate_per_impi, config.rate_burst_impi)
        self._per_source = TokenBuckets(config.rate_per_source, config.rate_burst_source)
        self._pending = PendingCap(config.max_pending_challenges, config.challenge_lifetime)

    def _plain(self, status: int, text: str, outcome: str, headers: dict[str, str] | None = None) -> HttpResponse:
        self._outcomes.labels(outcome).inc()
        return text_response(status, text, [("Server", SERVER_PRODUCT), *(headers or {}).items()])

    def _ration(self, impi: str, source: str) -> HttpResponse | None:
        """A 429 or 503 when this vector request exceeds the abuse limits (bsf.limits), else None."""
        wait = max(self._per_source.take(source), self._per_impi.take(impi))
        if wait > 0:
            log.info("ub: rate limit for %s from %s; retry in %.0fs", impi, source, wait)
            return self._plain(
                429, "too many bootstraps, retry later", "rate_limited", {"Retry-After": str(max(1, math.ceil(wait)))}
            )
        if not self._pending.admit():
            log.warning("ub: %d pending challenges: refusing new ones", self._pending.limit)
            return self._plain(
                503,
                "too many pending challenges, retry later",
                "pending_cap",
                {"Retry-After": str(self.config.retry_after)},
            )
        return None

    def _lifetime(self, guss: Guss | None) -> int:
        """Ks lifetime: the GUSS lifeTime "is used instead of the BSF default configuration value" (TS 29.109
        5.2 step 3, 5.3 keyExpiryTime; TS 33.220 I.2.3 NOTE 3), bounded by bsf.max_key_lifetime when set."""
        lifetime = guss.lifetime if guss is not None and guss.lifetime is not None else self.config.key_lifetime
        if self.config.max_key_lifetime:
            lifetime = min(lifetime, self.config.max_key_lifetime)
        return lifetime

    async def _first_challenge(self, username: str, *, stale: bool = False, source: str = "") -> HttpResponse:
        """A challenge for the username's IMPI; a TMPI is mapped to its IMPI first (TS 33.220 4.5.2 step 2)."""
        impi = username
        if kdf.is_tmpi(username):
            found = await self.store.impi_of_tmpi(username)
            if found is None:
                log.info("ub: unknown TMPI from %s; the UE is to retry with its IMPI", source)
                return self._plain(403, "unknown TMPI: retry with the IMPI", "unknown_tmpi")
            impi = found
        return await self._challenge(impi, username, stale=stale, source=source)

    async def _challenge(
        self, impi: str, username: str, resync_info: bytes | None = None, stale: bool = False, source: str = ""
    ) -> HttpResponse:
        # Resynchronisations too: the HSS answers even a forged AUTS with a fresh vector (TS 29.109 4.2),
        # and anyone can send one (its digest uses an empty password), so a chain of them is no cheaper.
        if (refused := self._ration(impi, source)) is not None:
            return refused
        try:
            vec = await self.zh.fetch_vector(impi, resync_info)
        except HssUnavailable:
            return self._plain(
                503, "HSS unavailable, retry later", "hss_unavailable", {"Retry-After": str(self.config.retry_after)}
            )
        except UnknownSubscriber:
            log.info("ub: bootstrap refused: unknown IMPI %s", impi)
            return self._plain(403, "bootstrapping refused", "unknown_subscriber")
        except HssRefused as exc:
            log.info("ub: bootstrap refused for %s: HSS code %s", impi, exc.code)
            return self._plain(403, "bootstrapping refused", "hss_refused")
        guss = _guss(vec.guss, impi)
        # TS 33.220 5.2.2: GBA_U or not "based on subscription information" (GUSS uiccType), and only that:
        # the Ub messages are identical for both (5.3.2), the UE announces nothing.
        gba_u = guss is not None and guss.uicc_type is UiccType.GBA_U
        autn = milenage.gba_u_autn(vec.autn, vec.ik) if gba_u else vec.autn
        xres = milenage.gba_u_expected_res(vec.xres) if gba_u else vec.xres
        nonce = digest.aka_nonce(vec.rand, autn)
        opaque = base64.b64encode(os.urandom(12)).decode("ascii")
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.config.challenge_lifetime)
        await self.store.put_challenge(
            PendingChallenge(
                impi,
                nonce,
                opaque,
                vec.rand,
                xres,
                vec.ck,
                vec.ik,
                gba_u,
                vec.guss,
                expires,
                username=username if username != impi else "",
            )
        )
        self._pending.add(nonce)
        header = digest.Challenge(
            realm=self.config.http_realm,
            nonce=nonce,
            qop=self.config.ub_qop,
            opaque=opaque,
            stale=stale,
        ).to_header()
        log.info("ub: challenge for %s (gba_u=%s resync=%s)", impi, gba_u, resync_info is not None)
        self._outcomes.labels("resync_challenge" if resync_info else "stale_challenge" if stale else "challenge").inc()
        return HttpResponse(401, [("WWW-Authenticate", header), ("Server", SERVER_PRODUCT)])

    async def handle(self, request: HttpRequest) -> HttpResponse:
        logs.begin_http_request(request.header("x-request-id"))
        values = request.header_values("authorization")
        if len(values) != 1:
            return self._plain(400, "exactly one Authorization: Digest header with the IMPI is required", "bad_request")
        if len(values[0]) > MAX_AUTHORIZATION_LEN:
            return self._plain(400, "Authorization header too long", "bad_request")
        try:
            cred = digest.Credentials.parse(values[0])
        except digest.DigestError as exc:
            return self._plain(400, f"malformed Authorization: {exc}", "bad_request")
        if not cred.username:
            return self._plain(400, "username (IMPI) is empty", "bad_request")
        try:
            with Timed(self._latency["challenge" if cred.is_initial else "answer"]):
                return await self._dispatch(cred, request)
        except StoreUnavailable as exc:
            # Nothing was decided: the UE retries, here or at another BSF instance on the same store.
            log.warning("ub: context store unavailable, 503 to %s: %s", cred.username, exc)
            return self._plain(
                503,
                "context store unavailable, retry later",
                "store_unavailable",
                {"Retry-After": str(self.config.retry_after)},
            )

    async def _dispatch(self, cred: digest.Credentials, request: HttpRequest) -> HttpResponse:
        source = request.remote
        if cred.is_initial:
            return await self._first_challenge(cred.username, source=source)
        body = request.body
        pending = await self.store.take_challenge(cred.nonce)
        self._pending.release(cred.nonce)
        if pending is None or pending.digest_username != cred.username:
            log.info("ub: unknown, used or expired nonce from %s; new challenge", source)
            return await self._first_challenge(cred.username, stale=True, source=source)
        problem = self._check_fields(cred, pending, request)
        if problem:
            log.info("ub: rejected answer for %s: %s", pending.impi, problem)
            return self._plain(403, "bootstrapping refused", "field_mismatch")
        password = b"" if cred.auts is not None else pending.xres
        expected = cred.expected_response(password, request.method, body)
        if not digest.responses_equal(expected, cred.response):
            log.info("ub: wrong response for %s (auts=%s)", pending.impi, cred.auts is not None)
            return self._plain(403, "bootstrapping refused", "wrong_response")
        if cred.auts is not None:
            # TS 24.109 4.5 / TS 33.102 6.3.5: Zh resync with RAND || AUTS, then a fresh challenge.
            return await self._challenge(
                pending.impi, cred.username, resync_info=pending.rand + cred.auts, source=source
            )
        tmpi_ue = digest.TMPI_PRODUCT in digest.product_tokens(request.header("user-agent"))
        return await self._success(cred, pending, tmpi_ue)

    def _check_fields(self, cred: digest.Credentials, p: PendingChallenge, request: HttpRequest) -> str | None:
        if cred.realm != self.config.http_realm:
            return "realm mismatch"
        if cred.opaque != p.opaque:
            return "opaque mismatch"
        # RFC 2617 3.2.2.5: digest-uri is the Request-URI, in origin form or absolute.
        if cred.uri != request.target and cred.uri != request.url:
            return "uri does not match the request"
        if cred.qop is None:
            return "qop missing"
        if cred.qop not in self.config.ub_qop:
            return f"qop {cred.qop} was not offered"
        if cred.nc != "00000001":
            return "nonce count must be 1 (nonces are single use)"
        if cred.algorithm is not None and cred.algorithm.lower() != digest.AKA_ALGORITHM.lower():
            return "algorithm mismatch"
        return None

    async def _success(self, cred: digest.Credentials, p: PendingChallenge, tmpi_ue: bool) -> HttpResponse:
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        lifetime = self._lifetime(_guss(p.guss, p.impi))
        btid = str(Btid(p.rand, self.config.fqdn))
        ctx = BootstrapContext(
            btid, p.impi, p.rand, p.ck + p.ik, now, now + dt.timedelta(seconds=lifetime), p.gba_u, p.guss
        )
        # The context's expiry is the one Ub <lifetime> and Zn Key-ExpiryTime both carry.
        writes = [self.store.put_context(ctx)]
        if tmpi_ue:
            # TS 33.220 4.5.2 step 7: a new TMPI (B.4, BSF_Id from the B-TID's name), overwriting the old.
            tmpi = kdf.tmpi(ctx.ks, p.rand, p.impi, self.config.fqdn)
            writes.append(self.store.put_tmpi(tmpi, p.impi, now + dt.timedelta(seconds=self.config.tmpi_lifetime)))
        await asyncio.gather(*writes)
        body = BootstrappingInfo(btid, ctx.expires).to_xml()
        rspauth = cred.expected_rspauth(p.xres, body)
        info = digest.AuthenticationInfo(rspauth=rspauth, qop=cred.qop, nc=cred.nc, cnonce=cred.cnonce)
        log.info("ub: bootstrapped %s btid=%s gba_u=%s lifetime=%ds", p.impi, btid, p.gba_u, lifetime)
        self._outcomes.labels("bootstrapped").inc()
        return HttpResponse(
            200,
            [
                ("Authentication-Info", info.to_header()),
                ("Server", SERVER_PRODUCT),
                ("Expires", ctx.expires.strftime("%a, %d %b %Y %H:%M:%S GMT")),
            ],
            body,
            CONTENT_TYPE,
        )


def create_ub_server(config: BsfConfig, store: ContextStore, zh: ZhClient, metrics: BsfMetrics) -> HttpServer:
    """Ub on every path and method (TS 24.109 4.3 leaves the request-URI to the UE)."""
    return HttpServer(
        UbHandler(config, store, zh, metrics).handle,
        max_body=MAX_BODY,
        request_timeout=config.ub_request_timeout,
        idle_timeout=config.ub_idle_timeout,
        max_connections=config.ub_max_connections,
        name="ub",
    )
