"""IDM ring: msorch's ``traffic.idm`` against SUMO, and a 20,000-vehicle msorch run.

The same ring (2,000 vehicles spaced 25 m on a 50 km single-lane ring built
from 100 edges of 500 m; v0 30 m/s, T 1.5 s, s0 2 m, a 1.5 m/s^2, b 1.67 m/s^2,
delta 4, length 5 m), started at rest, dt = 0.1 s, 300 s simulated, runs in

* msorch: :class:`solvers.traffic.idm.IDMSolver` on one rank, its ``advance``
  called in a loop (the numba kernel plus the solver's per-step bookkeeping);
* SUMO (``sumo``, Debian package ``sumo``): ``carFollowModel="IDM"`` with
  minGap = s0, tau = T, accel = a, decel = b, delta, maxSpeed = v0,
  speedFactor 1, speedDev 0 (sigma is not used by IDM), action step = step
  length; the network comes from solvers.traffic.sumo_network (shared with
  traffic.sumo), the routes are written here.

Checks: the stationary mean speeds agree within 0.5 % with each other and
with the analytic equilibrium v_e (s_e(v) = (s0 + vT)/sqrt(1 - (v/v0)^delta)
= 20 m, brentq), and prints vehicle updates per second (SUMO's own UPS from
``--duration-log.statistics``).  Exit status 1 if a check fails.

Run: ``PYTHONPATH=. /usr/bin/python3 benchmarks/traffic_bench.py [--no-sumo]``
"""
from __future__ import annotations

import argparse
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from mpi4py import MPI
from scipy.optimize import brentq

from solvers.traffic import idm_kernel as K
from solvers.traffic.idm import IDMParams, IDMSolver
from solvers.traffic.sumo_network import idm_vtype, write_road

V0, T, S0, A, B, DELTA, LEN = 30.0, 1.5, 2.0, 1.5, 1.67, 4.0, 5.0
SPACING, DT, T_END = 25.0, 0.1, 300.0
EDGE = 500.0


def v_equilibrium(gap: float) -> float:
    return brentq(lambda v: (S0 + v * T) / math.sqrt(1 - (v / V0) ** DELTA) - gap, 0, V0 * (1 - 1e-14),
                  xtol=1e-13)


def run_msorch(n: int) -> tuple[float, float]:
    """(mean speed [m/s] at the end, vehicle updates per second) of an n-vehicle ring."""
    p = IDMParams(road_length=n * SPACING, bins=max(1, int(n * SPACING // 1000)), v0=V0, T=T, s0=S0, a=A, b=B,
                  delta=DELTA, length=LEN, initial_vehicles=n, initial_speed=0.0)
    s = IDMSolver(MPI.COMM_SELF, p)
    s.initialize(0.0)
    s.advance(0.0, DT)                       # numba compile / cache load outside the timing
    steps = int(round(T_END / DT))
    t0 = time.perf_counter()
    for k in range(1, steps):
        s.advance(k * DT, DT)
    el = time.perf_counter() - t0
    return float(s.vehicles()[:, K.V].mean()), n * (steps - 1) / el


def write_sumo_inputs(d: Path, n: int) -> None:
    n_edges = int(round(n * SPACING / EDGE))
    per_edge = int(round(EDGE / SPACING))
    write_road(d, n_edges, EDGE, V0 + 10, ring=True, prefix="ring")   # traffic.sumo's network builder
    routes = ET.Element("routes")
    idm_vtype(routes, "idm", v0=V0, T=T, s0=S0, a=A, b=B, delta=DELTA, length=LEN)
    for i in range(n_edges):                 # one lap starting at each edge (300 s < one lap at 30 m/s)
        ET.SubElement(routes, "route", id=f"r{i}", edges=" ".join(f"e{(i + k) % n_edges}" for k in range(n_edges)))
    vid = 0
    for i in range(n_edges):
        for j in range(per_edge):
            ET.SubElement(routes, "vehicle", id=f"v{vid}", type="idm", route=f"r{i}", depart="0",
                          departPos=f"{j * SPACING + LEN:.2f}", departSpeed="0", departLane="0")
            vid += 1
    ET.ElementTree(routes).write(d / "ring.rou.xml")


def run_sumo(n: int) -> tuple[float, float, int]:
    """(mean speed at the end, SUMO's UPS, vehicles running at the end)."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        write_sumo_inputs(d, n)
        cmd = ["sumo", "-n", str(d / "ring.net.xml"), "-r", str(d / "ring.rou.xml"), "--step-length", f"{DT}",
               "--begin", "0", "--end", f"{T_END}", "--no-step-log", "true", "--duration-log.statistics", "true",
               "--summary", str(d / "summary.xml"), "--time-to-teleport", "-1", "--collision.action", "warn",
               "--default.speeddev", "0", "--no-warnings", "true", "--precision", "6"]
        res = subprocess.run(cmd, check=True, capture_output=True, text=True)
        m = re.search(r"UPS:\s*([0-9.eE+]+)", res.stdout)
        ups = float(m.group(1)) if m else float("nan")
        last = ET.parse(d / "summary.xml").getroot().findall("step")[-1]
        return float(last.get("meanSpeed")), ups, int(last.get("running"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-sumo", action="store_true", help="skip the SUMO run")
    args = ap.parse_args(argv)
    ve = v_equilibrium(SPACING - LEN)
    ok = True
    v_m, ups_m = run_msorch(2000)
    print(f"analytic equilibrium speed v_e = {ve:.5f} m/s (gap {SPACING - LEN} m)")
    print(f"msorch  2,000 vehicles: mean speed {v_m:.5f} m/s ({(v_m - ve) / ve:+.2e} vs v_e), "
          f"{ups_m:.3e} vehicle updates/s")
    ok &= abs(v_m - ve) / ve < 1e-3
    if not args.no_sumo:
        if shutil.which("sumo") is None:
            print("sumo not found: apt-get install -y sumo sumo-tools")
            return 1
        v_s, ups_s, running = run_sumo(2000)
        print(f"SUMO    2,000 vehicles: mean speed {v_s:.5f} m/s ({(v_s - ve) / ve:+.2e} vs v_e), "
              f"{ups_s:.3e} vehicle updates/s (UPS), {running} running")
        rel = abs(v_m - v_s) / ve
        print(f"msorch vs SUMO mean speed: {rel:.2e} relative (limit 5e-3); speed-up {ups_m / ups_s:.0f}x "
              f"(target >= 100x)")
        ok &= rel < 5e-3 and abs(v_s - ve) / ve < 5e-3 and running == 2000
        ok &= ups_m >= 100 * ups_s
    v_big, ups_big = run_msorch(20000)
    print(f"msorch 20,000 vehicles: mean speed {v_big:.5f} m/s, {ups_big:.3e} vehicle updates/s")
    ok &= abs(v_big - ve) / ve < 1e-3
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
