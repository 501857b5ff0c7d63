"""Garbage-collector settings for the supervisor, a long-running server process.

At 1,000 messages/s the supervisor allocates tens of thousands of short-lived containers
per second (requests, futures, message records). With CPython's default gen-0 threshold
(700) that triggered ~45 collections/s plus frequent full ones over every object alive
since start-up: ~70 ms of CPU per second, 7 % of the core, measured with ``gc.callbacks``
in ``python -m bench e2e``'s 1,000 mps tier. Freezing what start-up created and collecting
gen 0 every 10,000 net allocations brought that under 10 ms/s, at the price of a rare pause
of about 10 ms.
"""

from __future__ import annotations

import gc

#: (gen 0, gen 1, gen 2) thresholds while serving.
SERVING_THRESHOLDS = (10_000, 10, 10)


def tune_for_serving() -> None:
    """Move every object alive now to the permanent generation and raise the collection thresholds.

    Call it once, after start-up (modules imported, workers and servers started): those
    objects live as long as the process, so scanning them in every full collection is waste.
    ``sluiceway run`` and ``sluiceway demo`` call it; an embedding program may, if it owns
    the process.

    Warning: it changes the interpreter-wide collector; reference cycles are still collected,
    only less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_THRESHOLDS)
