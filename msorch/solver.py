"""The Solver API: what a physics code implements to run under msorch.

A solver is one physics code living on its own communicator (its *group*).
The framework owns the time loop: it calls :meth:`Solver.advance` once per
step, hands coupling data in with :meth:`Solver.put` before the step and reads
results with :meth:`Solver.get` after it.  Between two calls the solver is
always "between steps", which is what makes consistent checkpoints and the
roll-back of implicit coupling iterations possible.

A complete user-defined solver fits in one file: see
``solvers/examples/decay.py`` (shown in the README, run by
``jobs/decay_pair.yaml``), named in a job spec as
``kind: "solvers.examples.decay:Decay"``.

**Importing a plugin must not start MPI.**  The front end (``msorch validate``,
``msorch run`` before it launches, ``submit``, ``status``, ``plot``) imports
solver modules to read their ``Params``, and must stay an ordinary process: an
MPI initialized there leaks its variables into the jobs it starts.  The front
end sets ``mpi4py.rc.initialize = False`` first, so ``from mpi4py import MPI``
at the top of a plugin module is fine; but call no MPI function at import, and
import libraries that initialize MPI themselves (``petsc4py.PETSc``, ``lammps``,
...) inside methods or through :func:`lazy_module`, never at module top level.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

__all__ = ["FieldSpec", "FieldInfo", "Solver", "NoParams", "param", "lazy_module"]


class lazy_module:   # noqa: N801  (used like a module)
    """A module imported at its first attribute access, e.g. ``pb = lazy_module("solvers.fem.petsc_backend")``.

    For plugin modules whose dependencies initialize MPI on import (see the module docstring).
    """

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        import importlib
        module = importlib.import_module(self._name)
        return getattr(module, attr)


@dataclass(frozen=True)
class FieldSpec:
    """The type of one coupling field as seen by one rank.

    Attributes
    ----------
    dtype : str
        numpy dtype name of the values, e.g. ``"float64"``.
    components : int
        Values per point: 1 for a scalar, ``dim`` for a vector, ``dim*dim``
        for a tensor (row-major).
    units : str
        Physical units of the values (``"K"``, ``"W"``, ``"W/m^2"``, ``"1"``).
        Both ends of a channel must declare the same string.
    points : ndarray, shape (n_local, dim), float64
        Coordinates [m] (or the solver's length unit) of this rank's points.
        ``n_local`` may be 0 on ranks that hold no part of the field.
    extensive : bool
        True for quantities that are integrals over a point's share of the
        domain (nodal forces, nodal heat flows, vehicle counts); these are
        mapped conservatively (sums preserved) instead of interpolated.
    """

    dtype: str
    components: int
    units: str
    points: np.ndarray = field(repr=False, compare=False)
    extensive: bool = False

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of this rank's array: (n_local,) or (n_local, components)."""
        n = len(self.points)
        return (n,) if self.components == 1 else (n, self.components)


@dataclass(frozen=True)
class FieldInfo:
    """What is known of a field before any rank starts: for docs and ``msorch solvers``.

    A solver may declare these in its ``field_info`` class attribute; the worker
    checks them against :meth:`Solver.fields` at setup, so a declaration cannot
    drift from the code.  ``units`` and ``components`` may name settings in
    braces (``"epsilon/sigma^{dim}"``, ``"{dim}"``), filled from the ``Params``.
    """

    units: str
    doc: str = ""
    components: int | str = 1
    extensive: bool = False


def param(default: Any = dataclasses.MISSING, doc: str = "", units: str = "", **kw):
    """Declare one solver setting with a one-line description and its units.

    Used as the default of a field in a solver's ``Params`` dataclass; the
    spec validator shows ``doc`` and ``units`` in its error messages.
    """
    meta = {"doc": doc, "units": units}
    if isinstance(default, (list, dict, set)):
        value = default
        return field(default_factory=lambda: type(value)(value), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass(frozen=True)
class NoParams:
    """A solver without settings."""


class Solver:
    """Base class of every physics plugin.

    Parameters
    ----------
    comm : mpi4py.MPI.Intracomm
        The group's communicator; the solver may use it freely (collectives
        included) and must not use any other.
    params : Params instance
        The validated ``params:`` block of the solver's spec entry.

    Class attributes
    ----------------
    Params : dataclass type
        Declares the settings (see :func:`param`). Validated before launch.
    outputs, inputs : tuple of str
        Field names the solver gives and takes. Override :meth:`field_names`
        when they depend on the settings.
    query_settings : tuple of str
        ``Params`` fields an HMM query may set (micro models; see :meth:`reset`
        and the optional ``advance_batch`` classmethod below).

    Methods marked *collective* are called on every rank of the group at once.
    """

    Params: ClassVar[type] = NoParams
    outputs: ClassVar[tuple[str, ...]] = ()
    inputs: ClassVar[tuple[str, ...]] = ()
    #: Names of ``Params`` fields that an HMM query (``patterns: [{kind: hmm}]``)
    #: may set on a micro instance of this solver.  A query may also set any
    #: declared input (held constant over the micro run).  Everything else is a
    #: spec error before launch.  Empty: only inputs can be queried.
    query_settings: ClassVar[tuple[str, ...]] = ()
    #: Optional: units, components and extensiveness of each field, known without
    #: running the solver (``msorch solvers KIND``, docs/spec-reference.md).  Fields
    #: left out are described by ``fields()`` only, at the channel handshake.
    field_info: ClassVar[dict[str, FieldInfo]] = {}

    def __init__(self, comm, params):
        self.comm = comm
        self.params = params

    @classmethod
    def field_names(cls, params) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(outputs, inputs) for these settings; checked before launch."""
        return tuple(cls.outputs), tuple(cls.inputs)

    @classmethod
    def check(cls, params) -> list[tuple[str, str, str]]:
        """Cross-setting checks before launch.

        Returns a list of (key path inside ``params``, what is wrong, how to fix);
        empty when the settings are consistent.
        """
        return []

    # --- lifecycle (all collective) ----------------------------------------
    def initialize(self, t0: float) -> None:
        """Set up the initial state at time ``t0`` [s]."""

    def fields(self) -> dict[str, FieldSpec]:
        """This rank's FieldSpec for every input and output (after initialize)."""
        return {}

    def advance(self, t: float, dt: float) -> None:
        """Take exactly one step from time ``t`` to ``t + dt`` [s].

        Inputs given by :meth:`put` just before hold their values at ``t + dt``.
        """
        raise NotImplementedError

    def reset(self, params) -> None:
        """Return to the initial state at t = 0 with new settings ``params`` (collective).

        Used by the HMM farm to reuse one micro instance for many queries
        instead of constructing a new one each time: ``params`` is the spec's
        base ``Params`` with a query's settings replaced
        (``dataclasses.replace``).  Afterwards :meth:`fields` may be called
        again and must describe the same points as before.  The default
        re-initializes; override when re-initializing can be cheaper (keep
        allocated arrays, neighbour lists, PETSc objects) or resources must be
        freed first.
        """
        self.params = params
        self.initialize(0.0)

    # Optional: ``advance_batch(cls, instances, t, dt)``, a classmethod that
    # takes exactly one step on many instances of this class living on the same
    # rank (``instances``: list of Solver, each on a one-rank communicator),
    # e.g. with one numba kernel over all of them.  When a class defines it, the
    # HMM farm calls it instead of ``advance`` on each instance; the result must
    # equal what ``advance`` would give instance by instance.  Not defined on
    # the base class: ``hasattr(cls, "advance_batch")`` tells the farm.

    def get(self, name: str) -> np.ndarray:
        """This rank's values of output ``name``, shape ``fields()[name].shape``."""
        raise NotImplementedError

    def put(self, name: str, data: np.ndarray) -> None:
        """Set input ``name`` on this rank; ``data`` has ``fields()[name].shape``.

        The framework may reuse ``data``'s buffer afterwards: copy what you keep.
        """
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to continue bitwise from here (arrays only)."""
        raise NotImplementedError

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Return to a state produced by :meth:`state` on this same layout."""
        raise NotImplementedError

    def restore_all(self, states: list[dict[str, np.ndarray]]) -> None:
        """Restore from a checkpoint written on a different number of ranks (collective).

        ``states`` holds every old rank's :meth:`state`, in old group-rank order,
        on every rank.  Solvers that can redistribute themselves implement this;
        then a run may restart on another layout.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot change its number of ranks on restart; "
                                  "restart with the ranks of the checkpoint")

    def results(self) -> dict[str, np.ndarray]:
        """Arrays to write to the results file at an output time.

        Default: every output field. Each value has shape (n_local, ...) aligned
        with :meth:`result_points`.
        """
        outs, _ = self.field_names(self.params)
        return {name: self.get(name) for name in outs}

    def result_points(self) -> np.ndarray:
        """(n_local, dim) coordinates that :meth:`results` arrays refer to."""
        outs, _ = self.field_names(self.params)
        return self.fields()[outs[0]].points if outs else np.zeros((0, 1))

    def result_sets(self) -> dict[str, np.ndarray]:
        """Point sets besides :meth:`result_points`, for results that live elsewhere.

        ``{set: (n_local, dim) points}``; a :meth:`results` key ``"set/field"``
        refers to set ``set`` (its rows align with those points), every other key
        to :meth:`result_points`.  They are written as groups ``<set>/`` holding
        ``points``, ``time`` and the fields, so a value that is one number for the
        whole domain (``md.lj``'s temperature) is stored once per output rather than
        on every profile row.  Default: none.
        """
        return {}

    def result_topology(self) -> np.ndarray | None:
        """Optional cells over this rank's :meth:`result_points`, for ParaView (XDMF).

        None (default): the points are shown as they are (points, or a polyline
        when they lie on one axis).  Otherwise an int array (n_cells, 3) of
        triangles numbered from this rank's first ``result_points()`` row: the
        writer adds the number of rows of the lower ranks, so entries may be
        negative or past this rank's rows for cells that straddle ranks.  Give
        each cell on exactly one rank.  Example (``fem.heat``): the triangles of
        the cell rows this rank touches whose first vertex it owns, minus ``lo``.
        """
        return None

    @classmethod
    def describe_fields(cls, params) -> dict[str, FieldInfo]:
        """:attr:`field_info` for these settings: only the fields these settings have,
        with ``{setting}`` placeholders in units/components filled in."""
        outs, ins = cls.field_names(params)
        values = dataclasses.asdict(params) if dataclasses.is_dataclass(params) else {}
        out = {}
        for name in (*outs, *ins):
            info = cls.field_info.get(name)
            if info is None:
                continue
            comps = info.components
            if isinstance(comps, str):
                comps = math.prod(int(f) for f in comps.format(**values).split("*"))  # "{dim}*{dim}"
            out[name] = FieldInfo(info.units.format(**values), info.doc, comps, info.extensive)
        return out

    def finalize(self) -> None:
        """Release resources (collective)."""


def field_info_mismatches(solver: Solver, fields: dict[str, FieldSpec]) -> list[str]:
    """Where ``fields()`` disagrees with the class's declared ``field_info`` (empty: agrees)."""
    problems = []
    for name, info in type(solver).describe_fields(solver.params).items():
        fs = fields.get(name)
        if fs is None:
            continue
        for what, declared, actual in (("units", info.units, fs.units), ("components", info.components,
                                        fs.components), ("extensive", info.extensive, fs.extensive)):
            if declared != actual:
                problems.append(f"{type(solver).__name__}.field_info[{name!r}] declares {what} {declared!r} "
                                f"but fields() gives {actual!r}")
    return problems
