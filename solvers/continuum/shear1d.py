"""Planar shear flow: 1-D momentum diffusion across a channel (``continuum.shear1d``).

The incompressible Navier-Stokes equations for a flow u(y, t) along x that
depends only on the wall-normal coordinate y (planar Couette start-up, Stokes'
first problem) reduce to the diffusion equation

    rho du/dt = eta d2u/dy2,       y0 <= y <= y1,

with Dirichlet boundary values u(y0, t), u(y1, t).  Units follow the coupled
particle code: with ``md.lj`` reduced Lennard-Jones units, lengths in sigma,
time in tau, velocity in sigma/tau, density in m/sigma^3 (number density with
unit mass), dynamic viscosity in epsilon tau/sigma^3 (= sqrt(m epsilon)/sigma^2).

Discretisation: second-order central differences on n_cells equal cells (nodes
y_k = y0 + k h, k = 0..n_cells), theta-method in time (Crank-Nicolson for
theta = 1/2, unconditionally stable; backward Euler for theta = 1, which damps
the high-frequency part of noisy boundary data that Crank-Nicolson would carry
along).  One tridiagonal solve per step (the banded LU of the constant matrix is
cheap at the sizes used: n_cells ~ 10..1000).

Coupling: the outputs and inputs are velocity *vectors* (``dim``
components, the flow in component ``flow_axis``) on points of the line
``origin + y e_axis``, so they map directly onto a particle code's bin centres
(``md.lj``'s ``velocity_profile_mean`` / ``target_velocity``).  Inputs
``lower_velocity`` and ``upper_velocity`` (one point each, at y0 and y1) replace
the boundary values ``u_lo``/``u_hi`` when coupled; only their flow component is
used (the others are zero for this flow).

The whole line lives on rank 0 of the group; other ranks hold no points.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_banded

from msorch.solver import FieldInfo, FieldSpec, Solver, param

__all__ = ["Shear1DParams", "Shear1DSolver", "couette_startup"]

_V = "sigma/tau"


@dataclass(frozen=True)
class Shear1DParams:
    y0: float = param(0.0, "lower end of the line", units="sigma")
    y1: float = param(1.0, "upper end of the line", units="sigma")
    n_cells: int = param(40, "equal cells between y0 and y1 (nodes = n_cells + 1)")
    viscosity: float = param(2.14, "dynamic viscosity eta", units="epsilon*tau/sigma^3")
    density: float = param(0.813, "mass density rho (number density for unit mass)", units="m/sigma^3")
    u_lo: float = param(0.0, "flow velocity at y0 when lower_velocity is not coupled", units=_V)
    u_hi: float = param(0.0, "flow velocity at y1 when upper_velocity is not coupled", units=_V)
    u_init: float = param(0.0, "flow velocity of the interior nodes at the start", units=_V)
    theta: float = param(0.5, "time-stepping weight: 0.5 Crank-Nicolson, 1 backward Euler")
    dim: int = param(3, "space dimension of the points and number of velocity components (1..3)")
    origin: tuple[float, ...] = param((0.0, 0.0, 0.0), "coordinates (dim entries) of the line's y = 0 "
                                                      "point", units="sigma")
    axis: int = param(1, "coordinate along which the line runs (the wall normal)")
    flow_axis: int = param(0, "velocity component holding the flow u")


def couette_startup(y, t, u_wall: float, height: float, viscosity: float, density: float,
                    terms: int = 2000) -> np.ndarray:
    """Sudden-start Couette flow: wall y = 0 moving at ``u_wall`` from t = 0, wall y = H at rest,
    fluid at rest before.  u(y, t) = U (1 - y/H) - (2U/pi) sum_n (1/n) sin(n pi y/H)
    exp(-n^2 pi^2 nu t/H^2), nu = eta/rho (separation of variables; e.g. Nie, Chen, E &
    Robbins, J. Fluid Mech. 500, 55, 2004).

    Parameters
    ----------
    y : (m,) float64 [sigma]; t : float > 0 [tau]; returns (m,) float64 [sigma/tau].
    """
    y = np.asarray(y, dtype=float)
    nu = viscosity / density
    n = np.arange(1, terms + 1)[:, None]
    series = np.sum(np.sin(n * np.pi * y / height) / n * np.exp(-(n * np.pi / height) ** 2 * nu * t), axis=0)
    return u_wall * (1.0 - y / height) - 2.0 * u_wall / np.pi * series


class Shear1DSolver(Solver):
    """1-D momentum diffusion; see the module docstring for equations, units and fields."""

    Params = Shear1DParams
    outputs = ("velocity", "shear_stress")
    inputs = ("lower_velocity", "upper_velocity")
    field_info = {
        "velocity": FieldInfo(_V, "flow velocity vector at the nodes", "{dim}"),
        "shear_stress": FieldInfo("epsilon/sigma^3", "eta du/dy at the nodes (one-sided at the ends)"),
        "lower_velocity": FieldInfo(_V, "velocity imposed at y0 (flow component used)", "{dim}"),
        "upper_velocity": FieldInfo(_V, "velocity imposed at y1 (flow component used)", "{dim}"),
    }

    @classmethod
    def check(cls, p):
        problems = []
        if p.y1 <= p.y0:
            problems.append(("y1", f"must exceed y0 = {p.y0}", f"e.g. y1: {p.y0 + 1.0}"))
        if p.n_cells < 2:
            problems.append(("n_cells", "need at least 2 cells (one interior node)", "n_cells: 40"))
        for name in ("viscosity", "density"):
            if getattr(p, name) <= 0:
                problems.append((name, "must be > 0", f"give a positive {name}"))
        if not 0.5 <= p.theta <= 1.0:
            problems.append(("theta", f"must be in [0.5, 1] (unconditionally stable), got {p.theta}",
                             "theta: 0.5 (Crank-Nicolson) or 1 (backward Euler)"))
        dim = p.dim
        if not 1 <= dim <= 3:
            problems.append(("dim", f"must be 1, 2 or 3, got {dim}", "dim: 3"))
        elif len(p.origin) != dim:
            problems.append(("origin", f"need dim = {dim} coordinates, got {len(p.origin)}",
                             f"e.g. origin: {[0.0] * dim}"))
        else:
            if not 0 <= p.axis < dim:
                problems.append(("axis", f"must be in 0..{dim - 1}", "axis: 1 (y)"))
            if not 0 <= p.flow_axis < dim:
                problems.append(("flow_axis", f"must be in 0..{dim - 1}", "flow_axis: 0 (x)"))
        return problems

    def initialize(self, t0):
        p = self.params
        problems = self.check(p)
        if problems:
            raise ValueError("; ".join(f"{k}: {m}" for k, m, _ in problems))
        self.dim = p.dim
        self.y = np.linspace(p.y0, p.y1, p.n_cells + 1)
        self.h = (p.y1 - p.y0) / p.n_cells
        self.u = np.full(p.n_cells + 1, float(p.u_init))
        self.u[0], self.u[-1] = p.u_lo, p.u_hi
        self.bc_next = np.array([p.u_lo, p.u_hi])   # values at the end of the next step
        self._lu_dt = None
        root = self.comm.Get_rank() == 0
        pts = np.tile(np.asarray(p.origin, dtype=float), (len(self.y), 1))
        pts[:, p.axis] += self.y
        self.points = pts if root else pts[:0]
        self.ends = (pts[[0]] if root else pts[:0], pts[[-1]] if root else pts[:0])

    def fields(self):
        dim = self.dim
        return {"velocity": FieldSpec("float64", dim, _V, self.points),
                "shear_stress": FieldSpec("float64", 1, "epsilon/sigma^3", self.points),
                "lower_velocity": FieldSpec("float64", dim, _V, self.ends[0]),
                "upper_velocity": FieldSpec("float64", dim, _V, self.ends[1])}

    def _bands(self, dt):
        """Banded matrix of the implicit part over the interior nodes: I - theta r D2."""
        if self._lu_dt != dt:
            r = self.params.viscosity / self.params.density * dt / self.h ** 2
            m = self.params.n_cells - 1
            a = self.params.theta * r
            ab = np.zeros((3, m))
            ab[0, 1:] = -a
            ab[1, :] = 1.0 + 2.0 * a
            ab[2, :-1] = -a
            self._ab, self._r, self._lu_dt = ab, r, dt
        return self._ab, self._r

    def advance(self, t, dt):
        """One theta-method step from t to t + dt [tau]; the boundary values at t + dt are
        the latest inputs (or u_lo/u_hi)."""
        th = self.params.theta
        ab, r = self._bands(dt)
        u = self.u
        rhs = u[1:-1] + (1.0 - th) * r * (u[:-2] - 2.0 * u[1:-1] + u[2:])
        lo, hi = self.bc_next
        rhs[0] += th * r * lo
        rhs[-1] += th * r * hi
        new = np.empty_like(u)
        new[1:-1] = solve_banded((1, 1), ab, rhs)
        new[0], new[-1] = lo, hi
        self.u = new

    def get(self, name):
        if name == "velocity":
            out = np.zeros((len(self.y), self.dim))
            out[:, self.params.flow_axis] = self.u
        else:
            out = self.params.viscosity * np.gradient(self.u, self.h, edge_order=2)
        return out[:len(self.points)]

    def put(self, name, data):
        if name not in self.inputs:
            raise KeyError(f"continuum.shear1d has no input {name!r}; inputs: {', '.join(self.inputs)}")
        value = np.zeros(1)
        if len(data):
            value[0] = np.asarray(data, dtype=float).reshape(-1, self.dim)[0, self.params.flow_axis]
        self.comm.Bcast(value, root=0)
        self.bc_next[0 if name == "lower_velocity" else 1] = value[0]

    def state(self):
        return {"u": self.u.copy(), "bc_next": self.bc_next.copy()}

    def restore(self, state):
        self.u = np.array(state["u"], dtype=float)
        self.bc_next = np.array(state["bc_next"], dtype=float)

    def result_points(self):
        return self.points

    def results(self):
        return {"velocity": self.get("velocity"), "shear_stress": self.get("shear_stress")}
