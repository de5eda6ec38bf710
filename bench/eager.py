#!/usr/bin/python3
"""Eager programs with peers: the same Python function run with dvm's lazy arrays, NumPy and
torch (eager) as its array module `xp`, in one process (docs/lazy.md, docs/python.md).

    E1  an 8-op elementwise chain on [N, 1024]
    E2  layernorm over the last axis written from primitives (mean, subtract, square, mean,
        add, sqrt, divide, scale, shift)
    E3  softmax over the last axis from primitives (amax, subtract, exp, sum, divide)
    E4  Newton's iteration for sqrt until the largest residual, read back as a Python float
        each iteration, is small: a loop whose trip count depends on the data

Each call converts its input with xp.asarray (no copy for all three) and ends with the
result as a NumPy array (np.asarray: for dvm this is where the trace is flushed). Per
system and N (1, 64, 1024 by default), after warm-up calls and (dvm) the native code of
the traces (dvm.wait()), calls alternate between the systems until --min-time and 20
calls each; the table gives medians and the ratios dvm / peer (below 1: dvm faster),
whether the results agree with NumPy's (float64 reference for E4's iteration count and
values), the compiles dvm made during the timed calls, and dvm's Python cost per recorded
op (E1 recorded without reading, divided by its 8 ops).

usage: PYTHONPATH=build/python /usr/bin/python3 bench/eager.py [E1 E2 E3 E4] [--sweep N=1,64,1024]
           [--threads T] [--tier auto|vm|llvm] [--min-time S] [--format table|csv|json] [--plot DIR]
(`dvm bench --eager ...` runs it with these arguments; unset OPENBLAS_CORETYPE and
OPENBLAS_L2_SIZE when comparing with torch.)
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

import dvm

try:
    import torch
except ImportError:  # the table says so
    torch = None


def e1(xp, x):
    x = xp.asarray(x)
    t = x * 1.5 + 0.5
    t = xp.tanh(t) * x
    t = xp.exp(-t) + x
    return np.asarray(t * 0.5)


def e2(xp, x, g, b):
    x = xp.asarray(x)
    m = x.mean(axis=-1, keepdims=True)
    d = x - m
    v = (d * d).mean(axis=-1, keepdims=True)
    return np.asarray(d / xp.sqrt(v + 1e-5) * xp.asarray(g) + xp.asarray(b))


def e3(xp, x):
    x = xp.asarray(x)
    e = xp.exp(x - xp.amax(x, axis=-1, keepdims=True))
    return np.asarray(e / e.sum(axis=-1, keepdims=True))


def e4(xp, x):
    x = xp.asarray(x)
    y = x + 0.5
    for it in range(100):
        y = (y + x / y) * 0.5
        if float(xp.amax(abs(y * y - x))) < 1e-4 * float(x.shape[0]):
            break
    return np.asarray(y), it + 1


def inputs(name, n):
    r = np.random.default_rng(7)
    if name == "E4":
        return (r.uniform(1, 100, (n, 1024)).astype(np.float32),)
    x = r.uniform(-2, 2, (n, 1024)).astype(np.float32)
    if name == "E2":
        return x, r.uniform(0.5, 1.5, 1024).astype(np.float32), r.uniform(-0.5, 0.5, 1024).astype(np.float32)
    return (x,)


FUNCS = {"E1": e1, "E2": e2, "E3": e3, "E4": e4}


def reference(name, args):
    """float64 NumPy: what every system's result is compared with."""
    a = [x.astype(np.float64) for x in args]
    if name == "E4":
        return np.sqrt(a[0])
    return FUNCS[name](np, *a) if name != "E4" else None


def record_cost(n_calls=20000):
    """dvm's Python cost per recorded op: E1's 8 ops recorded, nothing read."""
    x = dvm.asarray(np.ones((4, 1024), np.float32))
    for _ in range(1000):
        t = dvm.exp(-(dvm.tanh(x * 1.5 + 0.5) * x)) + x
    rounds = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n_calls // 5):
            t = x * 1.5 + 0.5
            t = dvm.tanh(t) * x
            t = dvm.exp(-t) + x
            t = t * 0.5
            del t
        rounds.append((time.perf_counter() - t0) / (n_calls // 5) / 8 * 1e6)
    dvm.sync()
    return statistics.median(rounds)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("programs", nargs="*", default=["E1", "E2", "E3", "E4"])
    ap.add_argument("--sweep", default="N=1,64,1024")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tier", default="auto", choices=["auto", "vm", "llvm"])
    ap.add_argument("--min-time", type=float, default=0.25)
    ap.add_argument("--format", default="table", choices=["table", "csv", "json"])
    ap.add_argument("--plot", metavar="DIR", help="also write DIR/eager.jsonl and DIR/eager.png (python3-matplotlib)")
    a = ap.parse_args()
    bad = [p for p in a.programs if p not in FUNCS]
    if bad:
        ap.error("no program %s (E1 E2 E3 E4)" % ", ".join(bad))
    if not a.sweep.startswith("N="):
        ap.error("--sweep N=v1,v2,...")
    sizes = [int(v) for v in a.sweep[2:].split(",")]
    dvm.lazy_options(tier=a.tier, threads=a.threads)
    systems = {"dvm": dvm, "numpy": np}
    if torch is not None:
        torch.set_num_threads(a.threads)
        systems["torch"] = torch
    rec = record_cost()
    rows = []
    for name in a.programs:
        f = FUNCS[name]
        for n in sizes:
            args = inputs(name, n)
            want = reference(name, args)
            row = {"program": name, "N": n, "threads": a.threads, "tier": a.tier}
            calls = {}
            for sys_name, xp in systems.items():
                targs = [torch.from_numpy(x) for x in args] if sys_name == "torch" else args
                calls[sys_name] = (lambda xp=xp, targs=targs: f(xp, *targs))
                for _ in range(3):
                    calls[sys_name]()
            dvm.wait()
            s0 = dvm.lazy_stats()["misses"]
            times = {k: [] for k in calls}
            got = {}
            start = time.perf_counter()
            while time.perf_counter() - start < a.min_time or len(times["dvm"]) < 20:
                for k, c in calls.items():
                    t0 = time.perf_counter()
                    got[k] = c()
                    times[k].append((time.perf_counter() - t0) * 1e6)
                if len(times["dvm"]) >= 2000:
                    break
            row["compiles"] = dvm.lazy_stats()["misses"] - s0
            for k in calls:
                res = got[k][0] if name == "E4" else got[k]
                row[k + "_us"] = statistics.median(times[k])
                row[k + "_match"] = bool(np.allclose(res, want, rtol=1e-3, atol=1e-3))
                if name == "E4":
                    row[k + "_iterations"] = got[k][1]
                if k != "dvm":
                    row["ratio_" + k] = row["dvm_us"] / row[k + "_us"]
            row["reps"] = len(times["dvm"])
            rows.append(row)
    peers = [k for k in systems if k != "dvm"]
    if a.format == "json":
        print(json.dumps({"eager": True, "record_op_us": rec, "threads": a.threads}))
        for r in rows:
            print(json.dumps(r))
    elif a.format == "csv":
        cols = ["program", "N", "threads", "tier", "dvm_us"] + [c for p in peers for c in (p + "_us", "ratio_" + p)] + \
               ["dvm_match", "compiles", "reps"]
        print(",".join(cols))
        for r in rows:
            print(",".join("%.4g" % r[c] if isinstance(r[c], float) else str(r[c]).lower() for c in cols))
    else:
        print("eager programs: %d thread%s, dvm tier %s; dvm records %.2f us of Python per op"
              % (a.threads, "" if a.threads == 1 else "s", a.tier, rec))
        head = "%-4s %6s %10s" % ("prog", "N", "dvm_us") + "".join(" %10s %7s" % (p + "_us", "dvm/" + p[:2]) for p in peers)
        print(head + "  %5s %8s" % ("match", "compiles"))
        for r in rows:
            line = "%-4s %6d %10.1f" % (r["program"], r["N"], r["dvm_us"])
            line += "".join(" %10.1f %7.3f" % (r[p + "_us"], r["ratio_" + p]) for p in peers)
            ok = all(r[k + "_match"] for k in ["dvm"] + peers)
            print(line + "  %5s %8d" % ("yes" if ok else "NO", r["compiles"]))
        if torch is None:
            print("torch: not installed (python3-torch)")
    if a.plot and not plot(a.plot, rows, ["dvm"] + peers, rec):
        return 1
    return 0 if all(r["dvm_match"] for r in rows) else 1


def plot(out_dir, rows, systems, rec):
    """One panel per program: each system's median against N, log-log. False (and a
    message) without matplotlib; the JSON lines are written first either way."""
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "eager.jsonl"), "w") as f:
        f.write(json.dumps({"eager": True, "record_op_us": rec}) + "\n")
        for r in rows:
            f.write(json.dumps(r) + "\n")
    try:
        import matplotlib
    except ImportError:
        print("eager.py: --plot needs python3-matplotlib (make demo installs it)", file=sys.stderr)
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    progs = sorted({r["program"] for r in rows})
    fig, axes = plt.subplots(1, len(progs), figsize=(4 * len(progs), 3.6), squeeze=False)
    for ax, p in zip(axes[0], progs):
        rs = [r for r in rows if r["program"] == p]
        for k in systems:
            ax.plot([r["N"] for r in rs], [r[k + "_us"] for r in rs], marker="o", label=k)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(p)
        ax.set_xlabel("N (rows of 1024)")
        ax.set_ylabel("median us per call")
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "eager.png"), dpi=100)
    return True


if __name__ == "__main__":
    sys.exit(main())
