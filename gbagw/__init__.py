"""gbagw command line and process composition: builds each service's config and wires them up."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gbagw")
except PackageNotFoundError:  # a source tree run without `pip install`: still runs, says so
    __version__ = "0+source"
