"""oneM2M GBA-based remote security provisioning helpers (TS-0003 clause 8.3.2.3, 8.8.2.2).

With the MAF acting as NAF: Km = Ks_NAF (GBA_ME) or Ks_(ext/int)_NAF (GBA_U), KmId = B-TID (= KeId).
"""

from __future__ import annotations

from dataclasses import dataclass

from naf.zn_client import NafKey


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
