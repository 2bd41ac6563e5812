"""oneM2M MEF direct frameworks end to end: `gbagw mef serve` as a real process, real TLS on both sides."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from bsf.store.sqlite import SqliteStore
from gba import onem2m, pki
from gba.keywrap import Keyring
from gbagw.enrolee_client import EnrolmentError, enrol_cert, enrol_psk
from gbaio.kek import load_or_create_kek
from naf.mef_client import KmRefused, MefClient
from tests.procs import Proc, free_port, gbagw_process, run_cli
from tests.required_tools import require

pytestmark = pytest.mark.e2e

KPM = bytes(range(100, 132))
CONFIG = f"""
[mef]
psk_port = 0
cert_port = 0
maf_port = 0

[[mef.enrolees]]
enrolee_id = "CAE-psk"
kpm_id = "kpm-1"
kpm = "{KPM.hex()}"
targets = ["maf.gba.test"]

[[mef.enrolees]]
enrolee_id = "CAE-cert"
cert_name = "cae-cert"
targets = ["maf.gba.test"]

[[mef.enrolees]]
enrolee_id = "CAE-expired"
cert_name = "cae-expired"
targets = ["maf.gba.test"]
"""


class Mef:
    def __init__(self, tmp: Path, proc: Proc, ports: tuple[int, ...], admin: str, pki: Path | None = None) -> None:
        self.tmp, self.proc, self.admin = tmp, proc, admin
        self.psk, self.cert, self.maf = ports
        self.pki = pki or tmp / "pki"

    def metrics(self) -> dict[str, float]:
        """The MEF's counters, by name and labels as the exposition writes them (not their _created)."""
        with urllib.request.urlopen(self.admin + "/metrics", timeout=10) as r:  # noqa: S310 - loopback test URL
            lines = r.read().decode().splitlines()
        return {
            name: float(value)
            for name, _, value in (line.rpartition(" ") for line in lines)
            if name.startswith("gbagw_mef_") and "_total" in name
        }

    def maf_client(self, name: str = "maf.gba.test") -> MefClient:
        return MefClient(
            "127.0.0.1",
            self.maf,
            "mef.gba.test",
            self.pki / f"{name}.pem",
            self.pki / f"{name}.key",
            self.pki / "ca.pem",
        )

    def enrolments(self) -> int:
        db = sqlite3.connect(self.tmp / "bsf.sqlite")
        try:
            return int(db.execute("SELECT count(*) FROM enrolments").fetchone()[0])
        finally:
            db.close()

    async def stored_ke(self, keid: str) -> bytes:
        store = SqliteStore(self.tmp / "bsf.sqlite", Keyring(load_or_create_kek(self.tmp / "kek")))
        rec = await store.get_enrolment(keid)
        await store.close()
        assert rec is not None
        return rec.ke


@pytest.fixture(scope="module")
def mef(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mef]:
    tmp = tmp_path_factory.mktemp("mef")
    (tmp / "gbagw.toml").write_text(CONFIG)
    r = run_cli(
        [
            "mef",
            "gen-test-pki",
            "--out",
            str(tmp / "pki"),
            "--enrolee",
            "cae-cert",
            "--enrolee",
            "cae-other",
            "--maf",
            "maf.gba.test",
            "--maf",
            "rogue-maf.gba.test",
        ]
    )
    assert r.returncode == 0, r.stderr
    assert oct((tmp / "pki" / "mef.key").stat().st_mode & 0o777) == "0o600"
    # An expired certificate from the right CA, and a valid one from a CA the MEF does not trust.
    ca = pki.make_ca()
    real_ca = pki.load((tmp / "pki" / "ca.pem").read_bytes(), (tmp / "pki" / "ca.key").read_bytes())
    expired = pki.issue(real_ca, "cae-expired", not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=30), days=1)
    untrusted = pki.issue(ca, "cae-cert")
    for name, issued in (("cae-expired", expired), ("untrusted", untrusted)):
        (tmp / "pki" / f"{name}.pem").write_bytes(issued.cert_pem)
        (tmp / "pki" / f"{name}.key").write_bytes(issued.key_pem)
    with gbagw_process(
        ["mef", "serve", "--config", str(tmp / "gbagw.toml"), "--data-dir", str(tmp)], tmp, None, "mef"
    ) as proc:
        m = proc.wait_for(r"TLS-PSK on [\d.]+:(\d+), certificate on :(\d+), MAF retrieval on :(\d+)")
        admin = proc.wait_for(r"admin: (http://\S+)/metrics").group(1)
        yield Mef(tmp, proc, tuple(int(p) for p in m.groups()), admin)


async def test_psk_enrolment_and_km_retrieval(mef: Mef) -> None:
    enrolment = enrol_psk("127.0.0.1", mef.psk, "mef.gba.test", "kpm-1", KPM)
    assert enrolment.enrolee_id == "CAE-psk" and enrolment.keid.endswith("@mef.gba.test")
    assert await mef.stored_ke(enrolment.keid) == enrolment.ke  # the MEF and the Enrolee hold the same Ke
    cred = mef.maf_client().fetch_km(enrolment.keid)
    assert cred.km == onem2m.km(enrolment.ke, "maf.gba.test") and cred.kmid == enrolment.keid
    assert cred.enrolee_id == "CAE-psk"


async def test_certificate_enrolment_and_km_retrieval(mef: Mef) -> None:
    p = mef.pki
    enrolment = enrol_cert("127.0.0.1", mef.cert, "mef.gba.test", p / "cae-cert.pem", p / "cae-cert.key", p / "ca.pem")
    assert enrolment.enrolee_id == "CAE-cert"
    assert await mef.stored_ke(enrolment.keid) == enrolment.ke
    assert mef.maf_client().fetch_km(enrolment.keid).km == onem2m.km(enrolment.ke, "maf.gba.test")


def test_refusals_store_and_serve_nothing(mef: Mef) -> None:
    p = mef.pki
    before = mef.enrolments()
    with pytest.raises(EnrolmentError, match="handshake"):
        enrol_psk("127.0.0.1", mef.psk, "mef.gba.test", "kpm-1", bytes(32))  # wrong Kpm
    with pytest.raises(EnrolmentError, match="handshake"):
        enrol_psk("127.0.0.1", mef.psk, "mef.gba.test", "kpm-unknown", KPM)
    with pytest.raises(EnrolmentError, match="handshake"):
        enrol_cert("127.0.0.1", mef.cert, "mef.gba.test", p / "untrusted.pem", p / "untrusted.key", p / "ca.pem")
    with pytest.raises(EnrolmentError, match="handshake"):
        enrol_cert("127.0.0.1", mef.cert, "mef.gba.test", p / "cae-expired.pem", p / "cae-expired.key", p / "ca.pem")
    with pytest.raises(EnrolmentError, match="403"):  # trusted certificate, name not configured
        enrol_cert("127.0.0.1", mef.cert, "mef.gba.test", p / "cae-other.pem", p / "cae-other.key", p / "ca.pem")
    with pytest.raises(EnrolmentError, match="does not name"):  # the Enrolee checks the MEF's name too
        enrol_cert("127.0.0.1", mef.cert, "other-mef.gba.test", p / "cae-cert.pem", p / "cae-cert.key", p / "ca.pem")
    assert mef.enrolments() == before
    good = enrol_psk("127.0.0.1", mef.psk, "mef.gba.test", "kpm-1", KPM)
    with pytest.raises(KmRefused) as not_target:
        mef.maf_client("rogue-maf.gba.test").fetch_km(good.keid)
    with pytest.raises(KmRefused) as unknown:
        mef.maf_client("rogue-maf.gba.test").fetch_km("00" * 16 + "@mef.gba.test")
    # A trusted MAF learns nothing about KeIDs that are not its own: one answer for both (no oracle).
    assert (not_target.value.status, str(not_target.value)) == (unknown.value.status, str(unknown.value))
    assert unknown.value.status == 404
    logs = mef.proc.logs
    assert "not an Enrolment Target" in logs and "unknown KpmID" in logs
    for secret in (KPM, good.ke, onem2m.km(good.ke, "maf.gba.test")):
        assert secret.hex() not in logs


def test_admin_listener_is_ready_and_counts_each_outcome(mef: Mef) -> None:
    with urllib.request.urlopen(mef.admin + "/readyz", timeout=10) as r:  # noqa: S310 - loopback test URL
        assert r.status == 200 and json.load(r)["status"] == "ready"
    with urllib.request.urlopen(mef.admin + "/metrics", timeout=10) as r:  # noqa: S310 - loopback test URL
        exposition = r.read().decode()
    expires = x509.load_pem_x509_certificate((mef.pki / "mef.pem").read_bytes()).not_valid_after_utc.timestamp()
    (sample,) = [s for s in exposition.splitlines() if s.startswith("gbagw_tls_certificate_expiry_timestamp_seconds{")]
    assert sample.startswith('gbagw_tls_certificate_expiry_timestamp_seconds{key="mef.cert_file"} ')
    assert float(sample.split()[-1]) == expires
    p = mef.pki
    before = mef.metrics()
    good = enrol_psk("127.0.0.1", mef.psk, "mef.gba.test", "kpm-1", KPM)
    enrol_cert("127.0.0.1", mef.cert, "mef.gba.test", p / "cae-cert.pem", p / "cae-cert.key", p / "ca.pem")
    with pytest.raises(EnrolmentError):
        enrol_psk("127.0.0.1", mef.psk, "mef.gba.test", "kpm-unknown", KPM)
    with pytest.raises(EnrolmentError):
        enrol_cert("127.0.0.1", mef.cert, "mef.gba.test", p / "cae-other.pem", p / "cae-other.key", p / "ca.pem")
    with pytest.raises(EnrolmentError):
        enrol_cert("127.0.0.1", mef.cert, "mef.gba.test", p / "untrusted.pem", p / "untrusted.key", p / "ca.pem")
    mef.maf_client().fetch_km(good.keid)
    for client, keid in ((mef.maf_client("rogue-maf.gba.test"), good.keid), (mef.maf_client(), "00" * 16 + "@x")):
        with pytest.raises(KmRefused):
            client.fetch_km(keid)
    after = mef.metrics()
    moved = {k: after[k] - before.get(k, 0.0) for k in after if after[k] != before.get(k, 0.0)}
    assert moved == {
        'gbagw_mef_enrolments_total{framework="psk",outcome="enrolled"}': 1,
        'gbagw_mef_enrolments_total{framework="certificate",outcome="enrolled"}': 1,
        'gbagw_mef_enrolments_total{framework="psk",outcome="unknown_enrolee"}': 1,
        'gbagw_mef_enrolments_total{framework="certificate",outcome="unknown_enrolee"}': 1,
        'gbagw_mef_tls_refused_total{listener="psk"}': 1,  # the unknown KpmID fails the handshake
        'gbagw_mef_tls_refused_total{listener="cert"}': 1,  # the untrusted certificate
        'gbagw_mef_km_requests_total{outcome="issued"}': 1,
        'gbagw_mef_km_requests_total{outcome="not_target"}': 1,
        'gbagw_mef_km_requests_total{outcome="unknown_keid"}': 1,
    }, moved


def test_a_store_outage_answers_503_and_shows_on_the_admin_listener(mef: Mef, tmp_path: Path) -> None:
    """The MEF on a Redis nobody listens on: enrolment and Km retrieval answer 503 (the Enrolee enrols
    again later with a fresh Ke), /readyz says why, the counters say store_unavailable."""
    dead = free_port()
    files = {"GBAGW_MEF_CERT_FILE": "mef.pem", "GBAGW_MEF_KEY_FILE": "mef.key", "GBAGW_MEF_CA_FILE": "ca.pem"}
    env = {"GBAGW_BSF_STORE": f"redis://127.0.0.1:{dead}/0", **{k: str(mef.pki / v) for k, v in files.items()}}
    serve = ["mef", "serve", "--config", str(mef.tmp / "gbagw.toml"), "--data-dir", str(tmp_path)]
    with gbagw_process(serve, tmp_path, env, "mef-nostore") as proc:
        m = proc.wait_for(r"TLS-PSK on [\d.]+:(\d+), certificate on :(\d+), MAF retrieval on :(\d+)")
        admin = proc.wait_for(r"admin: (http://\S+)/metrics").group(1)
        down = Mef(tmp_path, proc, tuple(int(p) for p in m.groups()), admin, mef.pki)
        with pytest.raises(urllib.error.HTTPError) as not_ready:
            urllib.request.urlopen(down.admin + "/readyz", timeout=10)  # noqa: S310 - loopback test URL
        assert not_ready.value.code == 503
        assert "context store does not answer (ping: ConnectionError" in not_ready.value.read().decode()
        with pytest.raises(EnrolmentError, match=r"MEF refused \(503\): enrolment store unavailable, retry later"):
            enrol_psk("127.0.0.1", down.psk, "mef.gba.test", "kpm-1", KPM)
        with pytest.raises(KmRefused) as refused:
            down.maf_client().fetch_km("00" * 16 + "@mef.gba.test")
        assert refused.value.status == 503
        counted = down.metrics()
    assert counted['gbagw_mef_enrolments_total{framework="psk",outcome="store_unavailable"}'] == 1
    assert counted['gbagw_mef_km_requests_total{outcome="store_unavailable"}'] == 1
    assert "enrolment of CAE-psk not stored, store unavailable" in proc.logs
    assert KPM.hex() not in proc.logs


def _s_client_psk(mef: Mef, data: bytes) -> subprocess.CompletedProcess[bytes]:
    """``data`` sent to the MEF's TLS-PSK listener by openssl s_client (an independent TLS stack)."""
    return subprocess.run(
        [
            require("openssl"),
            "s_client",
            "-connect",
            f"127.0.0.1:{mef.psk}",
            "-tls1_2",
            "-psk_identity",
            "kpm-1",
            "-psk",
            KPM.hex(),
            "-cipher",
            "PSK-AES128-CBC-SHA256",
            "-servername",
            "mef.gba.test",
            "-quiet",
        ],
        input=data,
        capture_output=True,
        timeout=30,
    )


def test_openssl_s_client_psk_handshake(mef: Mef) -> None:
    request = b"POST /enrolment HTTP/1.1\r\nHost: mef.gba.test\r\nContent-Length: 0\r\n\r\n"
    out = _s_client_psk(mef, request)
    assert b'"keId"' in out.stdout and b"CAE-psk" in out.stdout, out.stderr[-500:]


def test_cli_enrol_and_fetch_km(mef: Mef) -> None:
    r = run_cli(
        [
            "enrolee",
            "enrol",
            "--mef",
            f"tls://127.0.0.1:{mef.psk}",
            "--psk-id",
            "kpm-1",
            "--psk",
            KPM.hex(),
            "--maf",
            "maf.gba.test",
            "--show-keys",
            "--json",
        ]
    )
    assert r.returncode == 0, r.stderr
    enrolled = json.loads(r.stdout)
    p = mef.pki
    r = run_cli(
        [
            "naf",
            "fetch-km",
            "--mef",
            f"tls://127.0.0.1:{mef.maf}",
            "--keid",
            enrolled["keid"],
            "--cert",
            str(p / "maf.gba.test.pem"),
            "--key",
            str(p / "maf.gba.test.key"),
            "--ca",
            str(p / "ca.pem"),
            "--json",
        ]
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["km"] == enrolled["km"]
    r = run_cli(["enrolee", "enrol", "--mef", f"tls://127.0.0.1:{mef.psk}", "--psk-id", "kpm-1", "--psk", "00" * 32])
    assert r.returncode == 3


@pytest.mark.parametrize(
    "head",
    [
        b"POST /enrolment HTTP/1.1\r\nHost: mef.gba.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n",
        b"POST /enrolment HTTP/1.1\r\nHost: mef.gba.test\r\nHost: other.test\r\nContent-Length: 0\r\n\r\n",
    ],
    ids=["content-length-and-chunked", "two-hosts"],
)
def test_smuggling_shapes_are_refused_and_store_nothing(mef: Mef, head: bytes) -> None:
    before = mef.enrolments()
    out = _s_client_psk(mef, head)
    assert out.stdout.startswith(b"HTTP/1.1 400 "), out.stdout[:200]
    assert b"malformed HTTP request" in out.stdout and b"keId" not in out.stdout
    assert mef.enrolments() == before


def test_a_client_renegotiation_is_refused(mef: Mef) -> None:
    """s_client's "R" asks for a new handshake inside the session: the MEF answers no_renegotiation, so a
    client cannot make it run handshake after handshake within one connection and one deadline. OpenSSL 3
    servers refuse client-initiated renegotiation unless SSL_OP_ALLOW_CLIENT_RENEGOTIATION is set; this
    guards that default."""
    before = mef.enrolments()
    request = b"POST /enrolment HTTP/1.1\r\nHost: mef.gba.test\r\nContent-Length: 0\r\n\r\n"
    with subprocess.Popen(
        [
            *("openssl", "s_client", "-connect", f"127.0.0.1:{mef.psk}", "-tls1_2"),
            *("-psk_identity", "kpm-1", "-psk", KPM.hex(), "-cipher", "PSK-AES128-CBC-SHA256"),
            *("-servername", "mef.gba.test"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as client:
        assert client.stdin is not None
        client.stdin.write(b"R\n")  # s_client: renegotiate
        client.stdin.flush()
        time.sleep(1)
        out, _ = client.communicate(request, timeout=30)
    assert b"RENEGOTIATING" in out and b"no renegotiation" in out, out[-500:]
    assert b"keId" not in out
    assert mef.enrolments() == before
