"""Zn over Diameter: Bootstrapping-Info-Request/Answer (TS 29.109 clause 5.2, 6.1.3/6.1.4)."""

from __future__ import annotations

import logging

from bsf.config import BsfConfig
from bsf.metrics import BsfMetrics
from bsf.policy import NafPolicy
from bsf.store import ContextStore
from gba import diameter as d
from gba.btid import Btid, BtidError
from gba.kdf import KdfError, NafId, ks_int_naf, ks_naf
from gba.uss import uss_list_to_xml
from gbaio import logs
from gbaio.diameter_node import PeerInfo

log = logging.getLogger("gbagw.bsf.zn")


class ZnHandler:
    def __init__(self, config: BsfConfig, store: ContextStore, policy: NafPolicy, metrics: BsfMetrics) -> None:
        self.config = config
        self.store = store
        self.policy = policy
        self._answers = metrics.zn

    async def __call__(self, req: d.Envelope, peer: PeerInfo) -> d.Envelope:
        logs.request_id.set(req.session_id or "")
        ans = await self._handle(req, peer)
        rc, er = ans.result()
        self._answers.labels(str(er or rc)).inc()
        return ans

    def _answer(self, req: d.Envelope, bir: d.BootstrappingInfoRequest, **kw: object) -> d.Envelope:
        bia = d.BootstrappingInfoAnswer(bir.session_id, self.config.fqdn, self.config.realm, **kw)  # type: ignore[arg-type]
        return req.answer(bia.avps())

    def _refuse(self, req: d.Envelope, bir: d.BootstrappingInfoRequest, code: int) -> d.Envelope:
        return self._answer(req, bir, result_code=None, experimental_result=code)

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
        try:
            Btid.parse(bir.transaction_id)
        except BtidError as exc:
            log.info("zn: %s for %s: malformed B-TID (%s) -> 5403", bir.origin_host, naf_id.fqdn, exc)
            return self._refuse(req, bir, d.ExperimentalResult.ERROR_TRANSACTION_IDENTIFIER_INVALID)
        ctx = await self.store.get_context(bir.transaction_id)
        if ctx is None:
            log.info(
                "zn: %s for %s: B-TID %s unknown or expired -> 5403", bir.origin_host, naf_id.fqdn, bir.transaction_id
            )
            return self._refuse(req, bir, d.ExperimentalResult.ERROR_TRANSACTION_IDENTIFIER_INVALID)
        decision = self.policy.decide(bir.origin_host, naf_id, bir.gsids, bir.gba_u_aware, ctx)
        log.info(
            "zn: %s for %s btid=%s: %s",
            bir.origin_host,
            naf_id.fqdn,
            ctx.btid,
            decision.reason if decision.allowed else f"refused: {decision.reason} -> 5402",
        )
        if not decision.allowed or decision.naf is None:
            return self._refuse(req, bir, d.ExperimentalResult.ERROR_NOT_AUTHORIZED)
        # TS 33.220 4.5.3 / 5.3.3: Ks_NAF (GBA_ME) or Ks_ext_NAF, plus Ks_int_NAF for a GBA_U-aware NAF.
        me_key = ks_naf(ctx.ks, ctx.rand, ctx.impi, naf_id)
        uicc_key = ks_int_naf(ctx.ks, ctx.rand, ctx.impi, naf_id) if decision.uicc_key else None
        return self._answer(
            req,
            bir,
            user_name=ctx.impi if decision.naf.send_impi else None,
            me_key_material=me_key,
            uicc_key_material=uicc_key,
            key_expiry=ctx.expires,
            bootstrap_creation=ctx.created,
            uss=uss_list_to_xml(decision.uss) if decision.uss else None,
            gba_type=d.GbaType.GBA_3G,
        )
