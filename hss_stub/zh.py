"""The Zh Multimedia-Auth handler (TS 29.109 clause 4.2/6.1.1, TS 33.220 clause 4.5.2)."""

from __future__ import annotations

import datetime as dt
import logging
import os

from gba import diameter as d
from gba import milenage
from gba.uss import GUSS_TIMESTAMP_EQUAL
from gbaio import logs
from gbaio.diameter_node import PeerInfo
from hss_stub.config import HssConfig
from hss_stub.metrics import HssMetrics
from hss_stub.store import StoreUnavailable, Subscriber, SubscriberStore

log = logging.getLogger("gbagw.hss")

RESYNC_INFO_LEN = 16 + milenage.AUTS_LEN  # RAND || AUTS


class _Refused(Exception):
    def __init__(self, result_code: int) -> None:
        self.result_code = result_code


class ZhHandler:
    def __init__(self, config: HssConfig, store: SubscriberStore, metrics: HssMetrics) -> None:
        self.config = config
        self.store = store
        self.metrics = metrics

    async def __call__(self, req: d.Envelope, peer: PeerInfo) -> d.Envelope:
        logs.begin_request(req.session_id or "")
        try:
            ans = await self._handle(req, peer)
        except StoreUnavailable as exc:
            # RFC 6733 7.1.3 DIAMETER_TOO_BUSY: transient, the BSF answers its UE 503 + Retry-After.
            log.warning("zh: subscriber store unavailable (%s): DIAMETER_TOO_BUSY to %s", exc, peer.origin_host)
            ans = d.error_answer(
                req, d.ResultCode.TOO_BUSY, self.config.fqdn, self.config.realm, message="subscriber store unavailable"
            )
        rc, er = ans.result()
        self.metrics.maa.labels(str(er or rc)).inc()
        return ans

    def _answer(self, req: d.Envelope, mar: d.MultimediaAuthRequest, **kw: object) -> d.Envelope:
        maa = d.MultimediaAuthAnswer(mar.session_id, self.config.fqdn, self.config.realm, **kw)  # type: ignore[arg-type]
        return req.answer(maa.avps())

    async def _handle(self, req: d.Envelope, peer: PeerInfo) -> d.Envelope:
        if req.command_code != d.CMD_MULTIMEDIA_AUTH:
            return d.error_answer(req, d.ResultCode.COMMAND_UNSUPPORTED, self.config.fqdn, self.config.realm)
        mar = d.MultimediaAuthRequest.from_envelope(req)
        if mar.scheme != d.SCHEME_AKA:
            # TS 29.109 clause 4.2: 2G GBA or SIP Digest are not served by this stub.
            log.info("zh: MAR for %s with scheme %r refused (5006)", mar.user_name, mar.scheme)
            return self._answer(
                req, mar, result_code=None, experimental_result=d.ExperimentalResult.ERROR_AUTH_SCHEME_NOT_SUPPORTED
            )
        if mar.resync_info is not None:
            try:
                sub = await self._resync(mar)
            except _Refused as refused:
                return self._answer(req, mar, result_code=refused.result_code)
        else:
            sub = await self.store.take_next_sqn(mar.user_name)
        if sub is None:
            log.info("zh: MAR from %s for unknown IMPI (5001)", peer.origin_host)
            return self._answer(req, mar, result_code=None, experimental_result=d.ExperimentalResult.ERROR_USER_UNKNOWN)
        rand = os.urandom(16)
        av = milenage.generate_vector(sub.milenage, rand, sub.sqn, sub.amf)
        log.info(
            "zh: vector for %s sqn=%#x resync=%s peer=%s",
            sub.impi,
            sub.sqn,
            mar.resync_info is not None,
            peer.origin_host,
        )
        return self._answer(
            req,
            mar,
            user_name=sub.impi,
            scheme=d.SCHEME_AKA,
            sip_authenticate=av.rand + av.autn,
            sip_authorization=av.xres,
            ck=av.ck,
            ik=av.ik,
            guss=self._guss_for(sub, mar.guss_timestamp),
        )

    async def _resync(self, mar: d.MultimediaAuthRequest) -> Subscriber | None:
        info = mar.resync_info or b""
        if len(info) != RESYNC_INFO_LEN:
            log.info("zh: resync for %s with %d-octet SIP-Authorization refused", mar.user_name, len(info))
            raise _Refused(d.ResultCode.INVALID_AVP_LENGTH)
        current = self.store.get(mar.user_name)
        if current is None:
            return None
        rand, auts = info[:16], info[16:]
        sqn_ms = milenage.recover_sqn_ms(current.milenage, rand, auts)
        if sqn_ms is None:
            # TS 33.102 6.3.5: MAC-S failed, no new vector. TS 29.229 names no code; 4001 says it best.
            log.info("zh: resync for %s: MAC-S does not verify (4001)", mar.user_name)
            self.metrics.resync.labels("mac_s_failure").inc()
            raise _Refused(d.ResultCode.AUTHENTICATION_REJECTED)
        log.info("zh: resync for %s: SQN_HE %#x -> SQN_MS %#x", mar.user_name, current.sqn, sqn_ms)
        self.metrics.resync.labels("resynchronised").inc()
        return await self.store.resync(mar.user_name, sqn_ms)

    @staticmethod
    def _guss_for(sub: Subscriber, bsf_timestamp: dt.datetime | None) -> bytes | None:
        """TS 29.109 clause 4.2: when the BSF's GUSS-Timestamp equals ours, send the literal marker."""
        if sub.guss is None:
            return None
        if (
            bsf_timestamp is not None
            and sub.guss_timestamp is not None
            and int(bsf_timestamp.timestamp()) == sub.guss_timestamp
        ):
            return GUSS_TIMESTAMP_EQUAL
        return sub.guss
