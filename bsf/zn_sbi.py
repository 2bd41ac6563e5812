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
import re
from collections.abc import Awaitable, Callable
from typing import Any

from bsf.config import BsfConfig
from bsf.sbi_auth import BearerAuth, BearerError
from bsf.store import StoreUnavailable
from bsf.zn import ZnRefusal, ZnService
from gba.diameter import ExperimentalResult
from gba.kdf import KdfError, NafId
from gba.uss import Uss
from gbaio import logs

log = logging.getLogger("gbagw.bsf.sbi")

API_PREFIX = "/nbsp-gba/v1"
OPERATION = API_PREFIX + "/bootstrapping-info-retrieval"
MAX_BODY = 16 * 1024
_UA_ID_RE = re.compile(r"[A-Fa-f0-9]{10}")

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


def _bad(param: str, reason: str, missing: bool = False) -> _Problem:
    return _Problem(
        400,
        "Bad Request",
        "MANDATORY_IE_MISSING" if missing else "MANDATORY_IE_INCORRECT",
        invalid=[{"param": param, "reason": reason}],
    )


def _uss_json(u: Uss) -> dict[str, Any]:
    uss: dict[str, Any] = {
        "gsId": int(u.gsid) if u.gsid.isdigit() else u.gsid,
        "gsType": u.service_type,
        "ueIds": [{"ueId": uid} for uid in u.uids] or [{"ueId": ""}],
    }
    if u.flags:
        uss["flags"] = [{"flag": f} for f in u.flags]
    if u.key_choice:
        uss["keyChoice"] = {
            "ME-based-key": "ME_BASED_KEY",
            "UICC-based-key": "UICC_BASED_KEY",
            "ME-UICC-based-keys": "ME_UICC_BASED_KEYS",
        }.get(u.key_choice, u.key_choice)
    return {"uss": uss}


def _parse(body: bytes) -> tuple[str, NafId, tuple[str, ...], bool]:
    try:
        doc = json.loads(body)
    except ValueError:
        raise _bad("/", "the body is not JSON") from None
    if not isinstance(doc, dict):
        raise _bad("/", "BootstrappingInfoRequest must be an object")
    btid = doc.get("btId")
    if not isinstance(btid, str):  # an empty or malformed B-TID is an unknown one: 404, as 5403 on Diameter
        raise _bad("/btId", "required string", missing="btId" not in doc)
    naf = doc.get("nafId")
    if not isinstance(naf, dict):
        raise _bad("/nafId", "required object", missing="nafId" not in doc)
    fqdn, ua = naf.get("nafFqdn"), naf.get("uaSecProtId")
    if not isinstance(fqdn, str) or not isinstance(ua, str) or not _UA_ID_RE.fullmatch(ua):
        raise _bad("/nafId", "nafFqdn (string) and uaSecProtId (10 hex digits) are required")
    try:
        naf_id = NafId(fqdn, bytes.fromhex(ua))
    except KdfError as exc:
        raise _bad("/nafId/nafFqdn", str(exc)) from None
    aware = doc.get("gbaUAware", False)
    if not isinstance(aware, bool):
        raise _bad("/gbaUAware", "boolean")
    gsids = doc.get("gsIds", [])
    if (
        not isinstance(gsids, list)
        or not all(isinstance(g, int) and not isinstance(g, bool) and 0 <= g < 2**32 for g in gsids)
        or ("gsIds" in doc and not gsids)
    ):
        raise _bad("/gsIds", "array of at least one Uint32")
    return btid, naf_id, tuple(str(g) for g in gsids), aware


class NbspGbaApp:
    def __init__(self, config: BsfConfig, zn: ZnService, auth: BearerAuth | None, on_result: Callable[[int], None]):
        self.config = config
        self.zn = zn
        self.auth = auth
        self._on_result = on_result
        self._owner = {n.fqdn.lower(): n.diameter_host for n in config.nafs}
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
        if scope["path"] != OPERATION:
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
        btid, naf_id, gsids, aware = _parse(body)
        if naf_host is None:
            if self._no_identity:
                raise _Problem(403, "Forbidden", "NAF_NOT_AUTHORIZED", "no NAF identity: OAuth2 is not configured")
            naf_host = self._owner.get(naf_id.fqdn.lower(), naf_id.fqdn)
        try:
            keys = await self.zn.retrieve(naf_host, btid, naf_id, gsids, aware, "sbi")
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
        out: dict[str, Any] = {
            "meKeyMaterial": keys.me_key.hex(),
            "keyExpiryTime": keys.expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "bootstrappingInfoCreationTime": keys.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "gbaType": "3G_GBA",
        }
        if keys.uicc_key is not None:
            out["uiccKeyMaterial"] = keys.uicc_key.hex()
        if keys.impi is not None:
            out["impi"] = keys.impi
        if keys.uss:
            out["ussList"] = [_uss_json(u) for u in keys.uss]
        return 200, out
