"""MUSCLE3 side of benchmarks/muscle3_farm_bench.py: the macro model that asks.

Every window it sends ``n_tasks`` tasks on the vector port ``tasks_out`` (O_I)
and receives their results on ``results_in`` (S), through the round-robin
load balancer of MUSCLE3's documentation (``farm_lb.py``).  Task i of window w
carries x = i/n + 1e-3 w (the queries of benchmarks/farm_bench.py); the
answer must be x + 1.  Wall seconds per window go to ``<output_dir>/farm_timing.json``.
"""
import json
import os
import time

from libmuscle import Instance, Message
from ymmsl import Operator


def main() -> None:
    instance = Instance({Operator.O_I: ["tasks_out[]"], Operator.S: ["results_in[]"]})
    while instance.reuse_instance():
        n = instance.get_setting("n_tasks", "int")
        windows = instance.get_setting("windows", "int")
        out = instance.get_setting("output_dir", "str")
        instance.set_port_length("tasks_out", n)
        seconds, wrong = [], 0
        for w in range(windows):
            t0 = time.perf_counter()
            for i in range(n):
                instance.send("tasks_out", Message(float(w), data=i / n + 1e-3 * w), i)
            for i in range(n):
                msg = instance.receive_with_settings("results_in", i)
                wrong += msg.data != i / n + 1e-3 * w + 1.0
            seconds.append(time.perf_counter() - t0)
        with open(os.path.join(out, "farm_timing.json"), "w") as f:
            json.dump({"window_s": seconds, "wrong": int(wrong)}, f)


if __name__ == "__main__":
    main()
