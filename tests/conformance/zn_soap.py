"""A strict check of Zn-over-Web-Services messages (TS 29.109 clause 5.3, Annex D) written from the spec,
independent of gba/zn_soap.py: a SOAP 1.1 envelope whose Body holds exactly one of
requestBootstrappingInfoRequest / requestBootstrappingInfoResponse, or a Fault whose detail holds exactly
one requestBootstrappingInfoFault, each valid against zn_soap.xsd (children unqualified, Annex D order).

``check_zn_soap(data)`` raises AssertionError naming the violation; the wire taps of the e2e tests run it
on every SOAP body that crossed the wire.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
GBA_NS = "urn:3gpp:gba:GBAService:2010-02"
OPERATION_ELEMENTS = frozenset(
    f"{{{GBA_NS}}}{name}" for name in ("requestBootstrappingInfoRequest", "requestBootstrappingInfoResponse")
)
FAULT_ELEMENT = f"{{{GBA_NS}}}requestBootstrappingInfoFault"
# SOAP 1.1 4.4.1: the fault codes, extensible with dotted suffixes (Client.Authentication).
FAULT_CODES = ("VersionMismatch", "MustUnderstand", "Client", "Server")

_HERE = Path(__file__).resolve().parent
_schema: etree.XMLSchema | None = None


def _envelope_schema() -> etree.XMLSchema:
    global _schema
    if _schema is None:  # the envelope schema imports zn_soap.xsd by its file name
        _schema = etree.XMLSchema(etree.parse(str(_HERE / "soap11_envelope.xsd")))
    return _schema


def _parse(data: bytes) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise AssertionError(f"Zn SOAP: not well-formed XML: {exc}") from None
    if root.getroottree().docinfo.doctype:
        raise AssertionError("Zn SOAP: a DOCTYPE is not allowed in a SOAP message (SOAP 1.1 3)")
    return root


def check_zn_soap(data: bytes) -> None:
    """Raise AssertionError unless ``data`` is a valid Zn SOAP request, response or fault (Annex D)."""
    root = _parse(data)
    if root.tag != f"{{{SOAP_NS}}}Envelope":
        raise AssertionError(f"Zn SOAP: root element is {root.tag}, expected the SOAP 1.1 Envelope")
    schema = _envelope_schema()
    if not schema.validate(root):
        errors = "; ".join(f"line {e.line}: {e.message}" for e in schema.error_log)  # type: ignore[attr-defined]
        raise AssertionError(f"Zn SOAP: invalid against TS 29.109 Annex D / SOAP 1.1: {errors}")
    body = root.find(f"{{{SOAP_NS}}}Body")
    assert body is not None  # the schema requires it
    payload = [c for c in body if isinstance(c.tag, str)]
    if len(payload) != 1:
        raise AssertionError(f"Zn SOAP: the Body holds {len(payload)} elements, Annex D's binding expects one")
    (el,) = payload
    if el.tag in OPERATION_ELEMENTS:
        return
    if el.tag != f"{{{SOAP_NS}}}Fault":
        raise AssertionError(f"Zn SOAP: {el.tag} is no element of the GBAService operation (Annex D)")
    code = el.findtext("faultcode") or ""
    prefix, _, local = code.strip().rpartition(":")
    if el.nsmap.get(prefix or None) != SOAP_NS or local.split(".")[0] not in FAULT_CODES:
        raise AssertionError(f"Zn SOAP: faultcode {code!r} is not a SOAP 1.1 fault code (SOAP 1.1 4.4.1)")
    detail = el.find("detail")
    faults = [c for c in detail if isinstance(c.tag, str)] if detail is not None else []
    if [c.tag for c in faults] != [FAULT_ELEMENT]:
        raise AssertionError(
            "Zn SOAP: a Fault's detail must hold exactly one requestBootstrappingInfoFault (29.109 5.3 step 2)"
        )
