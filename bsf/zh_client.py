"""Zh client: fetches one authentication vector (and the GUSS) from the HSS (TS 29.109 clause 4.2)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from prometheus_client import Histogram

from bsf.config import BsfConfig
from gba import diameter as d
from gbaio import logs
from gbaio.diameter_node import DiameterClient, DiameterError, NodeIdentity

log = logging.getLogger("gbagw.bsf.zh")


class HssUnavailable(Exception):
    """The HSS is unreachable, timed out or is too busy: Ub answers 503 (retry later)."""


class UnknownSubscriber(Exception):
    """The HSS does not know the IMPI (5001 or 5401)."""


class HssRefused(Exception):
    """The HSS refused for another reason (bad AUTS, unsupported scheme, ...)."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"HSS refused with code {code}")
        self.code = code


@dataclass(frozen=True, slots=True)
class Vector:
    rand: bytes
    autn: bytes
    xres: bytes
    ck: bytes
    ik: bytes
    guss: bytes | None


class ZhClient:
    def __init__(
        self, config: BsfConfig, client: DiameterClient | None = None, latency: Histogram | None = None
    ) -> None:
        self.config = config
        self.client = client or DiameterClient(
            NodeIdentity(config.fqdn, config.realm, (d.APP_ZH,)),
            config.hss_host,
            config.hss_port,
            timeout=config.zh_timeout,
        )
        self._latency = latency
        self._sessions = logs.RequestIds(config.fqdn)

    async def fetch_vector(self, impi: str, resync_info: bytes | None = None) -> Vector:
        mar = d.MultimediaAuthRequest(
            self._sessions.send_next(),  # the HSS logs this MAR under its Session-Id
            self.config.fqdn,
            self.config.realm,
            self.config.hss_realm,
            impi,
            resync_info=resync_info,
            sip_number_auth_items=1 if self.config.zh_sip_number_auth_items else None,
        )
        start = time.perf_counter()
        try:
            env = await self.client.request(mar.to_envelope(0, 0))
        except DiameterError as exc:
            log.warning("zh: HSS unavailable: %s", exc)
            raise HssUnavailable(str(exc)) from None
        if self._latency is not None:
            self._latency.observe(time.perf_counter() - start)
        maa = d.MultimediaAuthAnswer.from_envelope(env)
        if maa.experimental_result in (
            d.ExperimentalResult.ERROR_USER_UNKNOWN,
            d.ExperimentalResult.ERROR_IDENTITY_UNKNOWN,
        ):
            raise UnknownSubscriber(impi)
        if maa.result_code in (d.ResultCode.TOO_BUSY, d.ResultCode.UNABLE_TO_DELIVER):
            # RFC 6733 7.1.3: transient protocol errors (a busy HSS, or no route at a Diameter agent).
            raise HssUnavailable(f"Zh answered Result-Code {maa.result_code}")
        if not maa.ok:
            raise HssRefused(maa.experimental_result or maa.result_code)
        auth = maa.sip_authenticate or b""
        if (
            maa.scheme != d.SCHEME_AKA
            or len(auth) != 32
            or maa.sip_authorization is None
            or not 4 <= len(maa.sip_authorization) <= 16
            or maa.ck is None
            or len(maa.ck) != 16
            or maa.ik is None
            or len(maa.ik) != 16
        ):
            # TS 29.109 4.2: a vector we cannot use is an O&M matter, not the UE's.
            log.error("zh: unusable vector from the HSS for %s (scheme %r)", impi, maa.scheme)
            raise HssRefused(d.ResultCode.INVALID_AVP_VALUE)
        return Vector(auth[:16], auth[16:], maa.sip_authorization, maa.ck, maa.ik, maa.guss)

    async def close(self) -> None:
        await self.client.close()
