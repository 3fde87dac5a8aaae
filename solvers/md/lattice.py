"""Initial states: crystal lattices and Maxwell-Boltzmann velocities.

Reduced LJ units: lengths in sigma, velocities in sigma/tau, temperature in
epsilon/k_B, unit mass.  Arrays have three columns even in 2D (z = 0).
"""
from __future__ import annotations

import numpy as np

__all__ = ["BASES", "lattice", "maxwell_boltzmann"]

# Unit-cell basis in fractions of the cell, and the cell's aspect ratios
# (cell edge d = a * aspect[d], a the lattice constant).
BASES = {
    "fcc": (np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]]), (1.0, 1.0, 1.0), 3),
    "sc": (np.array([[0.0, 0.0, 0.0]]), (1.0, 1.0, 1.0), 3),
    "square": (np.array([[0.0, 0.0, 0.0]]), (1.0, 1.0, 0.0), 2),
    # triangular lattice in a rectangular a x a*sqrt(3) cell of two particles
    "hex": (np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.0]]), (1.0, np.sqrt(3.0), 0.0), 2),
}


def lattice(kind: str, cells, density: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions of a perfect lattice filling a box of whole unit cells.

    Parameters
    ----------
    kind : {"fcc", "sc", "square", "hex"}
    cells : sequence of int, length dim
        Unit cells per axis.
    density : float
        Number density [sigma^-dim]; sets the lattice constant.

    Returns
    -------
    positions : (N, 3) float64 [sigma], N = len(basis) * prod(cells), ordered by cell
        then basis site (this order defines the particle ids 0..N-1).
    box : (3,) float64 [sigma]; box[2] = 1 in 2D (unused).
    """
    basis, aspect, dim = BASES[kind]
    if len(cells) != dim:
        raise ValueError(f"lattice {kind!r} is {dim}D but cells has {len(cells)} entries")
    cell_volume = len(basis) / density
    a = (cell_volume / np.prod(aspect[:dim])) ** (1.0 / dim)
    edge = np.array([a * aspect[d] if d < dim else 1.0 for d in range(3)])
    n = [int(c) for c in cells] + [1] * (3 - dim)
    grid = np.stack(np.meshgrid(*[np.arange(k) for k in n], indexing="ij"), axis=-1).reshape(-1, 3)
    frac = (grid[:, None, :] + basis[None, :, :]).reshape(-1, 3)
    # a quarter-site offset keeps every particle strictly inside walls at 0 and L
    frac = frac + np.where(np.arange(3) < dim, 0.25 / len(basis), 0.0)
    positions = frac * edge
    positions[:, dim:] = 0.0
    return positions, edge * np.array(n)


def maxwell_boltzmann(n: int, dim: int, temperature: float, seed: int) -> np.ndarray:
    """Seeded Maxwell-Boltzmann velocities with zero total momentum, scaled so the
    kinetic temperature ``sum(v^2) / (dim (n - 1))`` equals ``temperature`` exactly.

    The dim*(n-1) degrees of freedom are LAMMPS's count for a momentum-free system.

    Returns
    -------
    (n, 3) float64 [sigma/tau], z column 0 in 2D.
    """
    v = np.zeros((n, 3))
    if n < 2 or temperature <= 0:
        return v
    v[:, :dim] = np.random.default_rng(seed).standard_normal((n, dim))
    v[:, :dim] -= v[:, :dim].mean(axis=0)
    current = np.sum(v * v) / (dim * (n - 1))
    return v * np.sqrt(temperature / current)
