"""SIGUSR1 = "checkpoint and stop": caught from the first moment of a process.

SLURM sends its walltime warning (``--signal=B:USR1@T``) whenever its periodic
check comes round, which can be seconds after the job starts; Python's default
for SIGUSR1 is to die.  So every msorch process installs this handler before
anything slow, and acts on the flag when it can: the front end forwards it to
mpirun, the coordinator turns it into a checkpoint and an early stop.
"""
from __future__ import annotations

import signal

_received: list[int] = []
_forward = None


def _handler(signum, _frame):
    _received.append(signum)
    if _forward is not None:
        _forward(signum)


def install() -> None:
    signal.signal(signal.SIGUSR1, _handler)


def stop_requested() -> bool:
    return bool(_received)


def forward_to(send) -> None:
    """From now on pass SIGUSR1 to ``send(signum)``; one already received is passed at once."""
    global _forward
    _forward = send
    if _received:
        send(signal.SIGUSR1)
