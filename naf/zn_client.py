"""Zn client: asks the BSF for the NAF-specific key of a B-TID (TS 29.109 clause 5.2)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from gba import diameter as d
from gba.kdf import NafId
from gba.uss import Uss, UssError, parse_uss_list
from gbaio import logs
from gbaio.diameter_node import DiameterClient, DiameterError, NodeIdentity
from gbaio.tls import client_ssl_context
from naf.config import BsfRoute, NafConfig

log = logging.getLogger("gbagw.naf.zn")


class ZnUnavailable(Exception):
    """The BSF cannot be reached, did not answer in time or answered "busy, retry" (transient)."""


# RFC 6733 7.1.3: transient protocol errors; the request may succeed later or at another BSF.
TRANSIENT_RESULT_CODES = frozenset({d.ResultCode.UNABLE_TO_DELIVER, d.ResultCode.TOO_BUSY})


# What each refusal means to whoever runs the NAF (TS 29.109 6.2, TS 33.220 4.5.4).
REFUSAL_MEANINGS: dict[int, str] = {
    d.ExperimentalResult.ERROR_IDENTITY_UNKNOWN: "DIAMETER_ERROR_IDENTITY_UNKNOWN: the subscriber is unknown",
    d.ExperimentalResult.ERROR_NOT_AUTHORIZED: (
        "DIAMETER_ERROR_NOT_AUTHORIZED: this NAF may not have this key (the BSF's NAF list, NAF group or USS policy)"
    ),
    d.ExperimentalResult.ERROR_TRANSACTION_IDENTIFIER_INVALID: (
        "DIAMETER_ERROR_TRANSACTION_IDENTIFIER_INVALID: unknown, expired or revoked B-TID; the UE must bootstrap again"
    ),
}


class ZnRefused(Exception):
    """The BSF refused: ``code`` is the (Experimental-)Result-Code, e.g. 5402 or 5403."""

    def __init__(self, code: int | None) -> None:
        meaning = REFUSAL_MEANINGS.get(code) if code is not None else None
        super().__init__(f"BSF refused the key request with code {code}" + (f" ({meaning})" if meaning else ""))
        self.code = code


class ZnNoRoute(ZnRefused):
    """No BSF is configured for the realm of a B-TID: refused here, no Zn request is sent."""

    def __init__(self, btid: str, why: str = "") -> None:
        why = why or "no BSF is configured for its realm (naf.bsf_realm, naf.bsf_realms)"
        Exception.__init__(self, f"B-TID {btid!r}: {why}")
        self.code = None


def route_for(config: NafConfig, btid: str) -> BsfRoute:
    """The BSF (or Zn-Proxy) for a B-TID, from the domain after its last ``@`` (TS 29.109 5.2 step 1,
    5.3; TS 33.220 Annex K: a visited NAF reaches the home BSF of the B-TID's realm)."""
    found = config.route_for(btid)
    if found is None:
        raise ZnNoRoute(btid)
    return found


def sbi_url_for(config: NafConfig, btid: str) -> str:
    """The Nbsp_GBA apiRoot of the B-TID's realm."""
    url = route_for(config, btid).sbi_url
    if not url:
        raise ZnNoRoute(btid, "its realm has no Nbsp_GBA apiRoot (sbi_url in naf.bsf_realms)")
    return url


def soap_url_for(config: NafConfig, btid: str) -> str:
    """The Zn-WS endpoint of the B-TID's realm."""
    url = route_for(config, btid).soap_url
    if not url:
        raise ZnNoRoute(btid, "its realm has no Zn-WS endpoint (soap_url in naf.bsf_realms)")
    return url


@dataclass(frozen=True, slots=True)
class NafKey:
    """What the BSF returned for (B-TID, NAF_Id): keys, identities, lifetime (TS 29.109 5.2)."""

    btid: str
    naf_id: NafId
    impi: str | None
    me_key: bytes  # Ks_NAF (GBA_ME) or Ks_ext_NAF (GBA_U)
    uicc_key: bytes | None  # Ks_int_NAF, only to a GBA_U-aware NAF
    expires: dt.datetime
    created: dt.datetime | None
    gba_type: int
    uss: tuple[Uss, ...]

    def __repr__(self) -> str:  # keys never appear in reprs (logs, tracebacks)
        return f"NafKey(btid={self.btid!r}, naf={self.naf_id.fqdn!r}, impi={self.impi!r}, expires={self.expires})"


class ZnKeySource(Protocol):
    """What a NAF needs from Zn, whatever the flavour (Diameter, Nbsp_GBA, SOAP)."""

    async def fetch_key(self, btid: str, naf_id: NafId, gsids: Sequence[str] | None = None) -> NafKey: ...

    async def close(self) -> None: ...


class ZnClient:
    """Diameter Zn: one peer connection per configured BSF (or Zn-Proxy) address, opened on first use;
    ``client`` is the home BSF's."""

    def __init__(self, config: NafConfig, client: DiameterClient | None = None) -> None:
        self.config = config
        self.client = client or self._connect(config.home_route)
        self._peers: dict[tuple[str, int], DiameterClient] = {(config.bsf_host, config.bsf_port): self.client}
        self._sessions = logs.RequestIds(config.fqdn)

    def _connect(self, route: BsfRoute) -> DiameterClient:
        cfg = self.config
        home = route == cfg.home_route
        return DiameterClient(
            NodeIdentity(cfg.fqdn, cfg.realm, (d.APP_ZN,)),
            route.host,
            route.port,
            timeout=cfg.zn_timeout,
            # Zn over TLS from connection start (RFC 6733 13) to every BSF or Zn-Proxy, with one client
            # certificate; tls_server_name names the home BSF only, others are checked against their host.
            tls=client_ssl_context(cfg.tls_ca, cfg.tls_cert, cfg.tls_key) if cfg.bsf_tls else None,
            server_name=cfg.tls_server_name if home else None,
        )

    def _peer(self, route: BsfRoute) -> DiameterClient:
        peer = self._peers.get((route.host, route.port))
        if peer is None:
            peer = self._peers[(route.host, route.port)] = self._connect(route)
        return peer

    async def fetch_key(self, btid: str, naf_id: NafId, gsids: Sequence[str] | None = None) -> NafKey:
        gsids = tuple(self.config.gsids if gsids is None else gsids)
        route = route_for(self.config, btid)
        bir = d.BootstrappingInfoRequest(
            self._sessions.send_next(),  # the BSF logs this BIR under its Session-Id
            self.config.fqdn,
            self.config.realm,
            route.realm,  # Destination-Realm: the B-TID's realm, a Zn-Proxy routes on it (33.220 Annex K)
            btid,
            naf_id.encode(),
            gsids=gsids,
            gba_u_aware=self.config.gba_u_aware,
        )
        try:
            env = await self._peer(route).request(bir.to_envelope(0, 0))
        except DiameterError as exc:
            raise ZnUnavailable(str(exc)) from None
        bia = d.BootstrappingInfoAnswer.from_envelope(env)
        if bia.result_code in TRANSIENT_RESULT_CODES:
            raise ZnUnavailable(f"BSF answered Result-Code {bia.result_code}")
        if not bia.ok:
            raise ZnRefused(bia.experimental_result or bia.result_code)
        if bia.me_key_material is None or len(bia.me_key_material) != 32 or bia.key_expiry is None:
            log.error("zn: BIA for %s lacks key material or expiry", btid)
            raise ZnRefused(d.ResultCode.MISSING_AVP)
        if bia.gba_type not in (None, d.GbaType.GBA_3G):
            # TS 29.109 5.2: a NAF stops on a GBA type it does not support.
            raise ZnRefused(d.ResultCode.INVALID_AVP_VALUE)
        uss: tuple[Uss, ...] = ()
        if bia.uss:
            try:
                uss = parse_uss_list(bia.uss)
            except UssError as exc:
                log.warning("zn: unusable USS list for %s: %s", btid, exc)
        return NafKey(
            btid,
            naf_id,
            bia.user_name,
            bia.me_key_material,
            bia.uicc_key_material,
            bia.key_expiry,
            bia.bootstrap_creation,
            bia.gba_type or 0,
            uss,
        )

    async def close(self) -> None:
        for peer in self._peers.values():
            await peer.close()
