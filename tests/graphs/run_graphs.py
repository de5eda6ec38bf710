#!/usr/bin/env python3
"""Graph tests: each .dvm file in tests/graphs/ and examples/ carries its expectations.

usage: run_graphs.py DVM SCRATCH_DIR

For every file:
  1. Round trip: `dvm dump --stage ir` prints the graph in the text format (shapes as
     comments); parsing that text again must print identically, and the `deduce` dumps
     of both must be identical.
  2. Oracles, where the file has them, in comments:
       # bind: N=5 S=3          one line per binding to run (several lines, several runs)
       # oracle: y = np.tanh(x) * 2     a NumPy expression over the inputs, params and
                                        symbols, for output y (erf, gelu are provided)
       # tol: 1e-4              relative tolerance (default 1e-5; absolute is tol / 10)
       # threads: 1 2           the --threads of the native and bytecode runs (default: none
                                given, one per core)
     Inputs and params get seeded random data made here (floats uniform in [-1, 1)),
     passed with -i; outputs come back with -o and are compared with the oracle. Each
     binding also runs with the default tier and DVM_JIT=off (the fused partition on the
     kernel-level reference path), whose outputs must equal the reference tier's bit for
     bit, and with --tier llvm (native kernels) and --tier vm (bytecode), whose outputs
     must agree with them within 1e-4 relative (1e-5 of the output's RMS absolute; f16
     outputs 2e-3, two of their ulps).
  3. The fused partition (`dvm dump --stage fused`), where the file says:
       # fused-kernels: 3        exactly (or "<= 3")
       # fused-kinds: row mix    the kernels' kinds in execution order
       # fused-dispatches: 1     number of dispatches (stacked kernels share one)
       # fused-written: y        every value a kernel writes to memory, nothing more
       # native: all             every kernel lowered for the code-generating tiers
                                 (`dvm dump --stage lowered` declines none)
Prints a line per failure and ends with "N passed, M failed".
"""
import math
import os
import re
import subprocess
import sys

import numpy as np

DVM, SCRATCH = sys.argv[1], sys.argv[2]
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
os.makedirs(SCRATCH, exist_ok=True)
passed = failed = 0
DTYPES = {"f32": np.float32, "f16": np.float16, "f64": np.float64, "i8": np.int8, "i16": np.int16,
          "i32": np.int32, "i64": np.int64, "u8": np.uint8, "u16": np.uint16, "u32": np.uint32,
          "u64": np.uint64, "bool": np.bool_}

_erf = np.vectorize(math.erf, otypes=[np.float64])
ORACLE_NS = {
    "np": np,
    "erf": _erf,
    "gelu": lambda x: 0.5 * x * (1.0 + _erf(np.asarray(x, np.float64) / math.sqrt(2.0))),
    "softmax": lambda x, axis=-1: np.exp(x - x.max(axis, keepdims=True))
    / np.exp(x - x.max(axis, keepdims=True)).sum(axis, keepdims=True),
}


def check(ok, name, msg):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name}: {msg}")


def run(args, env=None):
    return subprocess.run([DVM] + args, capture_output=True, text=True, env=env)


def roundtrip(path, name):
    first = run(["dump", path, "--stage", "ir"])
    if first.returncode:
        return check(False, name, f"dump failed: {first.stderr.strip()}")
    again = os.path.join(SCRATCH, name + ".printed.dvm")
    with open(again, "w") as f:
        f.write(first.stdout)
    second = run(["dump", again, "--stage", "ir"])
    check(second.returncode == 0 and second.stdout == first.stdout, name,
          "printed text does not parse back to the same graph:\n" + first.stdout + "---\n"
          + second.stdout + second.stderr)
    d1, d2 = run(["dump", path, "--stage", "deduce"]), run(["dump", again, "--stage", "deduce"])
    # the printed text has no comments, so line numbers differ; everything else may not
    strip = lambda s: re.sub(r"#? *line \d+ *", "", s)
    check(d1.returncode == 0 and strip(d1.stdout) == strip(d2.stdout), name + " (deduce)",
          "deduction differs after the round trip:\n" + d1.stdout + "---\n" + d2.stdout)


def oracles(path, name, text):
    binds = [dict((k, int(v)) for k, v in re.findall(r"(\w+)=(-?\d+)", line))
             for line in re.findall(r"^#\s*bind:(.*)$", text, re.M)]
    exprs = re.findall(r"^#\s*oracle:\s*(\w+)\s*=\s*(.*)$", text, re.M)
    tol = float((re.findall(r"^#\s*tol:\s*(\S+)", text, re.M) or ["1e-5"])[0])
    threads = [int(t) for t in (re.findall(r"^#\s*threads:(.*)$", text, re.M) or [""])[0].split()] or [None]
    if not binds or not exprs:
        return
    decls = re.findall(r"^\s*(?:input|param)\s+(\w+)\s*:\s*(\w+)\[([^\]]*)\]", text, re.M)
    for bi, syms in enumerate(binds):
        rng = np.random.default_rng(1234 + bi)
        args, env = [], dict(ORACLE_NS, **syms)
        for vname, dt, dims in decls:
            shape = tuple(int(eval(d, {}, syms)) for d in dims.split(",") if d.strip())
            if dt.startswith("f"):
                arr = rng.uniform(-1, 1, shape).astype(DTYPES[dt])
            elif dt == "bool":
                arr = rng.integers(0, 2, shape).astype(np.bool_)
            else:
                arr = rng.integers(-8, 8, shape).astype(DTYPES[dt])
            file = os.path.join(SCRATCH, f"{name}.{bi}.{vname}.npy")
            np.save(file, arr)
            args += ["-i", f"{vname}={file}"]
            env[vname] = arr
        outs = {}
        for oname, _ in exprs:
            outs[oname] = os.path.join(SCRATCH, f"{name}.{bi}.{oname}.out.npy")
            args += ["-o", f"{oname}={outs[oname]}"]
        r = run(["run", path, "--tier", "ref"] + args)
        if r.returncode:
            check(False, f"{name} {syms}", f"dvm run failed: {r.stderr.strip()}")
            continue
        ref = {o: np.load(f) for o, f in outs.items()}
        # the native tier and the bytecode tier, each within 1e-4 of the reference
        for tier, what, t in [(tier, what, t) for tier, what in (("llvm", "native"), ("vm", "bytecode"))
                              for t in threads]:
            res = run(["run", path, "--tier", tier] + (["--threads", str(t)] if t else []) + args)
            if t:
                tier = f"{tier} threads={t}"
            if res.returncode:
                check(False, f"{name} {syms} {tier}", f"dvm run --tier {tier} failed: {res.stderr.strip()}")
                continue
            for o, f in outs.items():
                got, want = np.load(f).astype(np.float64), ref[o].astype(np.float64)
                scale = max(1.0, float(np.sqrt(np.mean(want ** 2)))) if want.size else 1.0
                rt = 2e-3 if ref[o].dtype == np.float16 else 1e-4  # f16: an ulp is 9.8e-4
                check(got.shape == want.shape and np.allclose(got, want, rtol=rt, atol=rt / 10 * scale, equal_nan=True),
                      f"{name} {syms} {o} {tier}",
                      f"{what} output differs from the reference executor's: max abs err "
                      f"{np.max(np.abs(got - want)) if got.shape == want.shape else 'shape'}")
        # auto with native code off: the kernel-level reference path, which must equal the
        # unfused reference bit for bit (with native code on, a kernel may switch to native
        # code mid-run; that is what the llvm comparison below covers)
        fused = run(["run", path] + args, env=dict(os.environ, DVM_JIT="off"))
        if fused.returncode:
            check(False, f"{name} {syms} fused", f"dvm run (fused) failed: {fused.stderr.strip()}")
        else:
            for o, f in outs.items():
                got = np.load(f)
                check(got.dtype == ref[o].dtype and np.array_equal(got, ref[o], equal_nan=True),
                      f"{name} {syms} {o} fused",
                      "fused output differs from the reference executor's: max abs err "
                      f"{np.max(np.abs(got.astype(np.float64) - ref[o])) if got.shape == ref[o].shape else 'shape'}")
        for oname, expr in exprs:
            got = ref[oname]
            want = np.asarray(eval(expr, env))
            ok = got.shape == want.shape and np.allclose(
                got.astype(np.float64), want.astype(np.float64), rtol=tol, atol=tol / 10)
            err = (np.max(np.abs(got.astype(np.float64) - want)) if got.shape == want.shape
                   else f"shape {got.shape} vs {want.shape}")
            check(ok, f"{name} {syms} {oname}", f"oracle `{expr}` differs: max abs err {err}")


def partition(path, name, text):
    if re.search(r"^#\s*native:\s*all\s*$", text, re.M):
        r = run(["dump", path, "--stage", "lowered"])
        declined = re.findall(r"^\s*not lowered: (.*)$", r.stdout, re.M)
        check(r.returncode == 0 and not declined, name + " native",
              "kernels declined: " + ("; ".join(declined) or r.stderr.strip()))
    want = dict(re.findall(r"^#\s*fused-(kernels|kinds|dispatches|written):\s*(.*?)\s*$", text, re.M))
    if not want:
        return
    r = run(["dump", path, "--stage", "fused"])
    if r.returncode:
        return check(False, name + " fused", f"dump --stage fused failed: {r.stderr.strip()}")
    kernels = re.findall(r"^kernel \d+\s+(\w+)\s+dispatch (\d+)", r.stdout, re.M)
    written = sorted(w for line in re.findall(r"^  out\s+(.*)$", r.stdout, re.M)
                     for w in line.split(", ") if w)
    show = "\n" + r.stdout
    if "kernels" in want:
        spec = want["kernels"]
        ok = (len(kernels) <= int(spec[2:]) if spec.startswith("<=")
              else len(kernels) == int(spec))
        check(ok, name + " fused-kernels", f"want {spec} kernels, got {len(kernels)}" + show)
    if "kinds" in want:
        kinds = [k for k, _ in kernels]
        check(kinds == want["kinds"].split(), name + " fused-kinds",
              f"want {want['kinds']}, got {' '.join(kinds)}" + show)
    if "dispatches" in want:
        n = len({d for _, d in kernels})
        check(n == int(want["dispatches"]), name + " fused-dispatches",
              f"want {want['dispatches']}, got {n}" + show)
    if "written" in want:
        check(written == sorted(want["written"].split()), name + " fused-written",
              f"want {want['written']} written, got {' '.join(written)}" + show)


files = sorted(os.path.join(HERE, f) for f in os.listdir(HERE) if f.endswith(".dvm"))
files += sorted(os.path.join(ROOT, "examples", f)
                for f in os.listdir(os.path.join(ROOT, "examples")) if f.endswith(".dvm"))
ONLY = os.environ.get("DVM_GRAPHS")  # while developing: only the files whose name holds it
if ONLY:
    files = [f for f in files if ONLY in os.path.basename(f)]
for path in files:
    name = os.path.splitext(os.path.basename(path))[0]
    with open(path) as f:
        text = f.read()
    roundtrip(path, name)
    partition(path, name, text)
    oracles(path, name, text)
check(len(files) >= 5 or ONLY, "files", f"only {len(files)} graph files found")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
