"""Epidemic solvers. Time unit: the day; counts of people are float64 in coupling fields.

``epi.network`` (:mod:`solvers.epi.network`): agent-based SEIR/SIR on a contact
network (:mod:`solvers.epi.contacts` builds it; :mod:`solvers.epi.epi_kernels`
holds the numba step).  ``epi.meta`` (metapopulation ODE / chain binomial) lives
beside it.
"""
