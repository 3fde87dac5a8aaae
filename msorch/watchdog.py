"""A per-rank watchdog thread: tells the coordinator where a rank is stuck.

The worker's main loop only updates plain attributes (``phase``, ``window``,
``step``); this thread samples them a few times a second and, when they have
not changed for ``after`` seconds, sends one short note to the coordinator.
When a job stops making progress, the coordinator uses these notes to name
the rank stuck in solver code rather than the peers waiting for it.  Nothing
here costs the main loop anything while it makes progress.
"""
from __future__ import annotations

import threading
import time

from .messages import TAG_STALL

# Phases in which a rank waits for others; a stall there is a symptom, not the cause.
WAITING = frozenset({"receive", "send", "waiting for the coordinator", "convergence", "acceleration", "channels",
                     "initial exchange", "output", "checkpoint", "finalize",
                     "waiting for the other solvers"})


class Watchdog(threading.Thread):
    def __init__(self, world, worker, label: str, after: float, tick: float = 0.25):
        super().__init__(name="msorch-watchdog", daemon=True)
        self.world, self.worker, self.label = world, worker, label
        self.after, self.tick = after, tick
        self._stop = threading.Event()

    def run(self):
        last, since, told = None, time.monotonic(), False
        while not self._stop.wait(self.tick):
            w = self.worker
            now = (w.phase, w.window, w.step)
            if now != last:
                last, since, told = now, time.monotonic(), False
            elif not told and time.monotonic() - since >= self.after:
                phase, window, _ = now
                where = f"window {window}" if window >= 0 else "setup"
                self.world.send({"who": self.label, "phase": phase, "where": where,
                                 "waiting": phase in WAITING, "since": time.time() - (time.monotonic() - since)},
                                dest=0, tag=TAG_STALL)
                told = True

    def stop(self):
        self._stop.set()
