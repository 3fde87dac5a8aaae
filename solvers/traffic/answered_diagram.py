"""A fundamental diagram assembled from answered flows at density nodes (``traffic.lwr`` ``diagram: hmm``).

The macro road asks, once per coupling window, for the flow at ``K`` density
nodes (one *round*) and stores the answers in a table over all nodes it will
ever ask.  ``rounds = 1``: the same ``K`` nodes every window (with the farm's
exact cache a stateless micro model runs once per node).  ``rounds = R > 1``:
round r asks the nodes

    rho = rho_max (j + 1 - phi_r) / K,   j = 0 .. K-1,   phi_r = van der Corput(r)

(phi = 0, 1/2, 1/4, 3/4, ...), so the table is refined coarse-to-fine over the
first R windows to K R nodes -- the micro work per window stays bounded by K,
and a surrogate (couplings/surrogate.py) trained on the first rounds can answer
most of the later ones.  After round R-1 the last round is asked again.

The diagram is the piecewise-linear :class:`fundamental.Tabulated` through
(0, 0) and every answered node; demand and supply are its running maxima (see
there), so the critical density is the node of largest answered flow.
Before any answer the diagram is zero (nothing moves).
"""
from __future__ import annotations

import numpy as np

from .fundamental import Tabulated

__all__ = ["AnsweredDiagram", "round_nodes", "van_der_corput"]


def van_der_corput(r: int) -> float:
    """The r-th point of the base-2 van der Corput sequence in [0, 1): 0, 1/2, 1/4, 3/4, 1/8, ..."""
    x, d = 0.0, 0.5
    while r:
        x += d * (r & 1)
        r >>= 1
        d *= 0.5
    return x


def round_nodes(density_max: float, nodes: int, rounds: int) -> list[np.ndarray]:
    """The (nodes,) densities [veh/m] asked in each of ``rounds`` rounds (module docstring)."""
    j = np.arange(nodes, dtype=np.float64)
    return [density_max * (j + 1.0 - van_der_corput(r)) / nodes for r in range(rounds)]


class AnsweredDiagram:
    """Table of answered flows over the nodes of all rounds.

    Parameters
    ----------
    rounds : list of ndarray, each shape (K,)
        Node densities [veh/m] > 0 asked in each round, in query order.
    """

    def __init__(self, rounds: list[np.ndarray]):
        self.rounds = [np.asarray(r, dtype=np.float64) for r in rounds]
        self.nodes = np.unique(np.concatenate([[0.0], *self.rounds]))       # (M,) sorted, from 0
        self.index = [np.searchsorted(self.nodes, r) for r in self.rounds]
        self.table = np.full(len(self.nodes), np.nan)                      # NaN: not answered yet
        self.table[0] = 0.0
        self.round = 0

    @property
    def points(self) -> np.ndarray:
        """(K, 1) coordinates of the query/answer field points: the first round's densities."""
        return self.rounds[0][:, None]

    def query(self) -> np.ndarray:
        """(K,) densities [veh/m] to ask now."""
        return self.rounds[min(self.round, len(self.rounds) - 1)].copy()

    def store(self, flows: np.ndarray) -> None:
        """Answers (K,) [veh/s] to the current :meth:`query`; the next query is the next round."""
        q = np.asarray(flows, dtype=np.float64).reshape(-1)
        if q.shape != self.rounds[0].shape:
            raise ValueError(f"expected {len(self.rounds[0])} answered flows, got {q.shape}")
        if not np.all(np.isfinite(q)) or np.any(q < 0):
            raise ValueError(f"answered flows must be finite and >= 0, got {q}")
        self.table[self.index[min(self.round, len(self.rounds) - 1)]] = q
        self.round += 1

    def tabulated(self) -> Tabulated:
        """The diagram through (0, 0) and the answered nodes."""
        known = np.isfinite(self.table)
        if known.sum() < 2:
            return Tabulated([0.0, self.nodes[-1]], [0.0, 0.0])
        return Tabulated(self.nodes[known], self.table[known])

    @property
    def answered(self) -> int:
        """Nodes answered so far (without the free node rho = 0)."""
        return int(np.isfinite(self.table).sum()) - 1

    def state(self) -> dict[str, np.ndarray]:
        return {"hmm_table": self.table.copy(), "hmm_round": np.array([self.round], dtype=np.int64)}

    def restore(self, state: dict[str, np.ndarray]) -> None:
        self.table = np.array(state["hmm_table"], dtype=np.float64)
        self.round = int(state["hmm_round"][0])
