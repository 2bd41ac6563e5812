"""Configuration of Diameter Zn over TLS: bsf.zn_tls_port beside the shared bsf.zn_tls_* files, and the
NAF kit's naf.bsf_tls with its naf.tls_* certificate."""

from __future__ import annotations

from pathlib import Path

import pytest

from gba import pki
from gbagw import config
from gbagw.listeners import bsf_listeners
from tests.pki_files import write_pair


def _files(tmp_path: Path) -> dict[str, str]:
    ca = pki.make_ca()
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    cert, key = write_pair(tmp_path, "bsf.gba.test", ca)
    return {"cert": str(cert), "key": str(key), "ca": str(tmp_path / "ca.pem")}


def test_the_diameter_tls_listener_needs_the_ca_too(tmp_path: Path) -> None:
    f = _files(tmp_path)
    pair = {"GBAGW_BSF_ZN_TLS_CERT": f["cert"], "GBAGW_BSF_ZN_TLS_KEY": f["key"]}
    without_ca = config.bsf_config(config.load(None, tmp_path, pair))
    assert not without_ca.zn_diameter_tls  # RFC 6733 13.1: no mutual authentication without trust anchors
    assert "bsf.zn_tls_port" not in {listener.key for listener in bsf_listeners(without_ca)}
    with_ca = config.bsf_config(config.load(None, tmp_path, {**pair, "GBAGW_BSF_ZN_TLS_CA": f["ca"]}))
    assert with_ca.zn_diameter_tls and with_ca.zn_tls_port == 5658  # IANA "diameters" (RFC 6733 2.1)
    assert "bsf.zn_tls_port" in {listener.key for listener in bsf_listeners(with_ca)}


def test_a_bad_zn_tls_port_is_named(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match=r"bsf\.zn_tls_port"):
        config.bsf_config(config.load(None, tmp_path, {"GBAGW_BSF_ZN_TLS_PORT": "70000"}))


def test_naf_diameter_tls_needs_trust_anchors_and_a_certificate(tmp_path: Path) -> None:
    f = _files(tmp_path)
    with pytest.raises(config.ConfigError, match=r"naf\.bsf_tls needs naf\.tls_ca"):
        config.naf_config(config.load(None, tmp_path, {"GBAGW_NAF_BSF_TLS": "true", "GBAGW_NAF_TLS_CA": f["ca"]}))
    env = {
        "GBAGW_NAF_BSF_TLS": "true",
        "GBAGW_NAF_TLS_CA": f["ca"],
        "GBAGW_NAF_TLS_CERT": f["cert"],
        "GBAGW_NAF_TLS_KEY": f["key"],
    }
    naf = config.naf_config(config.load(None, tmp_path, env))
    assert naf.bsf_tls and naf.zn_target.startswith("Diameter/TLS ")
