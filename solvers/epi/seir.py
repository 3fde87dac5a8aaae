"""SEIR quantities shared by the epidemic solvers: closed forms, conversions and rate checks.

Time unit: the day; rates are in 1/day.  Compartments: S (susceptible), E (exposed,
infected but not yet infectious), I (infectious), R (removed).  ``sigma = None``
means SIR (no E compartment).

References (shared/references.md, "Epidemics"):

* final size of the deterministic SIR/SEIR epidemic (Kermack & McKendrick 1927):
  z = 1 - exp(-R0 z); the latent period does not change it;
* SIR peak prevalence from S0 ~ 1: 1 - (1 + ln R0) / R0;
* growth rate r -> reproduction number for exponentially distributed latent and
  infectious periods (Wallinga & Lipsitch 2007): R = (1 + r/sigma)(1 + r/gamma)
  (SIR: R = 1 + r/gamma).
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["final_size", "final_size_from", "sir_peak_prevalence", "reproduction_number",
           "growth_rate", "rate_problems", "philox"]


def final_size(R0: float) -> float:
    """Fraction z in (0, 1) solving z = 1 - exp(-R0 z) (0 when R0 <= 1)."""
    return final_size_from(R0, 1.0, 0.0)


def final_size_from(R0: float, s0: float, i0: float) -> float:
    """Final fraction ever infected after t = 0 from fractions s0 susceptible and i0 infectious (+exposed).

    Solves ln(s0 / s_inf) = R0 (s0 + i0 - s_inf) for s_inf in (0, s0) (bisection + Newton,
    to rounding) and returns s0 - s_inf.  For s0 -> 1, i0 -> 0 this is :func:`final_size`.
    """
    if s0 <= 0:
        return 0.0
    f = lambda s: math.log(s0 / s) - R0 * (s0 + i0 - s)
    lo, hi = 1e-300, s0 * (1 - 1e-15)
    if f(hi) >= 0:         # no epidemic (R0 s0 <= 1 and i0 -> 0)
        return 0.0
    for _ in range(200):   # f(lo) > 0 > f(hi): bisection, robust near the trivial root
        mid = 0.5 * (lo + hi)
        if f(mid) > 0:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-16:
            break
    return s0 - 0.5 * (lo + hi)


def sir_peak_prevalence(R0: float) -> float:
    """Largest infectious fraction of the SIR epidemic from S0 = 1, I0 -> 0: 1 - (1 + ln R0)/R0."""
    return 1.0 - (1.0 + math.log(R0)) / R0 if R0 > 1 else 0.0


def reproduction_number(r, sigma: float | None, gamma: float):
    """R from the exponential growth rate r [1/day] (Wallinga & Lipsitch 2007, exponential periods).

    ``r`` may be an array; ``sigma = None`` is SIR.
    """
    r = np.asarray(r, dtype=np.float64)
    R = 1.0 + r / gamma
    if sigma is not None:
        R = R * (1.0 + r / sigma)
    return R


def growth_rate(R: float, sigma: float | None, gamma: float) -> float:
    """Inverse of :func:`reproduction_number`: the r >= ... with R(r) = R (largest root) [1/day]."""
    if sigma is None:
        return gamma * (R - 1.0)
    # r^2 + (sigma + gamma) r + sigma gamma (1 - R) = 0
    b, c = sigma + gamma, sigma * gamma * (1.0 - R)
    return (-b + math.sqrt(b * b - 4 * c)) / 2.0


def rate_problems(values: dict[str, float | None], optional: tuple[str, ...] = ()) -> list[tuple[str, str, str]]:
    """(key, what, fix) for every rate that is not a finite number > 0 (1/day).

    ``values``: setting name -> value; names in ``optional`` may be None.
    """
    out = []
    for key, v in values.items():
        if v is None and key in optional:
            continue
        if v is None or not math.isfinite(v) or v <= 0:
            out.append((key, f"the rate {key} must be a finite number > 0 (1/day), got {v!r}",
                        f"set {key} to 1 / (mean duration in days), e.g. {key}: 0.2 for 5 days"))
    return out


def philox(seed: int, stream: int, counter: int) -> np.random.Generator:
    """A generator that depends only on (seed, stream, counter): counter-based, layout independent.

    Used with stream = global region index and counter = step number, so a draw
    does not depend on which rank owns the region or how many steps were run
    in this process (bitwise restart, any number of ranks).
    """
    key = np.array([seed & 0xFFFFFFFFFFFFFFFF, stream], dtype=np.uint64)
    ctr = np.array([counter, 0, 0, 0], dtype=np.uint64)
    return np.random.Generator(np.random.Philox(key=key, counter=ctr))
