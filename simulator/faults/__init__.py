"""Fault injection: rules as data, a pure decision engine, presets, and effects at the socket."""
