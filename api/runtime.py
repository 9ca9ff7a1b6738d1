"""Process-wide tuning for long-running processes (the server's workers and ``dropdesk worker``)."""

from __future__ import annotations

import gc

# A GraphQL answer allocates tens of thousands of short-lived objects; with the default first threshold (700)
# the collector ran many times per request and walked every object kept since start-up each time it reached
# the oldest generation. Young objects are still collected, just in larger batches.
GC_THRESHOLDS = (50_000, 20, 20)


def tune_gc() -> None:
    """Call once start-up is done: what exists by then (modules, schema, settings) lives as long as the process,
    so it is moved out of the collector's sight, and collections come less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
