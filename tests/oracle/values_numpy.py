#!/usr/bin/python3
"""tests/oracle/values_numpy.py — cross-check inputs declared with `values=[dims]` against NumPy.

Usage: values_numpy.py DVM_BINARY SCRATCH_DIR

An integer input declared `input s: i64[2] values=[A, B]` binds the symbols A and B from
its data at run time (docs/format.md). For graphs that size a reshape (two value symbols
and a -1 hole), a reshape with a constant element among the values, a broadcast_to,
arange and full (sized from values alone), a slice whose starts and ends are values, a
value symbol shared with an input's dim, and values inputs of dtype i32 and u8, `dvm run`
on each of the tiers ref, vm, llvm and auto, with at least three value sets per graph,
must give NumPy's result: the same dtype and shape, the same bytes for copies and
allclose for arithmetic. `dvm dump --stage ir` must print the `values=[...]` declaration,
and its text, dumped again from a file, must print the same and run to the same result.
Through the Python module (when it imports), a model runs five value sets: its results
must be NumPy's and `vm_encodes` (on the llvm tier, native compiles and disk-cache loads)
must not grow after the first run (a new value compiles nothing); one of them keeps x's
shape and changes only s. A slice whose values break A <= B (on the command line and
through Python), one past its input's dim, a values input with one element more than
declared, a value contradicting an input's dim, and a u64 element from 2^63 up must
exit with status 1 and a message starting with "dvm: error:" that names the constraint
or the input. `dvm run` without the values input but with its symbols from -s, and
`dvm run --lazy`, must run to NumPy's result too (--lazy may refuse a values input by
saying so). Prints "N passed, M failed" last and exits non-zero on any failure.
"""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
import support  # noqa: E402

TIERS = ["ref", "vm", "llvm", "auto"]


class Suite:
    def __init__(self, dvm, scratch):
        self.dvm, self.scratch = dvm, scratch

    def check(self, name, ok, why=""):
        support.check(ok, f"{name}: {why}" if why else name)
        return ok

    def path(self, name):
        return os.path.join(self.scratch, name)

    def write(self, name, text):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def cmd(self, name, args):
        """Runs dvm with args; returns the CompletedProcess (or None, counted as a failure)."""
        cmd = [self.dvm] + args
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            self.check(name, False, f"could not run {' '.join(cmd)}: {e}")
            return None

    def run(self, name, graph_file, inputs, outputs, tier):
        """`dvm run` with inputs {name: array} saved as .npy, outputs a list of names.
        Returns (CompletedProcess, {name: array} or None)."""
        args = ["run", graph_file]
        for k, a in inputs.items():
            f = self.path(f"{name}.{k}.npy")
            np.save(f, a)
            args += ["-i", f"{k}={f}"]
        outfiles = {}
        for k in outputs:
            f = self.path(f"{name}.{tier}.out_{k}.npy")
            if os.path.exists(f):
                os.unlink(f)
            outfiles[k] = f
            args += ["-o", f"{k}={f}"]
        args += ["--tier", tier]
        r = self.cmd(name, args)
        if r is None or r.returncode != 0:
            return r, None
        got = {}
        for k, f in outfiles.items():
            try:
                got[k] = np.load(f)
            except Exception as e:  # missing or unreadable
                self.check(f"{name} {k}", False, f"np.load({f}): {e}")
                return r, None
        return r, got


def compare(s, name, got, want, exact):
    """got against want: dtype, shape, then bytes (exact) or allclose."""
    if not s.check(name + " dtype", got.dtype == want.dtype, f"{got.dtype} != {want.dtype}"):
        return
    if not s.check(name + " shape", got.shape == want.shape, f"{got.shape} != {want.shape}"):
        return
    if exact:
        s.check(name + " bytes", got.tobytes() == want.tobytes(),
                f"data differs: got {got.ravel()[:8]} want {want.ravel()[:8]}")
    else:
        ok = np.allclose(got, want, rtol=1e-5, atol=1e-5)
        s.check(name + " values", ok, f"not allclose: max |diff| "
                f"{np.max(np.abs(got.astype(np.float64) - want.astype(np.float64))) if got.size else 0}")


# ---- the graphs ----------------------------------------------------------------------------
# Each case: name, graph text, output names, the outputs compared byte for byte (copies,
# arange, full; the rest allclose), value sets; make(rng, v) returns ({input: array},
# {output: expected array}).

def f32(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def reshape_hole(rng, v):
    a, b, k = v  # x has a*k*b elements; the -1 is k
    x = f32(rng, a * k * b)
    return {"x": x, "s": np.array([a, b], np.int64)}, {"y": x.reshape(a, -1, b)}


def const_element(rng, v):
    a, b = v
    x = f32(rng, a * 4 * b)
    return {"x": x, "s": np.array([a, 4, b], np.int64)}, {"y": x.reshape(a, 4, b)}


def broadcast(rng, v):
    a, k = v
    x = f32(rng, (1, k))
    y = np.broadcast_to(x, (a, k))
    return ({"x": x, "s": np.array([a], np.int64)},
            {"y": np.ascontiguousarray(y), "z": (y * 2 + 1.5).astype(np.float32)})


def arange_full(rng, v):
    a, b = v
    r = np.arange(a, dtype=np.float32)
    f = np.full((a, b), 1.5, np.float32)
    return {"s": np.array([a, b], np.int64)}, {"r": r, "f": f, "y": f + r.reshape(a, 1)}


def slice_values(rng, v):
    n, a, b = v
    x = f32(rng, (n, 4))
    return ({"x": x, "s": np.array([a, b], np.int64)},
            {"y": x[a:b], "t": x[a:b].sum(axis=0, dtype=np.float32)})


def shared_dim(rng, v):
    (n,) = v
    x = f32(rng, (n, 4))
    r = np.arange(n, dtype=np.float32).reshape(n, 1)
    return {"x": x, "s": np.array([n], np.int64)}, {"y": x + r}


def i32_matmul(rng, v):
    a, b = v
    x = f32(rng, a * b)
    w = f32(rng, (b, 3))
    return ({"x": x, "s": np.array([a, b], np.int32), "w": w},
            {"y": x.reshape(a, b) @ w})


def u8_values(rng, v):
    a, b = v
    x = f32(rng, a * b)
    return ({"x": x, "s": np.array([a, b], np.uint8)},
            {"y": x.reshape(a, b), "t": x.reshape(a, b).sum(axis=1, dtype=np.float32),
             "f": np.full((b, a), 1.5, np.float32)})


CASES = [
    ("reshape_hole",
     "graph reshape_hole\n"
     "input x: f32[N]\n"
     "input s: i64[2] values=[A, B]\n"
     "y = reshape(x, shape=[A, -1, B])\n"
     "output y\n",
     ["y"], {"y"}, [(2, 3, 4), (1, 1, 1), (5, 7, 2), (3, 6, 0)], reshape_hole),
    ("const_element",
     "graph const_element\n"
     "input x: f32[N]\n"
     "input s: i64[3] values=[A, 4, B]\n"
     "y = reshape(x, shape=[A, 4, B])\n"
     "output y\n",
     ["y"], {"y"}, [(2, 3), (1, 1), (6, 5), (0, 3)], const_element),
    ("broadcast",
     "graph broadcast\n"
     "input x: f32[1, K]\n"
     "input s: i64[1] values=[A]\n"
     "y = broadcast_to(x, shape=[A, K])\n"
     "m = mul(y, 2)\n"
     "z = add(m, 1.5)\n"
     "output y, z\n",
     ["y", "z"], {"y"}, [(3, 5), (1, 1), (17, 3), (0, 4)], broadcast),
    ("arange_full",
     "graph arange_full\n"
     "input s: i64[2] values=[A, B]\n"
     "r = arange(n=A, dtype=f32)\n"
     "f = full(shape=[A, B], value=1.5, dtype=f32)\n"
     "r2 = reshape(r, shape=[A, 1])\n"
     "y = add(f, r2)\n"
     "output r, f, y\n",
     ["r", "f", "y"], {"r", "f"}, [(3, 4), (1, 1), (9, 2), (0, 5), (4, 0)], arange_full),
    ("slice_values",
     "graph slice_values\n"
     "input x: f32[N, 4]\n"
     "input s: i64[2] values=[A, B]\n"
     "y = slice(x, axes=[0], starts=[A], ends=[B])\n"
     "t = reduce_sum(y, axes=[0])\n"
     "output y, t\n",
     ["y", "t"], {"y"}, [(6, 1, 4), (6, 0, 6), (5, 3, 3), (9, 8, 9), (4, 0, 0)], slice_values),
    ("shared_dim",
     "graph shared_dim\n"
     "input x: f32[N, 4]\n"
     "input s: i64[1] values=[N]\n"
     "i = arange(n=N, dtype=f32)\n"
     "r = reshape(i, shape=[N, 1])\n"
     "y = add(x, r)\n"
     "output y\n",
     ["y"], set(), [(3,), (1,), (11,), (0,)], shared_dim),
    ("i32_matmul",
     "graph i32_matmul\n"
     "input x: f32[N]\n"
     "input s: i32[2] values=[A, B]\n"
     "input w: f32[B, 3]\n"
     "a = reshape(x, shape=[A, B])\n"
     "y = matmul(a, w)\n"
     "output y\n",
     ["y"], set(), [(2, 3), (1, 1), (7, 5), (4, 16)], i32_matmul),
    ("u8_values",
     "graph u8_values\n"
     "input x: f32[N]\n"
     "input s: u8[2] values=[A, B]\n"
     "y = reshape(x, shape=[A, B])\n"
     "t = reduce_sum(y, axes=[1])\n"
     "f = full(shape=[B, A], value=1.5, dtype=f32)\n"
     "output y, t, f\n",
     ["y", "t", "f"], {"y", "f"}, [(2, 3), (1, 1), (200, 3), (3, 255)], u8_values),
]


def run_cases(s, rng):
    for cname, text, outs, exact, value_sets, make in CASES:
        g = s.write(cname + ".dvm", text)
        for v in value_sets:
            inputs, want = make(rng, v)
            for tier in TIERS:
                name = f"{cname} {v} {tier}"
                r, got = s.run(f"{cname}_{'_'.join(map(str, v))}", g, inputs, outs, tier)
                if r is None:
                    continue
                if not s.check(name, r.returncode == 0 and got is not None,
                               f"exit {r.returncode}: {r.stderr.strip()}"):
                    continue
                for k in outs:
                    compare(s, f"{name} {k}", got[k], want[k], k in exact)


# ---- dump round trip -----------------------------------------------------------------------

def dump_roundtrip(s, rng):
    for cname, text, outs, _, value_sets, make in CASES:
        g = s.path(cname + ".dvm")
        r = s.cmd(cname, ["dump", g, "--stage", "ir"])
        if r is None or not s.check(f"dump {cname}", r.returncode == 0,
                                    f"exit {r.returncode}: {r.stderr.strip()}"):
            continue
        decl = next(line for line in text.splitlines() if "values=" in line)
        want_decl = decl.split(":", 1)[1].strip()  # "i64[2] values=[A, B]"
        line = next((ln for ln in r.stdout.splitlines() if "values=" in ln), None)
        s.check(f"dump {cname} values", line is not None and
                " ".join(line.split()).endswith(want_decl) and line.split()[0] == "input",
                f"no line declaring `{want_decl}` in:\n{r.stdout}")
        g2 = s.write(cname + ".dumped.dvm", r.stdout)
        r2 = s.cmd(cname, ["dump", g2, "--stage", "ir"])
        if r2 is None or not s.check(f"dump {cname} reparse", r2.returncode == 0,
                                     f"exit {r2.returncode}: {r2.stderr.strip()}"):
            continue
        s.check(f"dump {cname} fixed point", r2.stdout == r.stdout,
                f"dumping the dump differs:\n{r.stdout}---\n{r2.stdout}")
        # the printed graph computes what the original does
        inputs, _ = make(rng, value_sets[0])
        ra, a = s.run(f"{cname}_orig", g, inputs, outs, "vm")
        rb, b = s.run(f"{cname}_dumped", g2, inputs, outs, "vm")
        if a is None or b is None:
            s.check(f"dump {cname} runs", False,
                    f"original: {ra and ra.stderr.strip()}; dumped: {rb and rb.stderr.strip()}")
            continue
        s.check(f"dump {cname} same result",
                all(a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and
                    a[k].tobytes() == b[k].tobytes() for k in outs), "outputs differ")


# ---- the Python module ---------------------------------------------------------------------

def python_module(s, rng):
    # PYTHONPATH first; else the module built next to the binary (build/python)
    sys.path.append(os.path.join(os.path.dirname(os.path.abspath(s.dvm)), "python"))
    try:
        import dvm
    except ImportError as e:
        print(f"skip: the Python module does not import ({e})")
        return
    # The counters that must not move after the first run: the VM's encodes; native code
    # compiled, or loaded from the disk cache (an earlier process may have written it).
    # slice_values keeps x's shape while s changes (and comes back to its first value): each
    # run must bind from s's data, not reuse the plan of the same shapes.
    vm = ("vm_encodes",)
    native = ("llvm_compiles", "disk_hits", "disk_misses", "cache_misses")
    for cname, tier, counters, value_sets in (
            ("reshape_hole", "vm", vm, [(2, 3, 4), (5, 7, 2), (1, 1, 1), (3, 6, 0), (4, 4, 4)]),
            ("slice_values", "vm", vm, [(6, 1, 4), (6, 0, 6), (6, 2, 5), (6, 3, 3), (6, 1, 4)]),
            ("arange_full", "vm", vm, [(3, 4), (1, 1), (9, 2), (0, 5), (6, 6)]),
            ("slice_values", "llvm", native, [(9, 1, 4), (9, 0, 9), (9, 8, 9), (9, 5, 5), (9, 1, 4)])):
        case = next(c for c in CASES if c[0] == cname)
        outs, exact, make = case[2], case[3], case[5]
        try:
            m = dvm.Model(s.path(cname + ".dvm"), tier=tier, threads=1)
        except Exception as e:
            s.check(f"python {cname} {tier} model", False, f"{type(e).__name__}: {e}")
            continue
        first = None
        for v in value_sets:
            name = f"python {cname} {tier} {v}"
            inputs, want = make(rng, v)
            try:
                res = m(**inputs)
            except Exception as e:
                s.check(name, False, f"{type(e).__name__}: {e}")
                continue
            res = res if isinstance(res, tuple) else (res,)
            if not s.check(name + " outputs", len(res) == len(outs), f"{len(res)} results, want {len(outs)}"):
                continue
            for k, got in zip(outs, res):
                compare(s, f"{name} {k}", np.asarray(got), want[k], k in exact)
            st = m.stats()
            n = {c: st[c] for c in counters}
            if first is None:
                first = n
                made = "vm_encodes" if tier == "vm" else "native_kernels"
                s.check(f"{name} {made}", st[made] >= 1, f"{made} {st[made]} after the first run")
            else:
                s.check(f"{name} compiles", n == first,
                        f"{n} after the first run's {first}: a new value compiled")
        if cname == "slice_values":  # values that break A <= B: dvm.Error naming the constraint
            try:
                m(x=f32(rng, (6, 4)), s=np.array([4, 2], np.int64))
                s.check(f"python {cname} {tier} a>b", False, "no error")
            except dvm.Error as e:
                s.check(f"python {cname} {tier} a>b", all(w in str(e) for w in ("A", "B", "<=")),
                        f"message {str(e)!r}")
            except Exception as e:
                s.check(f"python {cname} {tier} a>b", False, f"{type(e).__name__}, not dvm.Error: {e}")


# ---- errors --------------------------------------------------------------------------------

def refused(s, name, graph_file, inputs, words, tier="vm"):
    name = f"{name} {tier}"
    r, _ = s.run(name.replace(" ", "_").replace(">", "gt"), graph_file, inputs, ["y"], tier)
    if r is None:
        return
    s.check(name + " status", r.returncode == 1, f"exit {r.returncode}, want 1: {r.stderr.strip()}")
    s.check(name + " message", r.stderr.startswith("dvm: error:"),
            f"stderr {r.stderr.strip()!r} does not start with 'dvm: error:'")
    s.check(name + " wording", all(w in r.stderr for w in words),
            f"stderr {r.stderr.strip()!r} does not mention all of {words}")


def errors(s, rng):
    g = s.path("slice_values.dvm")
    x = f32(rng, (6, 4))
    for note, sv in (("a>b", [4, 2]), ("a>b by one", [3, 2])):
        for tier in ("ref", "vm"):
            refused(s, f"slice {note}", g, {"x": x, "s": np.array(sv, np.int64)},
                    ["A", "B", "<=", f"= {sv[0]}", f"= {sv[1]}"], tier)
    refused(s, "slice end past dim", g, {"x": x, "s": np.array([1, 7], np.int64)}, ["B", "N", "<="])
    refused(s, "values one too many", g, {"x": x, "s": np.array([1, 2, 3], np.int64)}, ["'s'"])
    refused(s, "shared dim contradicted", s.path("shared_dim.dvm"),
            {"x": x, "s": np.array([5], np.int64)}, ["'s'"])
    # a u64 element from 2^63 up is no dim: the message must quote the element as it is,
    # not as the negative int64 of its bits
    g = s.write("u64_values.dvm", "graph u64_values\n"
                "input s: u64[2] values=[A, B]\n"
                "y = full(shape=[A, B], value=1.5, dtype=f32)\n"
                "output y\n")
    refused(s, "u64 element 2^63+5", g, {"s": np.array([2**63 + 5, 0], np.uint64)},
            ["'s'", str(2**63 + 5)])


# ---- runs that leave the values to dvm ---------------------------------------------------

def other_runs(s, rng):
    """`dvm run` without s, its symbols given by -s: docs/format.md has inputs not given
    filled with pseudo-random data "of their bound shape", needing only that every symbol be
    known, so a values input not given must hold its values (random data would contradict
    them). And `--lazy`, which runs the same graph files: it must bind the values too, or
    refuse the values input plainly (a message naming values), not call A unbound."""
    g = s.path("reshape_hole.dvm")
    x = f32(rng, 24)
    for tier in ("ref", "vm"):
        name = f"s not given, -s A=3 -s B=4, {tier}"
        xf = s.path("nogiven.x.npy")
        np.save(xf, x)
        out = s.path(f"nogiven.{tier}.y.npy")
        if os.path.exists(out):
            os.unlink(out)
        r = s.cmd(name, ["run", g, "-i", f"x={xf}", "-s", "A=3", "-s", "B=4", "-o", f"y={out}",
                         "--tier", tier])
        if r is None or not s.check(name, r.returncode == 0, f"exit {r.returncode}: {r.stderr.strip()}"):
            continue
        compare(s, name, np.load(out), x.reshape(3, -1, 4), True)
    for tier in ("ref", "vm", "auto"):
        for cname, v in (("slice_values", (6, 1, 4)), ("arange_full", (3, 4))):
            case = next(c for c in CASES if c[0] == cname)
            outs, exact, make = case[2], case[3], case[5]
            inputs, want = make(rng, v)
            name = f"--lazy {cname} {v} {tier}"
            args = ["run", s.path(cname + ".dvm"), "--lazy", "--tier", tier]
            for k, a in inputs.items():
                f = s.path(f"lazy.{k}.npy")
                np.save(f, a)
                args += ["-i", f"{k}={f}"]
            for k in outs:
                f = s.path(f"lazy.{tier}.{k}.npy")
                if os.path.exists(f):
                    os.unlink(f)
                args += ["-o", f"{k}={f}"]
            r = s.cmd(name, args)
            if r is None:
                continue
            if r.returncode != 0:  # the graph's path (".../slice_values.dvm") says values too
                s.check(name, r.returncode == 1 and "values" in r.stderr.replace(args[1], ""),
                        f"exit {r.returncode}: {r.stderr.strip()}")
                continue
            for k in outs:
                compare(s, f"{name} {k}", np.load(s.path(f"lazy.{tier}.{k}.npy")), want[k], k in exact)


def main():
    if len(sys.argv) != 3:
        print("usage: values_numpy.py DVM_BINARY SCRATCH_DIR", file=sys.stderr)
        return 2
    s = Suite(sys.argv[1], sys.argv[2])
    os.makedirs(s.scratch, exist_ok=True)
    rng = np.random.default_rng(20240607)
    run_cases(s, rng)
    dump_roundtrip(s, rng)
    python_module(s, rng)
    errors(s, rng)
    other_runs(s, rng)
    return support.summary()


if __name__ == "__main__":
    sys.exit(main())
