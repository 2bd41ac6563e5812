"""Zn clients for the HTTP flavours: Nbsp_GBA (TS 29.309, HTTP/2 via httpx) and Zn-WS SOAP (TS 29.109
Annex D; the SOAP parser takes the answer's children unqualified, as Annex D defines them, and also
qualified, as some BSFs send them). Both return the same NafKey as the Diameter ZnClient and raise the
same ZnRefused/ZnUnavailable (with the Diameter-equivalent code: 5403 unknown B-TID, 5402 not authorized).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from typing import Any

import httpx

from gba import zn_sbi, zn_soap
from gba.diameter import ExperimentalResult, ResultCode
from gba.kdf import NafId
from gba.safexml import XmlError
from gba.uss import Uss, UssError, parse_uss_list
from gbaio import logs
from naf.config import NafConfig
from naf.zn_client import (
    TRANSIENT_RESULT_CODES,
    NafKey,
    ZnClient,
    ZnKeySource,
    ZnRefused,
    ZnUnavailable,
    sbi_url_for,
    soap_url_for,
)

# RFC 9110 15.6.3-15.6.5: a gateway or the BSF itself says "not now" (the 500s stay refusals).
_TRANSIENT_STATUS = frozenset({502, 503, 504})

# TS 29.109 5.2/5.3: absent = 3G GBA; a NAF stops on a GBA type it does not support (only 3G GBA here).
# On SOAP the value is "as for the GBA-Type AVP", whose 3G value some peers write as its name, some as 0.
_SOAP_3G = frozenset({"3G GBA", "3G_GBA", "0"})


def _tls(config: NafConfig) -> ssl.SSLContext | bool:
    if config.tls_ca is None:
        return True
    ctx = ssl.create_default_context(cafile=str(config.tls_ca))
    if config.tls_cert is not None and config.tls_key is not None:
        ctx.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    return ctx


def _sni(config: NafConfig) -> dict[str, Any]:
    return {"sni_hostname": config.tls_server_name} if config.tls_server_name else {}


# The connection broke before an answer came: a keep-alive connection the BSF closed as it stopped
# (RFC 9112 9.3.1), an HTTP/2 connection that refuses new streams as its server stops (hypercorn
# resets them and sets SETTINGS_MAX_CONCURRENT_STREAMS to 0, which httpcore does not heed, so h2 refuses
# every new stream locally until the server closes, up to its graceful timeout), or a BSF that died.
# A timeout is not among them: the BSF is slow, not gone.
_BROKEN_CONNECTION = (httpx.RemoteProtocolError, httpx.LocalProtocolError, httpx.ReadError, httpx.WriteError)


class _ZnHttp:
    """The httpx client of a Zn flavour, replaced when a connection of it broke: the request then goes
    once more, and every later one too, on a new connection (behind a load balancer: another BSF).
    Zn lookups change nothing at the BSF, so the repeat is safe; without it, each rolling restart of
    the BSFs failed about one lookup per NAF. The old client closes once what it carries has had its
    timeout. Each lookup carries an X-Request-Id, the rid of the BSF's events for it (kept on the repeat:
    it is the same lookup)."""

    def __init__(self, config: NafConfig, **options: Any) -> None:
        self._ids = logs.RequestIds(config.fqdn)
        self._timeout = config.zn_timeout
        self._options = {"verify": _tls(config), "timeout": config.zn_timeout, **options}
        self._http = httpx.AsyncClient(**self._options)
        self._retiring: set[asyncio.Task[None]] = set()

    async def post(self, url: str, headers: dict[str, str], **kwargs: Any) -> httpx.Response:
        rid = self._ids.send_next()
        kwargs["headers"] = {**headers, "X-Request-Id": rid}
        http = self._http
        try:
            return await http.post(url, **kwargs)
        except _BROKEN_CONNECTION:
            if self._http is http:  # the first of its requests to see it swaps the client
                self._http = httpx.AsyncClient(**self._options)
                task = asyncio.create_task(self._retire(http))
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)
        return await self._http.post(url, **kwargs)

    async def _retire(self, http: httpx.AsyncClient) -> None:
        try:
            await asyncio.sleep(self._timeout)
        finally:
            await http.aclose()

    async def aclose(self) -> None:
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        await self._http.aclose()


class SbiZnClient:
    """Nbsp_GBA consumer. HTTP/2: prior knowledge on http://, ALPN on https://."""

    def __init__(self, config: NafConfig) -> None:
        self.config = config
        secure = config.sbi_url.startswith("https://")
        self._http = _ZnHttp(config, http1=secure, http2=True)

    async def fetch_key(self, btid: str, naf_id: NafId, gsids: Sequence[str] | None = None) -> NafKey:
        gsids = tuple(self.config.gsids if gsids is None else gsids)
        try:
            body = zn_sbi.build_request(zn_sbi.SbiRequest(btid, naf_id, gsids, self.config.gba_u_aware))
        except zn_sbi.SbiError as exc:  # a GSID that is no Uint32: refused by the configuration check too
            raise ZnRefused(ExperimentalResult.ERROR_NOT_AUTHORIZED) from exc
        headers = {"Authorization": f"Bearer {self.config.sbi_token}"} if self.config.sbi_token else {}
        # The route's sbi_url is the {apiRoot}: scheme://authority plus any deployment prefix (TS 29.501 4.4.1).
        url = sbi_url_for(self.config, btid).rstrip("/") + zn_sbi.OPERATION_PATH
        try:
            resp = await self._http.post(url, json=body, headers=headers, extensions=_sni(self.config))
        except httpx.HTTPError as exc:
            raise ZnUnavailable(f"Nbsp_GBA request failed: {exc}") from None
        if resp.status_code in _TRANSIENT_STATUS:
            raise ZnUnavailable(f"Nbsp_GBA answered {resp.status_code}")
        if resp.status_code == 404:
            raise ZnRefused(ExperimentalResult.ERROR_TRANSACTION_IDENTIFIER_INVALID)
        if resp.status_code == 403:
            raise ZnRefused(ExperimentalResult.ERROR_NOT_AUTHORIZED)
        if resp.status_code != 200:
            raise ZnRefused(resp.status_code)
        try:
            answer = zn_sbi.parse_response(resp.json())
        except ValueError as exc:  # not JSON, or not a BootstrappingInfoResponse
            raise ZnRefused(ResultCode.INVALID_AVP_VALUE) from exc
        if answer.key_expiry is None:
            raise ZnRefused(ResultCode.MISSING_AVP)
        if answer.gba_type not in (None, zn_sbi.GBA_TYPE_3G):
            raise ZnRefused(ResultCode.INVALID_AVP_VALUE)
        return NafKey(
            btid,
            naf_id,
            answer.impi,
            answer.me_key,
            answer.uicc_key,
            answer.key_expiry,
            answer.creation,
            0,
            answer.uss,
        )

    async def close(self) -> None:
        await self._http.aclose()


class SoapZnClient:
    def __init__(self, config: NafConfig) -> None:
        self.config = config
        self._http = _ZnHttp(config)

    async def fetch_key(self, btid: str, naf_id: NafId, gsids: Sequence[str] | None = None) -> NafKey:
        gsids = tuple(self.config.gsids if gsids is None else gsids)
        req = zn_soap.build_request(zn_soap.SoapRequest(btid, naf_id.encode(), gsids, self.config.gba_u_aware))
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{zn_soap.SOAP_ACTION}"'}
        try:
            resp = await self._http.post(
                soap_url_for(self.config, btid), content=req, headers=headers, extensions=_sni(self.config)
            )
        except httpx.HTTPError as exc:
            raise ZnUnavailable(f"Zn SOAP request failed: {exc}") from None
        if resp.status_code in _TRANSIENT_STATUS:
            raise ZnUnavailable(f"Zn SOAP answered {resp.status_code}")
        try:
            answer = zn_soap.parse_response(resp.content)
        except XmlError as exc:
            raise ZnRefused(resp.status_code) from exc
        if isinstance(answer, tuple):
            if answer[0] in TRANSIENT_RESULT_CODES:
                raise ZnUnavailable(f"Zn SOAP fault {answer[0]}")
            raise ZnRefused(answer[0])
        if answer.gba_type is not None and answer.gba_type.strip() not in _SOAP_3G:
            raise ZnRefused(ResultCode.INVALID_AVP_VALUE)
        uss: tuple[Uss, ...] = ()
        if answer.uss_list:
            try:
                uss = parse_uss_list(answer.uss_list.encode("utf-8"))
            except UssError:
                uss = ()
        return NafKey(
            btid, naf_id, answer.impi, answer.me_key, answer.uicc_key, answer.key_expiry, answer.creation, 0, uss
        )

    async def close(self) -> None:
        await self._http.aclose()


def create_zn_client(config: NafConfig) -> ZnKeySource:
    """The Zn client selected by ``naf.zn_via``."""
    if config.zn_via == "sbi":
        return SbiZnClient(config)
    if config.zn_via == "soap":
        return SoapZnClient(config)
    return ZnClient(config)
