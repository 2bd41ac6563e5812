"""gbagw command line and process composition: builds each service's config and wires them up."""

from importlib.metadata import version

__version__ = version("gbagw")
