#!/usr/bin/python3
"""Bit-for-bit comparison of two dvm binaries' outputs, for refactorings of the code
generating back ends (the bytecode tier `--tier vm` and the native tier `--tier llvm`)
that must not change a single output bit.

usage: /usr/bin/python3 tools/compare_outputs.py OLD_DVM NEW_DVM [--tiers vm,llvm]
           [--threads 1,2] [--quick] [--jobs 2] [--count C] [--seed S] [--only TEXT]
           [--work DIR] [--keep] [-v]

Cases (each run by both binaries with the same input files, every tier x thread count):
  1. tests/graphs/*.dvm and examples/*.dvm at each of their `# bind: N=7 S=3` lines
     (examples: their `# demo: -s N=2` lines), as tests/graphs/run_graphs.py reads them;
  2. the workloads bench/workloads/W1..W8.dvm at a few values of their symbols;
  3. C random graphs of tests/random/gen_graphs.py (default 200, base seed S = its
     BASE_SEED) at each of their `# bind:` lines.
Every input and param is written here with NumPy (seeded by the case: floats uniform in
[-1, 1), integers in [-8, 8), bools 0/1, as dvm's own fill) and passed with -i; every
output is written with -o and the two .npy files are compared as bytes. On a mismatch it
prints the case, tier, threads, output, the count of differing elements and the max abs
difference and both commands, and keeps that case's files in the work directory.
A tier may name a bytecode ISA, `vm:sse2` or `vm:avx2` (DVM_VM_ISA), to cover the copies
the host would not pick by itself.

A run that fails in both binaries with the same exit status counts as "refused by both";
one that fails in only one binary (or with different statuses) is a failure.
--quick: fewer bindings (graph tests: first and last; workloads: two) and 40 random graphs
(about half the default run's time; the default run takes a few minutes on 2 cores).
Exit status: 0 when no output differs and nothing failed in one binary only; 1 otherwise;
2 on a usage error. Ends with
  compared N outputs over R runs: D differ, B refused by both[, F failed in one only]
"""
import argparse
import itertools
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.dont_write_bytecode = True  # importing gen_graphs leaves no __pycache__ in the tree

NAME = r"[A-Za-z_][A-Za-z0-9_.]*"
DECL = re.compile(r"^\s*(input|param)\s+(%s)\s*:\s*(\w+)\s*\[([^\]]*)\]" % NAME, re.M)
OUTPUT = re.compile(r"^\s*output\s+([^#\n]*)", re.M)
DTYPES = {"f32": np.float32, "f16": np.float16, "i32": np.int32, "i64": np.int64,
          "bool": np.bool_}

# Workload bindings: (default, quick). W7's cost grows with N*S (and S^2 in attention).
WORKLOAD_BINDS = {
    "N": ([1, 7, 64, 333], [1, 64]),
    "N,S": ([(1, 1), (1, 64), (3, 17), (2, 333), (7, 40)], [(1, 7), (3, 17)]),
}


class Case:
    """One graph at one binding: label, path, symbols, text."""

    def __init__(self, label, path, syms, text):
        self.label, self.path, self.syms, self.text = label, path, syms, text


def binds_of(text):
    """The `# bind:` (or examples' `# demo: -s N=2`) lines of a graph file, as dicts."""
    lines = re.findall(r"^#\s*bind:(.*)$", text, re.M) or re.findall(r"^#\s*demo:(.*)$", text, re.M)
    return [dict((k, int(v)) for k, v in re.findall(r"(\w+)=(-?\d+)", line)) for line in lines]


def symbols_of(text):
    """The symbols of a graph: identifiers in its input/param dims, in order of first use."""
    seen = []
    for _, _, _, dims in DECL.findall(text):
        for s in re.findall(r"[A-Za-z_]\w*", dims):
            if s not in seen:
                seen.append(s)
    return seen


def collect_cases(args):
    cases = []
    # 1. the graph tests and the examples
    for sub in ("tests/graphs", "examples"):
        folder = os.path.join(ROOT, sub)
        for f in sorted(os.listdir(folder)):
            if not f.endswith(".dvm"):
                continue
            path = os.path.join(folder, f)
            with open(path) as fh:
                text = fh.read()
            binds = binds_of(text) or [dict((s, 7) for s in symbols_of(text))]
            if args.quick:
                binds = binds[:1] + binds[-1:] if len(binds) > 1 else binds
            for syms in binds:
                cases.append(Case("%s/%s" % (sub, f), path, syms, text))
    # 2. the workloads
    for i in range(1, 9):
        path = os.path.join(ROOT, "bench", "workloads", "W%d.dvm" % i)
        with open(path) as fh:
            text = fh.read()
        syms = symbols_of(text)
        key = ",".join(syms)
        if key not in WORKLOAD_BINDS:
            sys.exit("%s: symbols %s: add their values to WORKLOAD_BINDS" % (path, key))
        for vals in WORKLOAD_BINDS[key][1 if args.quick else 0]:
            vals = vals if isinstance(vals, tuple) else (vals,)
            cases.append(Case("bench/workloads/W%d.dvm" % i, path, dict(zip(syms, vals)), text))
    # 3. random graphs
    sys.path.insert(0, os.path.join(ROOT, "tests", "random"))
    import gen_graphs  # noqa: E402

    seed = gen_graphs.BASE_SEED if args.seed is None else args.seed
    gdir = os.path.join(args.work, "random")
    os.makedirs(gdir, exist_ok=True)
    for i, text in enumerate(gen_graphs.generate(seed, args.count)):
        path = os.path.join(gdir, "g%03d.dvm" % i)
        with open(path, "w") as fh:
            fh.write(text)
        binds = binds_of(text) or [{}]
        for syms in binds[:2] if args.quick else binds:
            cases.append(Case("random seed %d graph %d" % (seed, i), path, syms, text))
    if args.only:
        cases = [c for c in cases if args.only in c.label]
    return cases


def make_inputs(case, folder):
    """Write every input and param of the case as .npy; returns the -s/-i arguments."""
    rng = np.random.default_rng(zlib.crc32(("%s %s" % (case.label, sorted(case.syms.items()))).encode()))
    used = symbols_of(case.text)
    args = []
    for s in used:
        if s in case.syms:
            args += ["-s", "%s=%d" % (s, case.syms[s])]
    for kind, name, dt, dims in DECL.findall(case.text):
        try:
            shape = tuple(int(eval(d, {"__builtins__": {}}, dict(case.syms)))
                          for d in dims.split(",") if d.strip())
        except Exception:
            continue  # a dim we cannot evaluate: dvm fills it from --seed (the same in both)
        if dt not in DTYPES:
            continue  # no NumPy dtype (bf16): dvm fills it from --seed
        t = DTYPES[dt]
        if dt.startswith("f"):
            arr = rng.uniform(-1.0, 1.0, shape).astype(t)
            arr = np.minimum(arr, np.nextafter(t(1), t(0)))  # rounding may reach 1.0
        elif dt == "bool":
            arr = rng.integers(0, 2, shape).astype(np.bool_)
        else:
            arr = rng.integers(-8, 8, shape).astype(t)
        path = os.path.join(folder, "in.%s.npy" % name)
        np.save(path, arr)
        args += ["-i", "%s=%s" % (name, path)]
    return args + ["--seed", "1"]


def outputs_of(text):
    return [o.strip() for line in OUTPUT.findall(text) for o in line.split(",") if o.strip()]


def run_dvm(dvm, case, base_args, tier, threads, outdir, timeout):
    os.makedirs(outdir, exist_ok=True)
    outs = {}
    args = list(base_args)
    for o in outputs_of(case.text):
        outs[o] = os.path.join(outdir, "%s.npy" % o)
        args += ["-o", "%s=%s" % (o, outs[o])]
    tier_name, _, isa = tier.partition(":")
    env = dict(os.environ, DVM_VM_ISA=isa) if isa else None
    cmd = [dvm, "run", case.path] + args + ["--tier", tier_name, "--threads", str(threads)]
    shown = ("DVM_VM_ISA=%s " % isa if isa else "") + " ".join(shlex.quote(c) for c in cmd)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        status, err = r.returncode, r.stderr.replace(outdir, "OUT").strip()
    except subprocess.TimeoutExpired:
        status, err = "timeout", "timed out after %d s" % timeout
    except OSError as ex:
        status, err = "oserror", str(ex)
    return status, err, outs, shown


def describe(a_path, b_path):
    """Why two output files differ: dtype, shape, or count of elements and max abs diff."""
    try:
        a, b = np.load(a_path), np.load(b_path)
    except Exception as ex:
        return "cannot load: %s" % ex
    if a.dtype != b.dtype or a.shape != b.shape:
        return "old %s%s, new %s%s" % (a.dtype, list(a.shape), b.dtype, list(b.shape))
    if a.dtype.kind == "f":  # compare bits: NaN payloads and signed zeros count
        bits = np.dtype("u%d" % a.dtype.itemsize)
        bad = a.view(bits) != b.view(bits)
    else:
        bad = a != b
    n = int(bad.sum())
    if not n:
        return "same elements, different file bytes (header)"
    with np.errstate(all="ignore"):
        d = np.abs(a.astype(np.float64) - b.astype(np.float64))[bad]
    fin = d[np.isfinite(d)]
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    return "%d of %d elements differ, max abs diff %s; first at %s: old %r, new %r" % (
        n, a.size, "%.6g" % fin.max() if fin.size else "nan/inf", list(first),
        a[first].item(), b[first].item())


def compare_case(job):
    """Run one case in both binaries at every tier x thread count; returns the counts and
    messages. The case's files are removed unless something failed (or --keep)."""
    index, case, old, new, tiers, threads, work, keep, timeout = job
    folder = os.path.join(work, "c%05d" % index)
    os.makedirs(folder, exist_ok=True)
    res = {"runs": 0, "outputs": 0, "differ": 0, "refused": 0, "onesided": 0,
           "msgs": [], "notes": []}
    where = "%s %s" % (case.label, " ".join("%s=%d" % kv for kv in case.syms.items()))
    try:
        base = make_inputs(case, folder)
    except Exception as ex:
        res["onesided"] += 1
        res["msgs"].append("FAIL %s: cannot make the inputs: %s" % (where, ex))
        return res
    bad = False
    for tier, t in itertools.product(tiers, threads):
        tag = "%s threads=%d" % (tier, t)
        sub = os.path.join(folder, "%s.t%d" % (tier.replace(":", "-"), t))
        so, eo, oo, co = run_dvm(old, case, base, tier, t, os.path.join(sub, "old"), timeout)
        sn, en, on, cn = run_dvm(new, case, base, tier, t, os.path.join(sub, "new"), timeout)
        res["runs"] += 1
        if so != 0 or sn != 0:
            if so != 0 and sn != 0 and so == sn:
                res["refused"] += 1
                if eo != en:
                    res["notes"].append("note: %s %s: refused by both, with different messages:"
                                        "\n    old: %s\n    new: %s" % (where, tag, eo[:300], en[:300]))
            else:
                res["onesided"] += 1
                bad = True
                res["msgs"].append(
                    "FAIL %s %s: old exit %s, new exit %s\n    old: %s\n    new: %s\n    %s\n    %s"
                    % (where, tag, so, sn, eo[:400] or "-", en[:400] or "-", co, cn))
            continue
        for o in oo:
            res["outputs"] += 1
            a, b = oo[o], on[o]
            if not (os.path.exists(a) and os.path.exists(b)):
                res["onesided"] += 1
                bad = True
                res["msgs"].append("FAIL %s %s output %s: file missing (old %s, new %s)" % (
                    where, tag, o, os.path.exists(a), os.path.exists(b)))
                continue
            with open(a, "rb") as fa, open(b, "rb") as fb:
                same = fa.read() == fb.read()
            if not same:
                res["differ"] += 1
                bad = True
                res["msgs"].append("DIFFER %s %s output %s: %s\n    %s\n    %s" % (
                    where, tag, o, describe(a, b), co, cn))
    if not (bad or keep):
        shutil.rmtree(folder, ignore_errors=True)
    return res


def parse_list(s, conv=str):
    return [conv(x) for x in s.split(",") if x.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old", help="the dvm binary before the change")
    ap.add_argument("new", help="the dvm binary after the change")
    ap.add_argument("--tiers", default="vm,llvm",
                    help="comma-separated tiers (vm, llvm, ref, auto; vm:sse2, vm:avx2)")
    ap.add_argument("--threads", default="1,2", help="comma-separated --threads values")
    ap.add_argument("--quick", action="store_true", help="fewer bindings and random graphs")
    ap.add_argument("--jobs", type=int, default=2, help="cases run in parallel (default 2)")
    ap.add_argument("--count", type=int, help="random graphs (default 200, --quick 40)")
    ap.add_argument("--seed", type=int, help="base seed of the random graphs")
    ap.add_argument("--only", help="only the cases whose label holds this text")
    ap.add_argument("--work", help="work directory (default: a new temporary one, removed "
                                   "at the end unless something failed)")
    ap.add_argument("--keep", action="store_true", help="keep every case's files")
    ap.add_argument("--timeout", type=int, default=300, help="seconds per dvm run")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each case as it ends")
    args = ap.parse_args()
    try:
        tiers = parse_list(args.tiers)
        threads = parse_list(args.threads, int)
    except ValueError:
        ap.error("--threads takes integers")
    if not tiers or not threads:
        ap.error("--tiers and --threads need at least one value")
    for tier in tiers:
        if tier.partition(":")[0] not in ("vm", "llvm", "ref", "auto"):
            ap.error("unknown tier %r" % tier)
    if args.count is None:
        args.count = 40 if args.quick else 200
    old, new = os.path.abspath(args.old), os.path.abspath(args.new)
    for b in (old, new):
        try:
            r = subprocess.run([b, "--version"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as ex:
            ap.error("%s does not run: %s" % (b, ex))
        if r.returncode:
            ap.error("%s --version: exit status %d" % (b, r.returncode))
    made_work = not args.work
    args.work = os.path.abspath(args.work or tempfile.mkdtemp(prefix="dvm-compare-"))
    os.makedirs(args.work, exist_ok=True)

    t0 = time.time()
    cases = collect_cases(args)
    print("comparing %s (old) with %s (new): %d cases x tiers %s x threads %s, work in %s"
          % (old, new, len(cases), ",".join(tiers), ",".join(map(str, threads)), args.work),
          flush=True)
    # the big workloads first, so that the pool does not end on them
    order = sorted(range(len(cases)), key=lambda i: not cases[i].label.startswith("bench/"))
    jobs = [(i, cases[i], old, new, tiers, threads, args.work, args.keep, args.timeout)
            for i in order]
    total = dict(runs=0, outputs=0, differ=0, refused=0, onesided=0)
    by_kind = {}
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futs = {pool.submit(compare_case, j): j[1] for j in jobs}
        for fut in as_completed(futs):
            case = futs[fut]
            try:
                res = fut.result()
            except Exception as ex:  # a bug here, not in dvm: still a failure
                res = dict(runs=0, outputs=0, differ=0, refused=0, onesided=1, notes=[],
                           msgs=["FAIL %s %s: %r" % (case.label, case.syms, ex)])
            for m in res["msgs"] + res["notes"]:
                print(m, flush=True)
            kind = case.label.split(" ")[0].rsplit("/", 1)[0]
            k = by_kind.setdefault(kind, dict.fromkeys(total, 0))
            for key in total:
                total[key] += res[key]
                k[key] += res[key]
            if args.verbose:
                print("%s %s: %d runs, %d outputs, %d differ, %d refused" % (
                    case.label, case.syms, res["runs"], res["outputs"], res["differ"],
                    res["refused"]), flush=True)
    for kind, k in sorted(by_kind.items()):
        print("  %-16s %5d outputs over %4d runs: %d differ, %d refused by both, %d failed in one only"
              % (kind, k["outputs"], k["runs"], k["differ"], k["refused"], k["onesided"]))
    ok = not total["differ"] and not total["onesided"]
    if made_work and ok and not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)
    elif not ok:
        print("the failing cases' files are kept in %s" % args.work)
    print("%.0f s" % (time.time() - t0))
    print("compared %d outputs over %d runs: %d differ, %d refused by both%s" % (
        total["outputs"], total["runs"], total["differ"], total["refused"],
        ", %d failed in one only" % total["onesided"] if total["onesided"] else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
