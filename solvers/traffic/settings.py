"""Settings shared by the traffic solvers: ramps, a time-dependent upstream demand, the road's
place on a corridor, and turning check() problems into an error."""
from __future__ import annotations

from dataclasses import dataclass

from msorch.solver import param

import numpy as np

__all__ = ["RampParams", "ramp_problems", "CorridorParams", "corridor_problems", "demand_at",
           "raise_if_invalid"]


@dataclass(frozen=True)
class RampParams:
    """On-ramps (sources) and off-ramps (sinks) at positions along the road."""

    onramp_positions: tuple[float, ...] = param((), "on-ramp positions", units="m")
    onramp_flows: tuple[float, ...] = param((), "on-ramp demand per ramp", units="veh/s")
    offramp_positions: tuple[float, ...] = param((), "off-ramp positions", units="m")
    offramp_fractions: tuple[float, ...] = param((), "fraction of the passing flow that exits there")


def ramp_problems(p: RampParams, road_length: float, max_fraction: float = 1.0) -> list[tuple[str, str, str]]:
    """check()-style problems of the ramp settings (fractions must lie in [0, max_fraction])."""
    probs = []
    if len(p.onramp_positions) != len(p.onramp_flows):
        probs.append(("onramp_flows", "needs one flow per on-ramp position", "match the lengths"))
    if any(q < 0 for q in p.onramp_flows):
        probs.append(("onramp_flows", "flows must be >= 0", "fix them"))
    if len(p.offramp_positions) != len(p.offramp_fractions):
        probs.append(("offramp_fractions", "needs one fraction per off-ramp position", "match the lengths"))
    if any(not 0 <= f <= max_fraction for f in p.offramp_fractions):
        probs.append(("offramp_fractions", f"fractions must lie in [0, {max_fraction:g}]", "fix them"))
    if any(not 0 <= x < road_length for x in p.onramp_positions + p.offramp_positions):
        probs.append(("onramp_positions", "ramp positions must lie in [0, road_length)", "move them"))
    return probs


@dataclass(frozen=True)
class CorridorParams:
    """Where the road lies on a longer corridor, and a piecewise-linear upstream demand q(t)."""

    road_start: float = param(0.0, "position of this road's x = 0 on the corridor (field points are "
                              "corridor positions; zones of a hybrid road must touch)", units="m")
    inflow_times: tuple[float, ...] = param((), "times of a piecewise-linear upstream demand (inflow: "
                                            "flow; empty: the constant inflow_flow)", units="s")
    inflow_flows: tuple[float, ...] = param((), "upstream demand at inflow_times (held before the first "
                                            "and after the last)", units="veh/s")


def corridor_problems(p: CorridorParams) -> list[tuple[str, str, str]]:
    """check()-style problems of the demand profile."""
    if not p.inflow_times and not p.inflow_flows:
        return []
    if len(p.inflow_times) != len(p.inflow_flows):
        return [("inflow_flows", f"has {len(p.inflow_flows)} values for {len(p.inflow_times)} inflow_times",
                 "give one flow per time")]
    if any(b <= a for a, b in zip(p.inflow_times, p.inflow_times[1:])):
        return [("inflow_times", "times must increase strictly", "sort them and drop repeats")]
    if any(q < 0 for q in p.inflow_flows):
        return [("inflow_flows", "flows must be >= 0", "fix them")]
    return []


def demand_at(p, t: float, dt: float) -> float:
    """Upstream demand [veh/s] for the step [t, t + dt]: the profile at the step's midpoint
    (which integrates a linear piece exactly), or the constant ``inflow_flow``."""
    if p.inflow_times:
        return float(np.interp(t + 0.5 * dt, p.inflow_times, p.inflow_flows))
    return float(p.inflow_flow)


def raise_if_invalid(solver_cls, params) -> None:
    """Raise ValueError listing ``solver_cls.check(params)`` problems, if any (for direct use
    of a solver without the framework's spec validation)."""
    probs = solver_cls.check(params)
    if probs:
        raise ValueError(f"{solver_cls.__name__} settings: " +
                         "; ".join(f"{k}: {m} ({f})" for k, m, f in probs))
