"""The start-up heap of a long-running process, kept out of the cyclic garbage collector.

A server process imports the whole app (Starlette, pydantic's models, the contracts, the
domain tables): some 80,000 container objects the collector would walk on every full
(generation-2) collection although hardly any of them ever becomes garbage. Under load a request
allocates enough for a full collection every few hundred milliseconds, and each one stopped
the event loop for 40-250 ms on the shared 2-core machine (issue #18: the p99 of GET under 64
connections was dominated by them; measured with `gc.callbacks`). `gc.freeze()` after
start-up moves those objects to the permanent generation: full collections then walk only
what requests made, a few milliseconds each. The price: a start-up object that later becomes
garbage in a reference cycle is never freed, which is bounded by the start-up heap (memory
does not grow with it); objects made by requests are collected as before.

Only processes that serve until they end call it (`sandbank serve`, its workers, the
dispatcher and the scheduler); tests build many apps in one process and must not.
"""

from __future__ import annotations

import gc


def freeze_start_up_heap() -> int:
    """Collect the start-up garbage, then keep every object left out of later collections;
    returns how many objects are now frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
