#!/usr/bin/env python3
"""A peer that follows bench/peers/README.md but computes the wrong answer (its outputs
are dvm's inputs' first elements, scaled): `dvm bench` must report it as a mismatch, not
time it silently. Used by run_bench.py through DVM_PEERS."""
import argparse
import json
import os
import time

import numpy as np

ap = argparse.ArgumentParser()
for flag in ("--graph", "--dir", "--threads", "--reps", "--peer-name"):
    ap.add_argument(flag)
a = ap.parse_args()
outs = json.load(open(os.path.join(a.dir, "outputs.json")))
ref_shape_source = [f for f in os.listdir(a.dir) if f.endswith(".npy") and f.count(".") == 1]
x = np.load(os.path.join(a.dir, sorted(ref_shape_source)[0]))
t0 = time.perf_counter_ns()
for name in outs:
    # right dtype, and a shape taken from the graph's first input: wrong values either way
    np.save(os.path.join(a.dir, f"{name}.{a.peer_name}.npy"), (x * 3.0 + 1.0).astype(np.float32))
us = (time.perf_counter_ns() - t0) / 1e3
print(json.dumps({"peer": a.peer_name, "median_us": us, "p90_us": us, "reps": 1}))
