"""Suite-wide: the wire tap (tests/wiretap). Every Diameter message, Zn SOAP document and Nbsp_GBA body
that gbagw emits during the run, in subprocesses and in this process, is checked at the end of the session
against the strict rules (issue 23, Done when). ``--no-wiretap`` turns it off; ``pytest tests/strict`` runs
the strict peers with the tap over their messages alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.wiretap import gbagw_wiretap

TAP_DIR = str(Path(__file__).parent / "wiretap")
# Before the test modules are collected, so that a `from gba.zn_soap import build_fault` gets the wrapper;
# record() does nothing until the session fixture names a directory.
gbagw_wiretap.in_process = True
gbagw_wiretap.install()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--no-wiretap", action="store_true", help="do not record and check the emitted messages")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "wiretap_exempt: this test's in-process messages are deliberately malformed (not checked)"
    )


@pytest.fixture(scope="session", autouse=True)
def wiretap(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path | None]:
    if request.config.getoption("--no-wiretap"):
        yield None
        return
    folder = tmp_path_factory.mktemp("wiretap")
    saved = {k: os.environ.get(k) for k in (gbagw_wiretap.ENV_DIR, "PYTHONPATH")}
    os.environ[gbagw_wiretap.ENV_DIR] = str(folder)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (TAP_DIR, saved["PYTHONPATH"]) if p)
    try:
        yield folder
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    from tests.wiretap.checks import violations

    counts, problems = violations(str(folder))
    if problems:
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        pytest.fail(
            f"wire tap: {len(problems)} distinct violations in the messages gbagw emitted ({summary}):\n"
            + "\n".join(problems),
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _wiretap_exempt(request: pytest.FixtureRequest) -> Iterator[None]:
    exempt = request.node.get_closest_marker("wiretap_exempt") is not None
    gbagw_wiretap.paused = exempt
    yield
    gbagw_wiretap.paused = False
