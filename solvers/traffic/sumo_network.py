"""SUMO inputs for a single-lane road: a ring or a straight road of equal edges, and an IDM type.

Used by ``traffic.sumo`` (:mod:`solvers.traffic.sumo`) and by
``benchmarks/traffic_bench.py``.  The network is written as plain node/edge XML
and built with ``netconvert`` (no internal junction lanes, no turnarounds), so a
vehicle's road coordinate is the sum of the lengths of the edges before it plus
its position on its edge.
"""
from __future__ import annotations

import math
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

__all__ = ["write_road", "idm_vtype", "net_edge_lengths", "write_routes"]


def write_road(directory: Path, n_edges: int, edge_length: float, speed: float, ring: bool,
               prefix: str = "road") -> tuple[Path, list[str]]:
    """Build ``<prefix>.net.xml`` in ``directory``; returns (net path, edge ids upstream->downstream).

    ``speed`` [m/s] is the lanes' speed limit (above the vehicles' desired speed, so
    the IDM's v0 governs); a ring closes the last edge onto the first node.
    """
    d = Path(directory)
    nodes, edges = ET.Element("nodes"), ET.Element("edges")
    n_nodes = n_edges if ring else n_edges + 1
    r = edge_length / (2 * math.sin(math.pi / n_edges)) if ring and n_edges > 1 else 0.0
    for i in range(n_nodes):
        if ring:
            ang = 2 * math.pi * i / n_edges
            x, y = r * math.cos(ang), r * math.sin(ang)
        else:
            x, y = i * edge_length, 0.0
        ET.SubElement(nodes, "node", id=f"n{i}", x=f"{x:.3f}", y=f"{y:.3f}", type="priority")
    ids = [f"e{i}" for i in range(n_edges)]
    for i, eid in enumerate(ids):
        ET.SubElement(edges, "edge", id=eid, attrib={"from": f"n{i}", "to": f"n{(i + 1) % n_nodes}"},
                      numLanes="1", speed=f"{speed:.3f}", length=f"{edge_length:.6f}")
    ET.ElementTree(nodes).write(d / f"{prefix}.nod.xml")
    ET.ElementTree(edges).write(d / f"{prefix}.edg.xml")
    net = d / f"{prefix}.net.xml"
    proc = subprocess.run(["netconvert", "--node-files", str(d / f"{prefix}.nod.xml"),
                           "--edge-files", str(d / f"{prefix}.edg.xml"), "-o", str(net),
                           "--no-internal-links", "true", "--no-turnarounds", "true", "--no-warnings", "true"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"netconvert failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return net, ids


def idm_vtype(parent: ET.Element, type_id: str, *, v0, T, s0, a, b, delta, length) -> ET.Element:
    """SUMO's IDM with the msorch IDM parameters: minGap = s0, tau = T, accel = a,
    decel = b, maxSpeed = v0, no speed spread (sigma is not used by the IDM)."""
    return ET.SubElement(parent, "vType", id=type_id, carFollowModel="IDM", length=f"{length!r}",
                         minGap=f"{s0!r}", accel=f"{a!r}", decel=f"{b!r}", emergencyDecel="9",
                         tau=f"{T!r}", delta=f"{delta!r}", maxSpeed=f"{v0!r}", speedFactor="1",
                         speedDev="0", sigma="0")


def write_routes(path: Path, vtype: dict, edges: list[str], ring: bool, repeat: int = 100,
                 type_id: str = "DEFAULT_VEHTYPE") -> None:
    """Route file with the IDM type ``type_id`` (default: SUMO's default type); on a ring one
    lap per start edge (``r<k>``) repeated ``repeat`` times, on a road one route ``road``."""
    root = ET.Element("routes")
    idm_vtype(root, type_id, **vtype)
    if ring:
        n = len(edges)
        for k in range(n):
            ET.SubElement(root, "route", id=f"r{k}", edges=" ".join(edges[(k + j) % n] for j in range(n)),
                          repeat=str(repeat))
    else:
        ET.SubElement(root, "route", id="road", edges=" ".join(edges))
    ET.ElementTree(root).write(path)


def net_edge_lengths(net_file: str) -> dict[str, float]:
    """{edge id: length of its first lane [m]} of a SUMO network (internal edges left out)."""
    out = {}
    for _, el in ET.iterparse(net_file):
        if el.tag == "edge" and el.get("function") != "internal":
            lane = el.find("lane")
            if lane is not None:
                out[el.get("id")] = float(lane.get("length"))
            el.clear()
    return out
