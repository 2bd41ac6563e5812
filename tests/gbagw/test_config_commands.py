"""`gbagw config show` / `gbagw config check`, `gbagw --version`, and the log section's validation."""

from __future__ import annotations

import json
import socket
import tomllib
from importlib.metadata import version
from pathlib import Path

from tests.procs import ZERO_PORTS, run_cli

TOKEN = "sbi-bearer-7f3a9c"
KPM = "00112233445566778899aabbccddeeff"
CONFIG = f"""
[naf]
sbi_token = "{TOKEN}"

[[mef.enrolees]]
enrolee_id = "CAE-example"
kpm_id = "kpm-1"
kpm = "{KPM}"
"""


def _config_file(tmp_path: Path) -> Path:
    f = tmp_path / "gbagw.toml"
    f.write_text(CONFIG)
    return f


def test_show_names_each_source_fills_the_data_dir_and_hides_credentials(tmp_path: Path) -> None:
    f = _config_file(tmp_path)
    r = run_cli(["config", "show", "--config", str(f), "--data-dir", str(tmp_path)], env={"GBAGW_BSF_UB_PORT": "18080"})
    assert r.returncode == 0, r.stderr
    assert TOKEN not in r.stdout and KPM not in r.stdout
    shown = tomllib.loads(r.stdout)  # the comments aside, the output is a config file
    assert shown["bsf"]["ub_port"] == 18080 and shown["bsf"]["zn_port"] == 3868
    assert shown["bsf"]["kek_file"] == f"{tmp_path}/kek" and shown["bsf"]["store"] == f"sqlite:///{tmp_path}/bsf.sqlite"
    assert shown["naf"]["sbi_token"] == "<hidden>" and shown["mef"]["enrolees"][0]["kpm"] == "<hidden>"
    assert shown["mef"]["enrolees"][0]["kpm_id"] == "kpm-1"
    lines = r.stdout.splitlines()
    assert any("bsf.ub_port" in line and "from env GBAGW_BSF_UB_PORT" in line for line in lines)
    assert any("naf.sbi_token" in line and f"from file {f}" in line for line in lines)
    assert not any("bsf.zn_port" in line for line in lines if line.startswith("#"))


def test_show_json_an_unset_credential_and_a_url_password(tmp_path: Path) -> None:
    env = {"GBAGW_LOG_LEVEL": "warning", "GBAGW_BSF_STORE": "redis://gbagw:r3dis-pw@redis.lab:6380/2"}
    r = run_cli(["config", "show", "--json", "--data-dir", str(tmp_path)], env=env)
    assert r.returncode == 0, r.stderr
    assert "r3dis-pw" not in r.stdout
    out = json.loads(r.stdout)
    assert out["config"]["bsf"]["store"] == "redis://gbagw:<hidden>@redis.lab:6380/2"
    r = run_cli(["config", "check", "bsf", "--data-dir", str(tmp_path)], env={"GBAGW_BSF_STORE": "mysql://u:my-pw@h/x"})
    assert r.returncode == 2 and "got 'mysql://u:<hidden>@h/x'" in r.stdout and "my-pw" not in r.stdout
    assert out["sources"]["log.level"] == "env GBAGW_LOG_LEVEL" and out["data_dir"] == str(tmp_path)
    assert "naf.sbi_token" not in out["sources"] and "bsf.fqdn" not in out["sources"]
    assert out["config"]["log"]["level"] == "warning" and out["config"]["naf"]["sbi_token"] == ""
    assert out["config"]["hss"]["db"] == f"sqlite:///{tmp_path}/hss.sqlite"


def test_what_show_prints_loads_back_to_the_same_configuration(tmp_path: Path) -> None:
    env = {"GBAGW_BSF_FQDN": "bsf.lab.example", "GBAGW_HSS_ALLOWED_PEERS": "bsf.lab.example"}
    first = run_cli(["config", "show", "--data-dir", str(tmp_path)], env=env)
    saved = tmp_path / "shown.toml"
    saved.write_text(first.stdout)
    again = run_cli(["config", "show", "--json", "--config", str(saved), "--data-dir", str(tmp_path)])
    assert again.returncode == 0, again.stderr
    reloaded = json.loads(again.stdout)
    assert reloaded["config"] == tomllib.loads(first.stdout)
    assert reloaded["config"]["bsf"]["fqdn"] == "bsf.lab.example"
    assert reloaded["sources"]["bsf.fqdn"] == f"file {saved}"
    # A hidden credential does not load as if it were one: the file says which to put back.
    shown = run_cli(["config", "show", "--config", str(_config_file(tmp_path)), "--data-dir", str(tmp_path)]).stdout
    saved.write_text(shown)
    r = run_cli(["config", "check", "--config", str(saved), "--data-dir", str(tmp_path)])
    assert r.returncode == 2 and "gbagw: error: naf.sbi_token holds '<hidden>'" in r.stderr
    assert "put the credential back" in r.stderr
    saved.write_text(shown.replace('sbi_token = "<hidden>"', 'sbi_token = ""'))
    r = run_cli(["config", "check", "--config", str(saved), "--data-dir", str(tmp_path)])
    assert r.returncode == 2 and "mef.enrolees[0].kpm holds '<hidden>'" in r.stderr
    r = run_cli(["config", "show"], env={"GBAGW_BSF_STORE": "redis://:<hidden>@redis.lab/0"})
    assert r.returncode == 2 and "bsf.store holds '<hidden>'" in r.stderr


def test_check_reports_every_service_at_once(tmp_path: Path) -> None:
    r = run_cli(["config", "check", "--data-dir", str(tmp_path)], env={"GBAGW_NAF_TLS_CERT": "/nonexistent.pem"})
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stdout.splitlines()
    assert "hss: ok" in lines and "bsf: ok" in lines
    assert "naf: error: naf.tls_cert and naf.tls_key go together" in lines
    assert any(line.startswith("mef: error: mef.cert_file:") and "gen-test-pki" in line for line in lines)
    # A fresh data dir: the KEKs do not exist yet, which is worth knowing before BSFs share a Redis.
    assert any("bsf.kek_file" in line and "does not exist yet" in line for line in lines)
    assert not (tmp_path / "kek").exists() and not (tmp_path / "hss.kek").exists()  # a check creates nothing


def test_check_passes_with_exit_0_once_everything_is_in_place(tmp_path: Path) -> None:
    assert run_cli(["mef", "gen-test-pki", "--out", str(tmp_path / "pki")]).returncode == 0
    r = run_cli(["config", "check", "--data-dir", str(tmp_path)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert [line for line in r.stdout.splitlines() if not line.startswith("  note:")] == [
        "hss: ok",
        "bsf: ok",
        "naf: ok",
        "mef: ok",
    ]


def test_check_opens_the_kek_files_and_the_mef_pki(tmp_path: Path) -> None:
    assert run_cli(["mef", "gen-test-pki", "--out", str(tmp_path / "pki")]).returncode == 0
    (tmp_path / "pki" / "mef.key").write_text("not PEM\n")
    kek = tmp_path / "kek"
    kek.write_bytes(bytes(32))
    kek.chmod(0o644)
    env = {"GBAGW_BSF_KEK_PREVIOUS_FILES": str(tmp_path / "old.kek")}
    r = run_cli(["config", "check", "bsf", "mef", "--data-dir", str(tmp_path)], env=env)
    assert r.returncode == 2
    assert "bsf: error: KEK file" in r.stdout and "chmod 600" in r.stdout
    assert "mef: error: mef.cert_file / mef.key_file: not a PEM certificate chain" in r.stdout
    serve_env = {**ZERO_PORTS, "GBAGW_BSF_KEK_FILE": str(tmp_path / "k2")}
    served = run_cli(["mef", "serve", "--data-dir", str(tmp_path)], env=serve_env)
    assert served.returncode == 2 and "mef.cert_file / mef.key_file: not a PEM" in served.stderr
    assert "Traceback" not in served.stderr  # mef serve runs the same check before it listens
    assert not (tmp_path / "k2").exists()  # ... and before it opens (or creates) the KEK and the store
    kek.chmod(0o600)
    r = run_cli(["config", "check", "bsf", "--data-dir", str(tmp_path)], env=env)
    assert r.returncode == 2 and f"bsf: error: KEK file {tmp_path / 'old.kek'} does not exist" in r.stdout


def test_check_ports_finds_a_taken_port_and_two_services_on_one_port(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        env = {**ZERO_PORTS, "GBAGW_BSF_ZN_PORT": str(port)}  # the others ephemeral: only this one is taken
        r = run_cli(["config", "check", "--ports", "bsf", "--data-dir", str(tmp_path)], env=env)
        assert r.returncode == 2 and "bsf: error: bsf.zn_port: cannot listen on" in r.stdout
        assert "GBAGW_BSF_ZN_PORT" in r.stdout
        # Without --ports nothing is bound: the configuration itself is fine.
        r = run_cli(["config", "check", "bsf", "--data-dir", str(tmp_path)], env=env)
        assert r.returncode == 0, r.stdout
    env = {**ZERO_PORTS, "GBAGW_HSS_ZH_PORT": str(port), "GBAGW_BSF_ZN_PORT": str(port)}
    r = run_cli(["config", "check", "--ports", "hss", "bsf", "--data-dir", str(tmp_path)], env=env)
    assert r.returncode == 2
    assert f"hss+bsf: error: hss.zh_port and bsf.zn_port both ask for 127.0.0.1:{port}" in r.stdout


def test_check_refuses_an_unknown_service() -> None:
    r = run_cli(["config", "check", "pcrf"])
    assert r.returncode == 2 and "unknown service 'pcrf'" in r.stderr


def test_version() -> None:
    r = run_cli(["--version"])
    assert r.returncode == 0 and r.stdout.startswith(f"gbagw {version('gbagw')} (Python 3.")


def test_log_level_and_format_are_validated(tmp_path: Path) -> None:
    for env, message in (
        ({"GBAGW_LOG_LEVEL": "verbose"}, "log.level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ({"GBAGW_LOG_FORMAT": "xml"}, "log.format must be one of json, text, got 'xml'"),
    ):
        r = run_cli(["hss", "list-subscribers", "--data-dir", str(tmp_path)], env=env)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_gen_test_pki_into_an_unwritable_place_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    r = run_cli(["mef", "gen-test-pki", "--out", str(tmp_path / "afile" / "pki")])
    assert r.returncode == 2 and "cannot write the test PKI to" in r.stderr and "Traceback" not in r.stderr
