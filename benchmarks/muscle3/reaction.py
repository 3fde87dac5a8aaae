"""MUSCLE3 micro model of the reaction-diffusion benchmark: forward-Euler decay.

Run by ``muscle_manager`` (see ``reaction_diffusion.ymmsl``). Receives the
macro state on ``initial_state`` (F_INIT), integrates dU/dt = k U from the
message's time over ``t_max`` (loop ``while t + dt < t_start + t_max``), and
returns U on ``final_state`` (O_F). Same arithmetic as
``solvers/examples/reaction_diffusion.py:Reaction``.
"""
from libmuscle import Grid, Instance, Message
from ymmsl import Operator


def main() -> None:
    instance = Instance({Operator.F_INIT: ["initial_state"], Operator.O_F: ["final_state"]})
    while instance.reuse_instance():
        t_max = instance.get_setting("t_max", "float")
        dt = instance.get_setting("dt", "float")
        k = instance.get_setting("k", "float")
        msg = instance.receive("initial_state")
        U = msg.data.array.copy()
        t_start = t_cur = msg.timestamp
        while t_cur + dt < t_start + t_max:
            U += k * U * dt
            t_cur += dt
        instance.send("final_state", Message(t_cur, data=Grid(U, ["x"])))


if __name__ == "__main__":
    main()
