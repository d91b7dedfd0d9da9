"""The installed distribution's version (what a manifest records and `info` prints)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("golden-noise")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
