"""Hardened XML parsing shared by the core's XML formats: no DTD, no entities, no network, a size cap.

Hostile documents (billion laughs, external entities, oversized input) raise :class:`XmlError`.
"""

from __future__ import annotations

from lxml import etree


class XmlError(ValueError):
    """XML is malformed, too large or uses forbidden constructs."""


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse(data: bytes, max_len: int) -> etree._Element:
    if len(data) > max_len:
        raise XmlError(f"XML document larger than {max_len} octets")
    # A DTD is the only road to entity expansion or external fetches; none of our formats has one.
    upper = data.upper()
    if b"<!DOCTYPE" in upper or b"<!ENTITY" in upper:
        raise XmlError("DTDs and entities are not allowed")
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise XmlError(f"XML is not well-formed: {exc.msg}") from None
    if root is None:
        raise XmlError("empty XML document")
    # The octet check above only sees an ASCII-compatible DOCTYPE: a UTF-16 or UTF-7 document hides one
    # from it, and libxml2 still parses its internal subset. What the parser found is what counts.
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise XmlError("DTDs and entities are not allowed")
    return root


def local_name(el: etree._Element) -> str:
    tag = el.tag
    if not isinstance(tag, str):
        return ""
    # lxml's Clark notation "{uri}local": an NCName holds no "}", so the last one ends the URI.
    return tag.rpartition("}")[2]


def children(el: etree._Element, name: str) -> list[etree._Element]:
    return [c for c in el if local_name(c) == name]


def child_text(el: etree._Element, name: str) -> str | None:
    found = children(el, name)
    if not found:
        return None
    return (found[0].text or "").strip()
