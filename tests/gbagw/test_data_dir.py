"""--data-dir and GBAGW_DATA_DIR, reads that create nothing, provisioning that names the path it wrote,
and `config check` trying the Redis store it is given (issue 24 item 7)."""

from __future__ import annotations

from pathlib import Path

from tests import private_redis
from tests.procs import free_port, run_cli

IMPI = "001010000000001@ims.mnc001.mcc001.3gppnetwork.org"
K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OP = "cdc202d5123e20f62b6d676ac72cb318"


def test_reads_in_an_empty_data_dir_create_nothing(tmp_path: Path) -> None:
    data = tmp_path / "var"
    data.mkdir()
    for args, message in (
        (["hss", "list-subscribers"], f"no subscriber database at {data / 'hss.sqlite'} (hss.db)"),
        (["hss", "remove-subscriber", "--impi", IMPI], "no subscriber database at"),
        (["hss", "set-guss", "--impi", IMPI, "--clear"], "no subscriber database at"),
        (["bsf", "context", "--impi", IMPI], f"no BSF context store at {data / 'bsf.sqlite'} (bsf.store)"),
        (["bsf", "revoke", "--impi", IMPI], "no BSF context store at"),
    ):
        r = run_cli([*args, "--data-dir", str(data)])
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)
        assert r.stderr.count("\n") == 1
    assert list(data.iterdir()) == []  # no database, no KEK


def test_gbagw_data_dir_works_like_the_option_and_writes_are_named(tmp_path: Path) -> None:
    env = {"GBAGW_DATA_DIR": str(tmp_path / "lab")}
    r = run_cli(["hss", "add-subscriber", "--impi", IMPI, "--k", K, "--op", OP], env=env)
    assert r.returncode == 0, r.stderr
    db = (tmp_path / "lab" / "hss.sqlite").resolve()
    assert r.stdout.strip() == f"added {IMPI} to {db}" and db.exists()
    r = run_cli(["hss", "list-subscribers", "--json"], env=env)
    assert r.returncode == 0 and IMPI in r.stdout
    # --data-dir wins over the variable: the other directory holds nothing
    r = run_cli(["hss", "list-subscribers", "--data-dir", str(tmp_path / "other")], env=env)
    assert r.returncode == 2 and "no subscriber database" in r.stderr
    r = run_cli(["hss", "remove-subscriber", "--impi", IMPI], env=env)
    assert r.returncode == 0 and r.stdout.strip() == f"removed {IMPI} from {db}"


def test_config_check_pings_the_redis_store(tmp_path: Path) -> None:
    closed = f"redis://:secret@127.0.0.1:{free_port()}/0"
    # from another machine (no --ports): a note; where the BSF runs (--ports): an error, exit 2
    r = run_cli(["config", "check", "bsf", "--data-dir", str(tmp_path)], env={"GBAGW_BSF_STORE": closed})
    assert r.returncode == 0 and "bsf: ok\n" in r.stdout
    assert "\n  note: bsf.store: redis://:<hidden>@127.0.0.1:" in r.stdout
    assert "does not answer PING within 2 s" in r.stdout
    ports = {"GBAGW_BSF_UB_PORT": "0", "GBAGW_BSF_ZN_PORT": "0"}
    check = ["config", "check", "bsf", "--ports", "--data-dir", str(tmp_path)]
    r = run_cli(check, env={"GBAGW_BSF_STORE": closed, **ports})
    assert r.returncode == 2, r.stdout + r.stderr
    assert "bsf: error: bsf.store: redis://:<hidden>@127.0.0.1:" in r.stdout and "does not answer PING" in r.stdout
    assert "secret" not in r.stdout + r.stderr
    r = run_cli(check, env={"GBAGW_BSF_STORE": private_redis.url(11), **ports})
    assert r.returncode == 0 and "bsf: ok" in r.stdout, r.stdout + r.stderr
