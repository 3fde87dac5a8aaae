"""Continuum solvers small enough to live beside the particle codes they are coupled to."""
