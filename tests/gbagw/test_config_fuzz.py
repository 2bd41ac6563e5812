"""Any TOML shape over the known sections and keys is one line naming the key and exit 2, never a
traceback (issue 24 item 6): the loader judges each value's TOML type by the embedded default's, then
each service's config function judges the value."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gbagw import config
from tests.procs import run_cli

DEFAULTS = config._defaults()
SECTIONS = sorted(DEFAULTS)

scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        [
            "",
            "127.0.0.1",
            "a.test",
            "x.gba.test",
            "sqlite:///x",
            "redis://127.0.0.1:1/0",
            "0" * 10,
            "http://[::1",
            "a\x00b",
            "sqlite:///\x00",
        ]
    ),
    st.datetimes(max_value=dt.datetime(2100, 1, 1)),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _entry(name: str) -> st.SearchStrategy[dict[str, Any]]:
    """A table of a table list: its known keys (and a stray one) with any values."""
    keys = list(config.TABLE_LISTS[name])
    return st.dictionaries(st.sampled_from([*keys, "stray"]), values, max_size=len(keys) + 1)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for section in draw(st.lists(st.sampled_from(SECTIONS), max_size=3, unique=True)):
        if draw(st.integers(0, 9)) == 0:  # `bsf = 3`, `[[bsf]]`, ...
            doc[section] = draw(values)
            continue
        table: dict[str, Any] = {}
        for key in draw(st.lists(st.sampled_from(sorted(DEFAULTS[section])), max_size=4, unique=True)):
            name = f"{section}.{key}"
            if name in config.TABLE_LISTS and draw(st.booleans()):
                table[key] = draw(st.lists(_entry(name), max_size=2))
            else:
                table[key] = draw(values)
        doc[section] = table
    return doc


def _load_everything(path: Path, data_dir: Path) -> None:
    cfg = config.load(path, data_dir, {})
    config.log_config(cfg)
    config.hss_config(cfg)
    config.bsf_config(cfg)
    config.naf_config(cfg)
    config.mef_config(cfg)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_any_toml_shape_is_one_line_naming_a_key_or_loads(doc: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "g.toml"
        path.write_text(tomli_w.dumps(doc))
        try:
            _load_everything(path, Path(tmp))
        except config.ConfigError as exc:
            message = str(exc)
            assert message and "\n" not in message
            named = [f"{s}" for s in doc]  # the key named is one of the document's (or its section)
            assert any(s in message for s in named), message


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("bsf = 3\n", "bsf must be a table, got an integer"),
        ('log = "x"\n', "log must be a table, got a string"),
        ("[bsf]\nnafs = 3\n", "bsf.nafs must be a list of tables ([[bsf.nafs]]), got an integer"),
        ("[[bsf]]\nfqdn = 'a.test'\n", "bsf must be a table, got a list"),
        ("[bsf]\nub_port = '8080'\n", "bsf.ub_port must be an integer, got a string ('8080')"),
        ("[bsf]\nzh_timeout = 'x'\n", "bsf.zh_timeout must be a number, got a string"),
        ("[bsf]\nzh_timeout = 5\n", None),  # an integer is a number
        ("[bsf]\nzn_peers = 'a.test'\n", "bsf.zn_peers must be a list of strings, got a string"),
        ("[bsf]\nzn_peers = [1]\n", "bsf.zn_peers must be a list of strings, got a list"),
        ("[bsf]\nfqdn = {a = 1}\n", "bsf.fqdn must be a string, got a table"),
        ("[bsf]\nzh_sip_number_auth_items = 1\n", "bsf.zh_sip_number_auth_items must be true or false"),
        ("[bsf]\nub_port = true\n", "bsf.ub_port must be an integer, got a boolean"),
        ("[[bsf.nafs]]\nfqdn = 'n.test'\nsend_impi = 'no'\n", "bsf.nafs[0].send_impi must be true or false"),
        ("[[bsf.nafs]]\nfqdn = 'n.test'\nrequired_gsids = 'a'\n", "bsf.nafs[0].required_gsids must be a list"),
        ("[bsf]\nnafs = [1]\n", "bsf.nafs[0] must be a table, got an integer"),
        ("[naf]\nbsf_realms = {realm = 'x'}\n", "naf.bsf_realms must be a list of tables"),
        ("[mef]\nenrolees = 'x'\n", "mef.enrolees must be a list of tables"),
        ("[naf]\nsbi_token = 5\n", "naf.sbi_token must be a string, got an integer (file"),
        ("[bsf]\nchallenge_lifetime = inf\n", "bsf.challenge_lifetime must be an integer, got a number (inf)"),
        ("[bsf]\nzh_timeout = inf\n", "bsf.zh_timeout must be a positive number"),
        ("[bsf]\nrate_per_impi = nan\n", "bsf.rate_per_impi must be a number >= 0"),
        (
            "[naf]\nbsf_realms = [{realm='r.test', host='h', port=1, sbi_url='http://[::1'}]\n",
            "sbi_url must be an http",
        ),
        ('[bsf]\nzn_tls_cert = "a\\u0000"\nzn_tls_key = "k"\n', "bsf.zn_tls_cert: not a usable path"),
        ("[bsf]\nkey_lifetime = 1979-05-27\n", "bsf.key_lifetime must be an integer, got a date"),
    ],
)
def test_each_wrong_shape_is_named(tmp_path: Path, toml: str, message: str | None) -> None:
    path = tmp_path / "g.toml"
    path.write_text(toml)
    if message is None:
        _load_everything(path, tmp_path)
        return
    with pytest.raises(config.ConfigError) as caught:
        _load_everything(path, tmp_path)
    assert message in str(caught.value)


@pytest.mark.parametrize("toml", ["bsf = 3\n", "[[bsf]]\n", "[bsf]\nnafs = 3\n", '[log]\nlevel = ["x"]\n'])
def test_the_cli_prints_one_line_and_exits_2(tmp_path: Path, toml: str) -> None:
    path = tmp_path / "g.toml"
    path.write_text(toml)
    r = run_cli(["config", "check", "--config", str(path), "--data-dir", str(tmp_path)])
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("gbagw: error: ") and r.stderr.count("\n") == 1, r.stderr
