"""Zn authorization policy (TS 33.220 clauses 4.4.6, 4.5.3, 5.3.3; TS 29.109 clause 5.2).

Pure decisions over the configured NAFs and a bootstrapping context; the Zn servers log each
decision with its reason (never keys) and turn a refusal into 5402.
"""

from __future__ import annotations

from dataclasses import dataclass

from bsf.config import NafEntry
from bsf.store import BootstrapContext
from gba.kdf import NafId
from gba.safexml import XmlError
from gba.uss import Uss, parse_guss


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    naf: NafEntry | None = None
    uss: tuple[Uss, ...] = ()
    uicc_key: bool = False  # send Ks_int_NAF too


class NafPolicy:
    def __init__(self, nafs: tuple[NafEntry, ...]) -> None:
        self._by_pair = {(n.diameter_host.lower(), n.fqdn.lower()): n for n in nafs}
        self._hosts = {n.diameter_host.lower() for n in nafs}
        self._owner = {n.fqdn.lower(): n.diameter_host for n in nafs}

    def owner_of(self, naf_fqdn: str) -> str | None:
        """The NAF host configured for this FQDN (the last entry naming it), if any."""
        return self._owner.get(naf_fqdn.lower())

    def admit(self, origin_host: str, naf_id: NafId, gsids: tuple[str, ...]) -> Decision:
        """What needs no bootstrapping context: the NAF and the FQDN and GSIDs it asks for. Checked before
        the B-TID is looked up, so a NAF that may not ask learns nothing of whether a B-TID exists (it
        gets 5402 either way, never 5403 for an unknown one)."""
        naf = self._by_pair.get((origin_host.lower(), naf_id.fqdn.lower()))
        if naf is None:
            if origin_host.lower() in self._hosts:
                return Decision(False, f"NAF {origin_host} may not ask for keys for FQDN {naf_id.fqdn}")
            return Decision(False, f"NAF {origin_host} is not an authorized NAF")
        if naf.allowed_gsids is not None:
            # TS 29.109 5.2 step 2: "a certain NAF is not authorized to use a certain GAA-Service-Identifier"
            # -> 5402 (TS 33.220 4.4.6: the BSF sends a NAF only the USSs it may see).
            denied = sorted(set(gsids) - set(naf.allowed_gsids))
            if denied:
                return Decision(False, f"NAF {origin_host} may not ask for GSID {', '.join(denied)}", naf)
        return Decision(True, "admitted", naf)

    def decide(
        self, origin_host: str, naf_id: NafId, gsids: tuple[str, ...], gba_u_aware: bool, ctx: BootstrapContext
    ) -> Decision:
        admitted = self.admit(origin_host, naf_id, gsids)
        naf = admitted.naf
        if not admitted.allowed or naf is None:
            return admitted
        guss = None
        if ctx.guss is not None:
            try:
                guss = parse_guss(ctx.guss)
            except XmlError:
                return Decision(False, "the subscriber's GUSS is unusable", naf)
        for gsid in naf.required_gsids:
            if guss is None or not guss.has_uss(gsid, naf.group):
                return Decision(False, f"required USS {gsid} missing for NAF group {naf.group}", naf)
        selected = guss.select_uss(set(gsids), naf.group) if guss is not None and gsids else ()
        # TS 33.220 5.3.3: Ks_int_NAF only for a GBA_U context and a NAF that declares GBA_U awareness.
        uicc = ctx.gba_u and gba_u_aware
        return Decision(True, f"authorized (group {naf.group}, {len(selected)} USS, uicc={uicc})", naf, selected, uicc)
