"""Finite-element heat conduction (plugin ``fem.heat``).

Modules: :mod:`~solvers.fem.grid` (structured P1 triangulation and row-block
assembly, numpy only), :mod:`~solvers.fem.manufactured` (the preCICE tutorial's
exact solution), :mod:`~solvers.fem.petsc_backend` (the only place petsc4py is
imported) and :mod:`~solvers.fem.heat` (the :class:`HeatSolver` plugin).
"""
