from __future__ import annotations

from pathlib import Path

import pytest

from gba import pki
from gbagw import config
from naf.config import BsfRoute
from tests.pki_files import write_pair
from tests.procs import run_cli


def test_defaults_and_env_override(tmp_path: Path) -> None:
    cfg = config.load(None, tmp_path, {"GBAGW_HSS_ZH_PORT": "13869", "GBAGW_HSS_ALLOWED_PEERS": "a.test, b.test"})
    hss = config.hss_config(cfg)
    assert hss.zh_port == 13869 and hss.allowed_peers == ("a.test", "b.test")
    assert hss.db == tmp_path / "hss.sqlite" and hss.fqdn == "hss.gba.test"


def test_ub_http_timeouts_are_configurable_and_checked(tmp_path: Path) -> None:
    bsf = config.bsf_config(config.load(None, tmp_path, {"GBAGW_BSF_UB_IDLE_TIMEOUT": "620"}))
    assert (bsf.ub_idle_timeout, bsf.ub_request_timeout) == (620.0, 30.0)
    with pytest.raises(config.ConfigError, match=r"bsf\.ub_request_timeout"):
        config.bsf_config(config.load(None, tmp_path, {"GBAGW_BSF_UB_REQUEST_TIMEOUT": "0"}))


def test_ub_profile_keys_default_and_validation(tmp_path: Path) -> None:
    """bsf.ub_qop (TS 24.109 4.2 b: auth-int), bsf.max_key_lifetime (0 = no bound), bsf.tmpi_lifetime."""
    bsf = config.bsf_config(config.load(None, tmp_path, {}))
    assert (bsf.ub_qop, bsf.max_key_lifetime, bsf.tmpi_lifetime) == (("auth-int",), 0, 2592000)
    env = {"GBAGW_BSF_UB_QOP": "auth-int, auth", "GBAGW_BSF_MAX_KEY_LIFETIME": "86400"}
    bsf = config.bsf_config(config.load(None, tmp_path, env))
    assert (bsf.ub_qop, bsf.max_key_lifetime) == (("auth-int", "auth"), 86400)
    for var, value, message in (
        ("GBAGW_BSF_UB_QOP", "auth-conf", r"bsf\.ub_qop must be"),
        ("GBAGW_BSF_UB_QOP", "auth,auth", r"bsf\.ub_qop must be"),
        ("GBAGW_BSF_UB_QOP", "", r"bsf\.ub_qop must be"),
        ("GBAGW_BSF_MAX_KEY_LIFETIME", "-1", r"bsf\.max_key_lifetime must be a number of seconds >= 0"),
        ("GBAGW_BSF_TMPI_LIFETIME", "0", r"bsf\.tmpi_lifetime must be a positive number of seconds"),
        ("GBAGW_BSF_KEY_LIFETIME", "0", r"bsf\.key_lifetime must be a positive number of seconds"),
    ):
        with pytest.raises(config.ConfigError, match=message):
            config.bsf_config(config.load(None, tmp_path, {var: value}))


def test_toml_file_overrides(tmp_path: Path) -> None:
    f = tmp_path / "g.toml"
    f.write_text('[hss]\nfqdn = "hss.lab.example"\nzh_port = 4000\n')
    hss = config.hss_config(config.load(f, tmp_path, {}))
    assert hss.fqdn == "hss.lab.example" and hss.zh_port == 4000


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ("[hss]\nzh_port = 70000\n", {}, "hss.zh_port"),
        ("[hss]\nfqdn = 'not a host'\n", {}, "hss.fqdn"),
        ("[hss]\nbogus = 1\n", {}, "unknown configuration key hss.bogus"),
        ("[hss\n", {}, "not valid TOML"),
        ("", {"GBAGW_HSS_ZH_PORT": "many"}, "hss.zh_port must be an integer"),
        ("", {"GBAGW_NOPE_X": "1"}, "names no configuration key"),
        ("", {"GBAGW_HSS_WATCHDOG_INTERVAL": "-1"}, "positive"),
    ],
)
def test_invalid_configuration_is_named(tmp_path: Path, toml: str, env: dict[str, str], message: str) -> None:
    f = tmp_path / "g.toml"
    f.write_text(toml)
    with pytest.raises(config.ConfigError, match=message):
        config.hss_config(config.load(f, tmp_path, env))


def test_cli_reports_config_errors_with_exit_2(tmp_path: Path) -> None:
    r = run_cli(["hss", "list-subscribers", "--data-dir", str(tmp_path)], env={"GBAGW_HSS_ZH_PORT": "x"})
    assert r.returncode == 2 and "hss.zh_port" in r.stderr and "Traceback" not in r.stderr


def test_help_lists_design_commands() -> None:
    r = run_cli(["--help"])
    for cmd in ("up", "hss", "bsf", "naf", "ue"):
        assert cmd in r.stdout
    r = run_cli(["hss", "--help"])
    for cmd in ("serve", "add-subscriber", "list-subscribers", "remove-subscriber", "set-guss", "import"):
        assert cmd in r.stdout


def test_import_example_subscribers(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "subscribers.example.toml"
    r = run_cli(["hss", "import", str(example), "--data-dir", str(tmp_path)])
    assert r.returncode == 0, r.stderr
    r = run_cli(["hss", "list-subscribers", "--data-dir", str(tmp_path)])
    assert "001010000000002@" in r.stdout and "guss=yes" in r.stdout


# add-subscriber opens (or creates) the KEK; the commands that only read need a database first.
SUBSCRIBER = ["--impi", "u@ims.test", "--k", "00" * 16, "--opc", "00" * 16]


def test_kek_file_permissions_checked(tmp_path: Path) -> None:
    kek = tmp_path / "hss.kek"
    kek.write_bytes(bytes(32))
    kek.chmod(0o644)
    r = run_cli(["hss", "add-subscriber", *SUBSCRIBER, "--data-dir", str(tmp_path)])
    assert r.returncode == 2 and "chmod 600" in r.stderr


def test_kek_file_of_wrong_size_and_missing_kek_for_rotation(tmp_path: Path) -> None:
    kek = tmp_path / "hss.kek"
    kek.write_bytes(bytes(16))
    kek.chmod(0o600)
    r = run_cli(["hss", "add-subscriber", *SUBSCRIBER, "--data-dir", str(tmp_path)])
    assert r.returncode == 2 and "32 octets" in r.stderr
    r = run_cli(["bsf", "rotate-kek", "--data-dir", str(tmp_path / "empty"), "--new-kek", str(tmp_path / "n")])
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_tls_files_are_loaded_at_configuration_time(tmp_path: Path) -> None:
    ca = pki.make_ca()
    cert, key = write_pair(tmp_path, "bsf.gba.test", ca)
    _, other_key = write_pair(tmp_path, "other.gba.test", ca)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    (tmp_path / "junk.pem").write_text("not PEM\n")
    good = {"GBAGW_BSF_ZN_TLS_CERT": str(cert), "GBAGW_BSF_ZN_TLS_KEY": str(key)}
    bsf = config.bsf_config(config.load(None, tmp_path, {**good, "GBAGW_BSF_ZN_TLS_CA": str(tmp_path / "ca.pem")}))
    assert bsf.zn_tls_cert == cert and bsf.zn_tls_ca == tmp_path / "ca.pem"
    refused = [
        (
            {"GBAGW_BSF_UB_TLS_CERT": "/nonexistent.pem", "GBAGW_BSF_UB_TLS_KEY": str(key)},
            "bsf.ub_tls_cert: cannot read",
        ),
        ({**good, "GBAGW_BSF_ZN_TLS_KEY": str(tmp_path / "junk.pem")}, "bsf.zn_tls_cert / bsf.zn_tls_key: not a PEM"),
        ({**good, "GBAGW_BSF_ZN_TLS_KEY": str(other_key)}, r"bsf.zn_tls_key: .*\(KEY_VALUES_MISMATCH\)"),
        ({**good, "GBAGW_BSF_ZN_TLS_CA": str(tmp_path / "junk.pem")}, "bsf.zn_tls_ca: not a PEM CA certificate"),
        ({"GBAGW_BSF_SBI_OAUTH_JWKS": str(tmp_path)}, "bsf.sbi_oauth_jwks: cannot read .*: Is a directory"),
    ]
    for env, message in refused:
        with pytest.raises(config.ConfigError, match=message):
            config.bsf_config(config.load(None, tmp_path, env))
    with pytest.raises(config.ConfigError, match=r"naf\.tls_cert and naf\.tls_key go together"):
        config.naf_config(config.load(None, tmp_path, {"GBAGW_NAF_TLS_CERT": str(cert)}))
    with pytest.raises(config.ConfigError, match=r"naf\.tls_ca: not a PEM CA"):
        config.naf_config(config.load(None, tmp_path, {"GBAGW_NAF_TLS_CA": str(tmp_path / "junk.pem")}))


def test_a_typo_in_a_table_list_entry_is_named(tmp_path: Path) -> None:
    """[[bsf.nafs]] and [[mef.enrolees]] keys are read with defaults: a misspelt one would pass silently."""
    f = tmp_path / "g.toml"
    f.write_text('[[bsf.nafs]]\nfqdn = "naf.lab.example"\ndiameter_hots = "x.lab.example"\n')
    with pytest.raises(
        config.ConfigError, match=r"bsf\.nafs\[0\]: unknown key 'diameter_hots' \(known: fqdn, diameter_host"
    ):
        config.bsf_config(config.load(f, tmp_path, {}))
    f.write_text('[[mef.enrolees]]\nenrolee_id = "CAE-x"\ncert_name = "CAE-x"\ntarget = []\nkpmid = "k"\n')
    with pytest.raises(config.ConfigError, match=r"mef\.enrolees\[0\]: unknown keys 'kpmid', 'target'"):
        config.mef_config(config.load(f, tmp_path, {}))


def test_import_refuses_unknown_keys_and_tables(tmp_path: Path) -> None:
    f = tmp_path / "subs.toml"
    zeros = "0" * 32
    f.write_text(f'[[subscriber]]\nimpi = "a@ims.test"\nk = "{zeros}"\nopc = "{zeros}"\nafm = "8000"\n')
    r = run_cli(["hss", "import", str(f), "--data-dir", str(tmp_path)])
    assert r.returncode == 2 and "subscriber #1: unknown key 'afm'" in r.stderr and "nothing imported" in r.stderr
    f.write_text('[[subscribers]]\nimpi = "a@ims.test"\n')
    r = run_cli(["hss", "import", str(f), "--data-dir", str(tmp_path)])
    assert r.returncode == 2 and "expected [[subscriber]] tables only" in r.stderr
    assert run_cli(["hss", "list-subscribers", "--data-dir", str(tmp_path)]).stdout == ""


def test_naf_bsf_realms_are_checked_at_load(tmp_path: Path) -> None:
    """naf.bsf_realms routes Zn by the B-TID's realm (TS 29.109 5.2); each bad entry is named."""
    f = tmp_path / "gbagw.toml"
    f.write_text(
        '[naf]\nonem2m_ua_id = "ff00000001"\n[[naf.bsf_realms]]\nrealm = "home2.test"\nhost = "10.0.0.2"\n'
        'port = 3870\nsbi_url = "https://bsf.home2.test"\n'
    )
    naf = config.naf_config(config.load(f, tmp_path, {}))
    assert naf.bsf_realms == (BsfRoute("home2.test", "10.0.0.2", 3870, "https://bsf.home2.test", None),)
    assert naf.route_for("x@bsf.home2.test") == naf.bsf_realms[0] and naf.route_for("x@bsf.gba.test") == naf.home_route
    assert naf.onem2m_ua_id == bytes.fromhex("ff00000001")
    for entry, message in (
        ('realm = "gba.test"\nhost = "h"\nport = 1', r"naf\.bsf_realms\[0\]\.realm 'gba\.test' is configured twice"),
        ('realm = "x.test"\nhost = "h"', r"naf\.bsf_realms\[0\] needs realm, host and port"),
        ('realm = "x.test"\nhost = "h"\nport = 70000', r"naf\.bsf_realms\[0\]\.port must be a TCP port"),
        ('realm = "x.test"\nhost = "h"\nport = 1\nsoap_url = "ftp://x"', r"bsf_realms\[0\]\.soap_url must be an http"),
        ('realm = "x.test"\nhost = "h"\nport = 1\nhots = "y"', r"bsf_realms\[0\]: unknown key 'hots'"),
    ):
        f.write_text(f"[[naf.bsf_realms]]\n{entry}\n")
        with pytest.raises(config.ConfigError, match=message):
            config.naf_config(config.load(f, tmp_path, {}))
    with pytest.raises(config.ConfigError, match=r"naf\.onem2m_ua_id: a Ua security protocol id is 10 hex digits"):
        config.naf_config(config.load(None, tmp_path, {"GBAGW_NAF_ONEM2M_UA_ID": "0100"}))


def test_mef_listener_limits_default_and_validation(tmp_path: Path) -> None:
    """mef.max_connections (per listener), mef.handshake_timeout and mef.request_timeout (docs/mef-api.md)."""
    mef = config.mef_config(config.load(None, tmp_path, {}))
    assert (mef.max_connections, mef.handshake_timeout, mef.request_timeout) == (256, 10.0, 10.0)
    env = {"GBAGW_MEF_MAX_CONNECTIONS": "50", "GBAGW_MEF_HANDSHAKE_TIMEOUT": "2.5"}
    mef = config.mef_config(config.load(None, tmp_path, env))
    assert (mef.max_connections, mef.handshake_timeout) == (50, 2.5)
    for var, value, message in (
        ("GBAGW_MEF_MAX_CONNECTIONS", "0", r"mef\.max_connections must be a whole number of at least 1, got 0"),
        ("GBAGW_MEF_HANDSHAKE_TIMEOUT", "0", r"mef\.handshake_timeout must be a positive number"),
        ("GBAGW_MEF_REQUEST_TIMEOUT", "-1", r"mef\.request_timeout must be a positive number"),
    ):
        with pytest.raises(config.ConfigError, match=message):
            config.mef_config(config.load(None, tmp_path, {var: value}))


def test_listener_caps_and_write_timeouts_are_configurable_and_checked(tmp_path: Path) -> None:
    """Issue 27 classes 1 and 2: bsf.ub_max_connections, bsf.zn_max_connections, bsf.zn_write_timeout,
    hss.max_connections, hss.write_timeout."""
    cfg = config.load(None, tmp_path, {"GBAGW_BSF_ZN_MAX_CONNECTIONS": "100", "GBAGW_HSS_WRITE_TIMEOUT": "3"})
    bsf, hss = config.bsf_config(cfg), config.hss_config(cfg)
    assert (bsf.ub_max_connections, bsf.zn_max_connections, bsf.zn_write_timeout) == (4096, 100, 10.0)
    assert (hss.max_connections, hss.write_timeout) == (4096, 3.0)
    for var, value, message in (
        ("GBAGW_BSF_UB_MAX_CONNECTIONS", "0", r"bsf\.ub_max_connections must be a whole number of at least 1"),
        ("GBAGW_BSF_ZN_MAX_CONNECTIONS", "1.5", r"bsf\.zn_max_connections must be an integer"),
        ("GBAGW_BSF_ZN_WRITE_TIMEOUT", "0", r"bsf\.zn_write_timeout must be a positive number"),
    ):
        with pytest.raises(config.ConfigError, match=message):
            config.bsf_config(config.load(None, tmp_path, {var: value}))
    with pytest.raises(config.ConfigError, match=r"hss\.max_connections must be a whole number"):
        config.hss_config(config.load(None, tmp_path, {"GBAGW_HSS_MAX_CONNECTIONS": "-3"}))
