"""Zn over SOAP (TS 29.109 5.3, Annex D) on aiohttp, HTTPS with client certificates in deployments
(TS 33.220 Annex E: mutually authenticated TLS); the client certificate's DNS name is the NAF identity
for the same NafPolicy as Diameter Zn. On TLS without client certificates there is no identity and every
request is refused; only the plain lab listener assumes the configured owner of the nafFqdn.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

from aiohttp import web

from bsf.config import BsfConfig
from bsf.store import StoreUnavailable
from bsf.zn import ZnRefusal, ZnService
from gba import zn_soap
from gba.diameter import ResultCode
from gba.kdf import KdfError, NafId
from gba.safexml import XmlError
from gba.uss import uss_list_to_xml
from gbaio import logs

log = logging.getLogger("gbagw.bsf.soap")
PATH = "/GBAService"


def _peer_dns_name(request: web.Request) -> str | None:
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    if not cert:
        return None
    names = sorted(v.lower() for k, v in cert.get("subjectAltName", ()) if k == "DNS")
    return names[0] if names else None


def _xml(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type="text/xml", charset="utf-8")


def create_soap_app(config: BsfConfig, zn: ZnService, on_result: Callable[[int], None]) -> web.Application:
    plain_lab = config.zn_tls_cert is None  # only the plain listener may assume who the NAF is

    async def handle(request: web.Request) -> web.Response:
        logs.begin_http_request(request.headers.get("X-Request-Id"))
        body = await request.read()
        try:
            req = zn_soap.parse_request(body)
            naf_id = NafId.decode(req.nafid)
        except (XmlError, KdfError) as exc:
            on_result(ResultCode.INVALID_AVP_VALUE)
            return _xml(
                500, zn_soap.build_fault(ResultCode.INVALID_AVP_VALUE, f"malformed request: {exc}", client=True)
            )
        try:
            naf_host = zn.http_naf_identity(
                _peer_dns_name(request), naf_id, plain_lab=plain_lab, remedy="configure bsf.zn_tls_ca"
            )
            keys = await zn.retrieve(naf_host, req.btid, naf_id, req.gsids, req.gba_u_aware, "soap")
        except ZnRefusal as refusal:
            on_result(refusal.code)
            return _xml(500, zn_soap.build_fault(refusal.code, refusal.reason, client=True))
        except StoreUnavailable:
            # The Diameter flavour's DIAMETER_TOO_BUSY as a server fault, on an HTTP 503 with Retry-After
            # so that HTTP infrastructure between NAF and BSF sees a retryable answer too.
            on_result(ResultCode.TOO_BUSY)
            fault = zn_soap.build_fault(ResultCode.TOO_BUSY, "context store unavailable, retry later", client=False)
            response = _xml(503, fault)
            response.headers["Retry-After"] = str(config.retry_after)
            return response
        on_result(ResultCode.SUCCESS)
        # gbaType left out: 3G GBA (TS 29.109 5.3 step 3), the only type this BSF runs.
        return _xml(
            200,
            zn_soap.build_response(
                zn_soap.SoapResponse(
                    me_key=keys.me_key,
                    key_expiry=keys.expires,
                    creation=keys.created,
                    impi=keys.impi,
                    uicc_key=keys.uicc_key,
                    uss_list=uss_list_to_xml(keys.uss).decode("utf-8") if keys.uss else None,
                )
            ),
        )

    app = web.Application(client_max_size=zn_soap.MAX_LEN)
    app.router.add_post(PATH, handle)
    return app


def server_ssl_context(cert: str, key: str, ca: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if ca:
        ctx.load_verify_locations(ca)
        ctx.verify_mode = ssl.CERT_REQUIRED  # TS 33.220 Annex E: the NAF authenticates with its certificate
    return ctx
