"""Pure domain: no Starlette, no I/O, no wall clock."""
