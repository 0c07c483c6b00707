"""Process-wide tuning: startup objects frozen, big reports without GC pauses, a short GIL
switch interval for the server's writer thread."""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_paused = 0
_resume = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run a block with the cyclic garbage collector off; reference counting still frees.

    A 10,000-customer P&L or a simulation builds some 100,000 short-lived objects, and the
    young-generation collections that this allocation triggers re-scan them over and over:
    measured, about 40% of the report's time. Nothing these blocks build is cyclic garbage
    that must be found mid-way, and the collector runs again when the last block ends.
    Threads may nest and overlap blocks; the collector resumes only if it was on before.
    """
    global _paused, _resume
    with _lock:
        if _paused == 0:
            _resume = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _lock:
            _paused -= 1
            if _paused == 0 and _resume:
                gc.enable()


def freeze_startup_objects() -> None:
    """Keep what startup built (the price catalogue, table metadata, pydantic validators, some
    hundreds of thousands of objects that live as long as the process) out of every later
    collection. Full collections otherwise re-scan all of it every few thousand requests:
    measured, about a sixth of a busy server's CPU (`bench/`, single-event ingest).
    """
    gc.collect()
    gc.freeze()


def unfreeze_startup_objects() -> None:
    """Hand frozen objects back to the collector (at shutdown: a process that builds the app
    again, such as a test run, would otherwise never free the old one's cycles)."""
    gc.unfreeze()


# The ledger writer thread releases the GIL inside every database call and must then win it
# back from the event-loop thread, which holds on to it for up to the switch interval (5 ms
# by default) while it parses and prices the next requests. A commit makes half a dozen calls,
# so the writer, not the CPU, set the pace of batch ingest. Measured (`bench/`, 1,000-event
# batches into SQLite): about 1.3x the events/s at 1 ms; single events unchanged.
SERVER_SWITCH_INTERVAL_S = 0.001


def shorten_switch_interval() -> None:
    """Let threads that wait on the database get the GIL back sooner (see above)."""
    sys.setswitchinterval(SERVER_SWITCH_INTERVAL_S)
