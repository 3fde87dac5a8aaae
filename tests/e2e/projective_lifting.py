"""A lifting that cannot reproduce the macro state (for the bad-input test of the projective pattern)."""
import numpy as np

from couplings.patterns.projective import StateLifting


class Rounding(StateLifting):
    """Sets the observables rounded to two decimals: U = 0.987 lifts to 0.99."""

    def lift(self, macro, t=None):
        super().lift({k: np.round(v, 2) for k, v in macro.items()}, t)
