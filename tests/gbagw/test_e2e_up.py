"""`gbagw up` as a newcomer runs it: one process, every service, metrics moving, JSON logs without keys."""

from __future__ import annotations

import json
import urllib.request
from importlib.metadata import version
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.procs import ZERO_PORTS, free_port, run_cli, start_gbagw

pytestmark = pytest.mark.e2e

K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OP = "cdc202d5123e20f62b6d676ac72cb318"
IMPI = "001010123456789@ims.mnc001.mcc001.3gppnetwork.org"


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - loopback test URL
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _metric(text: str, name: str, label: str) -> float:
    for line in text.splitlines():
        if (line.startswith(name + "{") or line.startswith(name + " ")) and label in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_up_serves_everything_and_exposes_metrics(tmp_path: Path) -> None:
    proc = start_gbagw(["up", "--data-dir", str(tmp_path)], tmp_path, ZERO_PORTS, "up")
    try:
        ub = proc.wait_for(r"bsf: Ub on (http://\S+/)").group(1)
        naf = proc.wait_for(r"naf: demo NAF on (http://\S+/)").group(1)
        admin = proc.wait_for(r"admin: (http://\S+)/metrics").group(1)
        assert _get(admin + "/healthz")[0] == 200
        status, body = _get(admin + "/readyz")
        assert status == 200, body

        r = run_cli(["hss", "add-subscriber", "--data-dir", str(tmp_path), "--impi", IMPI, "--k", K, "--op", OP])
        assert r.returncode == 0, r.stderr
        state = tmp_path / "ue.json"
        r = run_cli(["ue", "bootstrap", "--bsf", ub, "--impi", IMPI, "--k", K, "--op", OP, "--state", str(state)])
        assert r.returncode == 0, r.stderr
        assert "@bsf.gba.test" in r.stdout
        r = run_cli(["ue", "ua-get", "--state", str(state), "--url", naf + "hello", "--naf-fqdn", "naf.gba.test"])
        assert r.returncode == 0 and IMPI in r.stdout, r.stderr

        _, metrics = _get(admin + "/metrics")
        assert _metric(metrics, "gbagw_bsf_ub_responses_total", 'outcome="bootstrapped"') >= 1
        assert _metric(metrics, "gbagw_bsf_ub_responses_total", 'outcome="challenge"') >= 1
        assert _metric(metrics, "gbagw_hss_maa_total", 'result="2001"') >= 1
        assert _metric(metrics, "gbagw_bsf_zn_answers_total", 'result="2001"') >= 1
        assert _metric(metrics, "gbagw_naf_ua_responses_total", 'status="200"') >= 1
        assert _metric(metrics, "gbagw_naf_zn_fetch_seconds_count", "") >= 1
        assert _metric(metrics, "gbagw_naf_cached_keys", "") >= 1  # the key the Ua request fetched
        assert _metric(metrics, "gbagw_bsf_zh_request_seconds_count", "") >= 1
        assert _metric(metrics, "gbagw_bsf_ub_request_seconds_count", 'step="challenge"') >= 1
        assert _metric(metrics, "gbagw_bsf_ub_request_seconds_count", 'step="answer"') >= 1
        assert _metric(metrics, "gbagw_bsf_store_seconds_count", 'op="put_context"') >= 1
        # Once per process, whatever it hosts: the build, and what sizing reads beside the counters.
        assert _metric(metrics, "gbagw_build_info", f'version="{version("gbagw")}"') == 1
        assert _metric(metrics, "process_resident_memory_bytes", "") > 10e6
        assert _metric(metrics, "process_cpu_seconds_total", "") > 0
        assert _metric(metrics, "python_info", 'implementation="CPython"') == 1
        names = [family.name for family in text_string_to_metric_families(metrics)]
        assert len(names) == len(set(names))  # every family once, though four services share the listener
    finally:
        assert proc.stop() == 0  # SIGTERM: clean shutdown

    ks = json.loads(state.read_text())["bootstrap"]["ks"]
    lines = proc.logs.splitlines()
    events = [json.loads(line) for line in lines]  # every line is one JSON event
    assert any(e.get("rid") for e in events if e["msg"].startswith("ub: bootstrapped"))
    # The ids join the services' events: the Ub challenge names the Zh MAR the HSS logged, the Ua request
    # the Zn lookup the BSF logged; a Diameter connection's own events belong to no request.
    (challenge,) = [e for e in events if e["msg"].startswith(f"ub: challenge for {IMPI}")]
    (vector,) = [e for e in events if e["msg"].startswith(f"zh: vector for {IMPI}")]
    assert challenge["peer_rid"] == vector["rid"] and challenge["rid"] != vector["rid"]
    (authenticated,) = [e for e in events if e["msg"].startswith("ua: authenticated B-TID")]
    (lookup,) = [e for e in events if e["msg"].startswith("zn/diameter: naf.gba.test for naf.gba.test")]
    assert authenticated["peer_rid"] == lookup["rid"] and authenticated["rid"] != lookup["rid"]
    connections = [e for e in events if e["logger"] == "gbagw.diameter"]
    assert connections and not any("rid" in e or "peer_rid" in e for e in connections)
    assert any(e["msg"].startswith(f"gbagw {version('gbagw')} serving (pid ") for e in events)
    assert not any("CTRL + C" in e["msg"] for e in events)  # hypercorn's banner: a terminal's, not a service's
    assert events[-1]["msg"] == "stopped"  # after the SIGTERM event and everything the shutdown logged
    assert any(e["msg"].startswith("SIGTERM: stopping") for e in events)
    assert ks not in proc.logs.lower() and K not in proc.logs.lower()


def test_bsf_not_ready_without_hss(tmp_path: Path) -> None:
    dead = free_port()
    env = {"GBAGW_BSF_UB_PORT": "0", "GBAGW_BSF_ZN_PORT": "0", "GBAGW_BSF_HSS_PORT": str(dead)}
    proc = start_gbagw(["bsf", "serve", "--data-dir", str(tmp_path)], tmp_path, env, "bsf")
    try:
        admin = proc.wait_for(r"admin: (http://\S+)/metrics").group(1)
        status, body = _get(admin + "/readyz")
        assert status == 503 and "HSS peer down" in body
        assert _get(admin + "/healthz")[0] == 200
    finally:
        proc.stop()
