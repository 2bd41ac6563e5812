"""Zn as the 5G service Nbsp_GBA (TS 29.309): ``POST {apiRoot}/nbsp-gba/v1/bootstrapping-info-retrieval``.

A small ASGI application served by hypercorn (HTTP/2 with prior knowledge or ALPN, HTTP/1.1 as fallback).
JSON in and out (keys as 64 hex digits, TS 29.309 MeKeyMaterial), RFC 7807 ProblemDetails on errors.

NAF identity for the policy: the ``sub`` claim of the OAuth2 access token when bearer checks are on (the
NAF FQDN its token was issued for). hypercorn does not pass the TLS client certificate to the application,
so on a TLS listener without tokens there is no NAF identity and every request is refused (fail
closed). Only the plain lab listener (no TLS, no tokens) assumes the configured NAF entry that owns
the requested nafFqdn.

Error mapping (TS 29.309 Table 6.1.7.3-1 was not available; the causes below are gbagw's, documented in
docs/openapi/nbsp-gba.yaml): unknown/expired B-TID (5403) -> 404 BTID_NOT_FOUND; NAF not authorized
(5402) -> 403 NAF_NOT_AUTHORIZED; malformed body -> 400 MANDATORY_IE_INCORRECT / MANDATORY_IE_MISSING
(TS 29.500 5.2.7.2 generic causes); context store unavailable -> 503 with Retry-After.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from bsf.config import BsfConfig
from bsf.sbi_auth import BearerAuth, BearerError
from bsf.store import StoreUnavailable
from bsf.zn import ZnRefusal, ZnService
from gba import safejson, zn_sbi
from gba.diameter import ExperimentalResult
from gba.zn_sbi import SbiError
from gbaio import logs

log = logging.getLogger("gbagw.bsf.sbi")

MAX_BODY = 16 * 1024
_CLOSE = [(b"connection", b"close")]

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class _Problem(Exception):
    def __init__(
        self,
        status: int,
        title: str,
        cause: str | None = None,
        detail: str | None = None,
        invalid: list[dict[str, str]] | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(title)
        self.status, self.title, self.cause, self.detail, self.invalid = status, title, cause, detail, invalid
        self.headers = headers or []

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "title": self.title}
        if self.cause:
            out["cause"] = self.cause
        if self.detail:
            out["detail"] = self.detail
        if self.invalid:
            out["invalidParams"] = self.invalid
        return out


def _bad(exc: SbiError) -> _Problem:
    return _Problem(
        400,
        "Bad Request",
        "MANDATORY_IE_MISSING" if exc.missing else "MANDATORY_IE_INCORRECT",
        invalid=[{"param": exc.param, "reason": exc.reason}],
    )


class NbspGbaApp:
    def __init__(self, config: BsfConfig, zn: ZnService, auth: BearerAuth | None, on_result: Callable[[int], None]):
        self.config = config
        self.zn = zn
        self.auth = auth
        self._on_result = on_result
        # TS 29.501 4.4.1: {apiRoot} may end in a deployment-specific path (bsf.sbi_api_prefix).
        self._operation = config.sbi_api_prefix + zn_sbi.OPERATION_PATH
        # Off the plain lab listener the NAF must prove who it is; hypercorn hides client certificates from
        # the app, so on TLS only a token can do that.
        self._no_identity = auth is None and config.zn_tls_cert is not None
        if self._no_identity:
            log.warning("Nbsp_GBA over TLS without OAuth2 has no NAF identity: set bsf.sbi_oauth_jwks")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        try:
            status, payload = await self._handle(scope, receive)
            headers = [(b"content-type", b"application/json")]
        except _Problem as p:
            status, payload = p.status, p.body()
            headers = [(b"content-type", b"application/problem+json"), *p.headers]
        self._on_result(status)
        data = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(data)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def _handle(self, scope: Scope, receive: Receive) -> tuple[int, dict[str, Any]]:
        # Drain the request body before any answer: answering an HTTP/2 stream early makes hypercorn
        # drop the connection when the client's remaining DATA frames arrive.
        body, size = b"", 0
        while True:
            msg = await receive()
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size <= MAX_BODY:
                body += chunk
            if not msg.get("more_body"):
                break
        names = [name.lower() for name, _ in scope["headers"]]
        if b"transfer-encoding" in names and b"content-length" in names:
            # RFC 9112 6.1: the request-smuggling shape, refused and the connection closed, as on Ub.
            raise _Problem(400, "Bad Request", detail="both Content-Length and Transfer-Encoding", headers=_CLOSE)
        if scope["path"] != self._operation:
            raise _Problem(404, "Not Found", detail=f"no operation at {scope['path']}")
        if scope["method"] != "POST":
            raise _Problem(405, "Method Not Allowed", headers=[(b"allow", b"POST")])
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        logs.begin_http_request(headers.get("x-request-id"))
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            raise _Problem(415, "Unsupported Media Type", detail="use application/json")
        if size > MAX_BODY:
            raise _Problem(413, "Payload Too Large")
        naf_host = None
        if self.auth is not None:
            try:
                naf_host = self.auth.check(headers.get("authorization"))
            except BearerError as exc:
                raise _Problem(
                    exc.status,
                    "Unauthorized" if exc.status == 401 else "Forbidden",
                    detail=str(exc),
                    headers=[(b"www-authenticate", exc.challenge.encode())],
                ) from None
        try:
            # Size and nesting depth checked before the recursive parser (docs/security.md).
            req = zn_sbi.parse_request(safejson.loads(body, MAX_BODY))
        except SbiError as exc:
            raise _bad(exc) from None
        except safejson.JsonError as exc:
            raise _bad(SbiError("/", str(exc))) from None
        try:
            naf_host = self.zn.http_naf_identity(
                naf_host, req.naf_id, plain_lab=not self._no_identity, remedy="OAuth2 is not configured"
            )
        except ZnRefusal as refusal:
            raise _Problem(403, "Forbidden", "NAF_NOT_AUTHORIZED", refusal.reason) from None
        try:
            keys = await self.zn.retrieve(naf_host, req.btid, req.naf_id, req.gsids, req.gba_u_aware, "sbi")
        except StoreUnavailable:
            # RFC 9110 15.6.4: 503 with Retry-After; the consumer retries or selects another BSF.
            raise _Problem(
                503,
                "Service Unavailable",
                detail="context store unavailable, retry later",
                headers=[(b"retry-after", str(self.config.retry_after).encode())],
            ) from None
        except ZnRefusal as refusal:
            if refusal.code == ExperimentalResult.ERROR_TRANSACTION_IDENTIFIER_INVALID:
                raise _Problem(404, "Not Found", "BTID_NOT_FOUND", "unknown or expired B-TID") from None
            raise _Problem(403, "Forbidden", "NAF_NOT_AUTHORIZED", refusal.reason) from None
        uss = []
        for u in keys.uss:
            # Selected by the GSIDs asked for, which are Uint32s here; a USS without a public identity has
            # no Nbsp_GBA form (Uss.ueIds is required): left out rather than sent with an invented one.
            if problem := zn_sbi.uss_problem(u):
                log.warning("zn/sbi: USS left out of the answer for %s: %s", req.btid, problem)
            else:
                uss.append(u)
        # gbaType left out: 3G GBA (TS 29.109 5.2/5.3), the only type this BSF runs.
        return 200, zn_sbi.build_response(
            zn_sbi.SbiResponse(
                me_key=keys.me_key,
                key_expiry=keys.expires,
                creation=keys.created,
                impi=keys.impi,
                uicc_key=keys.uicc_key,
                uss=tuple(uss),
            )
        )
