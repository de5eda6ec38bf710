#!/usr/bin/python3
"""What a call of a dvm.Model from Python costs beyond the run itself: a small model
(y = 2x over [4, 16], bytecode tier, one thread) called 20,000 times per round, seven
rounds, medians, against the library's own time of the run (stats()["run_us"], the last
run). Run with the build tree's module:

    PYTHONPATH=build/python /usr/bin/python3 bench/python_overhead.py
"""
import statistics
import time

import numpy as np

import dvm

m = dvm.Model("graph g\ninput x: f32[N, 16]\ny = mul(x, 2.0)\noutput y\n", tier="vm", threads=1)
x = np.ones((4, 16), np.float32)
out = np.empty((4, 16), np.float32)
for _ in range(5000):
    m(x=x)


def per_call(f, n=20000):
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n * 1e6


rounds = []
for _ in range(7):
    rounds.append((per_call(lambda: m(x=x)), per_call(lambda: m(x=x, out=out)), per_call(lambda: m(x)),
                   m.stats()["run_us"]))
names = ["m(x=x), a new array out", "m(x=x, out=out)", "m(x), positional", "the run itself (run_us)"]
for i, name in enumerate(names):
    print("%-26s %.2f us" % (name, statistics.median(r[i] for r in rounds)))
run = statistics.median(r[3] for r in rounds)
print("overhead per call: %.2f us (new array), %.2f us (out=)"
      % (statistics.median(r[0] for r in rounds) - run, statistics.median(r[1] for r in rounds) - run))
