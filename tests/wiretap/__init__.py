"""The wire tap of the test suite (see gbagw_wiretap.py)."""
