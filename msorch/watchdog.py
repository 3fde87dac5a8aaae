"""A per-rank watchdog thread: progress heartbeats and where a rank is stuck.

The worker's main loop only updates plain attributes (``phase``, ``window``,
``step``); this thread samples them a few times a second.  While they change,
it tells the coordinator so now and then (a heartbeat every ``after/2``
seconds at most); when they have not changed for ``after`` seconds it sends
one note saying where the rank is, and another when it moves again.  The
coordinator declares a hang when a rank has shown no progress for
``hang_timeout`` and names the rank stuck in solver code (or silent) rather
than the peers waiting for it.  Nothing here costs the main loop anything.
"""
from __future__ import annotations

import threading
import time

from .messages import TAG_STALL

# Phases in which a rank waits for others; a stall there is a symptom, not the cause.
WAITING = frozenset({"receive", "send", "waiting for the coordinator", "convergence", "acceleration", "channels",
                     "initial exchange", "output", "checkpoint", "finalize",
                     "waiting for the other solvers"})


def watchdogs_possible() -> bool:
    """Watchdog threads send MPI messages beside the main thread: that needs MPI_THREAD_MULTIPLE."""
    from mpi4py import MPI
    return MPI.Query_thread() == MPI.THREAD_MULTIPLE


class Watchdog(threading.Thread):
    def __init__(self, world, worker, label: str, after: float, tick: float = 0.25):
        super().__init__(name="msorch-watchdog", daemon=True)
        self.world, self.worker, self.label = world, worker, label
        self.after, self.tick = after, min(tick, after / 4)
        self._halt = threading.Event()

    def _send(self, **note):
        self.world.send({"who": self.label, **note}, dest=0, tag=TAG_STALL)

    def run(self):
        last, since, told, beat = None, time.monotonic(), False, time.monotonic()
        while not self._halt.wait(self.tick):
            w = self.worker
            now = (w.phase, w.window, w.step)
            clock = time.monotonic()
            if now != last:
                if told:
                    self._send(kind="resumed")
                last, since, told = now, clock, False
                if clock - beat >= self.after / 2:
                    self._send(kind="alive")
                    beat = clock
            elif not told and clock - since >= self.after:
                phase, window, _ = now
                self._send(kind="stuck", phase=phase, where=f"window {window}" if window >= 0 else "setup",
                           waiting=phase in WAITING, seconds=clock - since)
                told = True

    def stop(self):
        self._halt.set()
