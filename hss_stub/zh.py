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
            # TS 29.109 4.2 step 2 and 6.2.2.1: an unknown IMPI raises 5401, inside Experimental-Result
            # with no Result-Code (6.2). Cx's 5001 (TS 29.229) is not a Zh code.
            log.info("zh: MAR from %s for unknown IMPI (5401)", peer.origin_host)
            return self._answer(
                req, mar, result_code=None, experimental_result=d.ExperimentalResult.ERROR_IDENTITY_UNKNOWN
            )
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
        """A MAR with RAND || AUTS in SIP-Authorization: TS 33.102 6.3.5, answered with a fresh vector
        and DIAMETER_SUCCESS whatever AUTS holds (TS 29.109 4.2 step 2).

        SQN_HE moves to SQN_MS only when the next SQN would not be accepted by the USIM and MAC-S
        verifies; otherwise the vector takes the next SQN as usual (step 6). MAC-S is checked first
        here (the spec checks the range first): both orders give the same vector and the same SQN_HE.
        """
        info = mar.resync_info or b""
        if len(info) != RESYNC_INFO_LEN:
            # TS 29.109 4.2 step 2: any other case is an error, DIAMETER_UNABLE_TO_COMPLY with no vector.
            log.info("zh: resync for %s with %d-octet SIP-Authorization refused (5012)", mar.user_name, len(info))
            raise _Refused(d.ResultCode.UNABLE_TO_COMPLY)
        current = await self.store.get(mar.user_name)
        if current is None:
            return None
        # AK* = f5*(RAND) and MAC-S = f1*(SQN_MS || RAND || AMF 0000) are over the RAND of the challenge
        # the USIM answered, which the BSF sends with AUTS (TS 33.102 6.3.3, 6.3.5).
        rand, auts = info[:16], info[16:]
        sqn_ms = milenage.recover_sqn_ms(current.milenage, rand, auts)
        if sqn_ms is None:
            # A USIM with other keys fails MAC-A before it ever builds an AUTS: this is a forged or
            # corrupted AUTS (or a RAND that is not the challenge's). SQN_HE stays (6.3.5 steps 4-6).
            log.warning("zh: resync for %s: MAC-S does not verify; SQN_HE %#x kept", mar.user_name, current.sqn)
            self.metrics.resync.labels("mac_s_failure").inc()
            return await self.store.take_next_sqn(mar.user_name)
        reset = await self.store.reset_to_sqn_ms(mar.user_name, sqn_ms)
        if reset is not None:
            log.info("zh: resync for %s: SQN_HE %#x -> SQN_MS %#x", mar.user_name, current.sqn, sqn_ms)
            self.metrics.resync.labels("resynchronised").inc()
            return reset
        # 6.3.5 step 3: SQN_HE in range (e.g. the USIM refused an older vector): no reset.
        log.info("zh: resync for %s: SQN_HE %#x in range of SQN_MS %#x, kept", mar.user_name, current.sqn, sqn_ms)
        self.metrics.resync.labels("in_range").inc()
        return await self.store.take_next_sqn(mar.user_name)

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
