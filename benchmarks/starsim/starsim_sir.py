"""Starsim side of benchmarks/epi_bench.py: SIR on a static random network, timed.

Runs in the throw-away venv of benchmarks/starsim/setup.sh (Starsim needs numpy 2), never in
msorch's .venv.  Prints one JSON line: setup and run seconds, the number of steps Starsim took,
and the final S/I/R counts.

Usage: starsim_sir.py N_AGENTS STEPS MEAN_DEGREE BETA_PER_DAY INFECTIOUS_DAYS INITIAL_PREVALENCE SEED
"""
import json
import sys
import time

import starsim as ss


def main():
    n, steps, degree = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    beta, dur, prev, seed = float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7])
    t0 = time.perf_counter()
    # Static network (dynamic=False), each agent's contacts to uniformly drawn targets: mean degree
    # `degree` (Starsim's documented Covasim-v3-style random network).  SIR with per-contact rate beta
    # per day, exponential infectious period of mean `dur` days, no deaths; daily steps.
    sim = ss.Sim(n_agents=n,
                 networks=ss.RandomNet(n_contacts=degree, dynamic=False, uniform_targets=True),
                 diseases=ss.SIR(beta=ss.perday(beta), init_prev=prev, dur_inf=ss.expon(scale=ss.days(dur)),
                                 p_death=0.0),
                 start=0, stop=steps, dt=ss.days(1), verbose=0, rand_seed=seed)
    sim.init()
    t1 = time.perf_counter()
    sim.run()
    t2 = time.perf_counter()
    res = sim.results.sir
    net = sim.networks[0]
    print(json.dumps({"setup_seconds": t1 - t0, "run_seconds": t2 - t1, "steps": int(len(sim.timevec)),
                      "S": float(res["n_susceptible"][-1]), "I": float(res["n_infected"][-1]),
                      "R": float(res["n_recovered"][-1]), "mean_degree": 2 * len(net.edges.p1) / n,
                      "starsim": ss.__version__}))


if __name__ == "__main__":
    main()
