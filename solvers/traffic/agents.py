"""What the agent models (IDM, NaSch) share: per-bin fields, road-end fields,
vehicle counts and the hand-over arrays.

A subclass sets ``self.seg`` (a :class:`road.Segment` in metres),
``self.last_dt``, ``self.step_in``/``self.step_out`` (vehicles that crossed
x = 0 / x = L in the last step) and implements :meth:`positions`,
:meth:`speeds` and :meth:`free_speed`; it calls :meth:`setup_counts` in
``initialize`` and bumps ``self.cum[kind][bin]`` (kinds :data:`COUNT_KINDS`)
as vehicles appear and disappear.
"""
from __future__ import annotations

import numpy as np

from msorch.solver import FieldInfo, FieldSpec, Solver

from .handover import NC as HNC, Mailbox

__all__ = ["AgentRoadSolver"]

UNITS = {"density": "veh/m", "flow": "veh/s", "speed": "m/s"}
COUNT_KINDS = ("initial", "in", "created", "removed", "out")


class AgentRoadSolver(Solver):
    """Fields and bookkeeping of a road of agents cut into bins (see module doc).

    Outputs (per bin, points at bin centres): ``density`` [veh/m], ``flow``
    [veh/s] (= sum of speeds / bin width), ``speed`` [m/s] (mean; the free
    speed in an empty bin).  At the road ends (one point on the rank holding
    it, none elsewhere): ``upstream_density``/``downstream_density`` (first/last
    bin), ``upstream_speed``/``downstream_speed``, and ``upstream_flow``/
    ``downstream_flow`` [veh/s] = vehicles that crossed x = 0 / x = L in the
    last step divided by dt.  With ``handover`` the ``vehicles_out`` output and
    ``vehicles_in`` input (layout: :mod:`solvers.traffic.handover`).
    """

    BIN_OUTPUTS = ("density", "flow", "speed")
    field_info = {
        "density": FieldInfo("veh/m", "vehicles per bin / bin width"),
        "flow": FieldInfo("veh/s", "sum of the bin's speeds / bin width"),
        "speed": FieldInfo("m/s", "mean speed in the bin (the free speed if empty)"),
    }
    END_OUTPUTS = ("upstream_density", "upstream_flow", "upstream_speed",
                   "downstream_density", "downstream_flow", "downstream_speed")

    @classmethod
    def boundary_inputs(cls, p) -> tuple[str, ...]:
        """Inputs other than ``vehicles_in`` for these settings."""
        return ()

    @classmethod
    def field_names(cls, p):
        outs = cls.BIN_OUTPUTS + cls.END_OUTPUTS + (("vehicles_out",) if p.handover else ())
        ins = cls.boundary_inputs(p) + (("vehicles_in",) if p.handover else ())
        return outs, ins

    # subclass hooks ---------------------------------------------------------
    def positions(self) -> np.ndarray:
        """(n,) front positions [m] of this rank's vehicles."""
        raise NotImplementedError

    def speeds(self) -> np.ndarray:
        """(n,) speeds [m/s] of this rank's vehicles."""
        raise NotImplementedError

    def free_speed(self) -> float:
        """Speed [m/s] reported for an empty bin."""
        raise NotImplementedError

    # shared -----------------------------------------------------------------
    def setup_counts(self, slots: int) -> None:
        self.cum = {k: np.zeros(self.seg.n_local, dtype=np.int64) for k in COUNT_KINDS}
        self.step_in = self.step_out = 0
        self.last_dt = 1.0
        self.mail = Mailbox(slots, self.seg.last)

    def bin_sum(self, x: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
        """(n_local_bins,) count (or sum of ``w``) of vehicles at ``x`` [m] per local bin."""
        b = np.searchsorted(self.seg.edges, x, side="right") - 1 - self.seg.bin_lo
        b = np.clip(b, 0, self.seg.n_local - 1)
        out = np.bincount(b, weights=w, minlength=self.seg.n_local)
        return out if w is not None else out.astype(np.int64)

    @property
    def road_start(self) -> float:
        """Corridor position [m] of x = 0 (the ``road_start`` setting; 0 for solvers without it):
        field points are corridor positions, vehicle positions stay local."""
        return float(getattr(self.params, "road_start", 0.0))

    def fields(self):
        seg, x0 = self.seg, self.road_start
        up = np.full((1 if seg.first else 0, 1), x0)
        down = np.full((1 if seg.last else 0, 1), x0 + seg.length)
        f = {name: FieldSpec("float64", 1, UNITS[name], seg.centers + x0) for name in self.BIN_OUTPUTS}
        for end, pts in (("upstream", up), ("downstream", down)):
            for q in UNITS:
                f[f"{end}_{q}"] = FieldSpec("float64", 1, UNITS[q], pts)
        for name in self.boundary_inputs(self.params):
            end, _, q = name.partition("_")
            f[name] = FieldSpec("float64", 1, UNITS[q], up if end == "upstream" else down)
        if self.params.handover:
            n = self.mail.slots
            f["vehicles_out"] = FieldSpec("float64", HNC, "1", np.repeat(down, n, 0), extensive=True)
            n_in = self.params.handover_slots if seg.first else 0
            f["vehicles_in"] = FieldSpec("float64", HNC, "1", np.zeros((n_in, 1)), extensive=True)
        return f

    def get(self, name):
        seg = self.seg
        if name in self.BIN_OUTPUTS and seg.n_bins == 1:
            # one bin (an HMM micro ring): plain sums, ~10x cheaper than binning
            v = self.speeds()
            if name == "density":
                return np.array([len(v) / seg.length])
            if name == "flow":
                return np.array([v.sum() / seg.length])
            return np.array([v.mean() if len(v) else self.free_speed()])
        if name in self.BIN_OUTPUTS:
            x = self.positions()
            n = self.bin_sum(x)
            sv = self.bin_sum(x, self.speeds())
            if name == "density":
                return n / seg.widths
            if name == "flow":
                return sv / seg.widths
            return np.where(n > 0, sv / np.maximum(n, 1), self.free_speed())
        if name == "vehicles_out" and self.params.handover:
            return self.mail.report()
        if name not in self.END_OUTPUTS:
            raise KeyError(f"{type(self).__name__} has no output {name!r}")
        end, _, q = name.partition("_")
        if not (seg.first if end == "upstream" else seg.last):
            return np.zeros(0)
        if q == "flow":
            return np.array([(self.step_in if end == "upstream" else self.step_out) / self.last_dt])
        return np.array([self.get(q)[0 if end == "upstream" else -1]])

    def results(self):
        """Per-bin fields and cumulative vehicle counts per bin, all of shape (n_local_bins,).

        ``count_initial + count_in + count_created == count_out + count_removed
        + count_present`` summed over all bins of all ranks, exactly.
        """
        out = {name: self.get(name) for name in self.BIN_OUTPUTS}
        for k, v in self.cum.items():
            out[f"count_{k}"] = v.copy()
        out["count_present"] = self.bin_sum(self.positions())
        return out

    def result_points(self):
        return self.seg.centers + self.road_start

    def counts(self) -> dict[str, int]:
        """Global cumulative vehicle counts (collective).

        ``initial + in + created == out + removed + present`` holds exactly.
        """
        local = np.array([self.cum[k].sum() for k in COUNT_KINDS] + [len(self.positions())], dtype=np.int64)
        tot = local.copy()
        if self.comm.Get_size() > 1:
            from mpi4py import MPI
            self.comm.Allreduce(local, tot, op=MPI.SUM)
        return dict(zip(COUNT_KINDS + ("present",), map(int, tot)))

    def count_state(self) -> dict[str, np.ndarray]:
        s = {f"cum_{k}": v.copy() for k, v in self.cum.items()}
        s["crossings"] = np.array([self.step_in, self.step_out, self.last_dt])
        s.update(self.mail.state())
        return s

    def count_restore(self, state) -> None:
        for k in self.cum:
            self.cum[k] = state[f"cum_{k}"].copy()
        c = state["crossings"]
        self.step_in, self.step_out, self.last_dt = int(c[0]), int(c[1]), float(c[2])
        self.mail.restore(state)

    @staticmethod
    def neighbours(comm, ring: bool) -> tuple[int, int]:
        """(next, previous) rank along the road; PROC_NULL past an open end."""
        from mpi4py import MPI
        r, n = comm.Get_rank(), comm.Get_size()
        nxt, prv = r + 1, r - 1
        if ring:
            return nxt % n, prv % n
        return (nxt if nxt < n else MPI.PROC_NULL), (prv if prv >= 0 else MPI.PROC_NULL)

    @staticmethod
    def shift_rows(comm, rows: np.ndarray, nxt: int, prv: int, ncol: int, dtype) -> np.ndarray:
        """Send ``rows`` (n, ncol) downstream and receive the upstream rank's (collective).

        Counts go first (``Sendrecv`` of one int64), then the packed rows.
        """
        count = np.array([len(rows)], dtype=np.int64)
        incoming = np.zeros(1, dtype=np.int64)
        comm.Sendrecv(count, dest=nxt, sendtag=11, recvbuf=incoming, source=prv, recvtag=11)
        recv = np.zeros((int(incoming[0]), ncol), dtype=dtype)
        comm.Sendrecv(np.ascontiguousarray(rows, dtype=dtype), dest=nxt, sendtag=12,
                      recvbuf=recv, source=prv, recvtag=12)
        return recv
