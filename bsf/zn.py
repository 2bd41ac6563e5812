"""The one Zn decision and key-derivation path behind every Zn flavour (Diameter, Nbsp_GBA, SOAP):
look up the B-TID, authorize the NAF (bsf.policy), derive Ks_(ext/int)_NAF (TS 33.220 4.5.3, 5.3.3).
Each transport maps the result or the refusal code (5402, 5403) onto its own wire form.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from bsf.policy import NafPolicy
from bsf.store import ContextStore, StoreUnavailable
from gba.btid import Btid, BtidError
from gba.diameter import ExperimentalResult
from gba.kdf import NafId, ks_int_naf, ks_naf
from gba.uss import Uss

log = logging.getLogger("gbagw.bsf.zn")


@dataclass(frozen=True, slots=True)
class ZnKeys:
    impi: str | None
    me_key: bytes = field(repr=False)
    uicc_key: bytes | None = field(repr=False)
    expires: dt.datetime
    created: dt.datetime
    uss: tuple[Uss, ...]


class ZnRefusal(Exception):
    """``code`` is the TS 29.109 Experimental-Result-Code (5402 or 5403)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class ZnService:
    def __init__(self, store: ContextStore, policy: NafPolicy) -> None:
        self.store = store
        self.policy = policy

    def http_naf_identity(self, authenticated: str | None, naf_id: NafId, *, plain_lab: bool, remedy: str) -> str:
        """The NAF identity for the policy on the HTTP flavours (SOAP, Nbsp_GBA): the authenticated one
        (TLS client certificate, OAuth2 token subject). Without one, only the plain lab listener assumes the
        configured owner of the requested nafFqdn; on TLS there is no identity and the request is refused
        (fail closed, 5402)."""
        if authenticated is not None:
            return authenticated
        if not plain_lab:
            log.info("zn: request for %s without a NAF identity on a TLS listener -> 5402", naf_id.fqdn)
            raise ZnRefusal(ExperimentalResult.ERROR_NOT_AUTHORIZED, f"no NAF identity: {remedy}")
        return self.policy.owner_of(naf_id.fqdn) or naf_id.fqdn

    async def retrieve(
        self, naf_host: str, btid: str, naf_id: NafId, gsids: tuple[str, ...], gba_u_aware: bool, via: str
    ) -> ZnKeys:
        # An unauthorized NAF gets 5402 whatever the B-TID: nothing tells it whether one exists.
        admitted = self.policy.admit(naf_host, naf_id, gsids)
        if not admitted.allowed:
            log.info("zn/%s: %s for %s: refused: %s -> 5402", via, naf_host, naf_id.fqdn, admitted.reason)
            raise ZnRefusal(ExperimentalResult.ERROR_NOT_AUTHORIZED, admitted.reason)
        try:
            Btid.parse(btid)
        except BtidError as exc:
            log.info("zn/%s: %s for %s: malformed B-TID (%s) -> 5403", via, naf_host, naf_id.fqdn, exc)
            raise ZnRefusal(ExperimentalResult.ERROR_TRANSACTION_IDENTIFIER_INVALID, "malformed B-TID") from None
        try:
            ctx = await self.store.get_context(btid)
        except StoreUnavailable as exc:
            # Each flavour answers "busy, retry" (3004 / HTTP 503): a NAF may go to another BSF instance.
            log.warning("zn/%s: %s for %s: context store unavailable: %s", via, naf_host, naf_id.fqdn, exc)
            raise
        if ctx is None:
            log.info("zn/%s: %s for %s: B-TID %s unknown or expired -> 5403", via, naf_host, naf_id.fqdn, btid)
            raise ZnRefusal(ExperimentalResult.ERROR_TRANSACTION_IDENTIFIER_INVALID, "unknown or expired B-TID")
        decision = self.policy.decide(naf_host, naf_id, gsids, gba_u_aware, ctx)
        log.info(
            "zn/%s: %s for %s btid=%s: %s",
            via,
            naf_host,
            naf_id.fqdn,
            ctx.btid,
            decision.reason if decision.allowed else f"refused: {decision.reason} -> 5402",
        )
        if not decision.allowed or decision.naf is None:
            raise ZnRefusal(ExperimentalResult.ERROR_NOT_AUTHORIZED, decision.reason)
        # TS 33.220 4.5.3 / 5.3.3: Ks_NAF (GBA_ME) or Ks_ext_NAF, plus Ks_int_NAF for a GBA_U-aware NAF.
        return ZnKeys(
            impi=ctx.impi if decision.naf.send_impi else None,
            me_key=ks_naf(ctx.ks, ctx.rand, ctx.impi, naf_id),
            uicc_key=ks_int_naf(ctx.ks, ctx.rand, ctx.impi, naf_id) if decision.uicc_key else None,
            expires=ctx.expires,
            created=ctx.created,
            uss=decision.uss,
        )
