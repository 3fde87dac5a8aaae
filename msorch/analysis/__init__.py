"""Data-driven scales of a run (``msorch analyze``): POD, DMD, BOP-DMD and multiresolution DMD.

Generic over fields: reads any solver's output fields from ``OUTDIR/results.h5``
(:mod:`.series`), decomposes them (:mod:`.methods`, PyDMD underneath) and
writes ``OUTDIR/analysis.h5``, PNGs and a terminal summary (:mod:`.report`).
"""
from .methods import POD, DMDModes, MultiResolution, Scale, bopdmd, dmd, mrdmd, pod
from .report import CONVENTIONS, METHODS, Options, analyze
from .series import AnalysisError, Series, available_fields, load_series

__all__ = ["AnalysisError", "Series", "available_fields", "load_series", "POD", "DMDModes", "MultiResolution",
           "Scale", "pod", "dmd", "bopdmd", "mrdmd", "Options", "analyze", "CONVENTIONS", "METHODS"]
