"""Protocol core of gbagw: pure, I/O-free building blocks for GBA (TS 33.220) and its interfaces.

Nothing in this package opens a socket or a file; services in ``hss_stub``, ``bsf`` and ``naf``
do the I/O and call into it.
"""
