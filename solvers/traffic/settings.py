"""Settings shared by the traffic solvers: ramps, and turning check() problems into an error."""
from __future__ import annotations

from dataclasses import dataclass

from msorch.solver import param

__all__ = ["RampParams", "ramp_problems", "raise_if_invalid"]


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


def raise_if_invalid(solver_cls, params) -> None:
    """Raise ValueError listing ``solver_cls.check(params)`` problems, if any (for direct use
    of a solver without the framework's spec validation)."""
    probs = solver_cls.check(params)
    if probs:
        raise ValueError(f"{solver_cls.__name__} settings: " +
                         "; ".join(f"{k}: {m} ({f})" for k, m, f in probs))
