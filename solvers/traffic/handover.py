"""The vehicle hand-over arrays shared by the agent models.

A hand-over field has ``slots`` rows and the columns :data:`COLUMNS`:
``count`` is 1 for a used row and 0 for an empty one (the extensive vehicle
count, so a conservative mapping preserves the number of vehicles);
``overshoot`` [m] is how far past the road end a vehicle was when it left
(output) or how far past x = 0 to put it (input); ``speed`` [m/s]; ``class``
the driver/vehicle class index (0 for single-class models).  All rows of the
output sit at x = road_length on the last rank; the input's rows sit at x = 0
on the first rank.
"""
from __future__ import annotations

import numpy as np

__all__ = ["COLUMNS", "NC", "Mailbox"]

COLUMNS = ("count", "overshoot", "speed", "class")
NC = len(COLUMNS)


class Mailbox:
    """Leavers waiting to be reported and arrivals waiting to be inserted.

    ``post`` queues leavers; ``flush`` moves up to ``slots`` of them into the
    report of the step just taken (the rest wait, so none is ever lost);
    ``receive`` queues arrivals from an input array; ``pop`` takes the oldest.
    """

    def __init__(self, slots: int, has_out: bool):
        self.slots = slots if has_out else 0
        self.outbox = np.zeros((0, NC))
        self.reported = np.zeros((0, NC))
        self.inbox = np.zeros((0, NC))

    def post(self, overshoot: np.ndarray, speed: np.ndarray, cls: np.ndarray) -> None:
        rows = np.column_stack([np.ones(len(speed)), overshoot, speed, cls])
        self.outbox = np.concatenate([self.outbox, rows])

    def flush(self) -> None:
        self.reported, self.outbox = self.outbox[:self.slots], self.outbox[self.slots:]

    def report(self) -> np.ndarray:
        """The output array, shape (slots, NC)."""
        out = np.zeros((self.slots, NC))
        out[:len(self.reported)] = self.reported
        return out

    def receive(self, data: np.ndarray) -> None:
        rows = np.asarray(data, dtype=np.float64).reshape(-1, NC)
        self.inbox = np.concatenate([self.inbox, rows[rows[:, 0] > 0.5]])

    def pop(self) -> None:
        self.inbox = self.inbox[1:]

    def state(self, prefix: str = "mail_") -> dict[str, np.ndarray]:
        return {prefix + "out": self.outbox.copy(), prefix + "rep": self.reported.copy(),
                prefix + "in": self.inbox.copy()}

    def restore(self, state, prefix: str = "mail_") -> None:
        self.outbox = state[prefix + "out"].copy()
        self.reported = state[prefix + "rep"].copy()
        self.inbox = state[prefix + "in"].copy()
