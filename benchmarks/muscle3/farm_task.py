"""MUSCLE3 side of benchmarks/muscle3_farm_bench.py: one micro instance (used with multiplicity).

Receives x on ``task_in`` (F_INIT), spends cost (1 + (spread - 1) min(max(x, 0), 1))
seconds of busy work -- the cost of ``farm_bench.Plus`` for the same query --
and returns x + 1 on ``result_out`` (O_F).
"""
import time

from libmuscle import Instance, Message
from ymmsl import Operator


def main() -> None:
    instance = Instance({Operator.F_INIT: ["task_in"], Operator.O_F: ["result_out"]})
    while instance.reuse_instance():
        cost = instance.get_setting("cost", "float")
        spread = instance.get_setting("spread", "float")
        msg = instance.receive("task_in")
        x = msg.data
        end = time.perf_counter() + cost * (1.0 + (spread - 1.0) * min(max(x, 0.0), 1.0))
        while time.perf_counter() < end:
            pass
        instance.send("result_out", Message(msg.timestamp, data=x + 1.0))


if __name__ == "__main__":
    main()
