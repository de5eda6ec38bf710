#!/usr/bin/env python3
"""Differential test on random graphs: native code (--tier llvm) against the reference.

usage: run_random.py DVM SCRATCH_DIR
env:   DVM_RANDOM_SEED   base seed of the generator (default gen_graphs.BASE_SEED; printed)
       DVM_RANDOM_COUNT  number of graphs (default 200)
       DVM_RANDOM_JOBS   parallel dvm processes (default: the number of CPUs, at most 4)

gen_graphs.py makes the graphs (seeded: the same seed gives the same text, checked first).
For each graph and each `# bind:` line in it (2 or 3 symbol bindings drawn from
{1, 2, 3, 7, 16, 17, 64, 333, 1000}), with inputs and params filled by dvm from --seed
(those named by a `# data: NAME int|float` line instead get .npy files of wide values from
wide_data, passed with -i to every run: integers over their dtype's whole range and at the
edges of every width, so that integer arithmetic wraps; f32 values out of every integer
range, inf and NaN, so that casts to integers saturate):
  - `--tier ref`                      the unfused reference executor;
  - `--tier llvm --stats`             native kernels; outputs must agree with ref within
                                      rtol 1e-4 (f16: 2e-3) and an absolute tolerance of
                                      max(1e-5 x the output's RMS, the graph's `# tol:`);
                                      integer and bool outputs exactly; NaN where ref has NaN;
  - `--tier vm`                       bytecode kernels; the same tolerances as llvm;
  - default tier with DVM_JIT=off     the fused partition on the kernel-level reference
                                      path: bit for bit equal to ref (docs/fusion.md).
The last of these runs at the first binding only (it is the same code as ref, kernel by
kernel; the bindings' coverage is what the native comparison needs).
Passing graphs' files are removed; a failing graph stays in SCRATCH_DIR with a printed
command to rerun it. Prints the native-kernel coverage from --stats and ends with
"N passed, M failed" (one check per graph x binding x comparison).
"""
import json
import os
import re
import shlex
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import gen_graphs  # noqa: E402

RTOL = {"float32": 1e-4, "float16": 2e-3}
NP_DTYPES = {"f32": np.float32, "f16": np.float16, "f64": np.float64, "bool": np.bool_,
             "i8": np.int8, "i16": np.int16, "i32": np.int32, "i64": np.int64,
             "u8": np.uint8, "u16": np.uint16, "u32": np.uint32, "u64": np.uint64}
# the edges of every integer width, and f32 values just inside and outside them
INT_EDGES = [0, 1, -1, 2, -2, 127, 128, -128, -129, 255, 256, 32767, 32768, -32768, -32769,
             65535, 65536, 2 ** 31 - 1, 2 ** 31, -2 ** 31, -2 ** 31 - 1, 2 ** 32 - 1, 2 ** 32]
FLOAT_EDGES = [0.0, -0.0, 0.5, -0.5, 0.99, -0.99, -1.0, 127.0, 127.5, 128.0, -128.0, -128.5,
               -129.0, 255.0, 255.5, 256.0, 32767.0, 32767.9, 32768.0, -32768.0, -32769.0,
               65535.0, 65535.5, 65536.0, 2147483520.0, 2.0 ** 31, -2.0 ** 31,
               -2147483904.0, 4294967040.0, 2.0 ** 32, 2.0 ** 63, -2.0 ** 63, 2.0 ** 64,
               1e30, -1e30, np.inf, -np.inf, np.nan]


def wide_data(rng, kind, dtype, shape):
    """Test data for a `# data: NAME int|float` input: for an integer dtype, a mix of
    values over its whole range, small ones ([-8, 8) or [0, 16)) and its edges and those
    of the narrower widths; for f32, values in and far out of every integer range,
    fractions, signed zeros, infinities and NaN (casts to integers saturate)."""
    n = int(np.prod(shape, dtype=np.int64))
    pick = rng.random(n)
    if kind == "int":
        info = np.iinfo(dtype)
        lo, hi = int(info.min), int(info.max)
        full = rng.integers(lo, hi, size=n, endpoint=True, dtype=dtype)
        small = rng.integers(max(lo, -8), 16 if lo == 0 else 8, size=n).astype(dtype)
        edges = [v for v in INT_EDGES + [lo, lo + 1, hi, hi - 1, (hi + 1) // 2,
                                         (hi + 1) // 2 - 1] if lo <= v <= hi]
        edge = np.array(edges, dtype=dtype)[rng.integers(0, len(edges), size=n)]
        out = np.where(pick < 0.45, full, np.where(pick < 0.75, small, edge))
    else:
        scale = np.array([1.0, 300.0, 7e4, 5e9], dtype=np.float64)[rng.integers(0, 4, size=n)]
        unif = (rng.random(n) * 2 - 1) * scale
        edge = np.array(FLOAT_EDGES, dtype=np.float64)[rng.integers(0, len(FLOAT_EDGES), size=n)]
        out = np.where(pick < 0.65, unif, edge)
    return out.astype(dtype).reshape(shape)  # (not ascontiguousarray: it makes [] [1])


def fmt_cmd(cmd, env=None):
    pre = "".join("%s=%s " % kv for kv in (env or {}).items())
    return pre + " ".join(shlex.quote(c) for c in cmd)


def compare(got, want, tol):
    """None when got matches want, else a message with the error's size."""
    if got.dtype != want.dtype:
        return "dtype %s, ref %s" % (got.dtype, want.dtype)
    if got.shape != want.shape:
        return "shape %s, ref %s" % (got.shape, want.shape)
    if want.size == 0:
        return None
    if want.dtype.kind != "f":
        bad = got != want
        if not bad.any():
            return None
        i = tuple(int(t) for t in np.argwhere(bad)[0])
        return "%d/%d elements differ; first at %s: %r, ref %r" % (
            bad.sum(), bad.size, list(i), got[i].item(), want[i].item())
    g, w = got.astype(np.float64), want.astype(np.float64)
    fin = np.isfinite(w)
    rms = float(np.sqrt(np.mean(w[fin] ** 2))) if fin.any() else 1.0
    atol = max(1e-5 * max(1.0, rms), tol)
    rtol = RTOL.get(str(want.dtype), 1e-4)
    with np.errstate(all="ignore"):
        ok = np.isclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
        ok &= np.isnan(g) == np.isnan(w)
        if ok.all():
            return None
        err = np.abs(g - w)
        both = np.isfinite(g) & fin
        amax = err[both].max() if both.any() else float("nan")
    bad = np.argwhere(~ok)
    i = tuple(int(t) for t in bad[0])
    return ("%d/%d elements differ (atol %.3g, rtol %.3g), max abs err %.3g; first at %s: "
            "%r, ref %r" % (len(bad), ok.size, atol, rtol, amax, list(i), got[i].item(),
                            want[i].item()))


class Result:
    def __init__(self, index):
        self.index = index
        self.checks = 0
        self.fails = []      # (message, command)
        self.failed = set()  # the checks (binding, comparison) that failed
        self.kernels = 0     # over the native runs
        self.native = 0
        self.graphs_native = 0  # bindings in which every kernel was native


def run_graph(dvm, scratch, seed, index, text):
    res = Result(index)
    path = os.path.join(scratch, "g%03d.dvm" % index)
    with open(path, "w") as f:
        f.write(text)
    binds = [dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", line))
             for line in re.findall(r"^# bind:(.*)$", text, re.M)]
    tols = dict((o, float(t)) for o, t in re.findall(r"^# tol: (\S+) (\S+)$", text, re.M))
    outs = re.findall(r"^output (.*)$", text, re.M)[0].split(", ")
    data_seed = seed * 1000 + index
    wide = dict(re.findall(r"^# data: (\S+) (int|float)$", text, re.M))
    decls = dict((n, (dt, dims)) for n, dt, dims in
                 re.findall(r"^(?:input|param) (\w+): (\w+)\[(.*)\]$", text, re.M))
    files = []
    regen = "%s %s --seed %d --index %d > %s" % (
        sys.executable, os.path.join(HERE, "gen_graphs.py"), seed, index, path)

    def fail(msg, cmd):
        res.failed.add(res.checks)
        res.fails.append((msg, cmd + "\n    (regenerate the graph: %s)" % regen))

    for bi, syms in enumerate(binds):
        base = [dvm, "run", path] + sum((["-s", "%s=%d" % kv] for kv in syms.items()), [])
        base += ["--seed", str(data_seed)]
        for name, kind in sorted(wide.items()):
            dt, dims = decls[name]
            shape = tuple(int(eval(d, {}, dict(syms))) for d in dims.split(",") if d.strip())
            rng = np.random.default_rng([abs(seed), index, bi, zlib.crc32(name.encode())])
            p = os.path.join(scratch, "g%03d.b%d.in.%s.npy" % (index, bi, name))
            np.save(p, wide_data(rng, kind, NP_DTYPES[dt], shape))
            files.append(p)
            base += ["-i", "%s=%s" % (name, p)]

        def outargs(tag):
            args, paths = [], {}
            for o in outs:
                p = os.path.join(scratch, "g%03d.b%d.%s.%s.npy" % (index, bi, tag, o))
                if os.path.exists(p):
                    os.remove(p)
                paths[o] = p
                files.append(p)
                args += ["-o", "%s=%s" % (o, p)]
            return args, paths

        def run(tag, extra, env=None):
            a, paths = outargs(tag)
            cmd = base + a + extra
            full_env = dict(os.environ, **env) if env else None
            try:
                r = subprocess.run(cmd, capture_output=True, text=True, env=full_env,
                                   timeout=300)
            except (OSError, subprocess.TimeoutExpired) as ex:
                fail("%s: %s" % (tag, ex), fmt_cmd(cmd, env))
                return None, None, fmt_cmd(cmd, env)
            # a sanitizer report fails the run even if the build lets it recover
            san = re.search(r"^.*(Sanitizer|runtime error:).*$", r.stderr, re.M)
            if r.returncode or san:
                fail("%s: exit status %d: %s" % (tag, r.returncode,
                                                 (san.group(0) if san else r.stderr.strip())[:500]),
                     fmt_cmd(cmd, env))
                return None, r, fmt_cmd(cmd, env)
            try:
                return {o: np.load(p) for o, p in paths.items()}, r, fmt_cmd(cmd, env)
            except Exception as ex:  # an output file missing or unreadable
                fail("%s: cannot load an output: %s" % (tag, ex), fmt_cmd(cmd, env))
                return None, r, fmt_cmd(cmd, env)

        res.checks += 1
        ref, _, _ = run("ref", ["--tier", "ref"])
        if ref is None:
            continue
        res.checks += 1
        nat, r, cmd = run("llvm", ["--tier", "llvm", "--stats"])
        if nat is not None:
            stats = None
            for line in r.stderr.splitlines():
                if line.startswith("{"):
                    try:
                        stats = json.loads(line)
                    except ValueError:
                        pass
            if stats is None:
                fail("llvm: no --stats JSON on stderr: %r" % r.stderr[:200], cmd)
            else:
                res.kernels += stats["kernels"]
                res.native += stats["native_kernels"]
                res.graphs_native += stats["kernels"] == stats["native_kernels"]
            for o in outs:
                m = compare(nat[o], ref[o], tols.get(o, 0.0))
                if m:
                    fail("llvm vs ref, output %s at %s: %s" % (
                        o, " ".join("%s=%d" % kv for kv in syms.items()), m), cmd)
        res.checks += 1
        vm, _, cmd = run("vm", ["--tier", "vm"])
        if vm is not None:
            for o in outs:
                m = compare(vm[o], ref[o], tols.get(o, 0.0))
                if m:
                    fail("vm vs ref, output %s at %s: %s" % (
                        o, " ".join("%s=%d" % kv for kv in syms.items()), m), cmd)
        if bi == 0:
            res.checks += 1
            fused, _, cmd = run("fused", [], {"DVM_JIT": "off"})
            if fused is not None:
                for o in outs:
                    a, b = fused[o], ref[o]
                    if not (a.dtype == b.dtype and a.shape == b.shape
                            and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")):
                        m = compare(a, b, 0.0) or "not bit-identical (within tolerance)"
                        fail("fused (DVM_JIT=off) vs ref, output %s: %s" % (o, m), cmd)
    if not res.fails:
        for p in files + [path]:
            if os.path.exists(p):
                os.remove(p)
    return res


def main():
    if len(sys.argv) != 3:
        print("usage: run_random.py DVM SCRATCH_DIR", file=sys.stderr)
        return 2
    dvm, scratch = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    os.makedirs(scratch, exist_ok=True)
    for f in os.listdir(scratch):  # leftovers of an earlier run
        if re.match(r"g\d+\..*(dvm|npy)$", f):
            os.remove(os.path.join(scratch, f))
    seed = gen_graphs.default_seed()
    count = int(os.environ.get("DVM_RANDOM_COUNT", "200"))
    jobs = int(os.environ.get("DVM_RANDOM_JOBS", str(min(4, os.cpu_count() or 2))))
    print("random graphs: seed %d (DVM_RANDOM_SEED), %d graphs" % (seed, count))
    t0 = time.time()

    texts = gen_graphs.generate(seed, count)
    failed = passed = 0
    # the generator is deterministic: the same seed gives the same text
    again = gen_graphs.generate(seed, count)
    if again != texts:
        bad = [i for i, (a, b) in enumerate(zip(texts, again)) if a != b]
        print("FAIL generator: seed %d gives different text on a second call (graphs %s)"
              % (seed, bad[:10]))
        failed += 1
    else:
        passed += 1
    if gen_graphs.generate(seed + 1, 5) == texts[:5]:
        print("FAIL generator: seeds %d and %d give the same graphs" % (seed, seed + 1))
        failed += 1
    else:
        passed += 1

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(lambda it: run_graph(dvm, scratch, seed, it[0], it[1]),
                                enumerate(texts)))
    kernels = sum(r.kernels for r in results)
    native = sum(r.native for r in results)
    all_native = sum(r.graphs_native for r in results)
    runs = sum(len(re.findall(r"^# bind:", t, re.M)) for t in texts)
    for r in results:
        failed += len(r.failed)
        passed += r.checks - len(r.failed)
        for msg, cmd in r.fails:
            print("FAIL graph %d (seed %d, file %s): %s\n    %s" % (
                r.index, seed, os.path.join(scratch, "g%03d.dvm" % r.index), msg, cmd))
    print("native coverage: %d of %d kernels native over %d llvm runs; %d of %d runs "
          "all-native (%.1f s)" % (native, kernels, runs, all_native, runs, time.time() - t0))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
