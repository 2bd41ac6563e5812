"""Deploy artefacts checked with the real tools: the Helm chart through `helm lint --strict` and
`helm template`, its manifests schema-validated against the Kubernetes OpenAPI (kubernetes-validate), the
compose file through `docker-compose config`, the Dockerfile through hadolint with its HEALTHCHECK run
against a live admin listener, the systemd units against the CLI."""

from __future__ import annotations

import base64
import configparser
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gba.keywrap import Keyring
from gbagw import config as gbagw_config
from gbaio.kek import load_or_create_kek
from tests.deploy.tools import CHART, LAB_KEK, find_tool, helm_manifests, helm_values_file, run_tool
from tests.procs import gbagw_process, run_cli

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "redis.enabled": False,
            "hss.enabled": False,
            "hss.host": "hss.operator",
            "autoscaling.enabled": False,
            "kek.existingSecret": "my-kek",
        },
    ],
)
def test_helm_chart_lints_and_renders_valid_kubernetes(overrides: dict[str, Any], tmp_path: Path) -> None:
    out = run_tool("helm", "lint", "--strict", str(CHART), "-f", helm_values_file(overrides, tmp_path))
    assert "0 chart(s) failed" in out
    docs = helm_manifests(overrides, tmp_path)
    kinds = sorted(d["kind"] for d in docs)
    for d in docs:
        kubernetes_validate.validate(d, "1.30.0", strict=True)
    if overrides:
        assert kinds == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service"]
        config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["gbagw.toml"]
        assert 'hss_host = "hss.operator"' in config and "redis.example.internal" in config
    else:
        assert kinds.count("Deployment") == 3 and "HorizontalPodAutoscaler" in kinds and "Secret" in kinds
    bsf = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "lab-bsf")
    container = bsf["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert bsf["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_helm_monitoring_scrapes_admin_ports_and_carries_the_rules(tmp_path: Path) -> None:
    """Prometheus Operator resources: each ServiceMonitor reaches a container's admin port through a
    metrics Service and sets the job the alert rules expect; the PrometheusRule is the rules file."""
    docs = helm_manifests(
        {
            "monitoring.serviceMonitor.enabled": True,
            "monitoring.prometheusRule.enabled": True,
            "monitoring.labels": {"release": "prom"},
        },
        tmp_path,
    )
    for d in docs:
        if not d["apiVersion"].startswith("monitoring.coreos.com/"):  # CRDs: not in the Kubernetes OpenAPI
            kubernetes_validate.validate(d, "1.30.0", strict=True)
    services = [d for d in docs if d["kind"] == "Service"]
    pods = [d["spec"]["template"] for d in docs if d["kind"] == "Deployment"]
    monitors = [d for d in docs if d["kind"] == "ServiceMonitor"]
    jobs = set()
    for monitor in monitors:
        assert monitor["metadata"]["labels"]["release"] == "prom"
        (svc,) = [
            s
            for s in services
            if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"].get("labels", {}).items()
        ]
        (endpoint,) = monitor["spec"]["endpoints"]
        (port,) = [p for p in svc["spec"]["ports"] if p["name"] == endpoint["port"]]
        (pod,) = [p for p in pods if svc["spec"]["selector"].items() <= p["metadata"]["labels"].items()]
        container_ports = {(p["name"], p["containerPort"]) for c in pod["spec"]["containers"] for p in c["ports"]}
        assert (port["targetPort"], port["port"]) in container_ports and port["targetPort"] == "admin"
        (relabel,) = endpoint["relabelings"]
        assert relabel["targetLabel"] == "job"
        jobs.add(relabel["replacement"])
    # The same job names as the compose lab's scrape config, which GbagwTargetDown matches.
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert jobs == {j["job_name"] for j in scrape["scrape_configs"]} - {"gbagw-naf"}
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    assert rule["spec"] == yaml.safe_load((DEPLOY / "prometheus" / "gbagw-rules.yaml").read_text())


def test_helm_config_is_valid_gbagw_toml(tmp_path: Path) -> None:
    docs = helm_manifests({}, tmp_path)
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["gbagw.toml"]
    kek = tmp_path / "kek"  # what Kubernetes mounts from the chart's Secret
    kek.write_bytes(base64.b64decode(next(d for d in docs if d["kind"] == "Secret")["data"]["kek"]))
    kek.chmod(0o400)
    (tmp_path / "g.toml").write_text(config.replace("/etc/gbagw/kek/kek", str(kek)))
    r = run_cli(["config", "check", "bsf", "hss", "--config", str(tmp_path / "g.toml"), "--data-dir", str(tmp_path)])
    assert r.returncode == 0 and "bsf: ok" in r.stdout, r.stdout + r.stderr  # as `bsf serve` in the pod finds it


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kek.value": ""}, "kek.value is required unless kek.existingSecret is set"),
        ({"kek.value": base64.b64encode(bytes(16)).decode()}, "kek.value must be 32 random octets in base64"),
        ({"kek.value": "not base64!"}, "kek.value must be 32 random octets in base64"),
        ({"kek.value": LAB_KEK, "kek.previous": ["AAAA"]}, r"kek.previous\[0\] must be 32 random octets"),
    ],
)
def test_helm_refuses_a_missing_or_malformed_kek(overrides: dict[str, Any], message: str, tmp_path: Path) -> None:
    """Without this, every BSF pod would crash-loop on a KEK it cannot use."""
    values = helm_values_file(overrides, tmp_path)
    r = subprocess.run([find_tool("helm"), "template", "lab", str(CHART), "-f", values], capture_output=True, text=True)
    assert r.returncode != 0 and re.search(message, r.stderr), r.stderr
    assert overrides["kek.value"] not in r.stderr or not overrides["kek.value"]  # never echoes the key


def test_helm_external_redis_password_comes_from_a_secret(tmp_path: Path) -> None:
    """A Redis URL with a password never lands in the ConfigMap: the BSF gets it from the operator's Secret."""
    docs = helm_manifests({"redis.enabled": False, "redis.externalUrlSecret.name": "redis-url"}, tmp_path)
    for d in docs:
        kubernetes_validate.validate(d, "1.30.0", strict=True)
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["gbagw.toml"]
    assert "store =" not in config  # GBAGW_BSF_STORE (the Secret's URL) is the store
    bsf = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "lab-bsf")
    env = {e["name"]: e for e in bsf["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["GBAGW_BSF_STORE"]["valueFrom"] == {"secretKeyRef": {"name": "redis-url", "key": "url"}}
    values = helm_values_file(
        {"redis.enabled": False, "redis.externalUrl": "rediss://gbagw:s3cret-pw@redis:6380/0"}, tmp_path
    )
    r = subprocess.run([find_tool("helm"), "template", "lab", str(CHART), "-f", values], capture_output=True, text=True)
    assert r.returncode != 0 and "redis.externalUrl holds a password" in r.stderr and "s3cret-pw" not in r.stderr


def test_helm_bsf_rollouts_and_drains_keep_bsfs_serving(tmp_path: Path) -> None:
    """maxUnavailable 0 rollouts, a PodDisruptionBudget, replicas spread over nodes, a preStop pause
    inside the grace period, and no replicas field for helm upgrades to reset under the HPA."""
    docs = helm_manifests({}, tmp_path)
    bsf = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "lab-bsf")
    labels = bsf["spec"]["template"]["metadata"]["labels"]
    (pdb,) = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == bsf["spec"]["selector"]
    assert bsf["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert bsf["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert "replicas" not in bsf["spec"]
    pod = bsf["spec"]["template"]["spec"]
    (spread,) = pod["topologySpreadConstraints"]
    assert (
        spread["topologyKey"] == "kubernetes.io/hostname"
        and spread["labelSelector"]["matchLabels"].items() <= labels.items()
    )
    pause = pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep" and 0 < int(pause[1]) < pod["terminationGracePeriodSeconds"]
    fixed = helm_manifests({"autoscaling.enabled": False, "bsf.podDisruptionBudget.enabled": False}, tmp_path)
    bsf = next(d for d in fixed if d["kind"] == "Deployment" and d["metadata"]["name"] == "lab-bsf")
    assert bsf["spec"]["replicas"] == 2 and not [d for d in fixed if d["kind"] == "PodDisruptionBudget"]


def test_helm_previous_keks_reach_the_bsf_keyring(tmp_path: Path) -> None:
    """kek.previous lands in the Secret and in bsf.kek_previous_files; the BSF loads them as a Keyring
    that opens what the earlier KEK sealed; a changed Secret changes the pods' checksum (a rollout)."""
    current, earlier = os.urandom(32), os.urandom(32)
    b64 = base64.b64encode
    overrides = {"kek.value": b64(current).decode(), "kek.previous": [b64(earlier).decode()]}
    docs = helm_manifests(overrides, tmp_path)
    secret = next(d for d in docs if d["kind"] == "Secret")["data"]
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["gbagw.toml"]
    mounted = tmp_path / "kek-mount"
    mounted.mkdir()
    for name, value in secret.items():  # what Kubernetes puts in the kek volume
        (mounted / name).write_bytes(base64.b64decode(value))
        (mounted / name).chmod(0o400)
    (tmp_path / "g.toml").write_text(config.replace("/etc/gbagw/kek/", f"{mounted}/"))
    bsf = gbagw_config.bsf_config(gbagw_config.load(tmp_path / "g.toml", tmp_path, {}))
    assert bsf.kek_previous_files == (mounted / "previous-0",)
    keys = Keyring(load_or_create_kek(bsf.kek_file), [load_or_create_kek(p) for p in bsf.kek_previous_files])
    assert keys.unseal(Keyring(earlier).seal(b"Ks", b"btid"), b"btid") == b"Ks"
    pod = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "lab-bsf")
    before = pod["spec"]["template"]["metadata"]["annotations"]["checksum/kek"]
    docs = helm_manifests({**overrides, "kek.previous": []}, tmp_path)
    pod = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "lab-bsf")
    assert pod["spec"]["template"]["metadata"]["annotations"]["checksum/kek"] != before


def test_compose_file() -> None:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert {"redis", "hss", "bsf1", "bsf2", "naf", "prometheus", "grafana"} <= set(doc["services"])
    assert doc["services"]["bsf1"]["environment"]["GBAGW_BSF_STORE"].startswith("redis://")
    # The NAF reaches the BSFs by a name both carry, so that it fails over when one stops.
    bsf_name = doc["services"]["naf"]["environment"]["GBAGW_NAF_BSF_HOST"]
    for bsf in ("bsf1", "bsf2"):
        assert bsf_name in doc["services"][bsf]["networks"]["default"]["aliases"]
        # One KEK for both (each opens what the other sealed), in the directory the image gives uid 10001.
        assert doc["services"][bsf]["environment"]["GBAGW_BSF_KEK_FILE"] == "/etc/gbagw/kek/kek"
        assert "kek:/etc/gbagw/kek" in doc["services"][bsf]["volumes"]
    assert "install -d -o 10001 -g 10001 -m 0700 /etc/gbagw/kek" in (DEPLOY / "Dockerfile").read_text()
    for name in ("hss", "bsf1", "bsf2", "naf"):  # no core file of a process holding keys
        assert doc["services"][name]["ulimits"]["core"] == 0, name
        # No nofile: an engine refuses one above its own hard limit and the lab would not start at all.
        assert "nofile" not in doc["services"][name]["ulimits"], name
    run_tool("docker-compose", "-f", str(DEPLOY / "compose.yaml"), "config", "-q")


def test_kek_files_stay_out_of_git_and_of_the_image_build() -> None:
    root = DEPLOY.parent
    r = subprocess.run(["git", "check-ignore", "-q", "deploy/kek"], cwd=root)
    assert r.returncode == 0, "deploy/kek must be git-ignored"
    ignored = (root / ".dockerignore").read_text().split()
    assert {"deploy/kek", "var/", "**/*.kek"} <= set(ignored)
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", (DEPLOY / "Dockerfile").read_text(), re.M)
    assert copied and all(not src.startswith(".") and "kek" not in src for line in copied for src in line.split())


def test_compose_monitoring_is_wired() -> None:
    """Prometheus scrapes each gbagw service on its admin port; Grafana finds Prometheus and the dashboard."""
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    admin_port = {
        "bsf1": "GBAGW_BSF_ADMIN_PORT",
        "bsf2": "GBAGW_BSF_ADMIN_PORT",
        "hss": "GBAGW_HSS_ADMIN_PORT",
        "naf": "GBAGW_NAF_ADMIN_PORT",
    }
    expected = {f"{name}:{services[name]['environment'][var]}" for name, var in admin_port.items()}
    assert targets == expected
    grafana = services["grafana"]
    datasource = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    assert (
        datasource["datasources"][0]["url"] == "http://prometheus:9090"
        and "9090:9090" in services["prometheus"]["ports"]
    )
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/gbagw.yaml").read_text())
    mounted = (
        "./grafana/gbagw-dashboard.json:" + provider["providers"][0]["options"]["path"] + "/gbagw-dashboard.json:ro"
    )
    assert mounted in grafana["volumes"]


def test_systemd_units_run_existing_commands() -> None:
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert [u.name for u in units] == [
        "gbagw-bsf.service",
        "gbagw-hss.service",
        "gbagw-mef.service",
        "gbagw-naf.service",
    ]
    for unit in units:
        cp = configparser.ConfigParser(strict=True, interpolation=None)
        cp.read(unit)
        cmd = cp["Service"]["ExecStart"].split()
        assert cmd[0].endswith("/gbagw") and cmd[2] == "serve"
        assert cp["Service"]["User"] == "gbagw" and cp["Service"]["NoNewPrivileges"] == "yes"
        assert cp["Service"]["LimitCORE"] == "0"
        assert int(cp["Service"]["LimitNOFILE"]) >= 3 * 4096 + 64  # the listeners' caps (issue 27 class 2)
        r = run_cli([cmd[1], "serve", "--help"])
        assert r.returncode == 0 and "--config" in r.stdout


def test_dockerfile_lints_clean_and_runs_as_numeric_non_root() -> None:
    run_tool("hadolint", "--no-color", str(DEPLOY / "Dockerfile"))  # any finding, info level included, fails
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^USER 10001:10001$", text, re.M) and "ARG BASE=python:3.11-slim" in text


def test_dockerfile_healthcheck_probes_healthz(tmp_path: Path) -> None:
    """The HEALTHCHECK command itself, run against a real admin listener: 0 while up, 1 once it is gone."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", "")  # Dockerfile line continuations
    m = re.search(r"^HEALTHCHECK .*? CMD (\[.*\])$", text, re.M)
    assert m, "HEALTHCHECK in exec form"
    probe = [sys.executable if arg == "python" else arg for arg in json.loads(m.group(1))]
    with gbagw_process(["hss", "serve", "--data-dir", str(tmp_path)], tmp_path, {"GBAGW_HSS_ZH_PORT": "0"}) as hss:
        env = {**os.environ, "HEALTHCHECK_PORT": hss.wait_for(r"admin: http://[\d.]+:(\d+)/").group(1)}
        assert subprocess.run(probe, env=env, capture_output=True, timeout=10).returncode == 0
    down = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=10)
    assert down.returncode == 1 and "Connection refused" in down.stderr
