"""Sandbank: a stateful simulator of a B2B credit provider."""

__version__ = "0.1.0"
# The version of the API's shapes, stamped on every event (and what a webhook carries).
API_VERSION = "2026-11-01"
