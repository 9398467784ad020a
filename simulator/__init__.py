"""Sandbank: a stateful simulator of a B2B credit provider."""

__version__ = "0.1.0"
