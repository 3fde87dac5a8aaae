"""The HMM farm's own cost and its load balancing (issue 11, Must show 5 a-c).

All through the real ``msorch run`` (1 coordinator + 1 macro rank + the farm's
ranks), times from ``results.h5`` (``/timing/probe``: wall seconds per window
on the macro rank; ``/hmm/plus/micro_seconds``: micro work per farm rank).

(a) *Framework cost.*  A trivial micro model (``y = x + 1``, one step, batch
    form) answers N = 100 and 1,000 macro points every window, in stateful
    mode (one persistent instance per point, as preCICE's Micro Manager runs
    its micro simulations) and in stateless mode (a query sets a setting; the
    instance is reset, run, read; no cache).  Per-window time T(N) = fixed +
    N * per_instance, both from the two N.  Targets: per instance <= 1 us,
    fixed <= 50 us.  Reference (``/work/shared/references.md``): Micro
    Manager 0.12 on this machine kind, 1.6-2.2 us per micro simulation and
    0.32-0.36 ms fixed per window.
(b) *Equal tasks.*  200 queries per window, each 1 ms of busy work, on 1 and 2
    farm ranks: parallel efficiency T1 / (2 T2) (target >= 0.95; Micro Manager:
    0.99 with a static split).
(c) *Uneven tasks.*  100 queries per window costing 2 to 20 ms (a 10x spread),
    growing with the point index, so a static split in halves gives one rank
    ~3x the other's work (its efficiency is printed).  Efficiency at 2 ranks:
    target >= 0.85.

The machine has 2 cores shared with other jobs: figures measured under load
are noisy, and (b)/(c) need both cores for the two farm ranks (the macro and
the coordinator mostly wait).  Run ``python benchmarks/farm_bench.py``.
The toy solvers live here; the spec names them ``farm_bench:Probe`` /
``farm_bench:Plus`` and the benchmark puts this folder on PYTHONPATH.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from msorch.solver import FieldSpec, Solver, param

ROOT = Path(__file__).resolve().parents[1]
REPEAT = 3   # runs per case in (a); the fastest is reported
MICRO_MANAGER = {"per_instance_us": "1.6-2.2", "fixed_ms": "0.32-0.36", 100: "0.493 / 0.641", 1000: "1.88 / 2.57"}


# --- the toy solvers (imported on the ranks) ------------------------------------


@dataclass(frozen=True)
class ProbeParams:
    n: int = param(100, "macro points")
    check: bool = param(True, "check that every answer is q + 1 (off for the run without a farm)")


class Probe(Solver):
    """A macro model doing nothing but asking: query q_i = i/n (+ a window count), answer a_i."""

    Params = ProbeParams
    outputs = ("q",)
    inputs = ("a",)

    def initialize(self, t0):
        n, size, rank = self.params.n, self.comm.Get_size(), self.comm.Get_rank()
        lo, hi = n * rank // size, n * (rank + 1) // size
        self.points = np.arange(lo, hi, dtype=float)[:, None]
        self.base = np.arange(lo, hi) / n
        self.q = self.base.copy()
        self.a = np.zeros(hi - lo)
        self.windows = 0
        self.errors = 0

    def fields(self):
        return {"q": FieldSpec("float64", 1, "1", self.points), "a": FieldSpec("float64", 1, "1", self.points)}

    def advance(self, t, dt):
        if self.params.check:
            self.errors += int(np.count_nonzero(self.a != self.q + 1.0))   # the farm answered q + 1?
        self.windows += 1
        np.add(self.base, 1e-3 * self.windows, out=self.q)   # new queries every window

    def get(self, name):
        return self.q

    def put(self, name, data):
        self.a[...] = data

    def state(self):
        return {"q": self.q.copy(), "a": self.a.copy()}

    def restore(self, state):
        self.q[...], self.a[...] = state["q"], state["a"]

    def finalize(self):
        if self.errors:
            raise RuntimeError(f"{self.errors} wrong answers")


@dataclass(frozen=True)
class PlusParams:
    level: float = param(0.0, "the query (stateless mode)")
    cost: float = param(0.0, "busy seconds per step at level 0", units="s")
    spread: float = param(1.0, "cost grows linearly to cost*spread at level 1")
    sleep: bool = param(False, "spend the cost sleeping (checks the protocol apart from CPU contention)")


class Plus(Solver):
    """y = x + 1 on one point: x from the setting 'level' or the input 'x'."""

    Params = PlusParams
    outputs = ("y",)
    inputs = ("x",)
    query_settings = ("level",)

    def initialize(self, t0):
        self.x = np.array([self.params.level])
        self.y = self.x + 1.0
        self.points = np.zeros((1, 1))

    def reset(self, params):
        self.params = params
        self.x[0] = params.level

    def fields(self):
        return {"x": FieldSpec("float64", 1, "1", self.points), "y": FieldSpec("float64", 1, "1", self.points)}

    def advance(self, t, dt):
        p = self.params
        if p.cost:
            seconds = p.cost * (1.0 + (p.spread - 1.0) * min(max(self.x[0], 0.0), 1.0))
            if p.sleep:
                time.sleep(seconds)
            else:
                end = time.perf_counter() + seconds
                while time.perf_counter() < end:
                    pass
        np.add(self.x, 1.0, out=self.y)

    @classmethod
    def advance_batch(cls, instances, t, dt):
        if instances[0].params.cost:
            for inst in instances:
                inst.advance(t, dt)
            return
        x = np.array([inst.x[0] for inst in instances])
        for inst, v in zip(instances, x + 1.0):
            inst.y[0] = v

    def get(self, name):
        return self.y

    def put(self, name, data):
        self.x[...] = data

    def state(self):
        return {"x": self.x.copy(), "y": self.y.copy()}

    def restore(self, state):
        self.x[...], self.y[...] = state["x"], state["y"]


# --- the benchmark ----------------------------------------------------------------

SPEC = """name: farm_bench
time: {{start: 0.0, end: {windows}.0, window: 1.0}}
solvers:
  probe: {{kind: "farm_bench:Probe", ranks: 1, params: {{n: {n}}}, output: {{fields: []}}}}
  plus: {{kind: "farm_bench:Plus", ranks: {farm}, dt: 1.0, params: {{cost: {cost}, spread: {spread}, sleep: {sleep}}}}}
patterns:
  - kind: hmm
    macro: probe
    micro: plus
    query: {{field: probe.q, sets: [{sets}]}}
    answer: {{field: probe.a, from: [y], average: last}}
    micro_time: 1.0
    mode: {mode}
    cache: null
    chunk: {chunk}
progress: false
"""


def env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "benchmarks")]),
                OMPI_MCA_mpi_yield_when_idle="1", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                OMPI_MCA_rmaps_base_oversubscribe="1")


def run(workdir: Path, tag: str, *, n: int, windows: int, farm: int = 1, mode: str = "stateful",
        cost: float = 0.0, spread: float = 1.0, chunk: str = "null", sleep: bool = False
        ) -> tuple[np.ndarray, np.ndarray]:
    """(seconds per window on the macro rank, micro seconds per window and farm rank)."""
    import h5py
    spec = workdir / f"{tag}.yaml"
    sets = "x" if mode == "stateful" else "level"
    spec.write_text(SPEC.format(n=n, windows=windows, farm=farm, mode=mode, cost=cost, spread=spread,
                                sets=sets, chunk=chunk, sleep=str(sleep).lower()))
    out = workdir / tag
    subprocess.run([sys.executable, "-m", "msorch", "run", str(spec), "-o", str(out)], check=True, env=env(),
                   stdout=subprocess.DEVNULL)
    with h5py.File(out / "results.h5") as f:
        return f["timing/probe"][:], f["hmm/plus/micro_seconds"][:]


BARE = """name: farm_bench_bare
time: {{start: 0.0, end: {windows}.0, window: 1.0}}
solvers:
  probe: {{kind: "farm_bench:Probe", ranks: 1, params: {{n: {n}, check: false}}, output: {{fields: []}}}}
progress: false
"""


def bare_window(workdir: Path, n: int, windows: int, tag: str = "bare") -> float:
    """Baseline in the same run: the macro alone (no farm), same windows: msorch's bare window cost."""
    import h5py
    spec = workdir / f"{tag}.yaml"
    spec.write_text(BARE.format(n=n, windows=windows))
    subprocess.run([sys.executable, "-m", "msorch", "run", str(spec), "-o", str(workdir / tag)], check=True,
                   env=env(), stdout=subprocess.DEVNULL)
    with h5py.File(workdir / tag / "results.h5") as f:
        return steady(f["timing/probe"][:])


def _fresh(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def steady(t: np.ndarray) -> float:
    """Median seconds per window, the first fifth (start-up, warm-up) left out."""
    return float(np.median(t[len(t) // 5:]))


def part_a(workdir: Path) -> dict:
    print(f"(a) framework cost: trivial micro y = x + 1, one step per window, 1 farm rank (best of {REPEAT})")
    print(f"{'mode':>10} {'N':>6} {'per window':>12}   Micro Manager 0.12 (min / median, ms)")
    rows = {}
    for rep in range(REPEAT):   # interleaved repetitions, best kept: load bursts only ever add time
        for mode in ("stateful", "stateless"):
            for n, windows in ((100, 3000), (1000, 600)):
                t = steady(run(workdir, f"a_{mode}_{n}_{rep}", n=n, windows=windows, mode=mode)[0])
                rows[mode, n] = min(t, rows.get((mode, n), np.inf))
    for (mode, n), t in rows.items():
        print(f"{mode:>10} {n:>6} {t * 1e6:>10.1f}us   {MICRO_MANAGER[n]}")
    bare = min(bare_window(workdir, 100, 3000, f"bare_{rep}") for rep in range(REPEAT))
    print(f"{'no farm':>10} {100:>6} {bare * 1e6:>10.1f}us   (baseline: the macro alone, msorch's bare window)")
    # Second baseline: an explicit window between two solvers (window_bench.py, n = 1, 1+1 ranks):
    # like a farm window, its data passes two processes and back; 9.7 us on the idle machine.
    sys.path.insert(0, str(Path(__file__).parent))
    import window_bench
    coupled = min(window_bench.msorch_window(1, 5000, 1, _fresh(workdir / f"coupled_{rep}")) for rep in range(REPEAT))
    print(f"{'coupled':>10} {1:>6} {coupled * 1e6:>10.1f}us   (baseline: window_bench.py n = 1, 1+1 ranks; "
          "9.7 us idle)")
    out = {}
    for mode in ("stateful", "stateless"):
        per = (rows[mode, 1000] - rows[mode, 100]) / 900
        fixed = rows[mode, 100] - 100 * per
        out[mode] = (per, fixed)
        print(f"{mode:>10}: per instance {per * 1e6:.2f} us (target <= 1 us; Micro Manager "
              f"{MICRO_MANAGER['per_instance_us']} us), fixed {fixed * 1e6:.1f} us per window "
              f"(target <= 50 us; Micro Manager {MICRO_MANAGER['fixed_ms']} ms) = "
              f"{fixed / coupled:.1f} coupled windows of this run")
    return out


def efficiency(workdir: Path, tag: str, **kw) -> tuple[float, float, float, np.ndarray]:
    t1 = steady(run(workdir, f"{tag}_1", farm=1, **kw)[0])
    t2_all, micro = run(workdir, f"{tag}_2", farm=2, **kw)
    t2 = steady(t2_all)
    return t1, t2, t1 / (2 * t2), micro[len(micro) // 5:].sum(axis=0)


def part_b(workdir: Path, sleep: bool = False) -> float:
    what = "sleeping (protocol check: no CPU needed)" if sleep else "busy work"
    print(f"(b) 200 queries of 1 ms {what} per window, stateless, 1 and 2 farm ranks")
    t1, t2, eff, per_rank = efficiency(workdir, "bs" if sleep else "b", n=200, windows=10, mode="stateless",
                                       cost=1e-3, sleep=sleep)
    print(f"    1 rank {t1 * 1e3:.1f} ms, 2 ranks {t2 * 1e3:.1f} ms per window: efficiency {eff:.3f} "
          f"(target >= 0.95; Micro Manager 0.99); micro seconds per rank {per_rank.round(3)}")
    return eff


def part_c(workdir: Path, sleep: bool = False) -> float:
    n, lo, spread = 100, 2e-3, 10.0
    costs = lo * (1 + (spread - 1) * np.arange(n) / n)
    static = costs.sum() / (2 * max(costs[:n // 2].sum(), costs[n // 2:].sum()))
    what = "sleeping (protocol check)" if sleep else "busy work"
    print(f"(c) {n} queries of {lo * 1e3:.0f}-{lo * spread * 1e3:.0f} ms {what} per window, growing with the "
          f"point index (a static split in halves: efficiency {static:.3f} at best)")
    t1, t2, eff, per_rank = efficiency(workdir, "cs" if sleep else "c", n=n, windows=6, mode="stateless",
                                       cost=lo, spread=spread, sleep=sleep)
    print(f"    1 rank {t1 * 1e3:.1f} ms, 2 ranks {t2 * 1e3:.1f} ms per window: efficiency {eff:.3f} "
          f"(target >= 0.85); micro seconds per rank {per_rank.round(3)}")
    return eff


def main() -> None:
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores"
          + ("  (busy machine: noisy figures)" if load[0] > 1.5 else ""))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        a = part_a(work)
        b = part_b(work)
        c = part_c(work)
        if os.getloadavg()[0] > 1.5:   # busy cores: also show the protocol's own efficiency
            part_b(work, sleep=True)
            part_c(work, sleep=True)
    print("summary: " + "; ".join(f"{m} {per * 1e6:.2f} us/instance + {fixed * 1e6:.1f} us/window"
                                  for m, (per, fixed) in a.items())
          + f"; efficiency equal tasks {b:.3f}, uneven tasks {c:.3f}")
    load = os.getloadavg()
    print(f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
