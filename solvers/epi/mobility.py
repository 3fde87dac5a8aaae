"""Mobility between regions: the matrix, its checks, and the routing of infectious travellers.

The model (shared by ``epi.meta`` and its coupling to ``epi.network``): entry
(i, j), i != j, of the *mobility matrix* is the fraction of region i's residents
who are present in region j at any time (commuting/visiting fraction; row sums
<= 1, the diagonal is 0: the rest stay home).  Infectious residents of i present
in j are *visitors* of j: they add to j's force of infection,
lambda_j = beta_j (I_j + V_j) / N_j, and are still counted (and recover) as
residents of i.  Given as ``mobility_units: persons``, entry (i, j) is a number of
residents of i present in j, and row i must sum to at most the population of i.

Travellers from a region simulated elsewhere (an agent region of ``epi.network``)
arrive as one count per region (its ``exported``) and are split over the
destinations of that region's row in proportion to the row (multinomially, with
a counter-based generator, when counts are whole; proportionally otherwise), so
every traveller lands in exactly one destination: counts are conserved exactly.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["mobility_problems", "fractions", "split_travellers"]


def mobility_problems(matrix, populations, units: str, names) -> list[tuple[str, str, str]]:
    """(key, what, fix) for a mobility matrix that is not N x N, non-negative, finite, zero on the
    diagonal, or whose rows do not fit the populations (sum > 1, or > population for persons)."""
    n = len(populations)
    if len(matrix) == 0:
        return []
    out = []
    if len(matrix) != n:
        return [("mobility", f"{len(matrix)} rows for {n} regions",
                 f"give one row per region ({n} rows of {n} numbers), in the order of regions")]
    for i, row in enumerate(matrix):
        if len(row) != n:
            out.append((f"mobility[{i}]", f"row of region {names[i]!r} has {len(row)} entries for {n} regions",
                        f"give {n} numbers, one per destination region"))
            continue
        for j, v in enumerate(row):
            if not math.isfinite(v) or v < 0:
                out.append((f"mobility[{i}][{j}]", f"negative or non-finite entry {v!r} "
                            f"({names[i]} -> {names[j]})", "mobility entries are >= 0: use 0 for no travel"))
            elif i == j and v != 0:
                out.append((f"mobility[{i}][{j}]", f"diagonal entry {v!r} of region {names[i]!r}",
                            "the diagonal is 0: who does not travel stays home"))
        total = sum(v for j, v in enumerate(row) if j != i and math.isfinite(v))
        limit = populations[i] if units == "persons" else 1.0
        if total > limit * (1 + 1e-12):
            what = (f"row of region {names[i]!r} sums to {total:g} persons, more than its population "
                    f"{populations[i]:g}" if units == "persons" else
                    f"row of region {names[i]!r} sums to {total:g} > 1: more than all residents away")
            out.append((f"mobility[{i}]", what, "scale the row down, or check mobility_units "
                        "(fraction: shares of residents; persons: numbers of residents)"))
    return out


def fractions(matrix, populations, units: str) -> np.ndarray:
    """(N, N) float64 fractions m_ij of residents of i present in j (zeros when no matrix)."""
    n = len(populations)
    if len(matrix) == 0:
        return np.zeros((n, n))
    m = np.array(matrix, dtype=np.float64)
    if units == "persons":
        m = m / np.asarray(populations, dtype=np.float64)[:, None]
    np.fill_diagonal(m, 0.0)
    return m


def split_travellers(count: float, row: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """``count`` travellers split over destinations in proportion to ``row`` (N,), sum kept exactly.

    Whole counts with a generator: multinomial (integer-valued float64); otherwise
    proportional.  ``row`` must have a positive sum when ``count > 0``.
    """
    total = row.sum()
    if count == 0:
        return np.zeros(len(row))
    if total <= 0:
        raise ValueError(f"{count:g} travellers arrived from a region that has no destinations "
                         "(its mobility row is 0)")
    p = row / total
    if rng is not None and float(count).is_integer():
        return rng.multinomial(int(count), p).astype(np.float64)
    out = count * p
    out[np.argmax(p)] += count - out.sum()     # put the rounding where it is smallest relatively
    return out
