"""Contact networks for ``epi.network``: generators, layers and an edge-list reader.

A network is an undirected simple graph per layer over agents ``0 .. n-1``,
returned as a :class:`Graph` in CSR form (both directions of every edge stored).
Generators draw from ``numpy.random.Generator(PCG64(SeedSequence([seed, tag])))``,
so the same settings give the same graph on every rank (each rank builds the
whole graph and keeps its rows; 10^5 agents of degree 10 take about a second).

Generators (``network.kind``):

* ``k-regular``: configuration model with every degree = ``degree``.
* ``configuration``: degrees drawn from ``degree_values`` with probabilities
  ``degree_weights`` (one degree is raised by 1 if the sum is odd).
* ``erdos-renyi``: G(n, p) with p = ``mean_degree`` / (n - 1).
* ``layers``: ``households`` (consecutive ids in groups of 1 + Poisson(size - 1)
  members, all pairs in contact), ``groups`` (workplaces/schools: a random
  ``fraction`` of the agents in random groups of 1 + Poisson(size - 1), all pairs
  in contact, or G(s, mean_degree/(s - 1)) inside a group when ``mean_degree`` is
  given), ``random`` (community: Erdős–Rényi with ``mean_degree``).
* ``file``: an edge list (see :func:`read_edge_file`).

Configuration-model stub matching can create self-loops and repeated edges; they are
removed by degree-preserving double-edge swaps with random other edges, so the
graph is simple and has exactly the drawn degree sequence.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from msorch.solver import param

__all__ = ["LayerParams", "NetworkParams", "Graph", "build_graph", "read_edge_file", "network_problems",
           "layer_names", "EdgeFileError"]

GENERATOR_TAG = 0x6E6574   # "net": separates the graph's streams from every other use of the seed


@dataclass(frozen=True)
class LayerParams:
    """One contact layer of ``network.kind: layers``."""

    name: str = param(doc="layer name (used by interventions)")
    kind: Literal["households", "groups", "random"] = param(
        doc="households: consecutive ids, all pairs; groups: random members, all pairs (or mean_degree "
            "random contacts inside); random: Erdős–Rényi community contacts")
    size: float = param(4.0, "mean group size (households, groups): 1 + Poisson(size - 1)", units="agents")
    mean_degree: float | None = param(None, "random: mean contacts per agent (required); groups: mean contacts "
                                      "inside a group instead of all pairs", units="contacts")
    fraction: float = param(1.0, "groups: fraction of the agents that belong to a group")
    weight: float = param(1.0, "multiplier on beta for this layer's contacts")


@dataclass(frozen=True)
class NetworkParams:
    """Which contact network to build (per region for generators; as given for files)."""

    kind: Literal["k-regular", "configuration", "erdos-renyi", "layers", "file"] = param(
        "erdos-renyi", "network generator")
    degree: int = param(10, "k-regular: the degree of every agent", units="contacts")
    mean_degree: float = param(10.0, "erdos-renyi: mean degree", units="contacts")
    degree_values: tuple[int, ...] = param((), "configuration: the possible degrees", units="contacts")
    degree_weights: tuple[float, ...] = param((), "configuration: probability of each degree value")
    layers: tuple[LayerParams, ...] = param((), "layers: the contact layers")
    file: str = param("", "file: edge list 'i j [layer]' per line, 0-based ids, '#' comments; "
                          "absolute or relative to the working directory")


@dataclass
class Graph:
    """An undirected multi-layer contact graph in CSR form.

    Attributes
    ----------
    n : int
        Number of agents.
    indptr : ndarray, shape (n + 1,), int64
        Row ``i``'s neighbours are ``indices[indptr[i]:indptr[i+1]]``.
    indices : ndarray, shape (2 * n_edges,), int64
        Neighbour agent ids (both directions stored), sorted within a row by (id, layer).
    layer : ndarray, shape (2 * n_edges,), int8
        Layer index of each stored edge (into ``layer_names``).
    layer_names : list of str
    layer_kinds : list of str
        ``households``, ``groups`` or ``random`` per layer (single-generator and file
        networks: one or more ``random`` layers).
    """

    n: int
    indptr: np.ndarray
    indices: np.ndarray
    layer: np.ndarray
    layer_names: list
    layer_kinds: list

    @property
    def degree(self) -> np.ndarray:
        """Contacts per agent, shape (n,), int64 (an edge in two layers counts twice)."""
        return np.diff(self.indptr)


class EdgeFileError(ValueError):
    """A bad edge-list file; the message names the file and line."""


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([GENERATOR_TAG, seed, *key])))


def layer_names(net: NetworkParams) -> list[str]:
    """Names of the layers these settings build, before building (files: read their third column)."""
    if net.kind == "layers":
        return [layer.name for layer in net.layers]
    if net.kind == "file" and net.file and Path(net.file).is_file():
        try:
            return _read_edges(net.file, None)[3]
        except EdgeFileError:
            return ["community"]
    return ["community"]


# ----------------------------------------------------------------- validation
def network_problems(net: NetworkParams, n_agents: int, key: str = "network") -> list[tuple[str, str, str]]:
    """check()-style problems (key path, what is wrong, fix) of the network settings."""
    probs = []
    if net.kind == "k-regular":
        if net.degree < 1:
            probs.append((f"{key}.degree", f"must be >= 1, got {net.degree}", "give a positive degree"))
    elif net.kind == "configuration":
        if not net.degree_values or len(net.degree_values) != len(net.degree_weights):
            probs.append((f"{key}.degree_weights", "configuration needs degree_values and one weight per value",
                          "e.g. degree_values: [3, 10], degree_weights: [0.5, 0.5]"))
        elif any(k < 0 for k in net.degree_values) or any(w < 0 for w in net.degree_weights) \
                or sum(net.degree_weights) <= 0:
            probs.append((f"{key}.degree_weights", "degrees and weights must be >= 0 with a positive weight sum",
                          "fix the values"))
    elif net.kind == "erdos-renyi":
        if not net.mean_degree > 0:
            probs.append((f"{key}.mean_degree", f"must be > 0, got {net.mean_degree}", "e.g. mean_degree: 10"))
    elif net.kind == "layers":
        if not net.layers:
            probs.append((f"{key}.layers", "kind: layers needs at least one layer",
                          "e.g. layers: [{name: households, kind: households, size: 3}]"))
        names = [layer.name for layer in net.layers]
        for i, layer in enumerate(net.layers):
            where = f"{key}.layers[{i}]"
            if names.count(layer.name) > 1:
                probs.append((f"{where}.name", f"layer name {layer.name!r} is used twice", "rename one"))
            if layer.name == "all":
                probs.append((f"{where}.name", "'all' is reserved (interventions on every layer)", "rename it"))
            if layer.kind in ("households", "groups") and not layer.size >= 1:
                probs.append((f"{where}.size", f"must be >= 1, got {layer.size}", "e.g. size: 4"))
            if layer.kind == "random" and not (layer.mean_degree is not None and layer.mean_degree > 0):
                probs.append((f"{where}.mean_degree", "a random layer needs mean_degree > 0",
                              "e.g. mean_degree: 5"))
            if layer.kind == "groups" and layer.mean_degree is not None and not layer.mean_degree > 0:
                probs.append((f"{where}.mean_degree", "must be > 0 (or null for all pairs)", "fix it"))
            if not 0 <= layer.fraction <= 1:
                probs.append((f"{where}.fraction", f"must lie in [0, 1], got {layer.fraction}", "fix it"))
            if not layer.weight >= 0:
                probs.append((f"{where}.weight", f"must be >= 0, got {layer.weight}", "fix it"))
    elif net.kind == "file":
        if not net.file:
            probs.append((f"{key}.file", "kind: file needs the edge list's path", "e.g. file: contacts.txt"))
        elif not Path(net.file).is_file():
            probs.append((f"{key}.file", f"no such file: {net.file} (relative paths are taken from the "
                          f"working directory {Path.cwd()})", "give an existing edge-list file"))
        else:
            try:
                _read_edges(net.file, n_agents)
            except EdgeFileError as exc:
                probs.append((f"{key}.file", str(exc), "fix the file"))
    return probs


# ----------------------------------------------------------------- generators
def _simple_edges(u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Remove self-loops and repeated edges by double-edge swaps (degrees preserved).

    Each bad edge (a, b) is swapped with a random other edge (c, d) into (a, c), (b, d);
    repeated until the graph is simple (a handful of rounds: O(k^2) bad edges expected).
    """
    u, v = u.astype(np.int64), v.astype(np.int64)
    m = len(u)
    for _ in range(1000):
        lo, hi = np.minimum(u, v), np.maximum(u, v)
        key = lo * (np.int64(1) << 32) + hi
        order = np.argsort(key, kind="stable")
        dup = np.zeros(m, dtype=bool)
        dup[order[1:]] = key[order[1:]] == key[order[:-1]]
        bad = np.flatnonzero(dup | (u == v))
        if len(bad) == 0:
            return lo, hi
        if m < 2 * len(bad) + 2:
            raise ValueError("the degree sequence cannot be made into a simple graph (too few edges)")
        good = np.setdiff1d(np.arange(m), bad)
        other = rng.choice(good, size=len(bad), replace=False)
        flip = rng.random(len(bad)) < 0.5   # (a, b) x (c, d) -> (a, c), (b, d) or (a, d), (b, c)
        a, b = u[bad], v[bad]
        c = np.where(flip, v[other], u[other])
        d = np.where(flip, u[other], v[other])
        u[bad], v[bad], u[other], v[other] = a, c, b, d
    raise ValueError("could not remove self-loops and repeated edges in 1000 swap rounds")


def configuration_edges(degrees: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A uniformly random simple graph with (nearly, see module doc) the given degree sequence.

    degrees : ndarray, shape (n,), int; its sum must be even.  Returns edge ends (u, v), u < v.
    """
    stubs = np.repeat(np.arange(len(degrees), dtype=np.int64), degrees)
    rng.shuffle(stubs)
    return _simple_edges(stubs[0::2], stubs[1::2], rng)


def erdos_renyi_edges(n: int, mean_degree: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """G(n, p), p = mean_degree/(n - 1): a Binomial(n(n-1)/2, p) number of distinct uniform pairs."""
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    pairs = n * (n - 1) // 2
    m = int(rng.binomial(pairs, min(mean_degree / (n - 1), 1.0)))
    keys = np.zeros(0, dtype=np.int64)
    while len(keys) < m:
        need = m - len(keys)
        a = rng.integers(0, n, size=need + need // 8 + 16)
        b = rng.integers(0, n, size=len(a))
        ok = a != b
        lo, hi = np.minimum(a[ok], b[ok]), np.maximum(a[ok], b[ok])
        keys = np.unique(np.concatenate([keys, lo * n + hi]))
    if len(keys) > m:                       # drop a random surplus, not the largest keys
        keys = np.sort(rng.choice(keys, size=m, replace=False))
    return keys // n, keys % n


def _group_sizes(n: int, mean: float, rng: np.random.Generator) -> np.ndarray:
    """Sizes 1 + Poisson(mean - 1) until they cover n agents (the last one cut to fit)."""
    sizes = 1 + rng.poisson(max(mean - 1.0, 0.0), size=int(n / max(mean, 1.0)) + 16)
    while sizes.sum() < n:
        sizes = np.concatenate([sizes, 1 + rng.poisson(max(mean - 1.0, 0.0), size=len(sizes))])
    c = np.cumsum(sizes)
    k = int(np.searchsorted(c, n))       # first group reaching n
    sizes = sizes[:k + 1].copy()
    sizes[-1] -= c[k] - n
    return sizes[sizes > 0]


def _group_edges(members: np.ndarray, sizes: np.ndarray, mean_degree: float | None,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Contacts inside consecutive groups of ``members``: all pairs, or G(s, mean_degree/(s-1))."""
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    us, vs = [], []
    for s in np.unique(sizes):
        if s < 2:
            continue
        i, j = np.triu_indices(int(s), 1)
        base = starts[sizes == s][:, None]
        u, v = (base + i).ravel(), (base + j).ravel()
        if mean_degree is not None:
            keep = rng.random(len(u)) < min(mean_degree / (s - 1), 1.0)
            u, v = u[keep], v[keep]
        us.append(members[u])
        vs.append(members[v])
    if not us:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(us), np.concatenate(vs)


def _layer_edges(layer: LayerParams, n: int, rng: np.random.Generator):
    if layer.kind == "households":
        return _group_edges(np.arange(n, dtype=np.int64), _group_sizes(n, layer.size, rng), None, rng)
    if layer.kind == "groups":
        members = rng.permutation(n)[:int(round(layer.fraction * n))]
        if len(members) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return _group_edges(members, _group_sizes(len(members), layer.size, rng), layer.mean_degree, rng)
    return erdos_renyi_edges(n, float(layer.mean_degree), rng)


def _region_edges(net: NetworkParams, n: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """One (u, v) edge array pair per layer for a region of ``n`` agents."""
    if net.kind == "k-regular":
        if (n * net.degree) % 2 or net.degree >= n:
            raise ValueError(f"a {net.degree}-regular graph on {n} agents does not exist "
                             "(need degree < agents and agents * degree even)")
        return [configuration_edges(np.full(n, net.degree, dtype=np.int64), rng)]
    if net.kind == "configuration":
        w = np.asarray(net.degree_weights, dtype=float)
        deg = rng.choice(np.asarray(net.degree_values, dtype=np.int64), size=n, p=w / w.sum())
        if deg.sum() % 2:
            deg[rng.integers(n)] += 1
        return [configuration_edges(deg, rng)]
    if net.kind == "erdos-renyi":
        return [erdos_renyi_edges(n, net.mean_degree, rng)]
    return [_layer_edges(layer, n, rng) for layer in net.layers]


def build_graph(net: NetworkParams, region_sizes: list[int], seed: int) -> Graph:
    """The whole contact graph: generated per region (regions share no contacts), or read from the file.

    region_sizes : agents per region, consecutive id blocks in this order.
    seed : the network's seed; region ``r`` draws from stream (seed, r).
    """
    n = int(sum(region_sizes))
    if net.kind == "file":
        u, v, lay, names = _read_edges(net.file, n)
        return _csr(n, u, v, lay, names, ["random"] * len(names))
    names = [layer.name for layer in net.layers] if net.kind == "layers" else ["community"]
    kinds = [layer.kind for layer in net.layers] if net.kind == "layers" else ["random"]
    us, vs, ls = [], [], []
    offset = 0
    for r, size in enumerate(region_sizes):
        for k, (u, v) in enumerate(_region_edges(net, int(size), _rng(seed, r))):
            us.append(u + offset)
            vs.append(v + offset)
            ls.append(np.full(len(u), k, dtype=np.int8))
        offset += int(size)
    cat = (lambda a, dt: np.concatenate(a).astype(dt) if a else np.zeros(0, dt))
    return _csr(n, cat(us, np.int64), cat(vs, np.int64), cat(ls, np.int8), names, kinds)


def _csr(n, u, v, lay, names, kinds) -> Graph:
    src = np.concatenate([u, v])
    dst = np.concatenate([v, u])
    lay2 = np.concatenate([lay, lay])
    if n < (1 << 27):                      # one int64 key sorts ~20x faster than lexsort of three
        order = np.argsort((src * n + dst) * 128 + lay2, kind="stable")
    else:
        order = np.lexsort((lay2, dst, src))
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    return Graph(n, indptr, dst[order].astype(np.int64), lay2[order].astype(np.int8), list(names), list(kinds))


# ------------------------------------------------------------------ edge files
def _read_edges(path: str, n: int | None):
    """(u, v, layer index, layer names) of an edge-list file, checked line by line.

    Format: one contact per line, ``i j`` or ``i j layer``, 0-based agent ids, blank lines
    and text after ``#`` ignored.  Errors (raised as :class:`EdgeFileError` naming
    ``path:line``): a line that is not 2 or 3 fields, ids that are not integers, ids
    outside 0..n-1, self-loops, a contact listed twice in the same layer.
    """
    us, vs, ls, lines = [], [], [], []
    names: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            text = raw.split("#", 1)[0].split()
            if not text:
                continue
            where = f"{path}:{lineno}"
            if len(text) not in (2, 3):
                raise EdgeFileError(f"{where}: expected 'i j' or 'i j layer', got {raw.strip()!r}")
            try:
                i, j = int(text[0]), int(text[1])
            except ValueError:
                raise EdgeFileError(f"{where}: agent ids must be integers, got {raw.strip()!r}") from None
            if n is not None and not (0 <= i < n and 0 <= j < n):
                raise EdgeFileError(f"{where}: agent id out of range 0..{n - 1} (n_agents = {n}): "
                                    f"{raw.strip()!r}")
            if i < 0 or j < 0:
                raise EdgeFileError(f"{where}: agent ids must be >= 0, got {raw.strip()!r}")
            if i == j:
                raise EdgeFileError(f"{where}: self-loop (agent {i} in contact with itself)")
            name = text[2] if len(text) == 3 else "community"
            if name == "all":
                raise EdgeFileError(f"{where}: the layer name 'all' is reserved")
            us.append(min(i, j))
            vs.append(max(i, j))
            ls.append(names.setdefault(name, len(names)))
            lines.append(lineno)
    if len(names) > 127:
        raise EdgeFileError(f"{path}: more than 127 layers")
    u, v, lay = np.array(us, np.int64), np.array(vs, np.int64), np.array(ls, np.int8)
    key = (u * (np.int64(1) << 32) + v) * 128 + lay
    order = np.argsort(key, kind="stable")
    same = np.flatnonzero(key[order[1:]] == key[order[:-1]])
    if len(same):
        a, b = order[same[0]], order[same[0] + 1]
        raise EdgeFileError(f"{path}:{lines[b]}: contact {u[b]} {v[b]} repeats line {lines[a]} (same layer)")
    return u, v, lay, list(names) or ["community"]


def read_edge_file(path: str, n: int) -> Graph:
    """The graph of an edge-list file over ``n`` agents (format: see :func:`_read_edges`)."""
    u, v, lay, names = _read_edges(path, n)
    return _csr(n, u, v, lay, names, ["random"] * len(names))
