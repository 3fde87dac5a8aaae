"""The coupling schedule: who runs when inside a window, and time interpolation.

Pure planning from the job spec (no MPI), so ``msorch validate`` can check a
schedule before anything launches, and the worker loop only follows the plan.

Inside a window, solvers run in *stages*: with serial staggering each solver
in ``scheme.order`` is its own stage; with parallel staggering all run in
stage 0.  A coupling whose source runs in an earlier stage than its target is
*fresh*: the target receives this window's (this iteration's) samples before
it runs.  Every other coupling *closes the loop*: its data arrives after the
target ran and is used in the next iteration (implicit) or the next window
(explicit, held constant).  Implicit schemes accelerate and measure
convergence on these loop-closing data.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .messages import Control


@dataclass(frozen=True)
class Plan:
    """The schedule of a job, identical on every rank."""

    stage: dict[str, int]            # solver name -> stage index within a window
    fresh: frozenset[int]            # coupling indices received before the target runs
    accelerated: tuple[int, ...]     # coupling indices the accelerator updates (implicit)
    converged_on: tuple[int, ...]    # coupling indices of the convergence measures, in spec order


def make_plan(job) -> tuple[Plan | None, list[tuple[str, str, str]]]:
    """Build the schedule; returns (plan, problems as (yaml path, what, fix))."""
    scheme = job.scheme
    order = scheme.order or tuple(job.solvers)
    serial = scheme.staggering == "serial"
    stage = {name: (order.index(name) if serial and name in order else 0) for name in job.solvers}
    fresh = frozenset(i for i, c in enumerate(job.couplings) if stage[c.source] < stage[c.target])
    by_ref = {f"{c.target}.{c.target_field}": i for i, c in enumerate(job.couplings)}
    problems = []
    converged_on: list[int] = []
    accelerated: list[int] = []
    if scheme.kind == "implicit":
        loop = [i for i in range(len(job.couplings)) if i not in fresh]
        if not loop:
            problems.append(("scheme", "an implicit scheme needs a coupling that closes the loop "
                             "(from a later stage back to an earlier one)",
                             "couple the solvers both ways, or use kind: explicit"))
        converged_on = [by_ref[c.field] for c in scheme.convergence if c.field in by_ref]
        acc = scheme.acceleration
        names = acc.fields if acc and acc.fields else tuple(
            f"{job.couplings[i].target}.{job.couplings[i].target_field}" for i in loop)
        for k, ref in enumerate(names):
            i = by_ref.get(ref)
            if i is None:
                continue  # the spec validator reports unknown references
            if i in fresh:
                problems.append((f"scheme.acceleration.fields[{k}]",
                                 f"{ref} is received within the iteration (its source runs first), "
                                 "so accelerating it has no effect on the fixed point",
                                 "accelerate the data that flows back to the first solver: "
                                 + ", ".join(f"{job.couplings[j].target}.{job.couplings[j].target_field}"
                                             for j in loop)))
            accelerated.append(i)
    return Plan(stage, fresh, tuple(accelerated), tuple(converged_on)), problems


@dataclass(frozen=True)
class Interpolation:
    """How a receiver with ``k_r`` steps reads a waveform of ``k_s`` samples.

    Samples are indexed 0..k_s: 0 is the window start, i the value at
    fraction i/k_s of the window.  Step r (0-based) of the receiver ends at
    fraction (r+1)/k_r; its input is ``w0 * S[i0] + w1 * S[i1]``.
    """

    i0: np.ndarray
    i1: np.ndarray
    w0: np.ndarray
    w1: np.ndarray


def interpolation(k_s: int, k_r: int, waveform: str) -> Interpolation:
    """Weights for reading a ``k_s``-sample waveform at ``k_r`` step ends.

    ``linear``: piecewise-linear through the samples (preCICE v3's default
    waveform degree 1); ``constant``: the first sample at or after the step end.
    Integer arithmetic keeps exact sample hits exact (w1 == 0).
    """
    r = np.arange(1, k_r + 1)
    num = r * k_s
    if waveform == "constant":
        i0 = -(-num // k_r)
        return Interpolation(i0, i0, np.ones(k_r), np.zeros(k_r))
    i0 = num // k_r
    frac = (num % k_r) / k_r
    i1 = np.minimum(i0 + 1, k_s)
    return Interpolation(i0, i1, 1.0 - frac, frac)


def checkpoint_due(job, w: int, control: Control) -> bool:
    """Whether every rank checkpoints after window ``w`` (schedule from the spec, or asked for)."""
    every = job.checkpoint.every_windows if job.checkpoint else None
    return bool(every and (w + 1) % every == 0) or w == control.checkpoint_at
