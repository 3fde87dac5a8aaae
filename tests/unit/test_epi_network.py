"""``epi.network`` on one rank: graphs, the percolation final size, the contract fields, bad input."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from mpi4py import MPI
from scipy.optimize import brentq

from msorch.spec import SpecError, parse_spec
from solvers.epi.contacts import LayerParams, NetworkParams, build_graph, read_edge_file, EdgeFileError
from solvers.epi.network import (EpiNetworkParams, EpiNetworkSolver, InterventionParams, RegionParams,
                                 TestingParams)


def regular_attack(k: int, T: float) -> float:
    """Bond-percolation final size on a random k-regular graph (Newman 2002): u = 1 - T + T u^(k-1)
    (probability that an edge does not lead to the giant outbreak), attack = 1 - u^k."""
    f = lambda u: 1 - T + T * u ** (k - 1) - u      # noqa: E731
    return 1 - brentq(f, 0.0, 1 - 1e-12) ** k if T * (k - 1) > 1 else 0.0


def run(params, dt=0.5, t_end=200.0, record=False):
    s = EpiNetworkSolver(MPI.COMM_SELF, params)
    s.initialize(0.0)
    t, rows = 0.0, []
    while t < t_end - 1e-9 and (s.n_active > 0 or record):
        s.advance(t, dt)
        t += dt
        if record:
            rows.append({k: s.get(k) for k in s.outputs})
    return s, rows


def test_regular_graph_is_simple_with_exact_degrees():
    """k-regular generator: every degree is exactly k, no self-loops, no repeated contacts."""
    g = build_graph(NetworkParams(kind="k-regular", degree=6), [3000, 1000], seed=3)
    assert np.all(g.degree == 6)
    src = np.repeat(np.arange(g.n), g.degree)
    assert not np.any(src == g.indices)
    key = src * g.n + g.indices
    assert len(np.unique(key)) == len(key)
    # regions share no contacts
    assert not np.any((src < 3000) != (g.indices < 3000))


def test_layers_and_erdos_renyi_degrees():
    """G(n, p) mean degree within 4 standard errors of its setting; households are cliques of
    consecutive ids with mean size 1 + (size - 1) (Poisson), so the household degree averages
    E[s(s-1)]/E[s] = (size-1)(size+1)/size for s = 1 + Poisson(size - 1)."""
    g = build_graph(NetworkParams(kind="erdos-renyi", mean_degree=8.0), [20000], seed=1)
    se = math.sqrt(2 * 8.0 / 20000)            # 2M/n with M ~ Binomial: sd of the mean degree
    assert abs(g.degree.mean() - 8.0) < 4 * se
    net = NetworkParams(kind="layers", layers=(LayerParams("households", "households", size=3.0),
                                               LayerParams("community", "random", mean_degree=2.0)))
    g = build_graph(net, [30000], seed=2)
    hh = g.layer == 0
    src = np.repeat(np.arange(g.n), g.degree)
    assert np.all(np.abs(src[hh] - g.indices[hh]) < 30)       # households are consecutive ids
    assert abs(hh.sum() / g.n - 2 * 4 / 3) < 0.06
    assert abs((~hh).sum() / g.n - 2.0) < 0.06


def test_five_regular_final_size_matches_percolation():
    """SIR, beta = gamma = 1 on a 5-regular graph of 20,000 agents: T = 1/2, the percolation
    attack rate 0.95249 (Newman 2002; shared/references.md); one major outbreak's attack rate
    has sd ~ sqrt(a(1-a)/N) ~ 0.0015 (+ the seeding), tolerance 0.01."""
    p = EpiNetworkParams(n_agents=20000, network=NetworkParams(kind="k-regular", degree=5), beta=1.0, gamma=1.0,
                         seed=11, initial_infected=20)
    s, _ = run(p)
    assert s.n_active == 0
    assert abs(s.get("attack_rate")[0] - regular_attack(5, 0.5)) < 0.01


@pytest.mark.parametrize("case", ["isolation", "closure"])
def test_isolation_and_closure_change_T_exactly(case):
    """5-regular, 20,000 agents, reference attack 0.95249 (T = 1/2, as above), reached two ways:
    isolation: beta = 1, gamma = 0.5, detection at rate 0.5 from t = 0 with isolation_factor 0
    ends transmission at min(D, detection) ~ Exp(gamma + rate), so T = beta/(beta + gamma + rate);
    closure: beta = 2, gamma = 1, the only layer at factor 0.5 from t = 0: T = 1/(1 + 1).
    Tolerance 0.01 (sd of one major outbreak ~ 0.002)."""
    net = NetworkParams(kind="k-regular", degree=5)
    if case == "isolation":
        p = EpiNetworkParams(n_agents=20000, network=net, beta=1.0, gamma=0.5, seed=4, initial_infected=20,
                             testing=TestingParams(start=0.0, rate=0.5, isolation_factor=0.0))
    else:
        p = EpiNetworkParams(n_agents=20000, network=net, beta=2.0, gamma=1.0, seed=4, initial_infected=20,
                             interventions=(InterventionParams(0.0, "all", 0.5),))
    s, _ = run(p)
    assert abs(s.get("attack_rate")[0] - regular_attack(5, 0.5)) < 0.01


def test_configuration_model_final_size():
    """Degrees 3 or 8 with probability 1/2 each, T = 0.25 (beta = 1/3, gamma = 1): generating
    functions G0(x) = (x^3 + x^8)/2, G1(x) = G0'(x)/G0'(1); attack = 1 - G0(1 - T + T u),
    u = G1(1 - T + T u) (Newman 2002): 0.5050, R0 = 1.41; 30,000 agents, tolerance 0.015."""
    T, ks = 0.25, np.array([3, 8])
    G0 = lambda x: np.mean(x ** ks)                                      # noqa: E731
    G1 = lambda x: np.sum(ks * x ** (ks - 1)) / ks.sum()                 # noqa: E731
    u = brentq(lambda u: G1(1 - T + T * u) - u, 0.0, 1 - 1e-9)
    ref = 1 - G0(1 - T + T * u)
    net = NetworkParams(kind="configuration", degree_values=(3, 8), degree_weights=(0.5, 0.5))
    p = EpiNetworkParams(n_agents=30000, network=net, beta=1 / 3, gamma=1.0, seed=8, initial_infected=30)
    s, _ = run(p)
    assert abs(ref - 0.5050) < 5e-4
    assert abs(s.get("attack_rate")[0] - ref) < 0.015


def test_contract_fields_conserve_and_export_integers():
    """Two regions, SEIR with travel: S+E+I+R = N per region every step, incidence equals the
    drop of S, exported is integer-valued, attack_rate = R/N, and a rerun is identical."""
    p = EpiNetworkParams(n_agents=4000, regions=(RegionParams("a", 3000), RegionParams("b", 1000)),
                         network=NetworkParams(kind="erdos-renyi", mean_degree=6.0), beta=0.3, sigma=0.5,
                         gamma=0.25, seed=5, initial_infected=10, initial_region="a", travel_fraction=0.1)
    _, rows = run(p, dt=0.25, t_end=20.0, record=True)
    _, again = run(p, dt=0.25, t_end=20.0, record=True)
    S = np.array([r["S"] for r in rows])
    total = sum(np.array([r[k] for r in rows]) for k in "SEIR")
    assert np.all(total == [3000, 1000])
    inc = np.array([r["incidence"] for r in rows])
    assert np.array_equal(-np.diff(np.vstack([[2990, 1000], S]), axis=0), inc)
    exp_ = np.array([r["exported"] for r in rows])
    assert exp_.sum() > 0 and np.array_equal(exp_, np.round(exp_))
    assert np.allclose(rows[-1]["attack_rate"], rows[-1]["R"] / [3000, 1000])
    assert inc[:, 1].sum() == 0                # region b has no contacts with a and no visitors
    assert all(np.array_equal(a[k], b[k]) for a, b in zip(rows, again) for k in a)
    assert rows[-1]["growth_rate"][0] > 0      # a growing epidemic (R0 = 0.3/0.55 * 6 = 3.3)


def test_visitors_and_closures():
    """Imported visitors infect a clean region at the documented rate: with no network spread
    (community closed from t = 0), incidence over 10 steps of 1 day ~ N(1 - exp(-beta c V/N))
    per day, expected 1000 * (1 - exp(-0.5 * 4 * 5 / 1000)) = 9.95/day, i.e. 99.5 in total
    (Poisson-like sd ~ 10, tolerance 4 sd)."""
    p = EpiNetworkParams(n_agents=1000, network=NetworkParams(kind="k-regular", degree=4), beta=0.5, gamma=0.1,
                         seed=2, initial_infected=0, visitor_contacts=4.0,
                         interventions=(InterventionParams(0.0, "community", 0.0),))
    s = EpiNetworkSolver(MPI.COMM_SELF, p)
    s.initialize(0.0)
    total = 0.0
    for k in range(10):
        s.put("imported", np.array([5.0]))
        s.advance(float(k), 1.0)
        total += s.get("incidence")[0]
    expected = 10 * (1000 - 0) * (1 - math.exp(-0.5 * 4 * 5 / 1000))
    assert abs(total - expected) < 4 * math.sqrt(expected)


def test_reset_keeps_the_network_and_equals_a_fresh_instance():
    """reset (HMM farm queries) with new beta on the same network: the graph arrays are kept and
    the run equals a freshly built instance with that beta, step by step."""
    base = EpiNetworkParams(n_agents=3000, network=NetworkParams(kind="erdos-renyi", mean_degree=8.0), beta=0.2,
                            gamma=0.5, seed=9, initial_infected=5)
    s = EpiNetworkSolver(MPI.COMM_SELF, base)
    s.initialize(0.0)
    for k in range(5):
        s.advance(float(k), 1.0)
    indices = s.indices
    other = dataclasses.replace(base, beta=0.4)
    s.reset(other)
    assert s.indices is indices
    fresh = EpiNetworkSolver(MPI.COMM_SELF, other)
    fresh.initialize(0.0)
    for k in range(15):
        s.advance(float(k), 1.0)
        fresh.advance(float(k), 1.0)
        assert all(np.array_equal(s.get(f), fresh.get(f)) for f in s.outputs)
    assert s.get("R")[0] > 0


def _spec(params: str) -> str:
    return ("time: {start: 0.0, end: 1.0, window: 1.0}\nsolvers:\n  town:\n    kind: epi.network\n"
            f"    params: {params}\n")


def test_bad_rates_and_layers_fail_before_launch():
    """Rates <= 0 and an intervention on an unknown layer are spec errors naming the YAML path."""
    with pytest.raises(SpecError) as info:
        parse_spec(_spec("{beta: 0.0, gamma: -1.0, sigma: 0.0, interventions: [{time: 1.0, layer: schools}]}"))
    text = str(info.value)
    with pytest.raises(SpecError, match="solvers.town.params.network.degree: no 3-regular graph on the 5 agents"):
        parse_spec(_spec("{n_agents: 5, network: {kind: k-regular, degree: 3}}"))
    for where in ("solvers.town.params.beta", "solvers.town.params.gamma", "solvers.town.params.sigma",
                  "solvers.town.params.interventions[0].layer"):
        assert where in text, text


def test_bad_edge_files_name_file_and_line(tmp_path):
    """Edge files: a self-loop and an out-of-range id are errors naming file:line, at validation
    and at load."""
    loop = tmp_path / "loop.txt"
    loop.write_text("# contacts\n0 1\n2 2\n")
    far = tmp_path / "far.txt"
    far.write_text("0 1\n1 7 households\n")
    for path, what in ((loop, f"{loop}:3: self-loop"), (far, f"{far}:2: agent id out of range")):
        with pytest.raises(SpecError) as info:
            parse_spec(_spec(f"{{n_agents: 5, network: {{kind: file, file: '{path}'}}}}"))
        assert "solvers.town.params.network.file" in str(info.value) and what in str(info.value)
        with pytest.raises(EdgeFileError, match=what):
            read_edge_file(str(path), 5)
    ok = tmp_path / "ok.txt"
    ok.write_text("0 1\n1 2 households\n")
    g = read_edge_file(str(ok), 5)
    assert g.layer_names == ["community", "households"] and list(g.degree) == [1, 2, 1, 0, 0]
