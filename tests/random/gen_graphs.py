#!/usr/bin/env python3
"""Seeded random generator of valid dvm graphs (docs/format.md) for differential testing.

(Longer than 800 lines because the op builders and the error model they share are one
class, Gen; the graph families that use it are the short functions after it.)

usage: gen_graphs.py [--seed S] [--count C] [--index I] [--out DIR]
  --seed S   base seed (default: $DVM_RANDOM_SEED, else BASE_SEED)
  --count C  number of graphs (default 200)
  --index I  print only graph I of that seed on stdout (what run_random.py prints to
             reproduce a failure)
  --out DIR  write g000.dvm ... into DIR instead of printing them

Graph I depends only on (seed, I): `graph_text(seed, i)` seeds its own random.Random with
the string "seed:i" (Python hashes a str seed with SHA-512, so this is stable across runs
and machines). Each graph carries its test data in comments, which run_random.py reads:

  # bind: N=7 S=3           symbol values to run (2 or 3 lines), chosen so that no tensor
                            has more than MAX_ELEMS elements and no matmul more than MAX_MACS
  # tol: y 1e-05            per output: the absolute tolerance the generator's error model
                            gives for native (f32 arithmetic, libmvec) against the reference
                            (double, rounded per op); the test uses max(this, 1e-5 * RMS)
  # data: x1 int            an input or param that run_random.py fills with wide values
                            (.npy, -i) instead of dvm's [-8, 8): integers over the whole
                            range of their dtype and at the edges of every width ("int"),
                            f32 values out of every integer range, inf and NaN ("float")

What the graphs cover (the fusion pass's material, docs/fusion.md): elementwise chains of
every unary and binary float op with operands made safe by construction (log, sqrt, rsqrt,
reciprocal, div and pow see values bounded away from 0 or are applied to exact values),
literals, broadcasts of [H], [1,H], [N,1], [S,H], scalar params against [N,H] / [N,S,H],
reductions over the last and other axes with keepdims 0/1 and the reduced value broadcast
back, softmax / log_softmax over the last, first or a middle axis, layernorm, rmsnorm,
matmuls with bias + activation epilogues (transpose_b, batched 3-D), layout views
(transpose, reshape, slice, squeeze/unsqueeze, broadcast_to, concat, gather), compare /
select / cast (float to every integer dtype, saturating), integer graphs (family_int: i32,
i64 and the narrow i8 i16 u8 u16 u32, which native code computes in i32 / i64 registers
wrapped after every op: arithmetic that overflows on wide data, unsigned values across the
signed boundary, compares / select, casts among the integers, f32 and bool, saturating
float casts, reductions and views), a few f16 graphs, diamonds and several outputs.

Error model. Every value carries B (a bound on |value|) and E (an estimate of the absolute
difference between tiers). Inputs are exact (E = 0). Ops that IEEE rounds correctly (add,
sub, mul, div, sqrt, reciprocal, neg, abs, max, min, relu, clip, floor, ...) give the
same bits in every tier from the same bits, so they keep E = 0 on exact operands and
propagate E with their derivative bound otherwise; transcendentals, rsqrt, sums, means,
matmuls and normalizations add a rounding term. Discontinuous ops (floor, ceil, round,
sign, comparisons, float->int casts) are applied only to exact values, so a last-ulp
difference can never flip them. An op whose E would exceed MAX_REL_ERR of its bound is not
generated.
"""
import math
import os
import random
import sys

BASE_SEED = 20250705
SYM_VALUES = [1, 2, 3, 7, 16, 17, 64, 333, 1000]
H_VALUES = [1, 3, 16, 17, 64, 769, 1000]
H_WEIGHTS = [2, 4, 4, 4, 3, 1, 1]
MAX_ELEMS = 150_000      # per tensor, at every binding
MAX_MACS = 3_000_000     # per matmul, at every binding
MAX_REL_ERR = 2e-3       # an op whose error estimate exceeds this x max(B, 1) is not made
EPS = {"f32": 2.0 ** -24, "f16": 2.0 ** -11}
INT_RANGE = {"i8": (-2 ** 7, 2 ** 7 - 1), "i16": (-2 ** 15, 2 ** 15 - 1),
             "i32": (-2 ** 31, 2 ** 31 - 1), "i64": (-2 ** 63, 2 ** 63 - 1),
             "u8": (0, 2 ** 8 - 1), "u16": (0, 2 ** 16 - 1), "u32": (0, 2 ** 32 - 1)}
# integer literals and bounds: small ones and the edges of every width (each saturates at
# its dtype's range, docs/format.md)
INT_LITS = [1, -1, 2, 3, -3, 4, 7, 100, 127, 128, -128, -129, 200, 255, 256, 300, 32767,
            32768, -32769, 40000, 65535, 65536, 2 ** 31 - 1, 2 ** 31, -2 ** 31 - 1,
            2 ** 32 - 1, 2 ** 32, 5_000_000_000]
ULPS = 8                 # rounding term of an inexact op, in units of EPS x bound


class V:
    """A value: name, shape (tuple of int or symbolic dim text), dtype, bound B, error E,
    lower bound L > 0 when the value is known positive (else None)."""

    def __init__(self, name, shape, dtype, B=1.0, E=0.0, L=None):
        self.name, self.shape, self.dtype = name, tuple(shape), dtype
        self.B, self.E, self.L = float(B), float(E), L

    @property
    def exact(self):
        return self.E == 0.0


def dim_text(d):
    return str(d)


def shape_text(shape):
    return ", ".join(dim_text(d) for d in shape)


def bcast(a, b):
    """NumPy broadcast of two shapes, or None when the dims would need unifying (a symbol
    against a constant other than 1, or two different symbolic dims)."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x == y:
            out.append(x)
        elif x == 1:
            out.append(y)
        elif y == 1:
            out.append(x)
        else:
            return None
    return tuple(reversed(out))


def numel(shape, syms):
    n = 1
    for d in shape:
        n *= d if isinstance(d, int) else int(eval(d, {}, dict(syms)))
    return n


def fmt_float(x):
    s = repr(float(x))
    return s if ("." in s or "e" in s) else s + ".0"


class Gen:
    """Builds one graph."""

    def __init__(self, rng, name):
        self.r = rng
        self.name = name
        self.decls = []       # text lines
        self.body = []        # text lines
        self.values = []      # V: every named value (pool for diamonds)
        self.n = 0
        self.syms = []        # symbol names in order of declaration
        self.matmuls = []     # (batch shape elems, K, M) as shapes for the budget
        self.shapes = []      # every value's shape, for the budget
        self.declared = set()  # names of inputs and params
        self.data = {}        # name -> "int" / "float": wide test data from run_random.py
        self.wide = False     # integer inputs and params get "int" data (family_int)

    # ---- naming and emission ---------------------------------------------------------

    def fresh(self, prefix="t"):
        self.n += 1
        return "%s%d" % (prefix, self.n)

    def declare(self, kind, shape, dtype="f32", prefix=None, B=1.0):
        name = self.fresh(prefix or ("x" if kind == "input" else "p"))
        if any(isinstance(d, str) for d in shape):
            kind = "input"  # weights have constant shapes; a symbolic one is per request
        self.declared.add(name)
        if self.wide and dtype in INT_RANGE and prefix != "idx":
            self.data[name] = "int"
        for d in shape:
            if isinstance(d, str) and d.isidentifier() and d not in self.syms:
                self.syms.append(d)
        self.decls.append("%s %s: %s[%s]" % (kind, name, dtype, shape_text(shape)))
        v = V(name, shape, dtype, B=B, E=0.0)
        self.values.append(v)
        self.shapes.append(v.shape)
        return v

    def emit(self, op, args, attrs="", shape=None, dtype="f32", B=1.0, E=0.0, L=None,
             pool=True):
        name = self.fresh()
        argt = ", ".join(a.name if isinstance(a, V) else a for a in args)
        if attrs:
            argt = argt + ", " + attrs if argt else attrs
        self.body.append("%s = %s(%s)" % (name, op, argt))
        v = V(name, shape, dtype, B=B, E=E, L=L)
        if pool:
            self.values.append(v)
        self.shapes.append(v.shape)
        return v

    def lit(self, x, dtype):
        if dtype in INT_RANGE:
            return str(int(x))
        return fmt_float(x)

    def eps(self, dtype):
        return EPS.get(dtype, 0.0)

    def round_err(self, dtype, B):
        return ULPS * self.eps(dtype) * max(B, 1.0)

    def ok_err(self, E, B):
        return E <= MAX_REL_ERR * max(B, 1.0)

    # ---- elementwise building blocks -------------------------------------------------

    def f16_err(self, v, E):
        # f16 kernels may keep intermediates in f32 where the reference rounds every value
        # to f16: every f16 op is inexact by half an ulp of its bound.
        return E + (self.eps("f16") * max(v.B, 1.0) if v.dtype == "f16" else 0.0)

    def unary(self, op, x, B, gain=1.0, inexact=True, L=None):
        E = gain * x.E + (self.round_err(x.dtype, B) if inexact else 0.0)
        if x.dtype == "f16":
            E += self.eps("f16") * max(B, 1.0)
        return self.emit(op, [x], shape=x.shape, dtype=x.dtype, B=B, E=E, L=L)

    def abs_plus(self, x, c):
        """add(abs(x), c): a value >= c."""
        a = self.unary("abs", x, x.B, inexact=False)
        return self.binary_raw("add", a, self.lit(c, x.dtype), x.B + c, a.E, L=c)

    def binary_raw(self, op, a, b, B, E, L=None, shape=None):
        sa = a.shape
        sb = b.shape if isinstance(b, V) else ()
        shp = shape if shape is not None else bcast(sa, sb)
        dt = a.dtype
        if dt == "f16":
            E += self.eps("f16") * max(B, 1.0)
        return self.emit(op, [a, b], shape=shp, dtype=dt, B=B, E=E, L=L)

    def rand_unary(self, x):
        """One random float unary step (possibly with a helper op). None if none fits."""
        r = self.r
        ops = ["neg", "abs", "exp", "log", "sqrt", "rsqrt", "reciprocal", "tanh", "sigmoid",
               "relu", "gelu", "gelu_tanh", "silu", "erf", "sin", "cos", "floor", "ceil",
               "round", "sign", "clip", "scale"]
        for _ in range(12):
            op = r.choice(ops)
            B, E = x.B, x.E
            if op in ("neg", "abs", "relu"):
                L = x.L if op == "abs" else None
                return self.unary(op, x, B, inexact=False, L=L)
            if op == "exp":
                if B > 12.0 or not self.ok_err(math.exp(B) * (E + self.round_err(x.dtype, 1)), math.exp(B)):
                    continue
                return self.unary("exp", x, math.exp(B), gain=math.exp(B), L=math.exp(-B))
            if op == "log":
                if x.L is not None and x.L >= 0.05:
                    if not self.ok_err(E / x.L, 1):
                        continue
                    return self.unary("log", x, max(abs(math.log(x.L)), math.log(B)) + 0.1,
                                      gain=1.0 / x.L)
                y = self.abs_plus(x, 1.0)
                return self.unary("log", y, math.log(y.B + 1.0), L=None)
            if op == "sqrt":
                if x.exact and x.dtype != "f16":
                    a = self.unary("abs", x, B, inexact=False)
                    return self.unary("sqrt", a, math.sqrt(B), inexact=False)
                y = self.abs_plus(x, 0.25)
                return self.unary("sqrt", y, math.sqrt(y.B), gain=1.0, inexact=False, L=0.5)
            if op == "rsqrt":
                y = x if (x.L is not None and x.L >= 0.1) else self.abs_plus(x, 0.25)
                gain = 0.5 * y.L ** -1.5
                if not self.ok_err(gain * y.E, y.L ** -0.5):
                    continue
                return self.unary("rsqrt", y, y.L ** -0.5, gain=gain,
                                  L=1.0 / math.sqrt(y.B))
            if op == "reciprocal":
                y = x if (x.L is not None and x.L >= 0.1) else self.abs_plus(x, 0.5)
                gain = 1.0 / y.L ** 2
                if not self.ok_err(gain * y.E, 1.0 / y.L):
                    continue
                return self.unary("reciprocal", y, 1.0 / y.L, gain=gain, inexact=False,
                                  L=1.0 / y.B)
            if op in ("tanh", "sigmoid", "erf", "sin", "cos"):
                if B > 100:
                    continue
                gain = 1.13 if op == "erf" else 1.0
                L = None
                if op == "sigmoid" and B < 10:
                    L = 1.0 / (1.0 + math.exp(B))
                return self.unary(op, x, 1.0, gain=gain, L=L)
            if op in ("gelu", "gelu_tanh", "silu"):
                return self.unary(op, x, B, gain=1.13)
            if op in ("floor", "ceil", "round", "sign"):
                if not x.exact or x.dtype == "f16":
                    continue
                y = x
                if op != "sign" and B <= 4:  # spread values over several integers
                    y = self.binary_raw("mul", x, "4.0", 4 * B, 0.0)
                return self.unary(op, y, 1.0 if op == "sign" else y.B + 1, inexact=False)
            if op == "clip":
                lo = r.choice([-0.5, -1.0, 0.0, -0.25])
                hi = r.choice([0.5, 0.75, 1.0, 2.0])
                attrs = r.choice(["lo=%s, hi=%s" % (lo, hi), "lo=%s" % lo, "hi=%s" % hi])
                return self.emit("clip", [x], attrs, shape=x.shape, dtype=x.dtype,
                                 B=B, E=self.f16_err(x, E))
            if op == "scale":
                if B <= 2:  # widen: tails of exp, tanh, sigmoid, erf, sin, ...
                    if E > 0 or x.dtype == "f16":
                        continue
                    k = r.choice([4.0, 8.0, 16.0])
                    return self.binary_raw("mul", x, fmt_float(k), B * k, 0.0)
                k = 2.0 ** -math.ceil(math.log2(B))  # exact: a power of two
                return self.binary_raw("mul", x, fmt_float(k), B * k, E * k)
        return self.unary("tanh", x, 1.0)

    def operand_for(self, x, allow_new=True):
        """A second operand for a binary op with x: a literal, an existing value whose shape
        broadcasts with x's (a diamond), or a new input/param of a broadcasting shape."""
        r = self.r
        c = r.random()
        if c < 0.2:
            return None  # a literal
        if c < 0.45:
            cands = [v for v in self.values if v is not x and v.dtype == x.dtype
                     and bcast(x.shape, v.shape) == x.shape]
            if cands:
                return r.choice(cands)
        if not allow_new:
            return None
        return self.new_operand(x.shape, x.dtype)

    def new_operand(self, shape, dtype):
        r = self.r
        rank = len(shape)
        opts = [shape]
        if rank >= 1:
            opts += [shape[-1:], (1,) * (rank - 1) + shape[-1:], ()]
        if rank >= 2:
            opts += [shape[:-1] + (1,), shape[-2:]]
        if rank >= 3:
            opts += [(shape[0], 1, 1), (shape[0], 1, shape[2]), (1,) + shape[1:]]
        s = r.choice(opts)
        # a shape with a symbol must be an input; constant shapes are params (weights)
        kind = "input" if any(isinstance(d, str) for d in s) else r.choice(["param", "input"])
        return self.declare(kind, s, dtype)

    def rand_binary(self, x):
        r = self.r
        dt = x.dtype
        for _ in range(10):
            op = r.choice(["add", "sub", "mul", "div", "pow", "max", "min", "add", "mul"])
            y = self.operand_for(x)
            shp = x.shape if y is None else bcast(x.shape, y.shape)
            if shp is None:
                continue
            if op in ("add", "sub"):
                if y is None:
                    lv = r.choice([1.0, 0.5, -0.25, 3.0])
                    return self.binary_raw(op, x, self.lit(lv, dt), x.B + abs(lv), x.E)
                a, b = (x, y) if r.random() < 0.8 else (y, x)
                return self.binary_raw(op, a, b, x.B + y.B, x.E + y.E, shape=shp)
            if op == "mul":
                if y is None:
                    lv = r.choice([0.5, 2.0, -1.5, 0.1, 3.0])
                    return self.binary_raw("mul", x, self.lit(lv, dt), x.B * abs(lv),
                                           x.E * abs(lv))
                E = x.E * y.B + y.E * x.B
                if not self.ok_err(E, x.B * y.B):
                    continue
                return self.binary_raw("mul", x, y, x.B * y.B, E, shape=shp)
            if op in ("max", "min"):
                if y is None:
                    lv = r.choice([0.0, -0.5, 0.25])
                    return self.binary_raw(op, x, self.lit(lv, dt), max(x.B, abs(lv)), x.E)
                a, b = (x, y) if r.random() < 0.7 else (y, x)
                return self.binary_raw(op, a, b, max(x.B, y.B), max(x.E, y.E), shape=shp)
            if op == "div":
                if y is None:
                    lv = r.choice([3.0, -0.7, 0.5, 7.0])
                    return self.binary_raw("div", x, self.lit(lv, dt), x.B / abs(lv),
                                           x.E / abs(lv))
                d = y if (y.L is not None and y.L >= 0.1) else self.abs_plus(y, 0.5)
                E = x.E / d.L + x.B / d.L ** 2 * d.E
                if not self.ok_err(E, x.B / d.L):
                    continue
                if r.random() < 0.8:
                    return self.binary_raw("div", x, d, x.B / d.L, E, shape=shp)
                # the other way round: a bounded numerator over x made safe
                dx = self.abs_plus(x, 0.5)
                E = y.E / dx.L + y.B / dx.L ** 2 * dx.E
                if not self.ok_err(E, y.B / dx.L):
                    continue
                return self.binary_raw("div", y, dx, y.B / dx.L, E, shape=shp)
            if op == "pow":
                if x.B > 4:
                    continue
                base = x if (x.L is not None and x.L >= 0.1) else self.abs_plus(x, 0.5)
                bmax, bmin = base.B, base.L
                if y is None or not y.exact or y.B > 1.0:
                    e = r.choice([2.0, 3.0, 0.5, -1.0, 1.5, -0.5])
                    B = max(bmax ** e, bmin ** e)
                    gain = abs(e) * max(bmax ** (e - 1), bmin ** (e - 1))
                    E = gain * base.E + self.round_err(dt, B)
                    if not self.ok_err(E, B):
                        continue
                    return self.binary_raw("pow", base, self.lit(e, dt), B, E)
                B = max(bmax, 1.0 / bmin)
                gain = max(bmax, 1.0 / bmin) ** 2
                E = gain * base.E + self.round_err(dt, B)
                if not self.ok_err(E, B):
                    continue
                return self.binary_raw("pow", base, y, B, E, shape=bcast(base.shape, y.shape))
        return self.binary_raw("add", x, self.lit(1.0, dt), x.B + 1, x.E)

    def leaky_select(self, x):
        """select(cmp(x, c), x, other): the comparison sees an exact value only."""
        r = self.r
        if not x.exact:
            return None
        cmp = r.choice(["gt", "ge", "lt", "le", "eq", "ne"])
        c = self.emit(cmp, [x, self.lit(r.choice([0.0, 0.25, -0.5]), x.dtype)],
                      shape=x.shape, dtype="bool", B=1, pool=False)
        if r.random() < 0.5:
            other = self.binary_raw("mul", x, self.lit(0.1, x.dtype), x.B * 0.1, 0.0)
        else:
            other = self.operand_for(x) or x
            if bcast(x.shape, other.shape) != x.shape:
                other = x
        if r.random() < 0.3:
            c2 = self.emit("not", [c], shape=c.shape, dtype="bool", pool=False)
            c = c2
        if r.random() < 0.2:
            lit = self.lit(0.0, x.dtype)
            return self.emit("select", [c, x, lit], shape=x.shape, dtype=x.dtype, B=x.B, E=0)
        return self.emit("select", [c, x, other], shape=bcast(x.shape, other.shape),
                         dtype=x.dtype, B=max(x.B, other.B), E=max(x.E, other.E))

    def cast_round_trip(self, x):
        """cast(x*8, to=i32) ... back to f32: exact values only."""
        if not x.exact or x.dtype != "f32" or x.B > 1000:
            return None
        # the narrow dtypes saturate (|x * 8| up to 8000), wrap at + 3, convert back exactly
        it = self.r.choice(["i32", "i64", "i32", "i64", "i8", "i16", "u8", "u16", "u32"])
        s = self.binary_raw("mul", x, "8.0", 8 * x.B, 0.0)
        i = self.emit("cast", [s], "to=" + it, shape=x.shape, dtype=it, B=8 * x.B, pool=False)
        if self.r.random() < 0.5:
            i = self.emit("add", [i, "3"], shape=i.shape, dtype=it, B=i.B + 3, pool=False)
        return self.emit("cast", [i], "to=f32", shape=x.shape, dtype="f32", B=i.B, E=0.0)

    def elem_step(self, x):
        c = self.r.random()
        if c < 0.45:
            return self.rand_unary(x)
        if c < 0.9 or x.dtype == "f16":
            return self.rand_binary(x)
        if c < 0.96:
            return self.leaky_select(x) or self.rand_unary(x)
        return self.cast_round_trip(x) or self.rand_unary(x)

    def chain(self, x, lo, hi):
        for _ in range(self.r.randint(lo, hi)):
            x = self.elem_step(x)
        return x

    # ---- reductions and normalizations -----------------------------------------------

    def reduce(self, x, axes=None, keepdims=None, op=None):
        r = self.r
        rank = len(x.shape)
        if rank == 0:
            return x
        if axes is None:
            c = r.random()
            if c < 0.6 or rank == 1:
                axes = [-1]
            elif c < 0.85:
                axes = [r.randrange(rank - 1)]
            else:
                axes = sorted(r.sample(range(rank), min(rank, 2)))
        keepdims = r.randint(0, 1) if keepdims is None else keepdims
        op = op or r.choice(["reduce_sum", "reduce_mean", "reduce_max", "reduce_min",
                             "reduce_mean", "reduce_sum"])
        norm = [a % rank for a in axes]
        R = 1
        for a in norm:
            d = x.shape[a]
            R *= d if isinstance(d, int) else 1000  # a symbol: the largest value it takes
        if keepdims:
            shape = tuple(1 if i in norm else d for i, d in enumerate(x.shape))
        else:
            shape = tuple(d for i, d in enumerate(x.shape) if i not in norm)
        rnd = self.eps(x.dtype) * x.B * R * math.sqrt(R) / 2
        if op == "reduce_sum":
            B, E = x.B * R, x.E * R + rnd
        elif op == "reduce_mean":
            B, E = x.B, x.E + rnd / R
        else:
            B, E = x.B, x.E
        if x.dtype == "f16":
            E += self.eps("f16") * max(B, 1.0) * 4
        attrs = "axes=[%s]" % ", ".join(str(a) for a in axes)
        if keepdims or r.random() < 0.5:
            attrs += ", keepdims=%d" % keepdims
        return self.emit(op, [x], attrs, shape=shape, dtype=x.dtype, B=B, E=E), norm, keepdims

    def reduce_back(self, x):
        """A reduction, then its value broadcast back against x (x - mean(x))."""
        r = self.r
        red, norm, keep = self.reduce(x)
        if not keep:
            if norm == [len(x.shape) - 1] and r.random() < 0.7:
                red = self.emit("unsqueeze", [red], "axes=[-1]",
                                shape=red.shape + (1,), dtype=red.dtype, B=red.B, E=red.E)
            elif r.random() < 0.5:
                return red  # the reduced value itself goes on
            else:
                shape = tuple(1 if i in norm else d for i, d in enumerate(x.shape))
                red = self.emit("reshape", [red], "shape=[%s]" % shape_text(shape),
                                shape=shape, dtype=red.dtype, B=red.B, E=red.E)
        op = r.choice(["sub", "sub", "mul", "div", "add"])
        if op == "div":
            d = self.abs_plus(red, 1.0)
            E = x.E + x.B * d.E
            return self.binary_raw("div", x, d, x.B, E, shape=x.shape)
        B = x.B * red.B if op == "mul" else x.B + red.B
        E = (x.E * red.B + red.E * x.B) if op == "mul" else x.E + red.E
        if not self.ok_err(E, B):
            return self.binary_raw("sub", x, red, x.B + red.B, x.E + red.E, shape=x.shape)
        return self.binary_raw(op, x, red, B, E, shape=x.shape)

    def row_len(self, x, axis):
        d = x.shape[axis]
        return d if isinstance(d, int) else 1000

    def normalize(self, x):
        r = self.r
        rank = len(x.shape)
        if rank == 0:
            return self.rand_unary(x)
        op = r.choice(["softmax", "softmax", "log_softmax", "layernorm", "rmsnorm"])
        if op in ("softmax", "log_softmax"):
            axis = -1
            if rank >= 2 and r.random() < 0.3:
                axis = r.randrange(rank - 1)  # the first axis or a middle one
            R = self.row_len(x, axis)
            attrs = "" if axis == -1 and r.random() < 0.5 else "axis=%d" % axis
            rnd = ULPS * self.eps(x.dtype) * (1 + x.B)
            if op == "softmax":
                return self.emit(op, [x], attrs, shape=x.shape, dtype=x.dtype, B=1.0,
                                 E=x.E + rnd)
            B = 2 * x.B + math.log(R) + 1
            return self.emit(op, [x], attrs, shape=x.shape, dtype=x.dtype, B=B,
                             E=2 * x.E + rnd * B)
        H = x.shape[-1]
        R = self.row_len(x, -1)
        gain = 10.0  # 1 / (the smallest row deviation we expect)
        rnd = self.eps(x.dtype) * x.B * math.sqrt(R) * 4
        E = gain * (x.E + rnd)
        g = self.declare("param", (H,), x.dtype, prefix="g")
        if op == "layernorm":
            b = self.declare("param", (H,), x.dtype, prefix="b")
            attrs = r.choice(["", "eps=1e-5", "axis=-1"])
            B = 2 + math.sqrt(R)
            return self.emit(op, [x, g, b], attrs, shape=x.shape, dtype=x.dtype, B=B, E=E)
        attrs = r.choice(["", "eps=1e-6", "eps=1e-5"])
        return self.emit(op, [x, g], attrs, shape=x.shape, dtype=x.dtype,
                         B=math.sqrt(R), E=E)

    # ---- matmul ------------------------------------------------------------------------

    def matmul(self, x, M=None, weight=True):
        """x @ w (w a [K, M] param, or [M, K] with transpose_b=1), or a batched product
        with a second input sharing x's batch dims."""
        r = self.r
        K = x.shape[-1]
        M = M or r.choice([1, 3, 16, 17, 64, 100])
        tb = r.random() < 0.25
        if weight:
            w = self.declare("param", (M, K) if tb else (K, M), x.dtype, prefix="w")
        else:
            w = self.declare("input", x.shape[:-2] + ((M, K) if tb else (K, M)), x.dtype,
                             prefix="y")
        self.matmuls.append((x.shape[:-1], K, M))
        Kn = K if isinstance(K, int) else 1000
        B = x.B * w.B * Kn
        typ = x.B * w.B * math.sqrt(Kn)
        E = Kn * (x.E * w.B) + self.eps(x.dtype) * typ * Kn
        if x.dtype == "f16":
            E += self.eps("f16") * max(typ, 1.0) * 4
        y = self.emit("matmul", [x, w], "transpose_b=1" if tb else "",
                      shape=x.shape[:-1] + (M,), dtype=x.dtype, B=B, E=E)
        y.B = max(3 * typ, 1.0)  # for the guards: typical magnitude x 3, not the worst case
        return y

    def epilogue(self, h):
        r = self.r
        if r.random() < 0.8:
            b = self.declare("param", h.shape[-1:], h.dtype, prefix="b")
            h = self.binary_raw("add", h, b, h.B + 1, h.E, shape=h.shape)
        act = r.choice(["relu", "gelu", "gelu_tanh", "silu", "tanh", "sigmoid", None])
        if act:
            B = 1.0 if act in ("tanh", "sigmoid") else h.B
            h = self.unary(act, h, B, gain=1.13, inexact=act != "relu")
        if r.random() < 0.3:
            h = self.chain(h, 1, 2)
        return h

    # ---- layout views ------------------------------------------------------------------

    def view(self, x):
        """One layout op; None if none fits x."""
        r = self.r
        rank = len(x.shape)
        kw = dict(dtype=x.dtype, B=x.B, E=x.E, L=x.L)
        for _ in range(6):
            op = r.choice(["transpose", "reshape", "slice", "unsqueeze", "broadcast_to",
                           "concat", "gather"])
            if op == "transpose" and rank >= 2:
                perm = list(range(rank))
                while perm == list(range(rank)):
                    r.shuffle(perm)
                attrs = "perm=[%s]" % ", ".join(map(str, perm))
                if rank == 2 and r.random() < 0.3:
                    attrs = ""
                return self.emit("transpose", [x], attrs,
                                 shape=tuple(x.shape[p] for p in perm), **kw)
            if op == "reshape" and rank >= 1:
                H = x.shape[-1]
                if rank == 2 and isinstance(H, int) and H % 2 == 0 and H > 2:
                    a = r.choice([d for d in (2, 4, 8) if H % d == 0])
                    shape = (x.shape[0], a, H // a)
                    spec = [dim_text(shape[0]), str(a), str(H // a)]
                    if r.random() < 0.5:
                        spec[0] = "-1"
                    return self.emit("reshape", [x], "shape=[%s]" % ", ".join(spec),
                                     shape=shape, **kw)
                if rank == 3 and isinstance(x.shape[1], int) and isinstance(x.shape[2], int):
                    shape = (x.shape[0], x.shape[1] * x.shape[2])
                    return self.emit("reshape", [x], "shape=[%s, -1]" % dim_text(x.shape[0]),
                                     shape=shape, **kw)
                if rank == 3 and isinstance(x.shape[0], str) and isinstance(x.shape[1], str):
                    merged = "%s*%s" % (x.shape[0], x.shape[1])
                    return self.emit("reshape", [x], "shape=[-1, %s]" % dim_text(x.shape[2]),
                                     shape=(merged, x.shape[2]), **kw)
                continue
            if op == "slice" and rank >= 1:
                axes = [i for i, d in enumerate(x.shape) if isinstance(d, int) and d >= 3]
                if not axes:
                    continue
                a = r.choice(axes)
                d = x.shape[a]
                start = r.randint(0, d // 3)
                end = r.randint(start + 1, d)
                step = r.choice([1, 1, 2])
                attrs = "axes=[%d], starts=[%d], ends=[%d]" % (a, start, end)
                if step != 1:
                    attrs += ", steps=[%d]" % step
                if r.random() < 0.3:
                    attrs = attrs.replace("ends=[%d]" % end, "ends=[%d]" % (end - d)) \
                        if end < d else attrs
                n = len(range(start, end, step))
                shape = x.shape[:a] + (n,) + x.shape[a + 1:]
                return self.emit("slice", [x], attrs, shape=shape, **kw)
            if op == "unsqueeze":
                a = r.randint(0, rank)
                u = self.emit("unsqueeze", [x], "axes=[%d]" % a,
                              shape=x.shape[:a] + (1,) + x.shape[a:], **kw)
                if r.random() < 0.6:
                    return u
                u = int_unary(self, u) if u.dtype in INT_RANGE else self.rand_unary(u)
                return self.emit("squeeze", [u], r.choice(["axes=[%d]" % a, ""])
                                 if all(d != 1 for d in x.shape) else "axes=[%d]" % a,
                                 shape=x.shape, dtype=u.dtype, B=u.B, E=u.E, L=u.L)
            if op == "broadcast_to" and rank >= 1:
                ones = [i for i, d in enumerate(x.shape) if d == 1]
                if not ones:
                    # a bias or a column broadcast to x's shape explicitly, then added
                    small = r.choice([x.shape[-1:], x.shape[:-1] + (1,)] if rank >= 2
                                     else [()])
                    b = self.declare("param", small, x.dtype, prefix="b")
                    bt = self.emit("broadcast_to", [b], "shape=[%s]" % shape_text(x.shape),
                                   shape=x.shape, dtype=x.dtype, pool=False)
                    return self.binary_raw(r.choice(["add", "mul", "max"]), x, bt,
                                           x.B + 1, x.E)
                full = list(x.shape)
                for i in ones:
                    full[i] = r.choice([3, 16, 17])
                return self.emit("broadcast_to", [x], "shape=[%s]" % shape_text(full),
                                 shape=tuple(full), **kw)
            if op == "concat" and rank >= 1:
                a = r.randrange(rank) if r.random() < 0.4 else rank - 1
                d = x.shape[a]
                if not isinstance(d, int):
                    continue
                other = r.choice([None, x])
                extra = r.choice([1, 3, d])
                if other is None:
                    os_ = x.shape[:a] + (extra,) + x.shape[a + 1:]
                    other = self.declare("input" if any(isinstance(t, str) for t in os_)
                                         else "param", os_, x.dtype)
                else:
                    extra = d
                return self.emit("concat", [x, other], "axis=%d" % (a - rank if r.random() < 0.5 else a),
                                 shape=x.shape[:a] + (d + extra,) + x.shape[a + 1:],
                                 dtype=x.dtype, B=max(x.B, other.B), E=max(x.E, other.E))
            if op == "gather" and rank >= 1:
                axes = [i for i, d in enumerate(x.shape) if isinstance(d, int) and d >= 8]
                if not axes:
                    continue
                a = r.choice(axes)
                k = r.choice([1, 5, 16])
                # dvm fills integer inputs with values in [-8, 8): valid indices of a dim >= 8
                idx = self.declare("param", (k,), r.choice(["i32", "i64"]), prefix="idx")
                self.values.remove(idx)
                return self.emit("gather", [x, idx], "axis=%d" % a,
                                 shape=x.shape[:a] + (k,) + x.shape[a + 1:], **kw)
        return None

    # ---- whole graphs ------------------------------------------------------------------

    def main_shape(self):
        r = self.r
        H = r.choices(H_VALUES, H_WEIGHTS)[0]
        c = r.random()
        if c < 0.6:
            return ("N", H)
        if c < 0.8:
            return ("N", "S", H)
        if c < 0.9:
            return ("N", r.choice([2, 3, 4]), H)
        return ("N",)

    def text(self, outputs, tols, binds):
        lines = ["# generated by tests/random/gen_graphs.py"]
        lines += ["# bind: " + " ".join("%s=%d" % kv for kv in sorted(b.items())) for b in binds]
        lines += ["# tol: %s %.3g" % (o.name, t) for o, t in zip(outputs, tols)]
        lines += ["# data: %s %s" % kv for kv in self.data.items()]
        lines += ["graph " + self.name] + self.decls + self.body
        lines.append("output " + ", ".join(o.name for o in outputs))
        return "\n".join(lines) + "\n"

    def cost_ok(self, syms):
        for s in self.shapes:
            if numel(s, syms) > MAX_ELEMS:
                return False
        for batch, K, M in self.matmuls:
            if numel(batch, syms) * numel((K, M), syms) > MAX_MACS:
                return False
        return True

    def bindings(self):
        r = self.r
        want = 3 if r.random() < 0.1 else 2
        binds, seen = [], set()
        for _ in range(200):
            b = {s: r.choice(SYM_VALUES) for s in self.syms}
            key = tuple(sorted(b.items()))
            if key in seen or not self.cost_ok(b):
                continue
            seen.add(key)
            binds.append(b)
            if len(binds) == want:
                break
        if not binds:
            binds.append({s: 1 for s in self.syms})
        return binds


def family_elementwise(g):
    shape = g.main_shape()
    x = g.declare("input", shape)
    y = g.chain(x, 3, 9)
    outs = [y]
    if g.r.random() < 0.3:
        z = g.chain(g.r.choice(g.values), 1, 3)  # a second branch from any value
        if bcast(z.shape, y.shape) is not None and g.r.random() < 0.5:
            j = g.binary_raw("add", y, z, y.B + z.B, y.E + z.E)
            outs = [j]
        else:
            outs.append(z)
    return outs


def family_reduce(g):
    shape = g.main_shape()
    x = g.declare("input", shape)
    y = g.chain(x, 0, 3)
    y = g.reduce_back(y) if g.r.random() < 0.7 else g.reduce(y)[0]
    y = g.chain(y, 0, 3)
    if g.r.random() < 0.3 and len(y.shape) >= 1:
        y = g.reduce(y)[0]
    return [y]


def family_norm(g):
    shape = g.main_shape()
    x = g.declare("input", shape)
    y = g.chain(x, 0, 3)
    y = g.normalize(y)
    y = g.chain(y, 0, 2)
    outs = [y]
    if g.r.random() < 0.25:
        outs.append(g.normalize(y if g.r.random() < 0.5 else x))
    return outs


def family_matmul(g):
    r = g.r
    K = r.choice([1, 3, 16, 17, 64, 100, 256])
    c = r.random()
    if c < 0.6:
        x = g.declare("input", ("N", K))
    elif c < 0.8:
        x = g.declare("input", ("N", "S", K))
    else:
        x = g.declare("input", ("N", r.choice([2, 3]), K))
    if r.random() < 0.3:
        x = g.chain(x, 1, 2)
    batched = len(x.shape) == 3 and r.random() < 0.5
    h = g.matmul(x, weight=not batched)
    h = g.epilogue(h)
    outs = [h]
    c = r.random()
    if c < 0.25:
        h2 = g.matmul(h)
        outs = [g.epilogue(h2)] + ([h] if r.random() < 0.5 else [])
    elif c < 0.45:
        outs = [g.normalize(h)]
    elif c < 0.6:
        outs = [g.reduce(h)[0]]
    return outs


def family_attention(g):
    r = g.r
    D = r.choice([3, 8, 16, 17])
    q = g.declare("input", ("N", "S", D), prefix="q")
    k = g.declare("input", ("N", "S", D), prefix="k")
    v = g.declare("input", ("N", "S", D), prefix="v")
    g.matmuls.append((("N", "S"), D, "S"))
    s = g.emit("matmul", [q, k], "transpose_b=1", shape=("N", "S", "S"), B=3 * math.sqrt(D),
               E=D * g.eps("f32") * math.sqrt(D))
    s = g.binary_raw("mul", s, fmt_float(1.0 / math.sqrt(D)), 3.0, s.E / math.sqrt(D))
    p = g.emit("softmax", [s], "axis=-1", shape=s.shape, B=1.0, E=s.E + 8 * g.eps("f32"))
    g.matmuls.append((("N", "S"), "S", D))
    # p sums to 1 over S: the product is an average of v's rows
    o = g.emit("matmul", [p, v], "", shape=("N", "S", D), B=1.0, E=4 * p.E + 1e-6)
    return [o]


def family_views(g):
    shape = g.main_shape()
    x = g.declare("input", shape)
    y = g.chain(x, 0, 2)
    for _ in range(g.r.randint(1, 2)):
        v = g.view(y)
        if v is not None:
            y = g.chain(v, 0, 2)
    if g.r.random() < 0.4 and len(y.shape) >= 1:
        y = g.reduce(y)[0]
    return [y]


def family_mixed(g):
    """Everything, fewer of each: a chain with a reduction, a view and a normalization."""
    shape = g.main_shape()
    x = g.declare("input", shape)
    y = g.chain(x, 1, 3)
    steps = [lambda t: g.reduce_back(t), lambda t: g.view(t) or t, lambda t: g.normalize(t),
             lambda t: g.chain(t, 1, 3)]
    g.r.shuffle(steps)
    outs = []
    for st in steps[: g.r.randint(2, 4)]:
        y = st(y)
        if g.r.random() < 0.15:
            outs.append(y)
    if y not in outs:
        outs.append(y)
    return outs


INT_DTYPES = ["i32", "i64", "i8", "i16", "u8", "u16", "u32"]
INT_WEIGHTS = [2, 2, 3, 2, 3, 2, 3]


def int_lit(g):
    return str(g.r.choice(INT_LITS))


def int_operand(g, y, allow_new=True):
    """operand_for(y), or None (a literal) when its shape does not broadcast to y's (new
    operands have rank-3 shapes where y may have rank 4 after an unsqueeze)."""
    o = g.operand_for(y, allow_new)
    return o if o is not None and bcast(y.shape, o.shape) == y.shape else None


def int_unary(g, y):
    # floor ceil round are the identity on integers, and no kernel emits them (declined)
    op = g.r.choices(["neg", "abs", "relu", "sign", "floor", "ceil", "round"],
                     [3, 3, 2, 2, 0.3, 0.3, 0.3])[0]
    return g.emit(op, [y], shape=y.shape, dtype=y.dtype)


def int_binary(g, y):
    """add sub mul max min (wrapping at y's width), sometimes div or pow, against a
    literal (saturated into the dtype) or a value that broadcasts to y's shape."""
    r = g.r
    dt = y.dtype
    op = r.choices(["add", "sub", "mul", "max", "min", "div", "pow"], [4, 3, 4, 2, 2, 1, 1])[0]
    o = int_operand(g, y) if op != "pow" else None
    if op == "div":
        if o is not None:  # a divisor never 0: |o| + 1 (signed), max(o, 1) (unsigned)
            o = g.abs_plus(o, 1) if dt.startswith("i") else g.emit(
                "max", [o, "1"], shape=o.shape, dtype=dt, pool=False)
        arg = o if o is not None else str(r.choice([2, 3, 7, 100, 255]))
    elif op == "pow":
        arg = str(r.choice([0, 1, 2, 3, -1]))
    else:
        arg = o if o is not None else int_lit(g)
    args = [y, arg]
    if op in ("sub", "max", "min") and r.random() < 0.3:
        args.reverse()
    return g.emit(op, args, shape=y.shape, dtype=dt)


def int_clip(g, y):
    r = g.r
    cands = INT_LITS + [0, -5, 5, -100]
    if r.random() < 0.75:  # mostly bounds inside the range (else clip saturates them)
        dlo, dhi = INT_RANGE[y.dtype]
        cands = [v for v in cands if dlo <= v <= dhi]
    lo, hi = sorted(r.sample(cands, 2))
    if r.random() < 0.15:  # float bounds: truncated into the dtype
        lo, hi = lo - 0.5, hi + 0.5
    attrs = r.choice(["lo=%s, hi=%s" % (lo, hi), "lo=%s" % lo, "hi=%s" % hi])
    return g.emit("clip", [y], attrs, shape=y.shape, dtype=y.dtype)


def int_select(g, y):
    """select(compare(y, ...), y, other) (or the branches swapped); also gives the bool."""
    r = g.r
    dt = y.dtype
    o = int_operand(g, y, allow_new=r.random() < 0.5)
    rhs = o if o is not None else str(r.choice([0, 2, -1, 127, 128, 255, -129, 32768,
                                                65535, 2 ** 31, 2 ** 31 - 1]))
    cnd = g.emit(r.choice(["gt", "lt", "eq", "ne", "ge", "le"]), [y, rhs], shape=y.shape,
                 dtype="bool", pool=False)
    c = r.random()
    if c < 0.2:
        cnd = g.emit("not", [cnd], shape=y.shape, dtype="bool", pool=False)
    elif c < 0.4:
        c2 = g.emit(r.choice(["gt", "le"]), [y, int_lit(g)], shape=y.shape, dtype="bool",
                    pool=False)
        cnd = g.emit(r.choice(["and", "or"]), [cnd, c2], shape=y.shape, dtype="bool",
                     pool=False)
    c = r.random()
    if c < 0.4:
        other = g.emit("mul", [y, str(r.choice([3, -7, 1000, 65537]))], shape=y.shape,
                       dtype=dt, pool=False)
    elif c < 0.75:
        other = int_operand(g, y) or int_lit(g)
    else:
        other = int_lit(g)
    args = [cnd, y, other] if r.random() < 0.6 else [cnd, other, y]
    return g.emit("select", args, shape=y.shape, dtype=dt), cnd


def int_cast(g, y):
    """A cast to another integer dtype (wraps; the chain goes on in that dtype), through
    bool, or through f32 (exact ops only) and back (truncates and saturates)."""
    r = g.r
    c = r.random()
    if c < 0.45:
        t = r.choice([d for d in INT_DTYPES if d != y.dtype])
        return g.emit("cast", [y], "to=" + t, shape=y.shape, dtype=t)
    t = r.choice(INT_DTYPES)
    if c < 0.6:
        b = g.emit("cast", [y], "to=bool", shape=y.shape, dtype="bool", pool=False)
        if r.random() < 0.5:
            b = g.emit("not", [b], shape=y.shape, dtype="bool", pool=False)
        return g.emit("cast", [b], "to=" + t, shape=y.shape, dtype=t)
    f = g.emit("cast", [y], "to=f32", shape=y.shape, dtype="f32", pool=False)
    if r.random() < 0.6:  # one correctly rounded op: the same bits in every tier
        f = g.emit(r.choice(["mul", "mul", "add"]),
                   [f, r.choice(["0.5", "-1.5", "3.0", "1000.0", "0.001", "-0.75"])],
                   shape=y.shape, dtype="f32", pool=False)
    return g.emit("cast", [f], "to=" + t, shape=y.shape, dtype=t)


def int_from_float(g, y):
    """An f32 input of wide values (out of every range, fractions, inf, NaN) cast to y's
    dtype (saturating) and combined with y."""
    r = g.r
    opts = [y.shape]
    if y.shape:
        opts += [y.shape[-1:], ()]
    s = r.choice(opts)
    kind = "input" if any(isinstance(d, str) for d in s) else r.choice(["param", "input"])
    xf = g.declare(kind, s, "f32")
    g.values.remove(xf)
    g.data[xf.name] = "float"
    c = g.emit("cast", [xf], "to=" + y.dtype, shape=s, dtype=y.dtype, pool=False)
    args = [y, c] if r.random() < 0.7 else [c, y]
    return g.emit(r.choice(["add", "sub", "max", "min", "mul"]), args, shape=y.shape,
                  dtype=y.dtype)


def int_reduce(g, y):
    r = g.r
    op = r.choice(["reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "reduce_sum"])
    if r.random() < 0.5 or len(y.shape) < 2:
        return g.reduce(y, op=op)[0]
    red = g.reduce(y, op=op, keepdims=1)[0]  # broadcast back against y
    return g.emit(r.choice(["sub", "add", "mul", "max", "min"]), [y, red], shape=y.shape,
                  dtype=y.dtype)


def family_int(g):
    """Integer chains in i32, i64 and the narrow dtypes (native: in i32 / i64 registers,
    wrapped after every op) on wide data: every input and param (not gather indices) is
    marked `# data: NAME int` and gets values over its dtype's whole range and at its
    edges from run_random.py, so that sums, products, negations, casts and reductions
    overflow and wrap; f32 inputs of wide values cast to the dtype test saturation."""
    r = g.r
    g.wide = True
    dt = r.choices(INT_DTYPES, INT_WEIGHTS)[0]
    shape = g.main_shape()
    x = g.declare("input", shape, dt)
    y = x
    outs = []
    steps = [(lambda t: int_unary(g, t), 14), (lambda t: int_binary(g, t), 30),
             (lambda t: int_clip(g, t), 6), (lambda t: int_select(g, t), 10),
             (lambda t: int_cast(g, t), 13), (lambda t: int_from_float(g, t), 6),
             (lambda t: int_reduce(g, t), 8), (lambda t: g.view(t) or int_unary(g, t), 13)]
    for _ in range(r.randint(2, 8)):
        st = r.choices([f for f, _ in steps], [w for _, w in steps])[0]
        if not y.shape and st is steps[6][0]:
            continue
        y = st(y)
        if isinstance(y, tuple):
            y, cnd = y
            if r.random() < 0.15:
                outs.append(cnd)
        if r.random() < 0.1:
            outs.append(y)
    outs.append(y)
    c = r.random()
    if c < 0.15 and y.shape:
        keep = r.randint(0, 1)
        a = g.emit("argmax", [y], "axis=-1, keepdims=%d" % keep,
                   shape=y.shape[:-1] + ((1,) if keep else ()), dtype="i64")
        outs.append(a)
    elif c < 0.35:
        f = g.emit("cast", [y], "to=f32", shape=y.shape, dtype="f32", B=1e9)
        outs.append(g.emit("mul", [f, "0.5"], shape=f.shape, dtype="f32", B=1e9))
    return outs


def family_f16(g):
    shape = g.main_shape()
    x = g.declare("input", shape, "f16")
    y = x
    for _ in range(g.r.randint(2, 5)):
        y = g.rand_binary(y) if g.r.random() < 0.5 else g.rand_unary(y)
    return [y]


FAMILIES = [(family_elementwise, 27), (family_reduce, 15), (family_norm, 12),
            (family_matmul, 14), (family_attention, 3), (family_views, 10),
            (family_mixed, 10), (family_int, 8), (family_f16, 1)]


def graph_text(seed, index):
    """The text of graph `index` of base seed `seed`."""
    rng = random.Random("%d:%d" % (seed, index))
    fam = rng.choices([f for f, _ in FAMILIES], [w for _, w in FAMILIES])[0]
    g = Gen(rng, "r%d_%s" % (index, fam.__name__[len("family_"):]))
    outs = fam(g)
    # outputs: distinct values, never a bare input/param
    seen, uniq = set(), []
    for o in outs:
        if o.name in seen:
            continue
        if o.name in g.declared:
            o = g.unary("neg", o, o.B, inexact=False)
        seen.add(o.name)
        uniq.append(o)
    tols = [2 * o.E for o in uniq]
    return g.text(uniq, tols, g.bindings())


def generate(seed, count):
    return [graph_text(seed, i) for i in range(count)]


def default_seed():
    return int(os.environ.get("DVM_RANDOM_SEED", BASE_SEED))


def main(argv):
    seed, count, index, out = default_seed(), 200, None, None
    it = iter(argv[1:])
    for a in it:
        if a == "--seed":
            seed = int(next(it))
        elif a == "--count":
            count = int(next(it))
        elif a == "--index":
            index = int(next(it))
        elif a == "--out":
            out = next(it)
        else:
            print(__doc__, file=sys.stderr)
            return 2
    if index is not None:
        sys.stdout.write(graph_text(seed, index))
        return 0
    texts = generate(seed, count)
    if out:
        os.makedirs(out, exist_ok=True)
        for i, t in enumerate(texts):
            with open(os.path.join(out, "g%03d.dvm" % i), "w") as f:
                f.write(t)
    else:
        sys.stdout.write("\n".join(texts))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
