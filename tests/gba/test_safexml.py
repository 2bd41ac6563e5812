"""gba.safexml refuses every DTD, whatever the document's encoding hides it in (docs/security.md)."""

from __future__ import annotations

import pytest

from gba import safexml

# A parameter entity pointing at a URL, as the red team sent to Zn SOAP, in encodings that hide
# "<!DOCTYPE" from an octet search; and the plain UTF-8 forms.
PARAM_ENTITY = '<!DOCTYPE a [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x"> %p;]><a>x</a>'
DOCS = [
    ('<?xml version="1.0" encoding="UTF-16"?>' + PARAM_ENTITY).encode("utf-16"),
    ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE a><a/>').encode("utf-16-le"),
    b'<?xml version="1.0" encoding="UTF-7"?>+ADw-+ACE-DOCTYPE a+AD4-<a/>',
    PARAM_ENTITY.encode(),
    b'<!DOCTYPE a SYSTEM "file:///etc/passwd"><a/>',
    b'<?xml version="1.0"?><!doctype a><a/>',
]


@pytest.mark.parametrize("doc", DOCS)
def test_any_dtd_is_refused(doc: bytes) -> None:
    with pytest.raises(safexml.XmlError):
        safexml.parse(doc, 65536)


def test_utf16_without_dtd_still_parses() -> None:
    root = safexml.parse('<?xml version="1.0" encoding="UTF-16"?><a><b>é</b></a>'.encode("utf-16"), 65536)
    assert safexml.child_text(root, "b") == "é"
