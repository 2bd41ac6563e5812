"""Zn configuration keys: GSIDs are TS 29.309 GsIds, per-NAF allowed_gsids, the Nbsp_GBA apiRoot prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from gbagw import config


def _bsf(tmp_path: Path, toml: str) -> config.BsfConfig:
    f = tmp_path / "g.toml"
    f.write_text(toml)
    return config.bsf_config(config.load(f, tmp_path, {}))


def test_gsids_allowed_gsids_and_api_prefix_are_loaded(tmp_path: Path) -> None:
    bsf = _bsf(
        tmp_path,
        '[bsf]\nsbi_api_prefix = "/operator/bsf-1"\n'
        '[[bsf.nafs]]\nfqdn = "a.lab.example"\nrequired_gsids = [7, "4294967295"]\nallowed_gsids = [7]\n'
        '[[bsf.nafs]]\nfqdn = "b.lab.example"\n',
    )
    assert bsf.sbi_api_prefix == "/operator/bsf-1"
    a, b = bsf.nafs
    assert a.required_gsids == ("7", "4294967295") and a.allowed_gsids == ("7",)
    assert b.allowed_gsids is None  # key absent: any GSID
    naf = config.naf_config(config.load(None, tmp_path, {"GBAGW_NAF_GSIDS": "1000001, 12"}))
    assert naf.gsids == ("1000001", "12")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[[bsf.nafs]]\nfqdn = "a.lab.example"\nrequired_gsids = ["pki"]\n', r"bsf\.nafs\[0\]\.required_gsids"),
        ('[[bsf.nafs]]\nfqdn = "a.lab.example"\nallowed_gsids = [4294967296]\n', r"bsf\.nafs\[0\]\.allowed_gsids"),
        ('[[bsf.nafs]]\nfqdn = "a.lab.example"\nallowed_gsids = ["07"]\n', r"GSID '07' is not an integer"),
        ('[[bsf.nafs]]\nfqdn = "a.lab.example"\nallowed_gsids = [-1]\n', r"allowed_gsids: GSID -1"),
        ('[[bsf.nafs]]\nfqdn = "a.lab.example"\nallowed_gsids = "7"\n', r"allowed_gsids must be a list"),
        ('[bsf]\nsbi_api_prefix = "bsf-1"\n', r"bsf\.sbi_api_prefix"),
        ('[bsf]\nsbi_api_prefix = "/bsf-1/"\n', r"bsf\.sbi_api_prefix"),
        ('[bsf]\nsbi_api_prefix = "/a?b"\n', r"bsf\.sbi_api_prefix"),
    ],
)
def test_bad_zn_keys_are_named(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(config.ConfigError, match=message):
        _bsf(tmp_path, toml)


def test_a_naf_gsid_json_cannot_carry_is_refused_at_load(tmp_path: Path) -> None:
    """TS 29.309 GsId is a Uint32: a non-numeric GSID never reaches a Nbsp_GBA request."""
    with pytest.raises(config.ConfigError, match=r"naf\.gsids: GSID 'pki-portal'"):
        config.naf_config(config.load(None, tmp_path, {"GBAGW_NAF_GSIDS": "pki-portal"}))
