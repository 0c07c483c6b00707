"""margindash: which customers, features and models make or lose money, and what to change."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("margindash")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"
