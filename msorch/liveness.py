"""A rank whose launcher is gone stops at once, writing nothing more.

When ``mpirun`` (or the whole front end's process group) is killed with
SIGKILL, it cannot take its ranks down: they live in process groups of their
own and would go on advancing, writing results and checkpoints — and deleting
old checkpoints — while a restart of the same run is already starting.  Each
rank therefore asks the kernel for SIGKILL when its parent (the launcher or its
daemon) dies (``PR_SET_PDEATHSIG``), and a small thread checks the parent id
every :data:`POLL` seconds as a fallback on systems without it.  Both end the
process without cleanup: nothing is written after the loss is noticed, and the
last complete checkpoint stays as it was (checkpoints are written under a
temporary name and renamed).
"""
from __future__ import annotations

import ctypes
import os
import signal
import threading
import time

POLL = 0.1   # seconds between parent checks in the fallback thread
_PR_SET_PDEATHSIG = 1


def _watch(parent: int) -> None:
    while True:
        time.sleep(POLL)
        if os.getppid() != parent:
            os.write(2, f"msorch: rank pid {os.getpid()}: its launcher (pid {parent}) is gone; stopping\n".encode())
            os._exit(1)


def stop_with_launcher() -> None:
    """End this process as soon as its parent process ends (call once, early, on every rank)."""
    parent = os.getppid()
    if parent == 1:   # already orphaned, or started by init: nothing to watch
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:   # the parent died before the request took effect
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), name="msorch-liveness", daemon=True).start()
