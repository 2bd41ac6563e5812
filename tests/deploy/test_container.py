"""The image, the compose lab, the systemd units and the Helm chart's pods on a real Docker engine:
`pytest -m container` (.ci/run does; it needs dockerd, docker-compose, helm and either Docker Hub or the
stand-in images of .ci/container-images).

Builds deploy/Dockerfile, starts deploy/compose.yaml's redis, hss, bsf1, bsf2 and naf from it, and runs the
README's "Try it" sequence against the published ports: the UE bootstraps on one BSF, a NAF asks the other
over Zn and gets the same Ks_NAF, the demo NAF answers Ua. Then one BSF is stopped and the lab keeps
serving. The lab's Prometheus scrapes it and evaluates the gbagw alerts and the Grafana dashboard's
queries; Grafana itself is left out (Debian has no package to stand in for its image). The systemd units
run under systemd as PID 1 of a container, and the chart's Deployments as containers set up the way a
kubelet would run their pods (there is no cluster here).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import dashboard_panels, helm_manifests, panels_without_data, run_tool
from tests.procs import run_cli

pytestmark = [pytest.mark.container, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose.yaml"
# Any image with python and pip (the Dockerfile's BASE), and a Redis image whose redis-server is on PATH.
BASE_IMAGE = os.environ.get("GBAGW_TEST_BASE_IMAGE", "python:3.11-slim")
REDIS_IMAGE = os.environ.get("GBAGW_TEST_REDIS_IMAGE", "redis:7-alpine")
PROMETHEUS_IMAGE = os.environ.get("GBAGW_TEST_PROMETHEUS_IMAGE", "prom/prometheus:v2.53.0")
IMAGE = "gbagw:container-test"
SERVICES = ("redis", "hss", "bsf1", "bsf2", "naf")
PUBLISHED = {"bsf1 Ub": 8080, "bsf1 Zn": 3868, "bsf2 Ub": 8081, "bsf2 Zn": 3870, "naf": 8090, "prometheus": 9090}

IMPI = "001010123456789@ims.mnc001.mcc001.3gppnetwork.org"
K = "465b5ce8b199b49faa5f0a2ee238a6bc"
OP = "cdc202d5123e20f62b6d676ac72cb318"


def _logs(container: str) -> str:
    """A container's output, stdout and stderr interleaved."""
    r = subprocess.run(["docker", "logs", container], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return r.stdout


class Lab:
    """The compose project: `compose(...)` runs docker-compose on it."""

    def __init__(self, override: Path) -> None:
        self.project = f"gbagwtest{os.getpid()}"
        self._files = ["-f", str(COMPOSE), "-f", str(override)]

    def compose(self, *args: str, timeout: float = 300) -> str:
        return run_tool("docker-compose", "-p", self.project, *self._files, *args, timeout=timeout)

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).strip()

    def state(self, service: str) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(
            run_tool("docker", "inspect", "--format", "{{json .State}}", self.container(service))
        )
        return state

    def wait_healthy(self, services: tuple[str, ...], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            health = {s: self.state(s).get("Health", {}).get("Status") for s in services}
            if all(h == "healthy" for h in health.values()):
                return
            assert time.monotonic() < deadline, f"not healthy after {timeout:.0f} s: {health}\n{self.logs()}"
            time.sleep(1)

    def logs(self) -> str:
        return self.compose("logs", "--no-color", *SERVICES, "prometheus")


@pytest.fixture(scope="module")
def built() -> str:
    assert subprocess.run(["docker", "info"], capture_output=True).returncode == 0, "a Docker engine is required"
    # The host's network: pip in the build stage reaches PyPI the way this machine does.
    build = ["docker", "build", "--network", "host", "--build-arg", f"BASE={BASE_IMAGE}", "-f", "deploy/Dockerfile"]
    r = subprocess.run([*build, "-t", IMAGE, "."], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return IMAGE


@pytest.fixture(scope="module")
def lab(built: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    busy = [f"{what} ({port})" for what, port in PUBLISHED.items() if _listening(port)]
    assert not busy, f"compose.yaml publishes ports already in use here: {', '.join(busy)}"
    override = tmp_path_factory.mktemp("compose") / "override.yaml"
    lines = ["services:", "  redis:", f"    image: {json.dumps(REDIS_IMAGE)}"]
    # Debian's redis-server (the stand-in) keeps protected mode on without a config file; the official
    # image has it off. Either way only the lab's network reaches it.
    lines.append('    command: ["redis-server", "--appendonly", "yes", "--protected-mode", "no"]')
    lines += [f"  {s}:\n    image: {built}" for s in ("hss", "bsf1", "bsf2", "naf")]
    lines += ["  prometheus:", f"    image: {json.dumps(PROMETHEUS_IMAGE)}"]
    override.write_text("\n".join(lines) + "\n")
    lab = Lab(override)
    try:
        lab.compose("up", "-d", "--no-build", *SERVICES, "prometheus")
        lab.wait_healthy(SERVICES)
        yield lab
    finally:
        try:
            print(lab.logs()[-20000:])  # shown when a test failed
        finally:
            lab.compose("down", "-v", "--remove-orphans")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_image_runs_every_service_as_its_numeric_non_root_user(built: str) -> None:
    config = json.loads(run_tool("docker", "image", "inspect", "--format", "{{json .Config}}", built))
    assert config["User"] == "10001:10001" and config["Entrypoint"] == ["gbagw"]
    assert config["Healthcheck"]["Test"][0] == "CMD"
    assert run_tool("docker", "run", "--rm", "--entrypoint", "id", built, "-u").strip() == "10001"
    assert run_tool("docker", "run", "--rm", built, "--version").startswith("gbagw ")


def test_the_compose_lab_bootstraps_serves_zn_and_survives_a_bsf_stop(lab: Lab, tmp_path: Path) -> None:
    out = lab.compose("exec", "-T", "hss", "gbagw", "hss", "add-subscriber", "--data-dir", "/var/lib/gbagw",
                      "--impi", IMPI, "--k", K, "--op", OP)  # fmt: skip
    assert f"added {IMPI}" in out.lower()
    state = tmp_path / "ue.json"
    creds = ["--impi", IMPI, "--k", K, "--op", OP, "--state", str(state)]
    r = run_cli(["ue", "bootstrap", "--bsf", "http://127.0.0.1:8080/", *creds])  # bsf1
    assert r.returncode == 0, r.stderr
    btid = json.loads(state.read_text())["bootstrap"]["btid"]
    r = run_cli(["ue", "naf-key", "--state", str(state), "--naf-fqdn", "naf.gba.test"])
    assert r.returncode == 0, r.stderr
    ks_naf = next(line.split()[1] for line in r.stdout.splitlines() if line.startswith("ks_naf:"))

    # Zn at the other BSF: the context and the KEK that sealed it are shared (Redis, the kek volume).
    fetch = ["naf", "fetch-key", "--btid", btid, "--naf-fqdn", "naf.gba.test", "--json"]
    r = run_cli(fetch, env={"GBAGW_NAF_BSF_PORT": str(PUBLISHED["bsf2 Zn"])})
    assert r.returncode == 0, r.stderr
    assert ks_naf in r.stdout and IMPI in r.stdout
    ua_get = [
        "ue",
        "ua-get",
        "--state",
        str(state),
        "--url",
        "http://127.0.0.1:8090/hello",
        "--naf-fqdn",
        "naf.gba.test",
    ]
    r = run_cli(ua_get)  # the demo NAF in its container, Zn to "bsf"
    assert r.returncode == 0 and IMPI in r.stdout, r.stdout + r.stderr

    # docker stop sends SIGTERM to the BSF carrying the demo NAF's Zn: a clean exit, a DPR to its peers,
    # and the NAF's next lookup goes to the other one (both answer to "bsf").
    naf_ip = run_tool("docker", "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                  lab.container("naf")).strip()  # fmt: skip
    (carrier,) = [b for b in ("bsf1", "bsf2") if f"({naf_ip}:" in lab.compose("logs", "--no-color", b)]
    other = "bsf2" if carrier == "bsf1" else "bsf1"
    lab.compose("stop", carrier)
    stopped = lab.state(carrier)
    assert stopped["Status"] == "exited" and stopped["ExitCode"] == 0, stopped
    assert "peer bsf.gba.test sent DPR (Disconnect-Cause 0)" in lab.compose("logs", "--no-color", "naf")
    r = run_cli(ua_get)
    assert r.returncode == 0 and IMPI in r.stdout, r.stdout + r.stderr
    r = run_cli(["ue", "bootstrap", "--bsf", f"http://127.0.0.1:{PUBLISHED[other + ' Ub']}/", *creds])
    assert r.returncode == 0, r.stderr
    r = run_cli(ua_get)
    assert r.returncode == 0 and IMPI in r.stdout, r.stdout + r.stderr

    # Back in service, the stopped BSF opens what the other one sealed meanwhile.
    lab.compose("start", carrier)
    lab.wait_healthy((carrier,))
    fetch[3] = json.loads(state.read_text())["bootstrap"]["btid"]
    r = run_cli(fetch, env={"GBAGW_NAF_BSF_PORT": str(PUBLISHED[carrier + " Zn"])})
    assert r.returncode == 0, r.stderr

    logs = lab.logs()
    for secret in (K, OP, ks_naf):
        assert secret not in logs.lower()


def _prometheus(path: str, query: str = "") -> Any:
    url = f"http://127.0.0.1:{PUBLISHED['prometheus']}/api/v1/{path}"
    if query:
        url += "?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - http to the lab's published port
        return json.load(r)["data"]


def _eventually(what: str, check: Callable[[], tuple[bool, object]], timeout: float = 60) -> None:
    """``check`` says (True, _) within ``timeout`` (Prometheus scrapes and evaluates every 15 s here); the
    failure shows the last thing it saw."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ok, seen = check()
            if ok:
                return
        except OSError as exc:  # not listening yet
            seen = exc
        assert time.monotonic() < deadline, f"{what}: {seen}"
        time.sleep(1)


def test_prometheus_scrapes_the_lab_and_evaluates_the_gbagw_alerts(lab: Lab, tmp_path: Path) -> None:
    """compose's Prometheus with deploy/prometheus: every gbagw target up, every rule of gbagw-rules.yaml
    loaded and evaluated without error, none of them firing in a healthy lab, and the bootstrap counter
    it scrapes moving with a bootstrap."""
    jobs = {"gbagw-bsf": 2, "gbagw-hss": 1, "gbagw-naf": 1}

    def targets_up() -> tuple[bool, object]:
        active = _prometheus("targets")["activeTargets"]
        up = [t["labels"]["job"] for t in active if t["health"] == "up"]
        return {j: up.count(j) for j in jobs} == jobs and len(active) == sum(jobs.values()), active

    _eventually("every gbagw target up", targets_up)
    rules_file = yaml.safe_load((ROOT / "deploy/prometheus/gbagw-rules.yaml").read_text())
    names = {r["alert"] for g in rules_file["groups"] for r in g["rules"]}

    def rules_evaluated() -> tuple[bool, object]:
        rules = [r for g in _prometheus("rules")["groups"] for r in g["rules"]]
        assert all(r["health"] != "err" for r in rules), [r.get("lastError") for r in rules]
        return {r["name"] for r in rules} == names and all(r["health"] == "ok" for r in rules), rules

    def no_alerts() -> tuple[bool, object]:
        alerts = _prometheus("alerts")["alerts"]
        return alerts == [], alerts

    _eventually("every gbagw alert rule evaluated", rules_evaluated)
    # The BSF the lab test stopped may have been scraped down: its alert resolves once it is up again.
    _eventually("no gbagw alert pending or firing", no_alerts, timeout=90)

    impi = "001010000000077@ims.mnc001.mcc001.3gppnetwork.org"
    lab.compose("exec", "-T", "hss", "gbagw", "hss", "add-subscriber", "--data-dir", "/var/lib/gbagw",
                "--impi", impi, "--k", K, "--op", OP)  # fmt: skip
    query = 'sum(gbagw_bsf_ub_responses_total{outcome="bootstrapped"}) or vector(0)'
    before = float(_prometheus("query", query)["result"][0]["value"][1])
    r = run_cli(["ue", "bootstrap", "--bsf", "http://127.0.0.1:8080/", "--impi", impi, "--k", K, "--op", OP,
                 "--state", str(tmp_path / "ue.json")])  # fmt: skip
    assert r.returncode == 0, r.stderr

    def counted() -> tuple[bool, object]:
        now = float(_prometheus("query", query)["result"][0]["value"][1])
        return now >= before + 1, now

    _eventually("the bootstrap counted in Prometheus", counted)


def _dashboard_query(expr: str) -> list[dict[str, Any]]:
    """One panel query, as Grafana sends it, evaluated by the lab's Prometheus. A query Prometheus refuses
    (a bad join: many-to-many, duplicate series) fails here at once instead of waiting for data. Grafana's
    $__rate_interval is 4 scrape intervals at least (1 m here); 2 m keeps both of the test's rounds in view."""
    try:
        result: list[dict[str, Any]] = _prometheus("query", expr.replace("$__rate_interval", "2m"))["result"]
    except urllib.error.HTTPError as exc:
        pytest.fail(f"Prometheus refused dashboard query {expr!r}: {exc.read().decode()[:500]}")
    return result


def test_the_grafana_dashboard_shows_the_lab(lab: Lab, tmp_path: Path) -> None:
    """Every panel of deploy/grafana's dashboard, queried as Grafana would against the lab's Prometheus
    after bootstraps, a resynchronisation, Zn fetches on both BSFs and Ua: each shows finite values, the
    rate panels above zero, and the per-process panels one series per gbagw process. promtool's check
    (tests/deploy/test_prometheus.py) only parses them; a join that matches no series or several shows
    up here. Grafana itself does not run (no stand-in image)."""
    impi = "001010000000078@ims.mnc001.mcc001.3gppnetwork.org"
    add = ["exec", "-T", "hss", "gbagw", "hss", "add-subscriber", "--data-dir", "/var/lib/gbagw",
           "--impi", impi, "--k", K, "--op", OP]  # fmt: skip
    lab.compose(*add)
    state = tmp_path / "ue.json"
    creds = ["--impi", impi, "--k", K, "--op", OP, "--state", str(state)]

    def traffic() -> None:
        r = run_cli(["ue", "bootstrap", "--bsf", "http://127.0.0.1:8080/", *creds])
        assert r.returncode == 0, r.stderr
        btid = json.loads(state.read_text())["bootstrap"]["btid"]
        for zn in ("bsf1 Zn", "bsf2 Zn"):
            fetch = ["naf", "fetch-key", "--btid", btid, "--naf-fqdn", "naf.gba.test"]
            r = run_cli(fetch, env={"GBAGW_NAF_BSF_PORT": str(PUBLISHED[zn])})
            assert r.returncode == 0, r.stderr
        r = run_cli(
            [
                "ue",
                "ua-get",
                "--state",
                str(state),
                "--url",
                "http://127.0.0.1:8090/hello",
                "--naf-fqdn",
                "naf.gba.test",
            ]
        )
        assert r.returncode == 0, r.stdout + r.stderr

    # Twice, a scrape apart: a rate needs two samples of a series, and a labelled series first appears with
    # its first count. Between the two, the subscriber comes back with its SQN at zero: the UE's state is
    # ahead, so the second bootstrap resynchronises (TS 33.102 6.3.5).
    traffic()
    time.sleep(16)
    lab.compose("exec", "-T", "hss", "gbagw", "hss", "remove-subscriber", "--data-dir", "/var/lib/gbagw",
                "--impi", impi)  # fmt: skip
    lab.compose(*add)
    traffic()

    # The compose lab runs no MEF: its panels have nothing to show here (tests/deploy/test_prometheus.py
    # runs them against gbagw up).
    panels = [(title, expr) for title, expr in dashboard_panels() if "gbagw_mef_" not in expr]
    assert len(panels) >= 16  # the other panels' queries: none dropped with the MEF's

    def every_panel_shows_the_lab() -> tuple[bool, object]:
        wrong = panels_without_data(panels, _dashboard_query, processes=4, bsfs=2)  # bsf1, bsf2, hss, naf
        return not wrong, wrong

    # Within a scrape of the second round; the 2 m windows hold both rounds until well after that.
    _eventually("every dashboard panel showing the lab", every_panel_shows_the_lab, timeout=45)
    # The UE is one SQN ahead of the re-provisioned HSS: after its AUTS the HSS finds the next SQN in range
    # and keeps SQN_HE (TS 33.102 6.3.5 step 3), so the outcome is in_range rather than resynchronised.
    resync = _dashboard_query('sum(gbagw_hss_resync_total{outcome=~"resynchronised|in_range"})')
    assert resync and float(resync[0]["value"][1]) >= 1, resync


def test_the_systemd_units_run_the_services(built: str) -> None:
    """deploy/systemd's units under a real systemd (PID 1 of a container; see systemd-host/Dockerfile):
    all four start, sandboxed as they say (User, StateDirectory, ProtectSystem=strict, PrivateTmp), serve
    the "Try it" sequence, and `systemctl stop` ends the BSF cleanly. A unit without its StateDirectory=
    fails here: its service cannot write /var/lib/gbagw and refuses to start (checked once by hand)."""
    host = "gbagw-systemd:container-test"
    run_tool("docker", "build", "--network", "host", "--build-arg", f"IMAGE={built}", "-t", host,
         "-f", str(ROOT / "tests/deploy/systemd-host/Dockerfile"), str(ROOT), timeout=600)  # fmt: skip
    # systemd in a container: its own /run, the host's cgroup tree to read (v1), and CAP_SYS_ADMIN for the
    # mount namespaces of ProtectSystem= and PrivateTmp= (without it systemd skips them and a unit
    # missing its StateDirectory= would still write /var/lib/gbagw).
    box = run_tool("docker", "run", "-d", "--cap-add", "SYS_ADMIN", "--tmpfs", "/run", "--tmpfs", "/run/lock",
               "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro", host).strip()  # fmt: skip

    def sh(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", "exec", "-w", "/tmp", box, *args], capture_output=True, text=True, timeout=60)

    try:
        deadline = time.monotonic() + 60
        while (state := sh("systemctl", "is-system-running", "--wait").stdout.strip()) in ("", "offline"):
            assert time.monotonic() < deadline, "systemd did not come up: " + _logs(box)
            time.sleep(0.5)  # PID 1 is not answering on its bus yet
        assert state == "running", state + sh("systemctl", "--failed", "--no-pager").stdout
        units = ("gbagw-hss", "gbagw-bsf", "gbagw-naf", "gbagw-mef")
        assert sh("systemctl", "is-active", *units).stdout.split() == ["active"] * 4
        # Provisioning as the service's user, so that the HSS can still write what the command wrote.
        r = sh("runuser", "-u", "gbagw", "--", "gbagw", "hss", "add-subscriber", "--config", "/etc/gbagw/gbagw.toml",
               "--data-dir", "/var/lib/gbagw", "--impi", IMPI, "--k", K, "--op", OP)  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        r = sh("gbagw", "ue", "bootstrap", "--bsf", "http://127.0.0.1:8080/", "--impi", IMPI, "--k", K, "--op", OP,
               "--state", "ue.json")  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        btid = json.loads(sh("cat", "ue.json").stdout)["bootstrap"]["btid"]
        r = sh(
            "gbagw",
            "ue",
            "ua-get",
            "--state",
            "ue.json",
            "--url",
            "http://127.0.0.1:8090/hello",
            "--naf-fqdn",
            "naf.gba.test",
        )
        assert r.returncode == 0 and IMPI in r.stdout, r.stdout + r.stderr
        r = sh("gbagw", "naf", "fetch-key", "--btid", btid, "--naf-fqdn", "naf.gba.test", "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        ks_naf = json.loads(r.stdout)["ks_naf"]
        r = sh("gbagw", "ue", "naf-key", "--state", "ue.json", "--naf-fqdn", "naf.gba.test")
        assert f"ks_naf: {ks_naf}" in r.stdout, r.stdout + r.stderr

        # Each unit's admin listener answers ready: bsf, hss, naf and mef.admin_port of the defaults.
        for port in (9180, 9181, 9182, 9183):
            probe = f"import urllib.request as u; print(u.urlopen('http://127.0.0.1:{port}/readyz').read().decode())"
            r = sh("python3", "-c", probe)
            assert r.returncode == 0 and '"ready"' in r.stdout, (port, r.stdout + r.stderr)
        # Type=exec units are "active" from their exec on: a service failing at start shows in its restarts.
        restarts = sh("systemctl", "show", "-p", "NRestarts", *units).stdout.split()
        assert restarts == ["NRestarts=0"] * 4, sh("journalctl", "--no-pager", "-o", "cat", "-p", "err").stdout
        assert sh("systemctl", "stop", "gbagw-bsf").returncode == 0
        show = sh("systemctl", "show", "-p", "Result", "-p", "ExecMainStatus", "gbagw-bsf").stdout.split()
        assert sorted(show) == ["ExecMainStatus=0", "Result=success"]
        journal = sh("journalctl", "--no-pager", "-o", "cat", *(f"--unit={u}" for u in units)).stdout
        assert "peer bsf.gba.test sent DPR (Disconnect-Cause 0)" in journal  # at the NAF and the HSS
        for secret in (K, OP, ks_naf):
            assert secret not in journal.lower()
    finally:
        subprocess.run(["docker", "rm", "-f", box], capture_output=True, timeout=60)


class _Pods:
    """The chart's Deployments run as Docker containers the way a kubelet would run their pods: the
    fields the chart uses, each mapped to its Docker equivalent; any other field fails the test, so that
    a chart change cannot slip past this emulation."""

    HANDLED_POD = {"securityContext", "containers", "volumes", "terminationGracePeriodSeconds",
                   "topologySpreadConstraints"}  # fmt: skip
    HANDLED_CONTAINER = {"name", "image", "imagePullPolicy", "args", "env", "ports", "lifecycle", "readinessProbe",
                         "livenessProbe", "resources", "securityContext", "volumeMounts"}  # fmt: skip

    def __init__(self, docs: list[dict[str, Any]], image: str, tmp: Path) -> None:
        self.docs, self.image, self.tmp = docs, image, tmp
        self.network = f"gbagwpods{os.getpid()}"
        self.volumes: list[str] = []
        self.ports: dict[tuple[str, int], dict[str, int]] = {}  # (deployment, replica) -> port name -> host port
        self.by_pod: dict[tuple[str, int], str] = {}  # (deployment, replica) -> container id

    def _kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def _aliases(self, labels: dict[str, str]) -> list[str]:
        """The Services selecting a pod with ``labels``: their names resolve to it (cluster DNS)."""
        return [s["metadata"]["name"] for s in self._kind("Service")
                if s["spec"]["selector"].items() <= labels.items()]  # fmt: skip

    def _file(self, name: str, data: bytes, mode: int, gid: int) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.chown(path, 0, gid)
        path.chmod(mode)
        return path

    def run(self, deployment: dict[str, Any], replica: int = 0) -> str:
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        assert set(pod) <= self.HANDLED_POD, set(pod) - self.HANDLED_POD
        (c,) = pod["containers"]
        assert set(c) <= self.HANDLED_CONTAINER, set(c) - self.HANDLED_CONTAINER
        security = pod.get("securityContext", {})
        fs_group = security.get("fsGroup")
        args = ["--network", self.network, "--name", f"{self.network}-{name}-{replica}"]
        args += [a for alias in self._aliases(deployment["spec"]["template"]["metadata"]["labels"])
                 for a in ("--network-alias", alias)]  # fmt: skip
        if "runAsUser" in security:
            args += ["--user", str(security["runAsUser"])]  # the group: the image's for that user
        if fs_group is not None:
            args += ["--group-add", str(fs_group)]
        if "terminationGracePeriodSeconds" in pod:
            args += ["--stop-timeout", str(pod["terminationGracePeriodSeconds"])]
        csec = c.get("securityContext", {})
        if csec.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        if csec.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        limits = c.get("resources", {}).get("limits", {})
        if "memory" in limits:
            args += ["--memory", limits["memory"].replace("Mi", "m")]
        if "cpu" in limits:
            args += ["--cpus", str(limits["cpu"])]
        for e in c.get("env", []):
            assert set(e) == {"name", "value"}, e  # valueFrom (a Secret of the operator's) is not set here
            args += ["-e", f"{e['name']}={e['value']}"]
        for p in c.get("ports", []):
            args += ["-p", f"127.0.0.1::{p['containerPort']}"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for m in c.get("volumeMounts", []):
            v = volumes[m["name"]]
            if "configMap" in v:  # files 0644, root's
                (cm,) = [d for d in self._kind("ConfigMap") if d["metadata"]["name"] == v["configMap"]["name"]]
                key = m["subPath"]
                src = self._file(f"{name}/{m['name']}/{key}", cm["data"][key].encode(), 0o644, 0)
                args += ["-v", f"{src}:{m['mountPath']}:ro"]
            elif "secret" in v:
                # defaultMode, and with an fsGroup the group and its read bit (kubernetes/kubernetes#57923).
                (secret,) = [d for d in self._kind("Secret") if d["metadata"]["name"] == v["secret"]["secretName"]]
                mode = v["secret"].get("defaultMode", 0o644) | (0o440 if fs_group is not None else 0)
                for key, value in secret["data"].items():
                    self._file(f"{name}/{m['name']}/{key}", base64.b64decode(value), mode, fs_group or 0)
                args += ["-v", f"{self.tmp / name / m['name']}:{m['mountPath']}:ro"]
            else:
                assert set(v) == {"name", "emptyDir"}, v  # a fresh volume of the pod's own
                vol = f"{self.network}-{name}-{replica}-{m['name']}"
                self.volumes.append(run_tool("docker", "volume", "create", vol).strip())
                args += ["-v", f"{vol}:{m['mountPath']}"]
        image = REDIS_IMAGE if c["name"] == "redis" else self.image
        cmd = list(c.get("args", []))
        if c["name"] == "redis":
            cmd += ["--protected-mode", "no"]  # the stand-in's default (see the compose lab)
        container = self.by_pod[(name, replica)] = run_tool("docker", "run", "-d", *args, image, *cmd).strip()
        self.ports[(name, replica)] = {p["name"]: self._host_port(container, p["containerPort"])
                                       for p in c.get("ports", [])}  # fmt: skip
        return container

    @staticmethod
    def _host_port(container: str, port: int) -> int:
        return int(run_tool("docker", "port", container, f"{port}/tcp").split(":")[-1])

    def ready(self, deployment: dict[str, Any], replica: int = 0, timeout: float = 60) -> None:
        """Its readinessProbe (httpGet on a named port) answers 200, as the kubelet would check it."""
        (c,) = deployment["spec"]["template"]["spec"]["containers"]
        probe = c["readinessProbe"]["httpGet"]
        pod = (deployment["metadata"]["name"], replica)
        url = f"http://127.0.0.1:{self.ports[pod][probe['port']]}{probe['path']}"
        deadline = time.monotonic() + timeout
        while True:
            running = run_tool("docker", "inspect", "--format", "{{.State.Running}}", self.by_pod[pod]).strip()
            assert running == "true", f"{pod} exited: " + _logs(self.by_pod[pod])
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, f"{url} not ready: " + "".join(_logs(x) for x in self.by_pod.values())
            time.sleep(0.5)

    def close(self) -> None:
        for c in self.by_pod.values():
            subprocess.run(["docker", "rm", "-f", c], capture_output=True, timeout=60)
        for v in self.volumes:
            subprocess.run(["docker", "volume", "rm", v], capture_output=True, timeout=60)
        subprocess.run(["docker", "network", "rm", self.network], capture_output=True, timeout=60)


def test_the_helm_chart_pods_run_as_rendered(built: str, tmp_path: Path) -> None:
    """The chart's Redis, HSS stub and two BSF pods from `helm template`, run as a kubelet would run them
    (read-only root file system, uid 10001 with fsGroup, the KEK Secret as 0440 root:fsGroup, memory and
    CPU limits, Service names): each BSF turns ready by its readinessProbe, a UE bootstraps on one, the
    other answers Zn with the same Ks_NAF."""
    docs = helm_manifests({"autoscaling.enabled": False}, tmp_path)
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == {"lab-redis", "lab-hss", "lab-bsf"}
    pods = _Pods(docs, built, tmp_path / "volumes")
    run_tool("docker", "network", "create", pods.network)
    try:
        pods.run(deployments["lab-redis"])
        hss = pods.run(deployments["lab-hss"])
        pods.ready(deployments["lab-hss"])
        replicas = deployments["lab-bsf"]["spec"]["replicas"]
        assert replicas == 2
        for i in range(replicas):
            pods.run(deployments["lab-bsf"], i)
        for i in range(replicas):
            pods.ready(deployments["lab-bsf"], i)
        add = ["gbagw", "hss", "add-subscriber", "--data-dir", "/var/lib/gbagw", "--impi", IMPI, "--k", K, "--op", OP]
        r = subprocess.run(["docker", "exec", hss, *add], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        state = tmp_path / "ue.json"
        ub = pods.ports[("lab-bsf", 0)]["ub"]
        r = run_cli(["ue", "bootstrap", "--bsf", f"http://127.0.0.1:{ub}/", "--impi", IMPI, "--k", K, "--op", OP,
                     "--state", str(state)])  # fmt: skip
        assert r.returncode == 0, r.stderr
        btid = json.loads(state.read_text())["bootstrap"]["btid"]
        r = run_cli(["ue", "naf-key", "--state", str(state), "--naf-fqdn", "naf.gba.test"])
        ks_naf = next(line.split()[1] for line in r.stdout.splitlines() if line.startswith("ks_naf:"))
        zn = pods.ports[("lab-bsf", 1)]["zn"]
        r = run_cli(["naf", "fetch-key", "--btid", btid, "--naf-fqdn", "naf.gba.test", "--json"],
                    env={"GBAGW_NAF_BSF_PORT": str(zn)})  # fmt: skip
        assert r.returncode == 0 and json.loads(r.stdout)["ks_naf"] == ks_naf, r.stdout + r.stderr
    finally:
        pods.close()
