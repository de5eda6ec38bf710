#!/usr/bin/python3
"""tests/oracle/npy_numpy.py — cross-check dvm's .npy reader and writer with NumPy.

Usage: npy_numpy.py DVM_BINARY SCRATCH_DIR

For every dtype (f32, f16, i32, i64, bool, and bf16, which NumPy writes as raw 'V2'
bytes) and several shapes (0-d, zero-sized, rank 8, ...), NumPy np.save()s an array,
`dvm run` passes it through `reshape` on the reference tier, and the np.load()ed output
must have the same dtype, shape and bytes; the file dvm wrote must be version 1.0 with
its data at a multiple of 64 bytes. Files NumPy writes that dvm refuses (Fortran order,
big-endian, a dtype that contradicts the declaration) must exit with status 1 and a
message on stderr starting with "dvm: error:". Prints "N passed, M failed" last and
exits non-zero on any failure.
"""
import os
import subprocess
import sys

import numpy as np

DTYPES = ["f32", "f16", "bf16", "i32", "i64", "bool"]
SHAPES = [(), (0,), (5,), (2, 3), (2, 0, 3), (1, 2, 3, 4), (1, 2, 1, 2, 1, 2, 1, 2)]


class Suite:
    def __init__(self, dvm, scratch):
        self.dvm, self.scratch = dvm, scratch
        self.passed = self.failed = 0

    def check(self, name, ok, why=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {name}: {why}")
        return ok

    def path(self, name):
        return os.path.join(self.scratch, name)

    def run(self, graph_text, name, infile, outfile):
        """Write the graph, run dvm on it; returns the CompletedProcess (or None)."""
        g = self.path(name + ".dvm")
        with open(g, "w") as f:
            f.write(graph_text)
        if os.path.exists(outfile):
            os.unlink(outfile)
        cmd = [self.dvm, "run", g, "-i", f"x={infile}", "-o", f"y={outfile}", "--tier", "ref"]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            self.check(name, False, f"could not run {' '.join(cmd)}: {e}")
            return None


def dims(shape):
    return ", ".join(str(d) for d in shape)


def graph(dt, in_shape, out_shape):
    return (f"graph npy\n"
            f"input x: {dt}[{dims(in_shape)}]\n"
            f"y = reshape(x, shape=[{dims(out_shape)}])\n"
            f"output y\n")


def sample(dt, shape, rng):
    """An array of dtype dt (bf16 as 'V2') with special values where there is room."""
    n = int(np.prod(shape, dtype=np.int64))
    if dt in ("f32", "f16"):
        npdt = np.float32 if dt == "f32" else np.float16
        v = rng.standard_normal(n).astype(npdt)
        special = [np.nan, np.inf, -np.inf, -0.0, 1e-40 if dt == "f32" else 1e-7,
                   np.finfo(npdt).max, np.finfo(npdt).tiny]
        k = min(n, len(special))
        v[:k] = np.array(special[:k], dtype=np.float64).astype(npdt)
        return v.reshape(shape)
    if dt == "bf16":
        top = (rng.standard_normal(n).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
        special = [0x7FC0, 0x7F80, 0xFF80, 0x8000, 0x0001, 0x7F7F, 0x3F80]
        k = min(n, len(special))
        top[:k] = special[:k]
        return top.view("V2").reshape(shape)
    if dt == "i32":
        v = rng.integers(-2**31, 2**31, n, dtype=np.int32)
        v[:min(n, 2)] = [-2**31, 2**31 - 1][:min(n, 2)]
        return v.reshape(shape)
    if dt == "i64":
        v = rng.integers(-2**63, 2**63 - 1, n, dtype=np.int64, endpoint=True)
        v[:min(n, 3)] = [-2**63, 2**63 - 1, 2**53 + 1][:min(n, 3)]
        return v.reshape(shape)
    return (rng.random(n) > 0.5).reshape(shape)


def layout_ok(path):
    """dvm writes version 1.0 with the data at a multiple of 64; returns (ok, why)."""
    with open(path, "rb") as f:
        raw = f.read(10)
    if len(raw) < 10 or raw[:6] != b"\x93NUMPY":
        return False, "bad magic"
    if raw[6:8] != b"\x01\x00":
        return False, f"version {raw[6]}.{raw[7]}, want 1.0"
    hlen = raw[8] | raw[9] << 8
    if (10 + hlen) % 64:
        return False, f"data starts at {10 + hlen}, not a multiple of 64"
    return True, ""


def passthrough(s, dt, in_shape, out_shape, rng):
    name = f"{dt}_{'x'.join(map(str, in_shape)) or 'scalar'}_to_{'x'.join(map(str, out_shape)) or 'scalar'}"
    a = sample(dt, in_shape, rng)
    infile, outfile = s.path(name + ".in.npy"), s.path(name + ".out.npy")
    np.save(infile, a)
    r = s.run(graph(dt, in_shape, out_shape), name, infile, outfile)
    if r is None:
        return
    if not s.check(name, r.returncode == 0, f"exit {r.returncode}: {r.stderr.strip()}"):
        return
    if not s.check(name, os.path.exists(outfile), "no output file"):
        return
    ok, why = layout_ok(outfile)
    s.check(name + " layout", ok, why)
    try:
        b = np.load(outfile)
    except Exception as e:  # numpy refused dvm's file
        s.check(name, False, f"np.load: {e}")
        return
    want = a.reshape(out_shape)
    s.check(name + " dtype", b.dtype == want.dtype, f"{b.dtype} != {want.dtype}")
    s.check(name + " shape", b.shape == want.shape, f"{b.shape} != {want.shape}")
    s.check(name + " bytes", b.tobytes() == want.tobytes(), "data differs")


def refused(s, name, a, decl, words):
    """dvm must refuse NumPy's file for `a` bound to input `decl` with exit status 1."""
    infile, outfile = s.path(name + ".in.npy"), s.path(name + ".out.npy")
    np.save(infile, a)
    r = s.run(f"graph npy\ninput x: {decl}\ny = reshape(x, shape=[{dims(a.shape)}])\noutput y\n",
              name, infile, outfile)
    if r is None:
        return
    s.check(name + " status", r.returncode == 1, f"exit {r.returncode}, want 1")
    s.check(name + " message", r.stderr.startswith("dvm: error:"),
            f"stderr {r.stderr.strip()!r} does not start with 'dvm: error:'")
    low = r.stderr.lower()
    s.check(name + " wording", any(w in low for w in words),
            f"stderr {r.stderr.strip()!r} mentions none of {words}")


def main():
    if len(sys.argv) != 3:
        print("usage: npy_numpy.py DVM_BINARY SCRATCH_DIR", file=sys.stderr)
        return 2
    s = Suite(sys.argv[1], sys.argv[2])
    os.makedirs(s.scratch, exist_ok=True)
    rng = np.random.default_rng(20240601)

    for dt in DTYPES:
        for shape in SHAPES:
            passthrough(s, dt, shape, shape, rng)
        passthrough(s, dt, (2, 3, 4), (6, 4), rng)  # a reshape that changes the shape

    base = np.arange(6, dtype=np.float32).reshape(2, 3)
    refused(s, "fortran", np.asfortranarray(base), "f32[2, 3]", ["fortran"])
    refused(s, "big_endian", base.astype(">f4"), "f32[2, 3]", ["endian"])
    refused(s, "dtype_mismatch", base.astype(np.int32), "f32[2, 3]", ["i32", "f32", "dtype"])

    print(f"{s.passed} passed, {s.failed} failed")
    return 1 if s.failed else 0


if __name__ == "__main__":
    sys.exit(main())
