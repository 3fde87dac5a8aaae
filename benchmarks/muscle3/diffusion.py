"""MUSCLE3 macro model of the reaction-diffusion benchmark: 1-D explicit diffusion.

Run by ``muscle_manager`` (see ``reaction_diffusion.ymmsl``), inside the
throw-away venv that ``benchmarks/muscle3_bench.py`` creates. Same model and
arithmetic as MUSCLE3's documented example and as
``solvers/examples/reaction_diffusion.py:Diffusion``.

Ports: ``state_out`` (O_I, U before each macro step), ``state_in`` (S, the
reacted U the step starts from). Writes ``final_U.npy`` (shape (n,)) and
``timing.json`` (``coupled_s``: wall seconds from the first send to the end of
the last step; ``step_s``: the same per macro step, send to send) to the
directory in setting ``output_dir``.
"""
import json
import time
from pathlib import Path

import numpy as np
from libmuscle import Grid, Instance, Message
from ymmsl import Operator


def diffusion_increment(U: np.ndarray, d: float, dx: float, dt: float) -> np.ndarray:
    """dU of one explicit step, boundary cells taking their neighbour's increment."""
    dU = np.zeros_like(U)
    dU[1:-1] = d * ((U[:-2] + U[2:] - 2.0 * U[1:-1]) / dx ** 2) * dt
    dU[0] = dU[1]
    dU[-1] = dU[-2]
    return dU


def main() -> None:
    instance = Instance({Operator.O_I: ["state_out"], Operator.S: ["state_in"]})
    while instance.reuse_instance():
        t_max = instance.get_setting("t_max", "float")
        dt = instance.get_setting("dt", "float")
        dx = instance.get_setting("dx", "float")
        d = instance.get_setting("d", "float")
        U = np.zeros(int(round(instance.get_setting("x_max", "float") / dx))) + 1e-20
        U[[25, 50, 75]] = 2.0
        out = Path(instance.get_setting("output_dir", "str"))

        t_cur = 0.0
        marks = []   # perf_counter at each send, then at the end of the last step
        while t_cur + dt <= t_max:
            t_next = t_cur + dt
            if t_next + dt > t_max:
                t_next = None   # tells the receiver this is the last message
            sent = Message(t_cur, t_next, Grid(U, ["x"]))
            marks.append(time.perf_counter())
            instance.send("state_out", sent)
            reply = instance.receive("state_in", default=sent)
            np.copyto(U, reply.data.array)
            U += diffusion_increment(U, d, dx, dt)
            t_cur += dt
        marks.append(time.perf_counter())

        np.save(out / "final_U.npy", U)
        steps = np.diff(marks)
        (out / "timing.json").write_text(json.dumps(
            {"coupled_s": marks[-1] - marks[0], "steps": len(steps), "step_s": steps.tolist()}))


if __name__ == "__main__":
    main()
