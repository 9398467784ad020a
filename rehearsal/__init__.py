"""Incident rehearsals: scenarios as data (`scenarios/*.yaml`), run end to end against a real
simulator and a real reference integration, judged by registered invariants and SLOs.

Talks HTTP only to both processes: it never imports `simulator` or `integration`, so it can be
pointed at any deployment of them (`--provider-url`, `--integration-url`)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sandbank")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
