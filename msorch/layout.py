"""Rank layout: world rank 0 coordinates, then each solver's ranks in spec order."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    """Which world ranks run which solver.

    ``groups[name]`` is the tuple of world ranks of solver ``name``, in group-rank order.
    """

    groups: dict[str, tuple[int, ...]]

    @classmethod
    def from_job(cls, job) -> "Layout":
        groups, first = {}, 1
        for name, solver in job.solvers.items():
            groups[name] = tuple(range(first, first + solver.ranks))
            first += solver.ranks
        return cls(groups)

    @property
    def size(self) -> int:
        return 1 + sum(len(r) for r in self.groups.values())

    def solver_of(self, world_rank: int) -> tuple[str, int] | None:
        """(solver name, rank within its group) of a world rank; None for the coordinator."""
        for name, ranks in self.groups.items():
            if world_rank in ranks:
                return name, ranks.index(world_rank)
        return None

    def describe(self) -> str:
        parts = ["rank 0: coordinator"]
        for name, ranks in self.groups.items():
            span = f"{ranks[0]}" if len(ranks) == 1 else f"{ranks[0]}-{ranks[-1]}"
            parts.append(f"ranks {span}: {name}")
        return "; ".join(parts)
