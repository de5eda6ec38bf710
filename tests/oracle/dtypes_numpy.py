#!/usr/bin/python3
"""tests/oracle/dtypes_numpy.py — the dtypes f64, i8, i16, i32, i64, u8, u16, u32, u64
on every tier against NumPy.

Usage: dtypes_numpy.py DVM_BINARY SCRATCH_DIR

For each of those dtypes one graph (`SCRATCH/dtypes_DT.dvm`) holds every op that takes it:
arithmetic (`add sub mul div max min neg abs relu sign floor ceil round`), comparisons,
`select`, `clip` (bounds in and out of the dtype's range), literal operands and `full`
values that saturate, broadcasting, casts to and from f32/f64/i32/i64/u8/bool, reductions
over an axis, over all axes and with keepdims, argmax, matmul, the views (reshape,
transpose, slice with positive and negative steps, concat, gather, unsqueeze) alone and
feeding arithmetic, and for f64 `exp log sqrt tanh sin`. It runs through `dvm run` once
per dtype x tier (ref, vm, llvm, auto) x N (the symbolic dim: 1, 5, 37, 300) on inputs drawn
by a fixed-seed RNG around the dtype's extremes (min, max, 0, -1, values at the sign bit
and near 2^63, large values so that add, mul, reductions and matmul wrap), and each
output .npy must have NumPy's dtype and shape and its values computed with the semantics
of docs/ops.md ("Dtypes"): integers wrap at their width, `div` truncates toward zero
(INT_MIN / -1 is INT_MIN), unsigned values compare as unsigned, a float cast to an integer
truncates and saturates (NaN gives 0), an integer literal or attribute saturates at the
dtype's range. Integers and bool compare exactly; f64 arithmetic within 1 ulp,
transcendentals within 1e-12 relative, f64 sums and matmul (whose order docs/ops.md does
not fix) within 1e-12 of the sum of the magnitudes.

Also: integer division by zero must exit with status 1 and a `dvm: error:` message on
every tier and integer dtype; and integer literals and attributes beyond int64 (a u64 one up
to 2^64-1, an i64 one past its range, which saturates) must be taken as docs/ops.md says.

The graphs, inputs and outputs stay in SCRATCH_DIR (one directory per dtype and N), so a
failing command can be rerun as printed. The object cache is SCRATCH_DIR/cache.
Prints "dtypes vs NumPy: K checks, F failures" last; exits non-zero on any failure.
"""
import math
import os
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

DTYPES = ["f64", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64"]
TIERS = ["ref", "vm", "llvm", "auto"]
NS = [1, 5, 37, 300]
K = 8  # the constant inner dim of the [N, K] inputs

NP = {"f32": np.float32, "f64": np.float64, "i8": np.int8, "i16": np.int16,
      "i32": np.int32, "i64": np.int64, "u8": np.uint8, "u16": np.uint16,
      "u32": np.uint32, "u64": np.uint64, "bool": np.bool_}
CAST_PEERS = ["f32", "f64", "i32", "i64", "u8", "bool"]


def is_int(dt):
    return dt[0] in "iu"


def is_float(dt):
    return dt[0] == "f"


def irange(dt):
    i = np.iinfo(NP[dt])
    return int(i.min), int(i.max)


def wrap(vals, dt, shape):
    """Python ints -> array of integer dtype dt, wrapped at its width."""
    bits = np.iinfo(NP[dt]).bits
    mask = (1 << bits) - 1
    out = []
    for v in vals:
        v &= mask
        if dt[0] == "i" and v >> (bits - 1):
            v -= 1 << bits
        out.append(v)
    return np.array(out, dtype=NP[dt]).reshape(shape)


def pyints(a):
    """An integer array as an object array of Python ints (exact for u64)."""
    a = np.asarray(a)
    return np.array(a.ravel().tolist() + [None], dtype=object)[:-1].reshape(a.shape)


def lit(v, dt):
    """A literal / attribute value as dvm takes it for dtype dt (integers saturate)."""
    if is_int(dt):
        lo, hi = irange(dt)
        return NP[dt](min(max(int(v), lo), hi))
    return NP[dt](v)


def tdiv(a, b, dt):
    """Integer division truncating toward zero, wrapped (INT_MIN / -1 = INT_MIN)."""
    out = []
    for x, y in zip(pyints(a).ravel(), pyints(b).ravel()):
        q = abs(x) // abs(y)
        out.append(-q if (x < 0) != (y < 0) else q)
    return wrap(out, dt, np.shape(a))


def sat_cast(x, dt):
    """float -> integer: truncate toward zero, saturate at the range, NaN gives 0."""
    lo, hi = irange(dt)
    vals = []
    for v in np.asarray(x, dtype=np.float64).ravel().tolist():
        if math.isnan(v):
            vals.append(0)
        elif math.isinf(v):
            vals.append(hi if v > 0 else lo)
        else:
            vals.append(min(max(math.trunc(v), lo), hi))
    return np.array(vals, dtype=NP[dt]).reshape(np.shape(x))


def cast(x, src, dst):
    x = np.asarray(x)
    with np.errstate(all="ignore"):
        if dst == "bool":
            return x != 0
        if is_float(src) and is_int(dst):
            return sat_cast(x, dst)
        return x.astype(NP[dst])  # int->int wraps; int->float, float->float round once


def ireduce(a, axis, dt, op, keepdims=False):
    """Integer sum/prod in Python ints, wrapped."""
    o = pyints(a)
    r = o.sum(axis=axis, keepdims=keepdims) if op == "sum" else \
        o.prod(axis=axis, keepdims=keepdims)
    r = np.asarray(r, dtype=object)
    return wrap(r.ravel().tolist(), dt, r.shape)


def imatmul(a, b, dt):
    r = np.asarray(np.dot(pyints(a), pyints(b)), dtype=object)
    return wrap(r.ravel().tolist(), dt, r.shape)


def seq_reduce(a, axis, op, keepdims=False):
    """f64 sum/prod in index order (the reference accumulates in double), and the bound
    of the rounding error of any order: 1e-12 times the sum of the magnitudes."""
    if keepdims:
        acc, bound = seq_reduce(a, axis, op)
        return np.expand_dims(acc, axis), np.expand_dims(bound, axis)
    a = np.moveaxis(np.asarray(a, np.float64), axis, 0)
    acc = a[0].copy()
    mag = np.abs(a[0])
    with np.errstate(all="ignore"):
        for k in range(1, a.shape[0]):
            acc = acc + a[k] if op == "sum" else acc * a[k]
            mag = mag + np.abs(a[k]) if op == "sum" else mag * np.abs(a[k])
    return acc, 1e-12 * mag


def fmatmul(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    acc = np.zeros((a.shape[0], b.shape[1]))
    mag = np.zeros_like(acc)
    for k in range(a.shape[1]):
        acc = acc + a[:, k:k + 1] * b[k:k + 1, :]
        mag = mag + np.abs(a[:, k:k + 1] * b[k:k + 1, :])
    return acc, 1e-12 * mag


# ---- inputs ------------------------------------------------------------------------------

def specials(dt):
    """The values each dtype's inputs are drawn around."""
    if dt == "f64":
        return [np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0,
                np.finfo(np.float64).max, -np.finfo(np.float64).max,
                np.finfo(np.float64).tiny, 5e-324, -5e-324, 1e300, -1e300, 1e-300,
                math.pi, 2.0 ** 53, 2.0 ** 63, -2.0 ** 63, 2.0 ** 64, 1e16 + 2.0]
    lo, hi = irange(dt)
    bits = np.iinfo(NP[dt]).bits
    s = [lo, hi, 0, 1, 2, lo + 1, hi - 1, 3, 7]
    if dt[0] == "i":
        s += [-1, -2, -7, 1 << (bits - 2), -(1 << (bits - 2)), hi // 2 + 1]
    else:
        half = 1 << (bits - 1)
        s += [half, half - 1, half + 1, hi // 3]
    if bits == 64:
        s += [(1 << 53) + 1, (1 << 62) + (1 << 38) + 1, (1 << 32) + 5, (1 << 31)]
        s += [-(1 << 53) - 1, -(1 << 62) - (1 << 38) - 1] if dt[0] == "i" else \
             [(1 << 63) + (1 << 39) + 1, (1 << 64) - 1025]
    if bits == 32:
        s += [(1 << 24) + 1, (1 << 31) - 129]
    return s


def draw(rng, dt, shape, nonzero=False, tame=False):
    """Values of dtype dt: specials, full-range random and small values mixed."""
    n = int(np.prod(shape))
    if dt == "f64":
        if tame:  # moderate values for f64 sums, products and matmul
            v = np.round(rng.uniform(-50, 50, n), 2) * np.where(rng.random(n) < 0.2, 0, 1)
            return v.reshape(shape)
        sp = specials(dt)
        pick = rng.integers(0, len(sp), n)
        rnd = rng.standard_normal(n) * 10.0 ** rng.uniform(-8, 8, n)
        v = np.where(rng.random(n) < 0.45, np.array(sp)[pick], rnd)
        if nonzero:
            v = np.where(v == 0, 1.5, v)
        return v.reshape(shape)
    lo, hi = irange(dt)
    sp = [x for x in specials(dt) if not (nonzero and x == 0)]
    out = []
    for u in rng.random(n).tolist():
        if u < 0.4:
            v = sp[int(rng.integers(0, len(sp)))]
        elif u < 0.8:
            v = int(rng.integers(lo, hi, endpoint=True, dtype=NP[dt]))
        else:
            v = int(rng.integers(max(lo, -9), 10))
        if nonzero and v == 0:
            v = -1 if lo < 0 else 1
        out.append(v)
    return np.array(out, dtype=NP[dt]).reshape(shape)


def first_rows(dt, a, b, dd):
    """Pin the first row so that N=1 also meets the extreme pairs."""
    if dt == "f64":
        a[0] = [np.nan, np.inf, -np.inf, np.finfo(np.float64).max, -0.0, 1e300, -2.5, 5e-324]
        b[0] = [1.0, -np.inf, 2.0, np.finfo(np.float64).max, 0.0, 1e300, 2.5, -5e-324]
        dd[0] = [2.0, 3.0, -0.0, 0.5, 7.0, 1e-300, -2.5, 2.0]
        return
    lo, hi = irange(dt)
    bits = np.iinfo(NP[dt]).bits
    if dt[0] == "i":
        a[0] = [lo, hi, lo, hi, 0, -1, -7, hi]
        b[0] = [-1, 1, lo, hi, lo, hi, 2, -1]
        dd[0] = [-1, -1, 1, 2, lo, hi, 2, -3]
    else:
        half = 1 << (bits - 1)
        a[0] = [hi, half, half - 1, 0, 1, hi, 7, half + 1]
        b[0] = [hi, half - 1, half, hi, 0, 1, 2, half]
        dd[0] = [hi, half, 1, 3, half + 1, 2, 2, half - 1]


def cast_sources(rng, shape):
    """Inputs of the peer dtypes, to be cast to the graph's dtype."""
    n = int(np.prod(shape))
    fsp = [np.nan, np.inf, -np.inf, 0.0, -0.0, 0.9, -0.9, 2.5, -2.5, 127.9, -128.9, 255.9,
           256.0, -1.0, 32767.9, -32768.9, 65535.5, 65536.0, 2147483647.9, -2147483648.9,
           2147483648.0, 4294967295.5, 4294967296.0, 1e10, -1e10, 2.0 ** 53 + 2,
           2.0 ** 63 - 1024, 2.0 ** 63, -2.0 ** 63, -2.0 ** 63 - 2048, 2.0 ** 64 - 2048,
           2.0 ** 64, 1.5e19, 1e300, -1e300]
    def fpick(dt):
        v = np.where(rng.random(n) < 0.6, np.array(fsp)[rng.integers(0, len(fsp), n)],
                     rng.standard_normal(n) * 10.0 ** rng.uniform(0, 20, n))
        with np.errstate(all="ignore"):
            v = v.astype(NP[dt])
        v.ravel()[:min(n, 8)] = np.array(fsp[:8]).astype(NP[dt])[:min(n, 8)]
        return v.reshape(shape)
    return {"f32": fpick("f32"), "f64": fpick("f64"), "i32": draw(rng, "i32", shape),
            "i64": draw(rng, "i64", shape), "u8": draw(rng, "u8", shape),
            "bool": rng.random(shape) < 0.5}


# ---- the graph per dtype -----------------------------------------------------------------

class Graph:
    """Lines of one graph and, per output, (name, op text, expected fn, tolerance kind)."""

    def __init__(self, dt):
        self.dt = dt
        self.name = "dtypes_" + dt
        self.lines = ["graph " + self.name]
        self.outs = []

    def line(self, text):
        self.lines.append(text)

    def out(self, name, expr, fn, tol="exact"):
        self.lines.append(f"{name} = {expr}")
        self.outs.append((name, expr, fn, tol))

    def text(self):
        return "\n".join(self.lines + ["output " + ", ".join(o[0] for o in self.outs)]) + "\n"


def build(dt):
    g = Graph(dt)
    T = NP[dt]
    fl = dt == "f64"
    arith = "ulp" if fl else "exact"
    g.line(f"input a: {dt}[N, {K}]")
    g.line(f"input b: {dt}[N, {K}]")
    g.line(f"input dd: {dt}[N, {K}]      # a divisor without zeros")
    g.line(f"input r: {dt}[{K}]")
    g.line(f"input c: bool[N, {K}]")
    g.line(f"input m: {dt}[N, {K}]")
    g.line(f"input w: {dt}[{K}, 3]")
    g.line("input idx: i64[3]")
    g.line("input idx0: i32[4]")
    for p in CAST_PEERS:
        g.line(f"input x{p}: {p}[N, {K}]")

    def E(f):  # evaluate with NumPy's warnings off
        def run(v):
            with np.errstate(all="ignore"):
                return f(v)
        return run

    # arithmetic
    g.out("add_ab", "add(a, b)", E(lambda v: v["a"] + v["b"]), arith)
    g.out("sub_ab", "sub(a, b)", E(lambda v: v["a"] - v["b"]), arith)
    g.out("mul_ab", "mul(a, b)", E(lambda v: v["a"] * v["b"]), arith)
    if fl:
        g.out("div_ad", "div(a, dd)", E(lambda v: v["a"] / v["dd"]), arith)
        g.out("div_ab", "div(a, b)", E(lambda v: v["a"] / v["b"]), arith)
    else:
        g.out("div_ad", "div(a, dd)", lambda v: tdiv(v["a"], v["dd"], dt))
        g.out("div_bd", "div(b, dd)", lambda v: tdiv(v["b"], v["dd"], dt))
    g.out("max_ab", "max(a, b)", E(lambda v: np.maximum(v["a"], v["b"])))
    g.out("min_ab", "min(a, b)", E(lambda v: np.minimum(v["a"], v["b"])))
    g.out("neg_a", "neg(a)", E(lambda v: -v["a"]))
    g.out("abs_a", "abs(a)", E(lambda v: np.abs(v["a"])))
    g.out("relu_a", "relu(a)", E(lambda v: np.maximum(v["a"], T(0))))
    g.out("sign_a", "sign(a)", E(lambda v: np.sign(v["a"])))
    g.out("floor_a", "floor(a)", E(lambda v: np.floor(v["a"]) if fl else v["a"]))
    g.out("ceil_a", "ceil(a)", E(lambda v: np.ceil(v["a"]) if fl else v["a"]))
    g.out("round_a", "round(a)", E(lambda v: np.round(v["a"]) if fl else v["a"]))
    # comparisons and select
    for op, f in [("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
                  ("ge", np.greater_equal), ("eq", np.equal), ("ne", np.not_equal)]:
        g.out(f"{op}_ab", f"{op}(a, b)", E(lambda v, f=f: f(v["a"], v["b"])))
    g.out("eq_aa", "eq(a, a)", E(lambda v: v["a"] == v["a"]))
    g.out("sel_cab", "select(c, a, b)", lambda v: np.where(v["c"], v["a"], v["b"]))
    g.out("sel_lit", "select(c, a, 0)", lambda v: np.where(v["c"], v["a"], T(0)))
    # clip, literals and full values (integers saturate at the dtype's range)
    lo_in, hi_in = (-5, 7) if dt[0] != "u" else (3, 200)
    clip = lambda x, lo, hi: np.minimum(np.maximum(x, lit(lo, dt)), lit(hi, dt))
    g.out("clip_in", f"clip(a, lo={lo_in}, hi={hi_in})", E(lambda v: clip(v["a"], lo_in, hi_in)))
    g.out("clip_lo", "clip(a, lo=-5)", E(lambda v: np.maximum(v["a"], lit(-5, dt))))
    g.out("clip_hi", "clip(a, hi=300)", E(lambda v: np.minimum(v["a"], lit(300, dt))))
    g.out("clip_wide", "clip(a, lo=-1000, hi=1000)", E(lambda v: clip(v["a"], -1000, 1000)))
    g.out("lit_add", "add(a, 300)", E(lambda v: v["a"] + lit(300, dt)), arith)
    g.out("lit_sub", "sub(a, 1)", E(lambda v: v["a"] - lit(1, dt)), arith)
    g.out("lit_mul", "mul(a, -1)", E(lambda v: v["a"] * lit(-1, dt)), arith)
    g.out("lit_max", "max(a, -5)", E(lambda v: np.maximum(v["a"], lit(-5, dt))))
    g.out("lit_min", "min(a, 300)", E(lambda v: np.minimum(v["a"], lit(300, dt))))
    g.out("lit_lt", "lt(a, -5)", E(lambda v: v["a"] < lit(-5, dt)))
    if fl:
        g.out("lit_div", "div(a, 0.5)", E(lambda v: v["a"] / 0.5), arith)
    else:
        q = -3 if dt[0] == "i" else 3
        g.out("lit_div", f"div(a, {q})", lambda v: tdiv(v["a"], np.full_like(v["a"], q), dt))
    g.out("full_neg", f"full(shape=[N, {K}], value=-5, dtype={dt})",
          lambda v: np.full(v["a"].shape, lit(-5, dt), dtype=T))
    g.out("full_big", f"full(shape=[N, {K}], value=300, dtype={dt})",
          lambda v: np.full(v["a"].shape, lit(300, dt), dtype=T))
    g.out("arange_n", f"arange(n=N, dtype={dt})", lambda v: np.arange(v["a"].shape[0], dtype=T))
    # broadcasting against a row
    g.out("add_ar", "add(a, r)", E(lambda v: v["a"] + v["r"]), arith)
    g.out("max_ar", "max(a, r)", E(lambda v: np.maximum(v["a"], v["r"])))
    g.out("gt_ra", "gt(r, a)", E(lambda v: v["r"] > v["a"]))
    # casts
    for p in CAST_PEERS:
        g.out(f"to_{p}", f"cast(a, to={p})", lambda v, p=p: cast(v["a"], dt, p))
        g.out(f"from_{p}", f"cast(x{p}, to={dt})", lambda v, p=p: cast(v["x" + p], p, dt))
    # reductions (f64 sums and products of tame values: their order is not fixed)
    red = "m" if fl else "a"
    for op in ("sum", "prod"):
        for name, ax, kd in [("1", 1, 0), ("0", 0, 0), ("k", -1, 1)]:
            expr = f"reduce_{op}({red}, axes=[{ax}]" + (", keepdims=1)" if kd else ")")
            if fl:
                g.out(f"r{op}{name}", expr,
                      lambda v, op=op, ax=ax, kd=kd: seq_reduce(v[red], ax, op, bool(kd)), "acc")
            else:
                g.out(f"r{op}{name}", expr,
                      lambda v, op=op, ax=ax, kd=kd: ireduce(v[red], ax, dt, op, bool(kd)))
    if fl:
        g.out("rsum_all", f"reduce_sum({red})",
              lambda v: tuple(np.asarray(x) for x in seq_reduce(v[red].ravel(), 0, "sum")), "acc")
    else:
        g.out("rsum_all", f"reduce_sum({red})", lambda v: ireduce(v[red], None, dt, "sum"))
    for op, f in [("max", np.max), ("min", np.min)]:
        g.out(f"r{op}1", f"reduce_{op}(a, axes=[1])", lambda v, f=f: f(v["a"], axis=1))
        g.out(f"r{op}0", f"reduce_{op}(a, axes=[-2], keepdims=1)",
              lambda v, f=f: f(v["a"], axis=0, keepdims=True))
        g.out(f"r{op}_all", f"reduce_{op}(b)", lambda v, f=f: np.asarray(f(v["b"])))
    g.out("argmax1", "argmax(a, axis=1)", lambda v: np.argmax(v["a"], axis=1).astype(np.int64))
    g.out("argmax0", "argmax(b, axis=0, keepdims=1)",
          lambda v: np.argmax(v["b"], axis=0)[None, :].astype(np.int64))
    # a reduction fed by arithmetic (one fused row kernel)
    if fl:
        g.line("mm2 = mul(m, m)")
        g.out("sum_ab", "reduce_sum(mm2, axes=[1])",
              lambda v: seq_reduce(v["m"] * v["m"], 1, "sum"), "acc")
    else:
        g.line("ab = mul(a, b)")
        g.out("sum_ab", "reduce_sum(ab, axes=[1])",
              lambda v: ireduce(E(lambda u: u["a"] * u["b"])(v), 1, dt, "sum"))
    # matmul
    if fl:
        g.out("mm", "matmul(m, w)", lambda v: fmatmul(v["m"], v["w"]), "acc")
        g.out("mm_t", "matmul(w, m, transpose_a=1, transpose_b=1)",
              lambda v: fmatmul(v["w"].T, v["m"].T), "acc")
    else:
        g.out("mm", "matmul(m, w)", lambda v: imatmul(v["m"], v["w"], dt))
        g.out("mm_t", "matmul(w, m, transpose_a=1, transpose_b=1)",
              lambda v: imatmul(v["w"].T, v["m"].T, dt))
        g.out("mm_a", "matmul(a, w)", lambda v: imatmul(v["a"], v["w"], dt))
    # views, alone and feeding arithmetic
    g.out("rs_flat", "reshape(a, shape=[-1])", lambda v: v["a"].reshape(-1))
    g.out("rs3", "reshape(a, shape=[N, 2, 4])", lambda v: v["a"].reshape(-1, 2, 4))
    g.out("tr", "transpose(a)", lambda v: v["a"].T)
    g.out("sl", "slice(a, axes=[1], starts=[1], ends=[8], steps=[3])", lambda v: v["a"][:, 1:8:3])
    g.out("sl_neg", "slice(a, axes=[1], starts=[-1], ends=[-100], steps=[-2])",
          lambda v: v["a"][:, -1:-100:-2])
    g.out("sl0", "slice(b, axes=[0, 1], starts=[0, -3], ends=[N, 100])", lambda v: v["b"][:, -3:])
    g.out("cat1", "concat(a, b, axis=1)", lambda v: np.concatenate([v["a"], v["b"]], axis=1))
    g.out("cat0", "concat(a, b, a, axis=0)",
          lambda v: np.concatenate([v["a"], v["b"], v["a"]], axis=0))
    g.out("g1", "gather(a, idx, axis=1)", lambda v: np.take(v["a"], v["idx"], axis=1))
    g.out("g0", "gather(b, idx0, axis=0)", lambda v: np.take(v["b"], v["idx0"], axis=0))
    g.out("usq", "unsqueeze(a, axes=[0])", lambda v: v["a"][None])
    g.line("tb = transpose(b)")
    g.out("v_tr", "sub(tr, tb)", E(lambda v: v["a"].T - v["b"].T), arith)
    g.out("v_sl", "mul(sl, sl)", E(lambda v: v["a"][:, 1:8:3] * v["a"][:, 1:8:3]), arith)
    g.out("v_g1", "add(g1, g1)", E(lambda v: np.take(v["a"], v["idx"], axis=1)
                                    + np.take(v["a"], v["idx"], axis=1)), arith)
    g.out("v_cat", "max(cat1, 1)", E(lambda v: np.maximum(np.concatenate([v["a"], v["b"]], 1),
                                                         lit(1, dt))))
    g.out("v_rs", "neg(rs3)", E(lambda v: -v["a"].reshape(-1, 2, 4)))
    # f64: the transcendentals
    if fl:
        for op, f in [("exp", np.exp), ("log", np.log), ("sqrt", np.sqrt), ("tanh", np.tanh),
                      ("sin", np.sin)]:
            g.out(f"{op}_a", f"{op}(a)", E(lambda v, f=f: f(v["a"])), "rtol")
            g.out(f"{op}_b", f"{op}(b)", E(lambda v, f=f: f(v["b"])), "rtol")
    return g


# ---- running and comparing ---------------------------------------------------------------

def make_inputs(dt, n, seed):
    rng = np.random.default_rng(seed)
    shape = (n, K)
    a, b = draw(rng, dt, shape), draw(rng, dt, shape)
    dd = draw(rng, dt, shape, nonzero=True)
    first_rows(dt, a, b, dd)
    v = {"a": a, "b": b, "dd": dd, "r": draw(rng, dt, (K,)), "c": rng.random(shape) < 0.5,
         "m": draw(rng, dt, shape, tame=True), "w": draw(rng, dt, (K, 3), tame=True),
         "idx": np.array([-1, 0, 5], dtype=np.int64),
         "idx0": rng.integers(-n, n, 4).astype(np.int32)}
    for p, x in cast_sources(rng, shape).items():
        v["x" + p] = x
    return v


def first_bad(got, want, tol, bound=None):
    """Index of the first element that does not match (or None)."""
    if got.dtype.kind in "biu":
        bad = got != want
    else:
        g, w = got.astype(np.float64), want.astype(np.float64)
        same = (g == w) | (np.isnan(g) & np.isnan(w))
        with np.errstate(all="ignore"):
            if tol == "ulp":
                ok = np.isfinite(w) & (np.abs(g - w) <= np.spacing(np.abs(w)))
            elif tol == "rtol":
                ok = np.isfinite(w) & (np.abs(g - w) <= 1e-12 * np.abs(w))
            elif tol == "acc":
                ok = np.isfinite(w) & (np.abs(g - w) <= bound + 1e-300)
            else:
                ok = np.zeros_like(same)
        bad = ~(same | ok)
    idx = np.argwhere(np.atleast_1d(bad))
    return tuple(int(i) for i in idx[0]) if len(idx) else None


def fmt_cmd(cmd):
    return " ".join(shlex.quote(c) for c in cmd)


def run_one(dvm, scratch, env, graph, gpath, dt, n, tier, expected):
    """One dvm run; returns (checks, [failure lines])."""
    d = os.path.join(scratch, f"{dt}_N{n}")
    od = os.path.join(d, tier)
    os.makedirs(od, exist_ok=True)
    cmd = [dvm, "run", gpath, "--tier", tier]
    for k in sorted(expected["inputs"]):
        cmd += ["-i", f"{k}={os.path.join(d, k + '.npy')}"]
    for name, *_ in graph.outs:
        p = os.path.join(od, name + ".npy")
        if os.path.exists(p):
            os.unlink(p)
        cmd += ["-o", f"{name}={p}"]
    where = f"graph {gpath} tier={tier} dtype={dt} N={n}"
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    except subprocess.TimeoutExpired:
        return 1, [f"{where}: timed out; command: {fmt_cmd(cmd)}"]
    if r.returncode != 0:
        return 1, [f"{where}: exit status {r.returncode}: {r.stderr.strip()[:300]}; "
                   f"command: {fmt_cmd(cmd)}"]
    checks, fails = 1, []
    for name, expr, _, tol in graph.outs:
        checks += 1
        want, bound = expected[name]
        what = f"{where} op {name} = {expr}"
        try:
            got = np.load(os.path.join(od, name + ".npy"))
        except Exception as e:  # no file, or NumPy refused it
            fails.append(f"{what}: cannot load the output: {e}")
            continue
        if got.dtype != want.dtype or got.shape != want.shape:
            fails.append(f"{what}: got {got.dtype}{list(got.shape)}, "
                         f"want {want.dtype}{list(want.shape)}")
            continue
        i = first_bad(got, want, tol, bound)
        if i is not None:
            fails.append(f"{what}: first mismatch at index {i}: got {got[i]!r}, "
                         f"want {want[i]!r}" + inputs_at(expected["inputs"], name, i, want.shape))
    if fails:
        fails.append(f"  command: {fmt_cmd(cmd)}")
    return checks, fails


def inputs_at(inputs, name, i, shape):
    """The operands behind an elementwise [N, K] output's element, for the report."""
    if shape != inputs["a"].shape or name in ("tr", "v_tr"):
        return ""
    parts = [f"{k}={inputs[k][i]!r}" for k in ("a", "b", "dd")]
    if name.startswith("from_"):
        parts = [f"x{name[5:]}={inputs['x' + name[5:]][i]!r}"]
    return " (" + ", ".join(parts) + ")"


def expected_for(graph, inputs):
    out = {"inputs": inputs}
    for name, _, fn, tol in graph.outs:
        e = fn(inputs)
        bound = None
        if tol == "acc":
            e, bound = e
        out[name] = (np.asarray(e), bound)
    return out


def div_zero_checks(dvm, scratch, env):
    """Integer division by zero: exit status 1 and a 'dvm: error:' message."""
    jobs = []
    for dt in DTYPES:
        if not is_int(dt):
            continue
        gpath = os.path.join(scratch, f"divzero_{dt}.dvm")
        with open(gpath, "w") as f:
            f.write(f"graph divzero_{dt}\ninput a: {dt}[N]\ninput b: {dt}[N]\n"
                    f"q = div(a, b)\nr = add(q, 1)\noutput r\n")
        pa, pb = (os.path.join(scratch, f"divzero_{dt}.{x}.npy") for x in "ab")
        np.save(pa, np.array([7, 1, 0, 3, 5], dtype=NP[dt]))
        np.save(pb, np.array([2, 1, 3, 0, 1], dtype=NP[dt]))
        for tier in TIERS:
            out = os.path.join(scratch, f"divzero_{dt}.{tier}.r.npy")
            jobs.append((dt, tier, [dvm, "run", gpath, "-i", "a=" + pa, "-i", "b=" + pb,
                                    "-o", "r=" + out, "--tier", tier]))

    def one(job):
        dt, tier, cmd = job
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
        fails = []
        where = f"graph {cmd[2]} tier={tier} dtype={dt} op div by zero"
        if r.returncode != 1:
            fails.append(f"{where}: exit status {r.returncode}, want 1; command: {fmt_cmd(cmd)}")
        elif not r.stderr.startswith("dvm: error:") or "zero" not in r.stderr.lower():
            fails.append(f"{where}: stderr {r.stderr.strip()[:200]!r} is not 'dvm: error: ...'"
                         f" naming the division by zero; command: {fmt_cmd(cmd)}")
        return 1, fails
    return jobs, one


def literal_range_checks(dvm, scratch, env):
    """Integer literals and attributes are int64 (docs/format.md): one past that range is a
    clear error naming the line, never a silent wrap, also where the dtype (u64) could hold
    it. The parse is the same for every tier, so the reference runs these."""
    cases = [
        ("u64", "min(a, 18446744073709551615)"),
        ("u64", "max(a, 9223372036854775808)"),
        ("u64", "clip(a, lo=9223372036854775809, hi=18446744073709551615)"),
        ("u64", "full(shape=[N], value=18446744073709551615, dtype=u64)"),
        ("i64", "clip(a, lo=-99999999999999999999, hi=99999999999999999999)"),
        ("i64", "max(a, -99999999999999999999)"),
        ("i64", "full(shape=[N], value=99999999999999999999, dtype=i64)"),
    ]
    vals = {"u64": np.array([0, 1, 2 ** 63 - 1, 2 ** 63, 2 ** 63 + 1, 2 ** 64 - 1], dtype=np.uint64),
            "i64": np.array([-2 ** 63, -1, 0, 1, 2 ** 63 - 1, 5], dtype=np.int64)}
    jobs = []
    for i, (dt, expr) in enumerate(cases):
        gpath = os.path.join(scratch, f"literal_{i}_{dt}.dvm")
        with open(gpath, "w") as f:
            f.write(f"graph literal_{i}_{dt}\ninput a: {dt}[N]\ny = {expr}\noutput y\n")
        pa = os.path.join(scratch, f"literal_{dt}.a.npy")
        np.save(pa, vals[dt])
        jobs.append((dt, expr, [dvm, "run", gpath, "-i", "a=" + pa, "--tier", "ref"]))

    def one(job):
        dt, expr, cmd = job
        where = f"graph {cmd[2]} tier=ref dtype={dt} op y = {expr}"
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
        want = "%s:3: " % cmd[2]
        if r.returncode != 1 or not r.stderr.startswith("dvm: error: " + want) or "overflows int64" not in r.stderr:
            return 1, [f"{where}: exit status {r.returncode}, stderr {r.stderr.strip()[:200]!r}; want exit 1 "
                       f"and 'dvm: error: {want}... overflows int64'; command: {fmt_cmd(cmd)}"]
        return 1, []
    return jobs, one


def main():
    if len(sys.argv) != 3:
        print("usage: dtypes_numpy.py DVM_BINARY SCRATCH_DIR", file=sys.stderr)
        return 2
    dvm = os.path.abspath(sys.argv[1])
    scratch = os.path.abspath(sys.argv[2])
    os.makedirs(scratch, exist_ok=True)
    env = dict(os.environ)
    cache = os.path.join(scratch, "cache")
    shutil.rmtree(cache, ignore_errors=True)
    env["DVM_CACHE_DIR"] = cache
    only = os.environ.get("DVM_ORACLE_ONLY")  # optional dtype filter, for debugging
    tiers = os.environ.get("DVM_ORACLE_TIERS", ",".join(TIERS)).split(",")

    jobs = []
    for di, dt in enumerate(DTYPES):
        if only and dt not in only.split(","):
            continue
        graph = build(dt)
        gpath = os.path.join(scratch, graph.name + ".dvm")
        with open(gpath, "w") as f:
            f.write(graph.text())
        for n in NS:
            inputs = make_inputs(dt, n, 20240700 + 100 * di + n)
            d = os.path.join(scratch, f"{dt}_N{n}")
            os.makedirs(d, exist_ok=True)
            for k, x in inputs.items():
                np.save(os.path.join(d, k + ".npy"), x)
            expected = expected_for(graph, inputs)
            for tier in tiers:
                jobs.append((graph, gpath, dt, n, tier, expected))

    dz_jobs, dz_one = div_zero_checks(dvm, scratch, env)
    dz_jobs = [j for j in dz_jobs if j[1] in tiers and (not only or j[0] in only.split(","))]
    lit_jobs, lit_one = literal_range_checks(dvm, scratch, env)
    if only or "ref" not in tiers:
        lit_jobs = []
    workers = max(1, min(4, os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        res = list(pool.map(lambda j: run_one(dvm, scratch, env, *j), jobs))
        res += list(pool.map(dz_one, dz_jobs))
        res += list(pool.map(lit_one, lit_jobs))

    checks = sum(r[0] for r in res)
    fails = [f for r in res for f in r[1]]
    nfail = sum(1 for f in fails if not f.startswith("  command:"))
    for f in fails:
        print(("FAIL " if not f.startswith("  ") else "") + f)
    print(f"dtypes vs NumPy: {checks} checks, {nfail} failures")
    return 1 if nfail else 0


if __name__ == "__main__":
    sys.exit(main())
