"""Small local FAKES of the support systems the reference integration opens collections and
dispute tickets in: a Zendesk-shaped tickets API (`fakes.zendesk`) and a ServiceNow-shaped
Table API for incidents (`fakes.servicenow`).

They are fakes, not simulators: in memory, one process, just the calls and fields the
integration's ticket sink uses (see docs/tickets.md), each answering errors in its own API's
error shape. Ids are counters and times come from an injected clock, so the same calls give
the same answers. Run one with `sandbank fakes zendesk --port 8090`.
"""
