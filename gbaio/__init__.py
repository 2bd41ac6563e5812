"""I/O helpers shared by the services (Diameter transport, KEK files, logging).

The protocol core (``gba``) stays I/O-free; services import this package and the core, never each
other.
"""
