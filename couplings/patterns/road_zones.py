"""The ``kind: road_zones`` entry of a job's ``patterns:`` list: one corridor made of touching
traffic zones (e.g. LWR -> IDM agents -> LWR), checked before launch.

```yaml
patterns:
  - {kind: road_zones, zones: [up, merge, down]}    # upstream to downstream
```

Each zone is a traffic solver with ``road_start`` and ``road_length`` settings [m]
(``traffic.lwr``, ``traffic.idm``).  The check asks, for every pair of neighbours
``a`` -> ``b``:

- the zones touch: ``a.road_start + a.road_length == b.road_start`` (within
  ``tolerance``); a gap or an overlap would lose or double road, and vehicles;
- ``b`` takes its inflow from ``a``: a coupling ``a.downstream_*`` -> ``b.upstream_*`` (or
  ``b.vehicles_in``), so what leaves ``a`` enters ``b``;
- ``a`` sees ``b``'s state at its exit: a coupling ``b.upstream_*`` -> ``a.downstream_*``
  (the supply of ``b``'s entry bounding ``a``'s boundary flux, or ``b``'s density driving a
  virtual leader), so a queue in ``b`` spills back into ``a``;
- equal steps ``dt``: the boundary flow of each step is handed over as it is, which keeps the
  vehicle count exact;
- no coupling joins the road ends of zones that are not neighbours.

The pattern adds nothing at run time (the couplings are written in ``couplings:``).
No MPI here: read by the spec validator.
"""
from __future__ import annotations

from dataclasses import dataclass

from msorch.spec import did_you_mean, setting


@dataclass(frozen=True)
class RoadZonesSpec:
    """Traffic solvers forming one corridor, upstream to downstream."""

    kind: str = setting(doc="pattern kind", example="road_zones")
    zones: tuple[str, ...] = setting(doc="solver names along the road, upstream first; each has road_start "
                                         "and road_length", example=["up", "merge", "down"])
    tolerance: float = setting(1.0e-6, "largest gap or overlap allowed between neighbouring zones",
                               units="m", ge=0)


def drives(raw: dict) -> tuple[str, ...]:
    """None: every zone is stepped by windows."""
    return ()


def describe(p: RoadZonesSpec) -> str:
    return f"pattern road_zones: {' -> '.join(p.zones)} (touching, coupled both ways at each interface)"


def _span(params) -> tuple[float, float]:
    return float(params.road_start), float(params.road_start) + float(params.road_length)


def _inflow_fix(kind: str) -> str:
    return "inflow: channel" if kind == "traffic.idm" else "inflow: channel_flow"


def _outflow_fix(kind: str) -> str:
    return "outflow: channel" if kind == "traffic.idm" else "outflow: channel_supply (or channel_density)"


def check(p: RoadZonesSpec, ctx) -> list[tuple[str, str, str]]:
    """Problems of one road_zones entry (module docstring), as (key, what, fix)."""
    out: list[tuple[str, str, str]] = []
    add = lambda key, what, fix: out.append((key, what, fix))
    if len(p.zones) < 2:
        add("zones", f"needs at least two zones, got {len(p.zones)}", "list the corridor's solvers, upstream first")
        return out
    seen = {}
    for i, name in enumerate(p.zones):
        key = f"zones[{i}]"
        if name in seen:
            add(key, f"solver {name!r} is listed twice (also zones[{seen[name]}])", "list each zone once")
        seen.setdefault(name, i)
        if name not in ctx.solvers:
            add(key, f"no solver named {name!r}", did_you_mean(name, ctx.solvers, "solvers"))
            continue
        params = ctx.solvers[name]["params"]
        if params is not None and not (hasattr(params, "road_start") and hasattr(params, "road_length")):
            add(key, f"solver {name!r} ({ctx.solvers[name]['kind']}) has no road_start/road_length settings",
                "use traffic.lwr or traffic.idm zones")
    if out:
        return out
    info = {n: ctx.solvers[n] for n in p.zones}
    if any(s["params"] is None for s in info.values()):
        return out                       # a zone's own settings are invalid: reported there
    ends = lambda c: (c.source_field.startswith("downstream_") and c.target_field.startswith("upstream_")) or \
        (c.source_field.startswith("upstream_") and c.target_field.startswith("downstream_")) or \
        c.target_field == "vehicles_in"
    pairs = {(a, b) for a, b in zip(p.zones, p.zones[1:])}
    for i, (a, b) in enumerate(zip(p.zones, p.zones[1:])):
        key = f"zones[{i + 1}]"
        sa, sb = info[a], info[b]
        a0, a1 = _span(sa["params"])
        b0, b1 = _span(sb["params"])
        if abs(a1 - b0) > p.tolerance:
            what = "a gap of" if b0 > a1 else "an overlap of"
            add(key, f"zone {b!r} starts at {b0:g} m (solvers.{b}.params.road_start) but zone {a!r} ends at "
                f"{a1:g} m (road_start {a0:g} + road_length {a1 - a0:g}): the zones do not touch ({what} "
                f"{abs(a1 - b0):g} m)",
                f"set solvers.{b}.params.road_start: {a1:g}, or solvers.{a}.params.road_length: {b0 - a0:g}")
        cs = [c for c in ctx.couplings if c.source == a and c.target == b]
        if not any(c.source_field.startswith("downstream_") and
                   (c.target_field.startswith("upstream_") or c.target_field == "vehicles_in") for c in cs):
            if "upstream_flow" not in (sb["inputs"] or ()) and "vehicles_in" not in (sb["inputs"] or ()):
                add(key, f"zone {b!r} has no upstream input to take {a!r}'s outflow",
                    f"set solvers.{b}.params.{_inflow_fix(sb['kind'])} and add the coupling "
                    f"{{from: {a}.downstream_flow, to: {b}.upstream_flow}}")
            else:
                add(key, f"nothing leaving zone {a!r} enters zone {b!r}",
                    f"add the coupling {{from: {a}.downstream_flow, to: {b}.upstream_flow}}")
        back = [c for c in ctx.couplings if c.source == b and c.target == a
                and c.source_field.startswith("upstream_") and c.target_field.startswith("downstream_")]
        if not back:
            a_ins = [f for f in (sa["inputs"] or ()) if f.startswith("downstream_")]
            if not a_ins:
                add(key, f"zone {a!r} does not see zone {b!r} at its exit, so a queue in {b!r} cannot spill "
                    f"back into {a!r}", f"set solvers.{a}.params.{_outflow_fix(sa['kind'])} and couple "
                    f"{b}'s upstream state to it, e.g. {{from: {b}.upstream_supply, to: {a}.downstream_supply}} "
                    f"or {{from: {b}.upstream_density, to: {a}.downstream_density}}")
            else:
                src = "upstream_supply" if a_ins[0] == "downstream_supply" else "upstream_density"
                add(key, f"zone {a!r}'s {a_ins[0]} input is not fed by zone {b!r}",
                    f"add the coupling {{from: {b}.{src}, to: {a}.{a_ins[0]}}}")
        if sa["dt"] is not None and sb["dt"] is not None and abs(sa["dt"] - sb["dt"]) > 1e-12 * sa["dt"]:
            add(key, f"zone {b!r} steps dt = {sb['dt']:g} s but zone {a!r} dt = {sa['dt']:g} s: the boundary flow "
                f"is handed over step by step, and vehicles are conserved exactly only with equal steps",
                f"use the same dt in both (e.g. solvers.{b}.dt: {sa['dt']:g})")
    for c in ctx.couplings:
        if c.source in info and c.target in info and ends(c) and \
                (c.source, c.target) not in pairs and (c.target, c.source) not in pairs:
            add("zones", f"the coupling {c.source}.{c.source_field} -> {c.target}.{c.target_field} joins zones "
                f"that are not neighbours", "couple each zone to the next one only, or reorder zones")
    return out


def roles(ctx, name: str, index: int, p):
    """Nothing at run time: the zones run as ordinary window-stepped solvers."""
    from couplings.patterns import Roles
    return Roles()


def _kind():
    from . import PatternKind
    return {"road_zones": PatternKind(RoadZonesSpec, check, drives, describe,
                                      runtime="couplings.patterns.road_zones:roles")}


PATTERN_KINDS = _kind()
