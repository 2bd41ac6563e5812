"""Zn over Diameter: Bootstrapping-Info-Request/Answer (TS 29.109 clause 5.2, 6.1.3/6.1.4)."""

from __future__ import annotations

import logging

from bsf.config import BsfConfig
from bsf.metrics import BsfMetrics
from bsf.store import StoreUnavailable
from bsf.zn import ZnRefusal, ZnService
from bsf.zn_proxy import tls_refusal
from gba import diameter as d
from gba.kdf import KdfError, NafId
from gba.uss import uss_list_to_xml
from gbaio import logs
from gbaio.diameter_node import PeerInfo

log = logging.getLogger("gbagw.bsf.zn")


class ZnHandler:
    def __init__(self, config: BsfConfig, zn: ZnService, metrics: BsfMetrics) -> None:
        self.config = config
        self.zn = zn
        self._answers = metrics.zn
        self._proxies = frozenset(p.lower() for p in config.zn_proxies)

    async def __call__(self, req: d.Envelope, peer: PeerInfo) -> d.Envelope:
        logs.begin_request(req.session_id or "")
        ans = await self._handle(req, peer)
        rc, er = ans.result()
        self._answers.labels("diameter", str(er or rc)).inc()
        return ans

    def _answer(self, req: d.Envelope, bir: d.BootstrappingInfoRequest, **kw: object) -> d.Envelope:
        bia = d.BootstrappingInfoAnswer(bir.session_id, self.config.fqdn, self.config.realm, **kw)  # type: ignore[arg-type]
        return req.answer(bia.avps())

    async def _handle(self, req: d.Envelope, peer: PeerInfo) -> d.Envelope:
        if req.command_code != d.CMD_BOOTSTRAPPING_INFO:
            return d.error_answer(req, d.ResultCode.COMMAND_UNSUPPORTED, self.config.fqdn, self.config.realm)
        bir = d.BootstrappingInfoRequest.from_envelope(req)
        try:
            naf_id = NafId.decode(bir.naf_id)
        except KdfError as exc:
            log.info("zn: %s sent an invalid NAF-Id: %s", bir.origin_host, exc)
            return d.error_answer(
                req,
                d.ResultCode.INVALID_AVP_VALUE,
                self.config.fqdn,
                self.config.realm,
                failed_avp=d.vendor_avp(d.Avps.NAF_ID, bir.naf_id),
                message=str(exc),
            )
        if denied := tls_refusal(peer, bir.origin_host, naf_id.fqdn, self._proxies):
            log.info("zn: %s -> 5402", denied)
            return self._answer(
                req, bir, result_code=None, experimental_result=d.ExperimentalResult.ERROR_NOT_AUTHORIZED
            )
        if bir.origin_host.lower() != peer.origin_host.lower() and peer.origin_host.lower() not in self._proxies:
            # The NAF is authenticated by the connection it came over (CER, NDS/IP underneath); only a
            # configured Zn-Proxy may forward requests of other Origin-Hosts.
            log.info("zn: %s claims Origin-Host %s on its own connection -> 5402", peer.origin_host, bir.origin_host)
            return self._answer(
                req, bir, result_code=None, experimental_result=d.ExperimentalResult.ERROR_NOT_AUTHORIZED
            )
        try:
            keys = await self.zn.retrieve(
                bir.origin_host, bir.transaction_id, naf_id, bir.gsids, bir.gba_u_aware, "diameter"
            )
        except ZnRefusal as refusal:
            return self._answer(req, bir, result_code=None, experimental_result=refusal.code)
        except StoreUnavailable:
            # RFC 6733 7.1.3: DIAMETER_TOO_BUSY, a transient protocol error (E bit): the NAF, or an agent
            # on its path, retries or sends to an alternate BSF.
            return d.error_answer(
                req, d.ResultCode.TOO_BUSY, self.config.fqdn, self.config.realm, message="context store unavailable"
            )
        return self._answer(
            req,
            bir,
            user_name=keys.impi,
            me_key_material=keys.me_key,
            uicc_key_material=keys.uicc_key,
            key_expiry=keys.expires,
            bootstrap_creation=keys.created,
            uss=uss_list_to_xml(keys.uss) if keys.uss else None,
            # No GBA-Type: 3G GBA, the only type this BSF runs (TS 29.109 5.2 step 3: sent only if other).
        )
