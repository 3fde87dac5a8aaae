"""Which node of a SLURM allocation runs which rank: the plan, the hostfile, the record.

The coordinator (world rank 0) always runs on the allocation's first node.
``resources.placement`` (``{solver: node index}``, 0-based) puts each solver
group whole on one node; without it the groups are *packed*: in spec order,
each on the first node that still has room for all of its ranks (first fit),
where a node's room is ``ceil(world ranks / nodes)`` so that every node is
used; a group larger than any node's room straddles nodes, filling them in order.

Inside the allocation the plan becomes a hostfile, one node name per world
rank, that ``srun --distribution=arbitrary --nodelist=FILE`` and
``mpirun --mca rmaps seq --hostfile FILE`` both follow rank by rank.  Each rank
reports the node it found itself on (``SLURMD_NODENAME``, set per task by
slurmd and inherited through Open MPI's daemons; else the host name), so the
placement printed at start and stored in ``results.h5`` is what happened, not
only what was asked.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

from .layout import Layout

HOSTFILE = "msorch-hosts"   # in OUTDIR, beside msorch-job.sbatch


def plan(layout: Layout, nodes: int, placement: dict[str, int] | None = None) -> list[int]:
    """Node index (0-based) of every world rank, in world-rank order.

    ``placement`` names a node for every solver group (validated by the spec);
    without it the groups are packed (see the module docstring).
    """
    if nodes < 1:
        raise ValueError(f"nodes: expected at least 1, got {nodes}")
    node_of = [0]   # the coordinator
    if placement:
        for name, ranks in layout.groups.items():
            node_of += [int(placement[name])] * len(ranks)
        return node_of
    room = -(-layout.size // nodes)   # ceil: spread over every node of the allocation
    used = [1] + [0] * (nodes - 1)
    for ranks in layout.groups.values():
        n = len(ranks)
        fit = next((i for i in range(nodes) if room - used[i] >= n), None)
        for _ in range(n):
            # A group larger than any node's room straddles: the first node with room, else the least used.
            i = fit if fit is not None else next((k for k in range(nodes) if used[k] < room),
                                                  used.index(min(used)))
            used[i] += 1
            node_of.append(i)
    return node_of


def allocation_nodes(env=None) -> list[str]:
    """Node names of the SLURM allocation we run in (``scontrol show hostnames``), or [] outside one."""
    env = os.environ if env is None else env
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    if not nodelist:
        return []
    res = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True,
                         timeout=30)
    if res.returncode != 0:
        raise RuntimeError(f"scontrol show hostnames {nodelist} failed: {res.stderr.strip()}")
    return res.stdout.split()


def write_hostfile(path, node_of: list[int], hosts: list[str]) -> Path:
    """One host name per world rank, in world-rank order (``--distribution=arbitrary`` / ``rmaps seq``)."""
    if max(node_of) >= len(hosts):
        raise ValueError(f"the placement uses node index {max(node_of)}, but the allocation has "
                         f"{len(hosts)} node(s) ({', '.join(hosts)}): raise resources.nodes")
    path = Path(path)
    path.write_text("".join(f"{hosts[i]}\n" for i in node_of))
    return path


def this_node() -> str:
    """The node this process runs on: SLURM's name for it when under slurmd, else the short host name."""
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname().split(".")[0]


def by_node(layout: Layout, nodes: list[str]) -> dict[str, list[str]]:
    """``{node: [coordinator and solver names on it]}`` from ``nodes`` (one name per world rank).

    A group split across nodes appears on each, as ``name[i-j]`` (its group ranks there).
    """
    out: dict[str, list[str]] = {nodes[0]: ["coordinator"]}
    for name, ranks in layout.groups.items():
        on: dict[str, list[int]] = {}
        for g, w in enumerate(ranks):
            on.setdefault(nodes[w], []).append(g)
        for node, gs in on.items():
            label = name if len(on) == 1 else (f"{name}[{gs[0]}]" if len(gs) == 1 else f"{name}[{gs[0]}-{gs[-1]}]")
            out.setdefault(node, []).append(label)
    return out


def describe(layout: Layout, nodes: list[str]) -> str:
    """``node n1: coordinator, left; node n2: right``."""
    return "; ".join(f"node {node}: {', '.join(who)}" for node, who in by_node(layout, nodes).items())


def record(layout: Layout, nodes: list[str]) -> str:
    """JSON for the ``placement`` attribute of ``results.h5``: ``{"nodes": {...}, "ranks": [...]}``."""
    return json.dumps({"nodes": by_node(layout, nodes), "ranks": list(nodes)})


def hostfile_for_allocation(job, layout: Layout, outdir) -> str | None:
    """Inside a SLURM allocation of several nodes: write ``OUTDIR/msorch-hosts`` for ``job`` and return its path.

    None outside SLURM or on a single node (the launcher's own placement is then right).

    Raises
    ------
    ValueError
        ``resources.placement`` names a node the allocation does not have.
    """
    hosts = allocation_nodes()
    if len(hosts) < 2:
        return None
    node_of = plan(layout, len(hosts), job.resources.placement)
    Path(outdir).mkdir(parents=True, exist_ok=True)
    return str(write_hostfile(Path(outdir).resolve() / HOSTFILE, node_of, hosts))
