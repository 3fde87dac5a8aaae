"""Serial tests of ``epi.meta`` (solvers/epi/meta.py) and jobs/epi_meta.yaml.

References (shared/references.md, "Epidemics"): final size z = 1 - exp(-R0 z)
(R0 = 2 -> 0.7968, 1.5 -> 0.5828), the same for SEIR; SIR peak prevalence
1 - (1 + ln R0)/R0; for the chain-binomial model the large-population final size of
the same equation with R0 = beta x mean infectious time (geometric period:
dt / (1 - exp(-gamma dt))), since the final size of a homogeneous epidemic depends
on the infectious period only through its mean (Ball 1986).
"""
from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
from mpi4py import MPI

from conftest import ROOT
from msorch.spec import SpecError, parse_spec
from solvers.epi.meta import EpiMetaParams, EpiMetaSolver, InterventionParams, RegionParams
from solvers.epi.seir import final_size, final_size_from, reproduction_number, sir_peak_prevalence

N = 1_000_000.0


def run(params: EpiMetaParams, days: float, dt: float = 1.0):
    """The solver on COMM_SELF after ``days``; also returns the I of every step, shape (steps + 1, n)."""
    s = EpiMetaSolver(MPI.COMM_SELF, params)
    s.initialize(0.0)
    prevalence = [s.get("I")]
    for k in range(round(days / dt)):
        s.advance(k * dt, dt)
        prevalence.append(s.get("I"))
    return s, np.array(prevalence)


@pytest.mark.parametrize("R0, table", [(2.0, 0.7968), (1.5, 0.5828)])
@pytest.mark.parametrize("sigma", [None, 0.25])
def test_ode_final_size_matches_the_final_size_equation(R0, table, sigma):
    """SIR and SEIR (latent 4 days) from 1 infectious in 10^6: final size to 1e-4 of the published
    z(R0) (4 digits) and, tighter, of the exact equation for this initial condition (1e-6)."""
    gamma = 0.2
    p = EpiMetaParams(regions=(RegionParams(name="a", population=N, initial_infected=1.0),),
                      beta=R0 * gamma, gamma=gamma, sigma=sigma)
    s, _ = run(p, 1000.0, dt=2.0)
    assert s.get("I")[0] + s.get("E")[0] < 1e-3          # over
    z = s.get("R")[0] / N
    assert abs(z - table) < 1e-4
    exact = final_size_from(R0, 1 - 1 / N, 1 / N) + 1 / N
    assert abs(z - exact) < 1e-6
    assert abs(final_size(R0) - table) < 5e-5


@pytest.mark.parametrize("R0", [2.0, 1.5])
def test_ode_sir_peak_prevalence(R0):
    """SIR from I0 = 1 in 10^6: max_t I/N = 1 - (1 + ln R0)/R0 (S0 -> 1) to 1e-3 (sampled daily;
    the daily sampling and S0 = 1 - 1e-6 each err by < 1e-4)."""
    gamma = 0.2
    p = EpiMetaParams(regions=(RegionParams(name="a", population=N, initial_infected=1.0),),
                      beta=R0 * gamma, gamma=gamma, sigma=None)
    _, prev = run(p, 400.0)
    assert abs(prev.max() / N - sir_peak_prevalence(R0)) < 1e-3


@pytest.mark.verify
def test_chain_binomial_mean_final_size_within_three_standard_errors():
    """240 independent SEIR chain-binomial epidemics (240 regions, no mobility: each its own
    counter-based stream), N = 10^5, 10 initially infectious. Major outbreaks (final size > 20 %)
    only; their mean final size is within 3 standard errors of the final-size equation with
    R0 = beta dt / (1 - exp(-gamma dt)) = 2.0 and this initial condition."""
    n_runs, pop, i0, dt, gamma = 240, 100_000.0, 10.0, 1.0, 0.2
    beta = 2.0 * -math.expm1(-gamma * dt) / dt
    p = EpiMetaParams(regions=tuple(RegionParams(name=f"r{k}", population=pop, initial_infected=i0)
                                    for k in range(n_runs)),
                      variant="chain-binomial", beta=beta, gamma=gamma, sigma=0.25, seed=7)
    s, _ = run(p, 400.0, dt)
    assert np.all(s.get("I") + s.get("E") == 0)           # every run over
    z = (s.get("R") - i0) / (pop - i0)                     # attack among the initially susceptible
    major = z > 0.2
    assert major.sum() >= 200
    exact = final_size_from(2.0, 1 - i0 / pop, i0 / pop) / (1 - i0 / pop)
    se = z[major].std(ddof=1) / math.sqrt(major.sum())
    print(f"chain-binomial: {major.sum()} major outbreaks, mean {z[major].mean():.5f} +- {se:.5f} (SE), "
          f"equation {exact:.5f}, |diff|/SE = {abs(z[major].mean() - exact) / se:.2f}")
    assert abs(z[major].mean() - exact) < 3 * se
    # whole persons, nobody lost
    y = np.stack([s.get(c) for c in "SEIR"], axis=1)
    assert np.all(y == np.round(y)) and np.all(y.sum(axis=1) == pop)


def test_mobility_spreads_and_conserves_travellers():
    """Two regions, the epidemic seeded in a; residents of a spend 10 % of their time in b.
    Travellers out = travellers in (to rounding), persons conserved per region, b infected via
    visitors only, interventions lower the final size (factor 0.5 from day 0 -> R0 = 1.25)."""
    regions = (RegionParams(name="a", population=1e5, initial_infected=5.0), RegionParams(name="b", population=5e4))
    base = dict(regions=regions, beta=0.4, gamma=0.2, sigma=0.25, mobility=((0, 0.1), (0, 0)))
    s, _ = run(EpiMetaParams(**base), 400.0, dt=2.0)
    tot = s.totals()
    assert tot["travel_out"] > 0 and abs(tot["travel_out"] - tot["travel_in"]) < 1e-9 * tot["travel_out"]
    assert np.allclose(s.y.sum(axis=1), [1e5, 5e4], rtol=1e-12)
    assert s.get("R")[1] / 5e4 > 0.5
    half, _ = run(EpiMetaParams(**base, interventions=(InterventionParams(time=0.0, factor=0.5),)), 400.0, dt=2.0)
    assert half.get("R")[0] / 1e5 < 0.5 * s.get("R")[0] / 1e5


def test_growth_rate_conversion_inverts():
    """Wallinga & Lipsitch (2007): R(r) = (1 + r/sigma)(1 + r/gamma); beta = R gamma from an answer."""
    from solvers.epi.seir import growth_rate
    for sigma in (None, 0.25):
        r = growth_rate(2.5, sigma, 0.2)
        assert abs(float(reproduction_number(r, sigma, 0.2)) - 2.5) < 1e-12


def test_hmm_query_carries_layer_factors_and_answers_set_beta():
    """transmission: hmm: rate_query holds the community factor in force (1 before day 10, 0.2 from
    day 10 on, in the listed region only); an answered growth rate r sets beta = gamma R(r) with
    R = (1 + r/sigma)(1 + r/gamma) (Wallinga & Lipsitch 2007): r = 0.1, sigma 0.25, gamma 0.2 ->
    R = 1.4 x 1.5 = 2.1, beta = 0.42."""
    p = EpiMetaParams(regions=(RegionParams(name="a", population=1e4, initial_infected=1.0),
                               RegionParams(name="b", population=1e4)),
                      transmission="hmm", hmm_layers=("community",), beta=0.3, gamma=0.2, sigma=0.25,
                      interventions=(InterventionParams(time=10.0, factor=1.0, regions=("a",),
                                                        layers={"community": 0.2}),))
    s = EpiMetaSolver(MPI.COMM_SELF, p)
    s.initialize(0.0)
    assert s.fields()["rate_query"].shape == (2,)
    np.testing.assert_array_equal(s.get("rate_query"), [1.0, 1.0])
    s.put("growth_rate", np.array([0.1, 0.1]))
    np.testing.assert_allclose(s.results()["beta"], [0.42, 0.42], rtol=1e-14)
    for k in range(10):
        s.advance(float(k), 1.0)
    np.testing.assert_array_equal(s.get("rate_query"), [0.2, 1.0])


def _spec(params: str) -> str:
    return ("name: bad\ntime: {start: 0, end: 2, window: 1}\nsolvers:\n  m:\n    kind: epi.meta\n    dt: 1.0\n"
            f"    params: {params}\n")


@pytest.mark.parametrize("params, path, words", [
    ("{regions: []}", "solvers.m.params.regions", "no regions"),
    ("{gamma: 0, regions: [{name: a, population: 10}]}", "solvers.m.params.gamma", "> 0"),
    ("{regions: [{name: a, population: 10, beta: -1}]}", "solvers.m.params.regions[0].beta", "> 0"),
    ("{regions: [{name: a, population: 10}, {name: b, population: 10}], mobility: [[0, -0.1], [0, 0]]}",
     "solvers.m.params.mobility[0][1]", "negative"),
    ("{regions: [{name: a, population: 10}, {name: b, population: 10}], mobility_units: persons, "
     "mobility: [[0, 11], [0, 0]]}", "solvers.m.params.mobility[0]", "more than its population"),
    ("{regions: [{name: a, population: 10}, {name: b, population: 10}], mobility: [[0, 0.5]]}",
     "solvers.m.params.mobility", "1 rows for 2 regions"),
    ("{regions: [{name: a, population: 10}], interventions: [{time: 5, factor: 0.5, regions: [b]}]}",
     "solvers.m.params.interventions[0].regions[0]", "no region named 'b'"),
    ("{variant: chain-binomial, regions: [{name: a, population: 10.5}]}",
     "solvers.m.params.regions[0].population", "whole"),
])
def test_bad_input_is_named_before_launch(params, path, words):
    """Invalid settings fail in the spec check (before any rank starts) naming the YAML path."""
    with pytest.raises(SpecError) as err:
        parse_spec(_spec(params))
    text = str(err.value)
    assert path in text and words in text, text


def test_epi_meta_job_conserves_persons_and_travellers(msorch, tmp_path):
    """jobs/epi_meta.yaml (10 regions, 2 ranks): persons conserved per region to rounding, travellers
    out = in at every output, the epidemic reaches every town, halving contacts on day 60 leaves the
    hub's attack rate below the final size of R0 = 2.5 (0.8926)."""
    r = msorch("run", ROOT / "jobs" / "epi_meta.yaml", "-o", tmp_path)
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "results.h5") as f:
        g = f["towns"]
        persons = g["S"][:] + g["E"][:] + g["I"][:] + g["R"][:]
        np.testing.assert_allclose(persons, np.broadcast_to(persons[0], persons.shape), rtol=1e-12)
        np.testing.assert_allclose(g["travel_out"][:].sum(axis=1), g["travel_in"][:].sum(axis=1), rtol=1e-12)
        attack = g["cumulative_incidence"][-1] / persons[0]
    assert np.all(attack > 0.2)
    assert attack[0] < final_size(2.5)
