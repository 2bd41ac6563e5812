"""Zn over Web Services (TS 29.109 clause 5.3, Annex D): the SOAP 1.1 document/literal messages of the
GBAService operation ``requestBootstrappingInfo``. Building and hardened parsing only; no I/O.

Annex D's schema has no elementFormDefault, so only the three operation elements (requestBootstrappingInfo
Request / Response / Fault) are in the GBAService namespace; the elements inside them (btid, nafid, ...,
meKeyMaterial, errorCode) are unqualified, and are built so. The parsers match children by local name, so
they also accept a peer that wrongly qualifies them.

Keys and NAF-Id are xs:base64Binary here (Diameter carries octets, Nbsp_GBA hex). ``gbaType`` is left out
for 3G GBA (29.109 5.3 step 3: included only if other than 3G GBA was performed); the only GBA type this
BSF runs is 3G GBA.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass, field

from lxml import etree

from gba.safexml import XmlError, child_text, children, local_name, parse

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
GBA_NS = "urn:3gpp:gba:GBAService:2010-02"  # WSDL targetNamespace (TS 29.109 Annex D)
SOAP_ACTION = "urn:3gpp:gba:GBAServiceAction:2007-05"  # binding soapAction (note the 2007 date)
MAX_LEN = 64 * 1024


class SoapError(XmlError):
    """A SOAP message is not a well-formed Zn-WS message."""


@dataclass(frozen=True, slots=True)
class SoapRequest:
    btid: str
    nafid: bytes
    gsids: tuple[str, ...] = ()
    gba_u_aware: bool = False


@dataclass(frozen=True, slots=True)
class SoapResponse:
    me_key: bytes = field(repr=False)
    key_expiry: dt.datetime
    creation: dt.datetime
    impi: str | None = None
    uicc_key: bytes | None = field(default=None, repr=False)
    gba_type: str | None = None  # absent = 3G GBA (29.109 5.3 step 3)
    uss_list: str | None = None  # the Zn ussList XML as a string (CDATA on the wire)


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _envelope(payload: etree._Element) -> bytes:
    env = etree.Element(_q(SOAP_NS, "Envelope"), nsmap={"soapenv": SOAP_NS, "gba": GBA_NS})
    etree.SubElement(env, _q(SOAP_NS, "Body")).append(payload)
    return bytes(etree.tostring(env, xml_declaration=True, encoding="UTF-8"))


def _time(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _local(parent: etree._Element, name: str, text: str | etree.CDATA) -> None:
    """A local element of Annex D's schema: unqualified (no elementFormDefault)."""
    etree.SubElement(parent, name).text = text


def build_request(req: SoapRequest) -> bytes:
    el = etree.Element(_q(GBA_NS, "requestBootstrappingInfoRequest"))
    _local(el, "btid", req.btid)
    _local(el, "nafid", base64.b64encode(req.nafid).decode("ascii"))
    for g in req.gsids:
        _local(el, "gsid", g)
    _local(el, "gbaUAware", "true" if req.gba_u_aware else "false")
    return _envelope(el)


def build_response(resp: SoapResponse) -> bytes:
    el = etree.Element(_q(GBA_NS, "requestBootstrappingInfoResponse"))
    if resp.impi is not None:
        _local(el, "impi", resp.impi)
    _local(el, "meKeyMaterial", base64.b64encode(resp.me_key).decode("ascii"))
    if resp.uicc_key is not None:
        _local(el, "uiccKeyMaterial", base64.b64encode(resp.uicc_key).decode("ascii"))
    _local(el, "keyExpiryTime", _time(resp.key_expiry))
    _local(el, "bootstrappingInfoCreationTime", _time(resp.creation))
    if resp.gba_type is not None:
        _local(el, "gbaType", resp.gba_type)
    if resp.uss_list is not None:
        _local(el, "ussList", etree.CDATA(resp.uss_list))
    return _envelope(el)


def build_fault(error_code: int, error_text: str, *, client: bool) -> bytes:
    """SOAP Fault whose detail is requestBootstrappingInfoFault{errorCode, errorText} (Annex D)."""
    fault = etree.Element(_q(SOAP_NS, "Fault"))
    etree.SubElement(fault, "faultcode").text = "soapenv:Client" if client else "soapenv:Server"
    etree.SubElement(fault, "faultstring").text = error_text
    detail = etree.SubElement(fault, "detail")
    f = etree.SubElement(detail, _q(GBA_NS, "requestBootstrappingInfoFault"))
    _local(f, "errorCode", str(error_code))
    _local(f, "errorText", error_text)
    return _envelope(fault)


def _body_child(data: bytes) -> etree._Element:
    root = parse(data, MAX_LEN)
    if local_name(root) != "Envelope" or root.tag != _q(SOAP_NS, "Envelope"):
        raise SoapError("not a SOAP 1.1 Envelope")
    bodies = children(root, "Body")
    if len(bodies) != 1 or len(bodies[0]) != 1:
        raise SoapError("the SOAP Body must hold exactly one element")
    return bodies[0][0]


def _b64(text: str | None, what: str) -> bytes:
    try:
        return base64.b64decode((text or "").encode("ascii"), validate=True)
    except (binascii.Error, ValueError):
        raise SoapError(f"{what} is not base64") from None


def _integer(text: str | None) -> int:
    """xs:integer (optional sign, surrounding whitespace); 0 when absent or not an integer."""
    try:
        return int((text or "").strip())
    except ValueError:
        return 0


def parse_request(data: bytes) -> SoapRequest:
    el = _body_child(data)
    if local_name(el) != "requestBootstrappingInfoRequest":
        raise SoapError(f"unsupported operation {local_name(el)!r}")
    btid = child_text(el, "btid")
    nafid = child_text(el, "nafid")
    if not btid or nafid is None:
        raise SoapError("btid and nafid are required")
    aware = (child_text(el, "gbaUAware") or "false").lower()
    if aware not in ("true", "false", "1", "0"):
        raise SoapError("gbaUAware must be a boolean")
    gsids = tuple((g.text or "").strip() for g in children(el, "gsid"))
    return SoapRequest(btid, _b64(nafid, "nafid"), gsids, aware in ("true", "1"))


def parse_response(data: bytes) -> SoapResponse | tuple[int, str]:
    """The response, or (errorCode, errorText) from a Fault."""
    el = _body_child(data)
    if local_name(el) == "Fault":
        for d in children(el, "detail"):
            for f in children(d, "requestBootstrappingInfoFault"):
                return _integer(child_text(f, "errorCode")), child_text(f, "errorText") or ""
        return 0, child_text(el, "faultstring") or "SOAP fault"
    if local_name(el) != "requestBootstrappingInfoResponse":
        raise SoapError("unexpected response element")
    me = child_text(el, "meKeyMaterial")
    expiry, created = child_text(el, "keyExpiryTime"), child_text(el, "bootstrappingInfoCreationTime")
    if me is None or not expiry or not created:
        raise SoapError("meKeyMaterial, keyExpiryTime and bootstrappingInfoCreationTime are required")
    uicc = child_text(el, "uiccKeyMaterial")
    try:
        expiry_t = dt.datetime.fromisoformat(expiry.replace("Z", "+00:00"))
        created_t = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        raise SoapError("invalid xs:dateTime") from None
    return SoapResponse(
        me_key=_b64(me, "meKeyMaterial"),
        key_expiry=expiry_t,
        creation=created_t,
        impi=child_text(el, "impi"),
        uicc_key=_b64(uicc, "uiccKeyMaterial") if uicc is not None else None,
        gba_type=child_text(el, "gbaType"),
        uss_list=child_text(el, "ussList"),
    )
