"""A road cut into equal bins and the bins split over a group's ranks.

Agent models (IDM, NaSch) and the macroscopic model (LWR) all report fields
per bin (a cell for LWR) and give each rank a contiguous run of bins, so a
rank's segment is ``[edges[bin_lo], edges[bin_hi])`` and field points never
straddle a rank border.  Segments are computed from the same ``edges`` array
on every layout, which keeps "which segment holds x" layout-independent.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Segment", "segment"]


@dataclass(frozen=True)
class Segment:
    """One rank's share of a road of ``length`` [m] cut into ``n_bins`` bins.

    Attributes
    ----------
    edges : ndarray, shape (n_bins + 1,)
        Bin edges [m] of the whole road (identical on every rank).
    bin_lo, bin_hi : int
        This rank's bins are ``bin_lo .. bin_hi - 1``.
    lo, hi : float
        This rank's segment ``[lo, hi)`` [m].
    """

    length: float
    n_bins: int
    rank: int
    size: int
    edges: np.ndarray
    bin_lo: int
    bin_hi: int

    @property
    def lo(self) -> float:
        return float(self.edges[self.bin_lo])

    @property
    def hi(self) -> float:
        return float(self.edges[self.bin_hi])

    @property
    def n_local(self) -> int:
        return self.bin_hi - self.bin_lo

    @property
    def centers(self) -> np.ndarray:
        """(n_local, 1) bin centres [m]: the points of per-bin fields."""
        e = self.edges[self.bin_lo:self.bin_hi + 1]
        return (0.5 * (e[:-1] + e[1:]))[:, None]

    @property
    def widths(self) -> np.ndarray:
        """(n_local,) bin widths [m]."""
        return np.diff(self.edges[self.bin_lo:self.bin_hi + 1])

    @property
    def first(self) -> bool:
        """True on the rank holding the upstream end x = 0."""
        return self.bin_lo == 0

    @property
    def last(self) -> bool:
        """True on the rank holding the downstream end x = length."""
        return self.bin_hi == self.n_bins


def segment(length: float, n_bins: int, rank: int, size: int) -> Segment:
    """Split ``n_bins`` equal bins of a road of ``length`` [m] over ``size`` ranks.

    Raises ValueError when there are fewer bins than ranks (a rank would own
    nothing, and the leader search across borders assumes non-empty segments).
    """
    if n_bins < size:
        raise ValueError(f"the road has {n_bins} bins/cells but the group has {size} ranks; "
                         f"use at least as many bins as ranks")
    edges = length * np.arange(n_bins + 1, dtype=np.float64) / n_bins
    edges[-1] = length
    return Segment(float(length), int(n_bins), rank, size, edges,
                   n_bins * rank // size, n_bins * (rank + 1) // size)
