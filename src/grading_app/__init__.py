"""Grading App: grade documents with large language models at batch scale."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("grading-app")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
