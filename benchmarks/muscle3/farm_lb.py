"""The round-robin load balancer of MUSCLE3's documentation, in the form MUSCLE3 0.11 accepts.

The documentation ("Uncertainty Quantification", section "The round-robin load
balancer"; docs/source/examples/python/reaction_diffusion_qmc.py) keeps
``num_workers`` calls in flight, call i on worker i mod num_workers, and
returns each result as soon as the oldest call is back: it interleaves S
receives on ``back_in`` with O_F sends on ``front_out``.  MUSCLE3 0.11 checks
operator timelines and stops that code at 2 workers (PortBlocked: "not allowed
to send on O_F port 'front_out[0]' yet: was expecting a receive on S port
'back_in[1]'").  So here the same round-robin runs in rounds: calls
k W .. k W + W - 1 go to workers 0 .. W - 1 (O_I), all W results are received
(S), then passed on (O_F).  With the benchmark's costs growing smoothly along
the index, two calls of a round differ by ~1 %, so the rounds cost about what
the documented pipeline would.  (The documentation's ``reuse_instance(False)``
is the flag ``InstanceFlags.DONT_APPLY_OVERLAY`` since MUSCLE3 0.8.)
"""
from libmuscle import Instance, InstanceFlags
from ymmsl import Operator


def main() -> None:
    instance = Instance({Operator.F_INIT: ["front_in[]"], Operator.O_I: ["back_out[]"],
                         Operator.S: ["back_in[]"], Operator.O_F: ["front_out[]"]},
                        InstanceFlags.DONT_APPLY_OVERLAY)
    while instance.reuse_instance():
        num_calls = instance.get_port_length("front_in")
        num_workers = instance.get_port_length("back_out")
        instance.set_port_length("front_out", num_calls)
        for first in range(0, num_calls, num_workers):
            calls = range(first, min(first + num_workers, num_calls))
            for i in calls:
                instance.send("back_out", instance.receive_with_settings("front_in", i), i % num_workers)
            results = [instance.receive_with_settings("back_in", i % num_workers) for i in calls]
            for i, msg in zip(calls, results):
                instance.send("front_out", msg, i)


if __name__ == "__main__":
    main()
