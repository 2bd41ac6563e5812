"""oneM2M GBA-based remote security provisioning helpers (TS-0003 clause 8.3.2.3, 8.8.2.2).

With the MAF acting as NAF: Km = Ks_NAF (GBA_ME) or Ks_(ext/int)_NAF (GBA_U) for NAF_Id = MAF-FQDN ||
the oneM2M Ua id profile (``naf.onem2m_ua_id``, gba.onem2m.UA_ID_DEFAULT), KmId = B-TID (= KeId).
"""

from __future__ import annotations

from dataclasses import dataclass

from gba import onem2m
from naf.config import NafConfig
from naf.zn_client import NafKey, ZnKeySource


@dataclass(frozen=True, slots=True)
class MafCredential:
    km: bytes
    kmid: str

    def __repr__(self) -> str:
        return f"MafCredential(kmid={self.kmid!r})"


def km_from_naf_key(key: NafKey, *, uicc: bool = False) -> MafCredential:
    """Km for the Enrolee: the UICC key when the client runs in the UICC (TS-0003 8.3.2.3), else the ME key."""
    if uicc:
        if key.uicc_key is None:
            raise ValueError("no Ks_int_NAF: the subscriber is not GBA_U or the MAF is not GBA_U-aware")
        return MafCredential(key.uicc_key, key.btid)
    return MafCredential(key.me_key, key.btid)


async def fetch_km(zn: ZnKeySource, config: NafConfig, kmid: str, *, uicc: bool = False) -> MafCredential:
    """Km for a KmID (= B-TID) over Zn, with this MAF's FQDN and the configured oneM2M Ua id."""
    key = await zn.fetch_key(kmid, onem2m.maf_naf_id(config.fqdn, config.onem2m_ua_id))
    return km_from_naf_key(key, uicc=uicc)
