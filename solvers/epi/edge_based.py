"""The edge-based compartmental model (EBCM): SEIR/SIR on a configuration-model network, large-N limit.

For Markovian SIR/SEIR on a configuration-model (or Erdos-Renyi) contact network with
degree distribution p_k, the fraction of nodes in each state in the limit of many
nodes is given exactly by a few ODEs (Miller, Slim & Volz 2012, J. R. Soc. Interface
9:890; Kiss, Miller & Simon 2017, "Mathematics of Epidemics on Networks", ch. 6),
written with the degree probability generating function psi(x) = sum_k p_k x^k:

* Poisson degrees of mean k (Erdos-Renyi): psi(x) = exp(k (x - 1));
* every node of degree k (k-regular): psi(x) = x^k.

theta(t) is the probability that a random neighbour of a test node u has not
transmitted to u (u held in the "cavity": it cannot infect back).  A susceptible
node may also be infected from outside the network (infectious *visitors*, mass
action on random nodes) at rate lam_ext(t) per susceptible; Lam(t) is its integral
from -inf, with exp(-Lam(0)) = the initially susceptible fraction (the initially
infected are random nodes).  Then, per node (all quantities fractions of N):

    S        = exp(-Lam) psi(theta)
    phi_S    = exp(-Lam) psi'(theta) / psi'(1)          neighbour still susceptible
    theta'   = -beta phi_I
    phi_E'   = -phi_S' - sigma phi_E                      neighbour exposed, has not transmitted
    phi_I'   = sigma phi_E - (beta + gamma) phi_I         neighbour infectious, has not transmitted
    -phi_S'  = lam_ext phi_S + beta phi_I exp(-Lam) psi''(theta) / psi'(1)
    -S'      = lam_ext S + beta phi_I exp(-Lam) psi'(theta)        (incidence)
    E'       = -S' - sigma E,   I' = sigma E - gamma I,   R' = gamma I

(SIR: no E, phi_E; phi_I' = -phi_S' - (beta + gamma) phi_I, I' = -S' - gamma I.)  The
edge fractions satisfy theta = phi_S + phi_E + phi_I + phi_R with phi_R' = gamma phi_I,
phi_R(0) = R(0)/N, which is why phi_R is not integrated.  beta is the transmission
rate per contact (1/day), sigma and gamma the rates of leaving E and I (1/day); the
latent and infectious periods are exponential.

Checks (tests/unit/test_epi_edge_based.py): the final size equals bond percolation with
T = beta/(beta + gamma) (1 - psi(theta_inf), theta_inf = 1 - T + T psi'(theta_inf)/psi'(1));
the early growth rate r solves (r + sigma)(r + gamma + beta) = sigma beta psi''(1)/psi'(1);
the curves agree with ``epi.network`` at 10^5 agents (tests/unit/test_epi_network_percolation.py).

State per region, shape (n, 8): [S, E, I, R] as counts (persons) and
[theta, phi_E, phi_I, Lam] (dimensionless).  With ``pending`` (shape (n, 10), two
more columns [P, phi_P]) infections of a step are held in P (persons; phi_P: the
edges to them) and become latent (SIR: infectious) only at the end of the step
(:func:`settle`), the scheme of ``epi.network`` (an agent infected during [t, t+dt)
starts its latent period at t + dt), so this ODE is that agent model's large-N limit
for the same dt, not only for dt -> 0: the generation interval is longer by dt/2 on
average, which moves the peak of a 60-day epidemic by ~2 days at dt = 0.5 day.
"""
from __future__ import annotations

import numpy as np

__all__ = ["initial_state", "rhs", "settle"]


def _psi_derivs(kind: str, k: float, theta: np.ndarray):
    """(psi'(theta)/psi'(1), psi''(theta)/psi'(1)) for the degree PGF (theta: (n,))."""
    if kind == "poisson":
        g = np.exp(k * (theta - 1.0))
        return g, k * g
    th = np.maximum(theta, 0.0)
    return th ** (k - 1.0), (k - 1.0) * th ** (k - 2.0) if k >= 2 else np.zeros_like(th)


def initial_state(N: np.ndarray, S0: np.ndarray, E0: np.ndarray, I0: np.ndarray, R0: np.ndarray,
                  pending: bool = False) -> np.ndarray:
    """(n, 8) state ((n, 10) with ``pending``) from counts (n,) each: the initially infected/removed
    are random nodes."""
    N = np.asarray(N, dtype=np.float64)
    if np.any(S0 <= 0):
        raise ValueError("edge-based model: every region needs susceptible residents at the start")
    y = np.zeros((len(N), 10 if pending else 8))
    y[:, 0], y[:, 1], y[:, 2], y[:, 3] = S0, E0, I0, R0
    y[:, 4] = 1.0                      # theta: no contact has transmitted yet
    y[:, 5] = E0 / N                   # an exposed neighbour has not transmitted yet
    y[:, 6] = I0 / N
    y[:, 7] = -np.log(S0 / N)          # exp(-Lam) = initially susceptible fraction
    return y


def rhs(y: np.ndarray, N: np.ndarray, beta: np.ndarray, sigma: float | None, gamma: float,
        lam_ext: np.ndarray, kind: str, k: float) -> tuple[np.ndarray, np.ndarray]:
    """(dy/dt (n, 8), incidence rate -S' (n,) persons/day).

    y: (n, 8) state (see module docstring); N: (n,) residents; beta: (n,) per-contact rate;
    lam_ext: (n,) external force of infection on a susceptible (1/day).
    """
    S, E, I = y[:, 0], y[:, 1], y[:, 2]
    theta, phE, phI, Lam = y[:, 4], y[:, 5], y[:, 6], y[:, 7]
    d1, d2 = _psi_derivs(kind, k, theta)
    eL = np.exp(-Lam)
    phi_S = eL * d1
    edge_inf = lam_ext * phi_S + beta * phI * eL * d2          # -phi_S'
    # psi'(theta) = psi'(1) d1 = k d1 for both kinds (psi'(1) = mean degree k)
    inc = lam_ext * S + beta * phI * eL * k * d1 * N
    d = np.empty_like(y)
    if y.shape[1] == 10:               # step-end onset: this step's infections wait in P, phi_P
        d[:, 8], d[:, 9] = inc, edge_inf
        inc_to, edge_to = 0.0, 0.0
    else:
        inc_to, edge_to = inc, edge_inf
    d[:, 0] = -inc
    d[:, 4] = -beta * phI
    d[:, 7] = lam_ext
    if sigma is None:
        d[:, 1] = 0.0
        d[:, 2] = inc_to - gamma * I
        d[:, 5] = 0.0
        d[:, 6] = edge_to - (beta + gamma) * phI
    else:
        d[:, 1] = inc_to - sigma * E
        d[:, 2] = sigma * E - gamma * I
        d[:, 5] = edge_to - sigma * phE
        d[:, 6] = sigma * phE - (beta + gamma) * phI
    d[:, 3] = gamma * I
    return d, inc


def settle(y: np.ndarray, sigma: float | None) -> None:
    """End of a step (``pending`` state, in place): the step's infections become latent (SIR: infectious)."""
    if y.shape[1] != 10:
        return
    e, pe = (1, 5) if sigma is not None else (2, 6)
    y[:, e] += y[:, 8]
    y[:, pe] += y[:, 9]
    y[:, 8:10] = 0.0
