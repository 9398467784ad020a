"""Thin HTTP adapters: parse, call the service, serialise."""
