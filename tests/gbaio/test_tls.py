"""gbaio/tls.py: certificate material that does not load is named, file by file, before any handshake."""

from __future__ import annotations

from pathlib import Path

import pytest

from gba import pki
from gbaio.tls import TlsError, cert_context
from tests.pki_files import write_pair
from tests.procs import run_cli

SUITES = "ECDHE-ECDSA-AES128-GCM-SHA256"


@pytest.fixture
def material(tmp_path: Path) -> dict[str, Path]:
    ca = pki.make_ca()
    cert, key = write_pair(tmp_path, "CAE-a", ca)
    _, other_key = write_pair(tmp_path, "CAE-b", ca)
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    (tmp_path / "junk.pem").write_text("not PEM\n")
    return {"cert": cert, "key": key, "other_key": other_key, "ca": tmp_path / "ca.pem", "junk": tmp_path / "junk.pem"}


def test_good_material_loads(material: dict[str, Path]) -> None:
    cert_context(SUITES, material["cert"], material["key"], material["ca"], require_peer=True)


@pytest.mark.parametrize(
    ("cert", "key", "ca", "message"),
    [
        ("missing", "key", "ca", r"cannot read the certificate chain .*missing: No such file or directory"),
        ("junk", "key", "ca", r"junk\.pem is not a PEM certificate chain$"),
        ("cert", "junk", "ca", r"junk\.pem is not a PEM private key matching .*CAE-a\.pem, unencrypted"),
        ("cert", "other_key", "ca", r"CAE-b\.key is not a PEM private key matching .*CAE-a\.pem"),
        ("cert", "key", "junk", r"junk\.pem is not a PEM CA file"),
    ],
)
def test_each_bad_file_is_named(material: dict[str, Path], cert: str, key: str, ca: str, message: str) -> None:
    files = {**material, "missing": material["ca"].parent / "missing"}
    with pytest.raises(TlsError, match=message):
        cert_context(SUITES, files[cert], files[key], files[ca], require_peer=True)


def test_the_mef_clients_report_it_as_one_line(material: dict[str, Path]) -> None:
    """`enrolee enrol` and `naf fetch-km` (a MAF): exit 2 and the file, before any connection."""
    files = ["--cert", str(material["cert"]), "--key", str(material["other_key"]), "--ca", str(material["ca"])]
    keid = "00112233445566778899aabbccddeeff@mef.gba.test"
    for args in (
        ["enrolee", "enrol", "--mef", "tls://127.0.0.1:1", *files],
        ["naf", "fetch-km", "--mef", "tls://127.0.0.1:1", "--keid", keid, *files],
    ):
        r = run_cli(args)
        assert r.returncode == 2 and "CAE-b.key is not a PEM private key matching" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
