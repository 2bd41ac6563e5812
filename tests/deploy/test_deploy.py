"""Deploy artefacts checked with what runs here: Helm chart rendered and schema-validated against the
Kubernetes OpenAPI (kubernetes-validate), compose file through `docker-compose config`, systemd units
against the CLI."""

from __future__ import annotations

import configparser
import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.helm_render import render
from tests.procs import run_cli

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CHART = DEPLOY / "helm" / "gbagw"


def _manifests(overrides: dict[str, Any]) -> list[dict[str, Any]]:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for path, value in overrides.items():
        node = values
        *parents, leaf = path.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    docs = []
    for tpl in sorted((CHART / "templates").glob("*.yaml")):
        rendered = render(tpl.read_text(), copy.deepcopy(values), release="lab")
        docs += [d for d in yaml.safe_load_all(rendered) if d]
    return docs


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
def test_helm_chart_renders_valid_kubernetes(overrides: dict[str, Any]) -> None:
    docs = _manifests(overrides)
    kinds = sorted(d["kind"] for d in docs)
    for d in docs:
        kubernetes_validate.validate(d, "1.30.0", strict=True)
    if overrides:
        assert kinds == ["ConfigMap", "Deployment", "Service"]
        config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["gbagw.toml"]
        assert 'hss_host = "hss.operator"' in config and "redis.example.internal" in config
    else:
        assert kinds.count("Deployment") == 3 and "HorizontalPodAutoscaler" in kinds and "Secret" in kinds
    bsf = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "lab-bsf")
    container = bsf["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert bsf["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_helm_config_is_valid_gbagw_toml(tmp_path: Path) -> None:
    config = next(d for d in _manifests({}) if d["kind"] == "ConfigMap")["data"]["gbagw.toml"]
    (tmp_path / "g.toml").write_text(config.replace("/etc/gbagw/kek/kek", str(tmp_path / "kek")))
    r = run_cli(["hss", "list-subscribers", "--config", str(tmp_path / "g.toml"), "--data-dir", str(tmp_path)])
    assert r.returncode == 0, r.stderr  # the configuration loads and validates


def test_compose_file() -> None:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert {"redis", "hss", "bsf1", "bsf2", "naf"} <= set(doc["services"])
    assert doc["services"]["bsf1"]["environment"]["GBAGW_BSF_STORE"].startswith("redis://")
    assert shutil.which("docker-compose"), "docker-compose is required (.ci/run installs it)"
    r = subprocess.run(
        ["docker-compose", "-f", str(DEPLOY / "compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr


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
        r = run_cli([cmd[1], "serve", "--help"])
        assert r.returncode == 0 and "--config" in r.stdout


def test_dockerfile_is_non_root_with_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert "USER gbagw" in text and "HEALTHCHECK" in text and "FROM python:3.11-slim" in text
