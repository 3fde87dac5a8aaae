"""msorch: an MPI-parallel multiscale co-simulation orchestrator.

The public API for plugin authors is :mod:`msorch.solver` (``Solver``,
``FieldSpec``, ``param``); jobs are described in YAML (:mod:`msorch.spec`)
and run with the ``msorch`` command (:mod:`msorch.cli`).
"""
__version__ = "0.1.0"
