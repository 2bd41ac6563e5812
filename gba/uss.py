"""GUSS / USS model and XML (3GPP TS 29.109 Annex A) with a hardened parser, plus the BSF's USS
selection predicates (TS 33.220 clause 4.4.6 and 4.5.3).

The parser refuses DTDs and entities, never touches the network and caps the document size;
element names are matched namespace-agnostically because some HSSs omit the namespace.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from lxml import etree

from gba.safexml import XmlError, child_text, children, local_name, parse

GUSS_NS = "urn:3gpp:gba:GBAGUSSSchema-R9:2010-02"
MAX_XML_LEN = 64 * 1024
MAX_USS = 256
GUSS_TIMESTAMP_EQUAL = b"GUSS TIMESTAMP EQUAL"  # TS 29.109 clause 4.2: literal sent when timestamps match


class UssError(XmlError):
    """GUSS/USS XML is malformed, too large or hostile."""


class UiccType(enum.Enum):
    GBA = "GBA"
    GBA_U = "GBA_U"


@dataclass(frozen=True, slots=True)
class Uss:
    """One User Security Setting (TS 29.109 Annex A: element ``uss``)."""

    gsid: str
    service_type: int
    naf_group: str | None = None
    uids: tuple[str, ...] = ()
    flags: tuple[int, ...] = ()
    key_choice: str | None = None


@dataclass(frozen=True, slots=True)
class Guss:
    """GBA User Security Settings (TS 29.109 Annex A: element ``guss``)."""

    uicc_type: UiccType = UiccType.GBA
    lifetime: int | None = None
    security_features: str | None = None
    uss_list: tuple[Uss, ...] = ()
    timestamp: str | None = None
    impi: str | None = None

    def select_uss(self, gsids: frozenset[str] | set[str], naf_group: str | None) -> tuple[Uss, ...]:
        """USSs whose GSID was requested and that this NAF's group may see (TS 33.220 clause 4.4.6, 4.5.3;
        TS 29.109 clause 5.2): a USS without nafGroup is for every NAF, one with a nafGroup only for the NAFs
        of that group; a NAF in no group never gets the USSs of a group."""
        return tuple(u for u in self.uss_list if u.gsid in gsids and u.naf_group in (None, naf_group))

    def has_uss(self, gsid: str, naf_group: str | None) -> bool:
        return bool(self.select_uss({gsid}, naf_group))


def _root(data: bytes) -> etree._Element:
    try:
        return parse(data, MAX_XML_LEN)
    except UssError:
        raise
    except XmlError as exc:
        raise UssError(str(exc)) from None


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise UssError(f"{what} is not an integer") from None


def _parse_uss(el: etree._Element) -> Uss:
    gsid = el.get("id")
    stype = el.get("type")
    if gsid is None or stype is None:
        raise UssError("uss needs the id and type attributes")
    uids_el = children(el, "uids")
    uids = tuple((u.text or "").strip() for u in children(uids_el[0], "uid")) if uids_el else ()
    flags_el = children(el, "flags")
    flags = tuple(_int((f.text or "").strip(), "flag") for f in children(flags_el[0], "flag")) if flags_el else ()
    key_choice = None
    ext = children(el, "Extension")
    if ext:
        key_choice = child_text(ext[0], "keyChoice")
    return Uss(
        gsid=gsid,
        service_type=_int(stype, "uss type"),
        naf_group=el.get("nafGroup"),
        uids=uids,
        flags=flags,
        key_choice=key_choice,
    )


def _parse_uss_list(el: etree._Element) -> tuple[Uss, ...]:
    items = children(el, "uss")
    if len(items) > MAX_USS:
        raise UssError("too many USS entries")
    return tuple(_parse_uss(u) for u in items)


def parse_guss(data: bytes) -> Guss:
    root = _root(data)
    if local_name(root) != "guss":
        raise UssError(f"root element is {local_name(root)!r}, expected 'guss'")
    uicc_type, lifetime, features = UiccType.GBA, None, None
    bsf = children(root, "bsfInfo")
    if bsf:
        ut = child_text(bsf[0], "uiccType")
        if ut is not None:
            try:
                uicc_type = UiccType(ut)
            except ValueError:
                raise UssError(f"unknown uiccType {ut!r}") from None
        lt = child_text(bsf[0], "lifeTime")
        if lt is not None:
            lifetime = _int(lt, "lifeTime")
            if lifetime < 0:
                raise UssError("lifeTime must not be negative")
        features = child_text(bsf[0], "securityFeatures")
    uss_lists = children(root, "ussList")
    uss = _parse_uss_list(uss_lists[0]) if uss_lists else ()
    timestamp = None
    ext = children(root, "Extension")
    if ext:
        timestamp = child_text(ext[0], "timestamp")
    return Guss(
        uicc_type=uicc_type,
        lifetime=lifetime,
        security_features=features,
        uss_list=uss,
        timestamp=timestamp,
        impi=root.get("id"),
    )


def parse_uss_list(data: bytes) -> tuple[Uss, ...]:
    """Parse the Zn form: a ``ussList`` root with the USSs selected for one NAF."""
    root = _root(data)
    if local_name(root) != "ussList":
        raise UssError(f"root element is {local_name(root)!r}, expected 'ussList'")
    return _parse_uss_list(root)


def _q(name: str) -> str:
    return f"{{{GUSS_NS}}}{name}"


def _uss_element(parent: etree._Element, u: Uss, *, with_group: bool) -> None:
    attrs = {"id": u.gsid, "type": str(u.service_type)}
    if with_group and u.naf_group is not None:
        attrs["nafGroup"] = u.naf_group
    el = etree.SubElement(parent, _q("uss"), attrs)
    uids = etree.SubElement(el, _q("uids"))
    for uid in u.uids:
        etree.SubElement(uids, _q("uid")).text = uid
    flags = etree.SubElement(el, _q("flags"))
    for f in u.flags:
        etree.SubElement(flags, _q("flag")).text = str(f)
    if u.key_choice is not None:
        ext = etree.SubElement(el, _q("Extension"))
        etree.SubElement(ext, _q("keyChoice")).text = u.key_choice


def guss_to_xml(guss: Guss) -> bytes:
    root = etree.Element(_q("guss"), nsmap={None: GUSS_NS})  # type: ignore[dict-item]
    if guss.impi is not None:
        root.set("id", guss.impi)
    bsf = etree.SubElement(root, _q("bsfInfo"))
    etree.SubElement(bsf, _q("uiccType")).text = guss.uicc_type.value
    if guss.lifetime is not None:
        etree.SubElement(bsf, _q("lifeTime")).text = str(guss.lifetime)
    if guss.security_features is not None:
        etree.SubElement(bsf, _q("securityFeatures")).text = guss.security_features
    lst = etree.SubElement(root, _q("ussList"))
    for u in guss.uss_list:
        _uss_element(lst, u, with_group=True)
    if guss.timestamp is not None:
        ext = etree.SubElement(root, _q("Extension"))
        etree.SubElement(ext, _q("timestamp")).text = guss.timestamp
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def uss_list_to_xml(uss: tuple[Uss, ...]) -> bytes:
    """Zn form: ``ussList`` root; nafGroup is stripped before it goes to the NAF (TS 29.109 5.2)."""
    root = etree.Element(_q("ussList"), nsmap={None: GUSS_NS})  # type: ignore[dict-item]
    for u in uss:
        _uss_element(root, u, with_group=False)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
