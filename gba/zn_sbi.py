"""Zn as the 5G service Nbsp_GBA (TS 29.309, schema TS29309_Nbsp_GBA.yaml V18.1.0): the JSON bodies of
the Bootstrapping Info Retrieval custom operation, for both ends (the BSF answers, the NAF kit asks).
Building and strict parsing only; no I/O.

What the schema fixes and this codec keeps to:
- ``GsId`` is a Uint32: a GSID goes on the wire as a JSON integer, so only a canonical decimal Uint32
  (``gsid_uint32``) can be sent; the 4G flavours carry any string (Diameter OctetString, xs:string).
- ``Uss`` requires ``gsId``, ``gsType`` and ``ueIds`` (at least one ``{"ueId": ...}``): a USS without a
  public identity cannot be expressed (``uss_problem`` says why) and is never padded with an invented one.
- keys are 64 hex digits; times RFC 3339; ``gbaType`` is left out for 3G GBA, as on Diameter and SOAP
  (TS 29.109 5.2/5.3: included only if other than 3G GBA), which the schema allows (optional).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from gba.kdf import KdfError, NafId
from gba.uss import Uss

API_PATH = "/nbsp-gba/v1"  # TS 29.309 6.1.1: {apiRoot}/<apiName>/<apiVersion>
OPERATION_PATH = API_PATH + "/bootstrapping-info-retrieval"
UINT32_MAX = 2**32 - 1
GBA_TYPE_3G = "3G_GBA"

_UA_ID_RE = re.compile(r"[A-Fa-f0-9]{10}")
_KEY_RE = re.compile(r"[A-Fa-f0-9]{64}")
_UINT32_RE = re.compile(r"0|[1-9][0-9]{0,9}")

# GUSS keyChoice (TS 29.109 Annex A) <-> Nbsp_GBA KeyChoice (TS 29.309 6.1.6.3.3).
KEY_CHOICE_TO_JSON = {
    "ME-based-key": "ME_BASED_KEY",
    "UICC-based-key": "UICC_BASED_KEY",
    "ME-UICC-based-keys": "ME_UICC_BASED_KEYS",
}
KEY_CHOICE_FROM_JSON = {v: k for k, v in KEY_CHOICE_TO_JSON.items()}


class SbiError(ValueError):
    """A body that is not a valid Nbsp_GBA message; ``param`` is the JSON pointer of the culprit."""

    def __init__(self, param: str, reason: str, missing: bool = False) -> None:
        super().__init__(f"{param}: {reason}")
        self.param, self.reason, self.missing = param, reason, missing


def gsid_uint32(gsid: str) -> int | None:
    """The GSID as a TS 29.309 GsId (Uint32), or None when it is not a canonical decimal Uint32
    (no sign, no leading zero: "07" and 7 would be two GSIDs on Diameter but one on Nbsp_GBA)."""
    if not _UINT32_RE.fullmatch(gsid) or int(gsid) > UINT32_MAX:
        return None
    return int(gsid)


def _uint32(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= UINT32_MAX


def _time(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(param: str, text: Any) -> dt.datetime:
    try:
        t = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise SbiError(param, "not an RFC 3339 date-time") from None
    if t.tzinfo is None:
        raise SbiError(param, "an RFC 3339 date-time needs a time zone")
    return t


@dataclass(frozen=True, slots=True)
class SbiRequest:
    btid: str
    naf_id: NafId
    gsids: tuple[str, ...] = ()  # canonical decimal Uint32 strings
    gba_u_aware: bool = False


@dataclass(frozen=True, slots=True)
class SbiResponse:
    me_key: bytes = field(repr=False)
    key_expiry: dt.datetime | None
    creation: dt.datetime | None
    impi: str | None = None
    uicc_key: bytes | None = field(default=None, repr=False)
    uss: tuple[Uss, ...] = ()
    gba_type: str | None = None  # absent = 3G GBA


def build_request(req: SbiRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        "btId": req.btid,
        "nafId": {"nafFqdn": req.naf_id.fqdn, "uaSecProtId": req.naf_id.ua_id.hex()},
        "gbaUAware": req.gba_u_aware,
    }
    if req.gsids:
        gsids = [gsid_uint32(g) for g in req.gsids]
        if None in gsids:
            raise SbiError("/gsIds", "a GSID on Nbsp_GBA is a Uint32 (TS 29.309 GsId)")
        body["gsIds"] = gsids
    return body


def parse_request(doc: Any) -> SbiRequest:
    if not isinstance(doc, dict):
        raise SbiError("/", "BootstrappingInfoRequest must be an object")
    btid = doc.get("btId")
    if not isinstance(btid, str):
        raise SbiError("/btId", "required string", missing="btId" not in doc)
    naf = doc.get("nafId")
    if not isinstance(naf, dict):
        raise SbiError("/nafId", "required object", missing="nafId" not in doc)
    fqdn, ua = naf.get("nafFqdn"), naf.get("uaSecProtId")
    if not isinstance(fqdn, str) or not isinstance(ua, str) or not _UA_ID_RE.fullmatch(ua):
        raise SbiError("/nafId", "nafFqdn (string) and uaSecProtId (10 hex digits) are required")
    try:
        naf_id = NafId(fqdn, bytes.fromhex(ua))
    except KdfError as exc:
        raise SbiError("/nafId/nafFqdn", str(exc)) from None
    aware = doc.get("gbaUAware", False)
    if not isinstance(aware, bool):
        raise SbiError("/gbaUAware", "boolean")
    gsids = doc.get("gsIds", [])
    if not isinstance(gsids, list) or not all(_uint32(g) for g in gsids) or ("gsIds" in doc and not gsids):
        raise SbiError("/gsIds", "array of at least one Uint32")
    return SbiRequest(btid, naf_id, tuple(str(g) for g in gsids), aware)


def uss_problem(u: Uss) -> str | None:
    """Why this USS cannot be sent as a TS 29.309 Uss, or None when it can."""
    if gsid_uint32(u.gsid) is None:
        return f"GSID {u.gsid!r} is not a Uint32"
    if not u.uids:
        return f"the USS of GSID {u.gsid} has no public identity (Uss.ueIds needs one)"
    if not _uint32(u.service_type) or not all(_uint32(f) for f in u.flags):
        return f"the USS of GSID {u.gsid} has a type or flag beyond Uint32"
    return None


def _uss_json(u: Uss) -> dict[str, Any]:
    if problem := uss_problem(u):
        raise SbiError("/ussList", problem)
    uss: dict[str, Any] = {
        "gsId": gsid_uint32(u.gsid),
        "gsType": u.service_type,
        "ueIds": [{"ueId": uid} for uid in u.uids],
    }
    if u.flags:
        uss["flags"] = [{"flag": f} for f in u.flags]
    if u.key_choice:
        uss["keyChoice"] = KEY_CHOICE_TO_JSON.get(u.key_choice, u.key_choice)
    return {"uss": uss}


def build_response(resp: SbiResponse) -> dict[str, Any]:
    """The BootstrappingInfoResponse; nafGroup is never sent (TS 29.109 5.2: stripped before the NAF)."""
    out: dict[str, Any] = {"meKeyMaterial": resp.me_key.hex()}
    if resp.uicc_key is not None:
        out["uiccKeyMaterial"] = resp.uicc_key.hex()
    if resp.key_expiry is not None:
        out["keyExpiryTime"] = _time(resp.key_expiry)
    if resp.creation is not None:
        out["bootstrappingInfoCreationTime"] = _time(resp.creation)
    if resp.uss:
        out["ussList"] = [_uss_json(u) for u in resp.uss]
    if resp.gba_type is not None:
        out["gbaType"] = resp.gba_type
    if resp.impi is not None:
        out["impi"] = resp.impi
    return out


def _uss_from_json(i: int, item: Any) -> Uss:
    where = f"/ussList/{i}/uss"
    u = item.get("uss") if isinstance(item, dict) else None
    if not isinstance(u, dict):
        raise SbiError(where, "required object")
    gsid, gstype, ue_ids = u.get("gsId"), u.get("gsType"), u.get("ueIds")
    if not _uint32(gsid) or not _uint32(gstype):
        raise SbiError(where, "gsId and gsType are required Uint32s")
    if not isinstance(ue_ids, list) or not ue_ids or not all(isinstance(x, Mapping) for x in ue_ids):
        raise SbiError(where + "/ueIds", "array of at least one UeIdsItem")
    uids = [x.get("ueId") for x in ue_ids]
    flags = [f.get("flag") if isinstance(f, Mapping) else None for f in u.get("flags", [])]
    key_choice = u.get("keyChoice")
    if not all(isinstance(x, str) for x in uids) or not all(_uint32(f) for f in flags):
        raise SbiError(where, "ueId must be strings and flag Uint32s")
    if key_choice is not None and not isinstance(key_choice, str):
        raise SbiError(where + "/keyChoice", "string")
    return Uss(
        gsid=str(gsid),
        service_type=cast(int, gstype),  # checked by _uint32 above
        naf_group=u.get("nafGroup") if isinstance(u.get("nafGroup"), str) else None,
        uids=tuple(uids),
        flags=tuple(flags),  # type: ignore[arg-type]
        key_choice=KEY_CHOICE_FROM_JSON.get(key_choice, key_choice) if key_choice else None,
    )


def _hex_key(doc: Mapping[str, Any], name: str) -> bytes | None:
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not _KEY_RE.fullmatch(value):
        raise SbiError(f"/{name}", "64 hex digits")
    return bytes.fromhex(value)


def parse_response(doc: Any) -> SbiResponse:
    if not isinstance(doc, dict):
        raise SbiError("/", "BootstrappingInfoResponse must be an object")
    me_key = _hex_key(doc, "meKeyMaterial")
    if me_key is None:
        raise SbiError("/meKeyMaterial", "required", missing=True)
    uss = doc.get("ussList", [])
    if not isinstance(uss, list):
        raise SbiError("/ussList", "array")
    gba_type, impi = doc.get("gbaType"), doc.get("impi")
    if not isinstance(gba_type, str | None) or not isinstance(impi, str | None):
        raise SbiError("/", "gbaType and impi are strings")
    expiry, created = doc.get("keyExpiryTime"), doc.get("bootstrappingInfoCreationTime")
    return SbiResponse(
        me_key=me_key,
        key_expiry=_parse_time("/keyExpiryTime", expiry) if expiry is not None else None,
        creation=_parse_time("/bootstrappingInfoCreationTime", created) if created is not None else None,
        impi=impi,
        uicc_key=_hex_key(doc, "uiccKeyMaterial"),
        uss=tuple(_uss_from_json(i, item) for i, item in enumerate(uss)),
        gba_type=gba_type,
    )
