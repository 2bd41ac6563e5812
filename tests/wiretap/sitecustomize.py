"""Test-only: in a gbagw subprocess of the test suite, load the wire tap (tests/wiretap/gbagw_wiretap.py)."""

import os

if os.environ.get("PYTEST_GBAGW_WIRETAP"):
    import gbagw_wiretap  # type: ignore[import-not-found]  # beside this file, on PYTHONPATH

    gbagw_wiretap.install()
