#!/usr/bin/env python3
"""Differential test of dvm's reference executor (`--tier ref`) against NumPy.

Usage: ref_vs_numpy.py DVM_BINARY SCRATCH_DIR

Every operator of docs/format.md except `call` is run through `dvm run ... --tier ref` on several
cases (symbol values 1 and odd sizes, broadcasting against constant 1s, negative axes,
keepdims, several dtypes, literals, multi-op graphs) and compared with NumPy computed in the
dtype semantics of docs/ops.md: every op in double (integers in int64), each produced value
rounded to its dtype. Multi-op graphs round after every op like the reference does.

Each case leaves its graph and .npy files in SCRATCH_DIR, so a failing command can be rerun
as printed. Every op name in ir/ops.def (except input/param/literal/call) must be used by
at least one case, so the test keeps up as ops are added.

Tolerances: f32 rtol=1e-5 atol=1e-6; f16 rtol=1e-3 atol=1e-4; integers and bool exactly;
output dtype and shape always exactly.
"""
import math
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OPS_DEF = os.path.normpath(os.path.join(HERE, "..", "..", "ir", "ops.def"))
NOT_TESTED_HERE = {"input", "param", "literal", "call"}

NP = {"f32": np.float32, "f16": np.float16, "i32": np.int32, "i64": np.int64,
      "bool": np.bool_}
# The tier under test: ref by default; DVM_ORACLE_TIER=llvm, vm (or auto) runs the same
# cases through the fused native, bytecode or tiered paths, whose f32 arithmetic and libmvec transcendentals
# (a few ulp) differ from the reference's double-then-round by more than 1e-5 relative.
TIER = os.environ.get("DVM_ORACLE_TIER", "ref")
TOL = {"f32": (1e-5, 1e-6), "f16": (1e-3, 1e-4)} if TIER == "ref" else \
    {"f32": (1e-4, 1e-5), "f16": (2e-3, 2e-4)}

rng = np.random.default_rng(20240611)


# ---- input generators ----------------------------------------------------------------------

def fl(shape, lo=-2.0, hi=2.0, dt="f32"):
    """Uniform floats in [lo, hi) of dtype dt."""
    return np.asarray(rng.uniform(lo, hi, size=shape)).astype(NP[dt])


def nz(shape, lo=0.2, hi=3.0, dt="f32"):
    """Floats bounded away from zero, random sign."""
    mag = rng.uniform(lo, hi, size=shape)
    sgn = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    return np.asarray(mag * sgn).astype(NP[dt])


def it(shape, lo=-20, hi=20, dt="i32"):
    """Integers in [lo, hi]."""
    return np.asarray(rng.integers(lo, hi + 1, size=shape)).astype(NP[dt])


def bo(shape):
    return np.asarray(rng.random(shape) < 0.5)


def with_specials(arr, specials):
    """arr with its first elements (C order) replaced by specials."""
    out = arr.copy().reshape(-1)
    out[: len(specials)] = np.asarray(specials, dtype=np.float64).astype(arr.dtype)
    return out.reshape(arr.shape)


# ---- reference helpers ---------------------------------------------------------------------

def d(a):
    """float64 view of an array (the reference computes floats in double)."""
    return np.asarray(a, dtype=np.float64)


def to(dt, a):
    """Round a double/int64 result to dtype dt."""
    with np.errstate(all="ignore"):
        return np.asarray(a).astype(NP[dt])


def r32(a):
    """Round to f32 and back to double: what one f32-valued op produces."""
    with np.errstate(all="ignore"):
        return np.asarray(a, dtype=np.float64).astype(np.float32).astype(np.float64)


_verf = np.vectorize(math.erf, otypes=[np.float64])


def erf(x):
    x = d(x)
    return _verf(x) if x.size else x


def sigmoid(x):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-d(x)))


def gelu(x):
    x = d(x)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
    x = d(x)
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def softmax(x, axis=-1):
    x = d(x)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    x = d(x)
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def layernorm(x, g, b, axis=-1, eps=1e-5):
    x = d(x)
    axes = tuple(range(axis % x.ndim, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * d(g) + d(b)


def rmsnorm(x, g, eps=1e-6):
    x = d(x)
    return x / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps) * d(g)


def int_div(a, b):
    """Integer division truncating toward zero (C, ONNX)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -q, q)


def _ipow(base, e):
    base, e = int(base), int(e)
    if e >= 0:
        return base ** e
    if base == 1:
        return 1
    if base == -1:
        return 1 if e % 2 == 0 else -1
    return 0


def int_pow(a, b):
    a, b = np.broadcast_arrays(np.asarray(a, np.int64), np.asarray(b, np.int64))
    out = np.array([_ipow(x, y) for x, y in zip(a.ravel(), b.ravel())], dtype=np.int64)
    return out.reshape(a.shape)


def sat_cast(x, dt):
    """cast float -> integer: truncate toward zero, saturate, NaN gives 0."""
    info = np.iinfo(NP[dt])
    vals = []
    for v in np.asarray(x, dtype=np.float64).ravel():
        if math.isnan(v):
            vals.append(0)
        elif math.isinf(v):
            vals.append(info.max if v > 0 else info.min)
        else:
            vals.append(min(max(math.trunc(v), int(info.min)), int(info.max)))
    return np.array(vals, dtype=NP[dt]).reshape(np.shape(x))


def int_wrap(x, dt):
    """cast integer -> narrower integer: wrap, as NumPy's astype (docs/ops.md)."""
    return np.asarray(x, np.int64).astype(NP[dt])


def bf16_round(x):
    """f32 -> bf16 (round to nearest even) -> f32."""
    x = np.asarray(x, dtype=np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).astype(np.uint32).view(np.float32)
    return np.where(np.isnan(x), x, r).astype(np.float32)


# ---- cases ---------------------------------------------------------------------------------

class Case:
    def __init__(self, name, decls, body, outs, syms=None, tol=None):
        self.name = name
        self.decls = decls          # [(kind, name, dtype, dims, array or None)]
        self.body = [ln.strip() for ln in body.strip().splitlines() if ln.strip()]
        self.outs = outs            # [(name, expected array)]
        self.syms = syms or {}      # -s bindings
        self.tol = tol              # (rtol, atol) override for float outputs

    def graph_text(self):
        lines = ["# generated by tests/oracle/ref_vs_numpy.py", "graph " + self.name]
        for kind, name, dt, dims, _ in self.decls:
            lines.append("%s %s: %s[%s]" % (kind, name, dt, dims))
        lines += self.body
        lines.append("output " + ", ".join(n for n, _ in self.outs))
        return "\n".join(lines) + "\n"

    def ops(self):
        ops = set()
        for ln in self.body:
            m = re.match(r"^[A-Za-z_][A-Za-z0-9_.]*\s*=\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(", ln)
            if m:
                ops.add(m.group(1))
        return ops


CASES = []
NAMES = set()


def I(name, dt, dims, arr):
    return ("input", name, dt, dims, arr)


def P(name, dt, dims, arr):
    return ("param", name, dt, dims, arr)


def check_dims(case_name, decls):
    """Catch test bugs: declared dims must match the generated arrays consistently."""
    syms = {}
    for _, name, dt, dims, arr in decls:
        if arr is None:
            continue
        toks = [t.strip() for t in dims.split(",")] if dims.strip() else []
        assert arr.dtype == NP[dt], (case_name, name, arr.dtype, dt)
        assert len(toks) == arr.ndim, (case_name, name, dims, arr.shape)
        for t, n in zip(toks, arr.shape):
            if t.isdigit():
                assert int(t) == n, (case_name, name, dims, arr.shape)
            elif re.fullmatch(r"[A-Za-z_]\w*", t):
                assert syms.setdefault(t, n) == n, (case_name, name, t, syms[t], n)


def case(name, decls, body, outs, syms=None, tol=None):
    assert name not in NAMES, name
    NAMES.add(name)
    check_dims(name, decls)
    CASES.append(Case(name, decls, body, outs, syms, tol))


# ---- unary ---------------------------------------------------------------------------------

UNARY_FLOAT = {
    # op: (reference in double, input generator for a shape and dtype)
    "exp": (lambda x: np.exp(d(x)), lambda s, dt: fl(s, -3, 3, dt)),
    "log": (lambda x: np.log(d(x)), lambda s, dt: fl(s, 0.01, 5, dt)),
    "sqrt": (lambda x: np.sqrt(d(x)), lambda s, dt: fl(s, 0.0, 5, dt)),
    "rsqrt": (lambda x: 1.0 / np.sqrt(d(x)), lambda s, dt: fl(s, 0.01, 5, dt)),
    "reciprocal": (lambda x: 1.0 / d(x), lambda s, dt: nz(s, 0.1, 3, dt)),
    "tanh": (lambda x: np.tanh(d(x)), lambda s, dt: fl(s, -4, 4, dt)),
    "sigmoid": (sigmoid, lambda s, dt: fl(s, -8, 8, dt)),
    "gelu": (gelu, lambda s, dt: fl(s, -4, 4, dt)),
    "gelu_tanh": (gelu_tanh, lambda s, dt: fl(s, -4, 4, dt)),
    "silu": (lambda x: d(x) * sigmoid(x), lambda s, dt: fl(s, -6, 6, dt)),
    "erf": (erf, lambda s, dt: fl(s, -3, 3, dt)),
    "sin": (lambda x: np.sin(d(x)), lambda s, dt: fl(s, -6, 6, dt)),
    "cos": (lambda x: np.cos(d(x)), lambda s, dt: fl(s, -6, 6, dt)),
}

UNARY_SHAPES = [  # (tag, dims, shape)
    ("n1", "N, 65", (1, 65)),
    ("n17", "N, 7", (17, 7)),
    ("3d", "N, M, 5", (3, 2, 5)),
]

for op, (ref, gen) in UNARY_FLOAT.items():
    for tag, dims, shape in UNARY_SHAPES:
        x = gen(shape, "f32")
        case("%s_f32_%s" % (op, tag), [I("x", "f32", dims, x)], "y = %s(x)" % op,
             [("y", to("f32", ref(x)))])
for op in ["exp", "sqrt", "tanh", "sigmoid", "gelu", "silu"]:
    ref, gen = UNARY_FLOAT[op]
    x = gen((3, 33), "f16")
    case("%s_f16" % op, [I("x", "f16", "N, 33", x)], "y = %s(x)" % op,
         [("y", to("f16", ref(x)))])
# wide ranges: overflow to inf, underflow, saturation
x = fl((7, 9), -100, 100)
case("exp_f32_wide", [I("x", "f32", "N, 9", x)], "y = exp(x)",
     [("y", to("f32", np.exp(d(x))))])
case("sigmoid_f32_wide", [I("x", "f32", "N, 9", x)], "y = sigmoid(x)",
     [("y", to("f32", sigmoid(x)))])

ROUND_SPECIALS = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.0, -0.0, 3.0, -3.0, 1.25, -1.75]
UNARY_NUM = {
    "neg": lambda x: -x,
    "abs": np.abs,
    "relu": lambda x: np.maximum(x, 0),
    "floor": np.floor,
    "ceil": np.ceil,
    "round": np.round,      # half to even, identity on integers
    "sign": np.sign,
}
for op, ref in UNARY_NUM.items():
    x = with_specials(fl((3, 65), -4, 4), ROUND_SPECIALS)
    case("%s_f32" % op, [I("x", "f32", "N, 65", x)], "y = %s(x)" % op,
         [("y", to("f32", ref(d(x))))])
    x = it((7, 5), -20, 20, "i32")
    exp = ref(x.astype(np.int64)) if op not in ("floor", "ceil", "round") else x
    case("%s_i32" % op, [I("x", "i32", "N, 5", x)], "y = %s(x)" % op,
         [("y", to("i32", exp))])
    x = it((17,), -1000, 1000, "i64")
    exp = ref(x) if op not in ("floor", "ceil", "round") else x
    case("%s_i64" % op, [I("x", "i64", "N", x)], "y = %s(x)" % op,
         [("y", to("i64", exp))])
for op in ["neg", "abs", "floor", "round"]:
    x = with_specials(fl((1, 9), -4, 4, "f16"), ROUND_SPECIALS[:6])
    case("%s_f16" % op, [I("x", "f16", "N, 9", x)], "y = %s(x)" % op,
         [("y", to("f16", UNARY_NUM[op](d(x))))])

x = bo((3, 9))
case("not_bool_2d", [I("x", "bool", "N, 9", x)], "y = not(x)", [("y", ~x)])
x = bo((1,))
case("not_bool_n1", [I("x", "bool", "N", x)], "y = not(x)", [("y", ~x)])


# ---- binary --------------------------------------------------------------------------------

def arith_ref(op, a, b, dt):
    if dt in ("f32", "f16"):
        a, b = d(a), d(b)
        with np.errstate(all="ignore"):
            r = {"add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b,
                 "div": lambda: a / b, "pow": lambda: np.power(a, b),
                 "max": lambda: np.maximum(a, b), "min": lambda: np.minimum(a, b)}[op]()
        return to(dt, r)
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    r = {"add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b,
         "div": lambda: int_div(a, b), "pow": lambda: int_pow(a, b),
         "max": lambda: np.maximum(a, b), "min": lambda: np.minimum(a, b)}[op]()
    return to(dt, r)


def gen_ab(op, dt, sa, sb):
    if dt in ("f32", "f16"):
        if op == "pow":
            return fl(sa, 0.1, 3, dt), fl(sb, -2, 2.5, dt)
        a = fl(sa, -3, 3, dt)
        b = nz(sb, 0.2, 3, dt) if op == "div" else fl(sb, -3, 3, dt)
        return a, b
    if op == "pow":
        return it(sa, -4, 4, dt), it(sb, 0, 5, dt)
    a = it(sa, -20, 20, dt)
    b = it(sb, 1, 7, dt) * np.where(rng.random(sb) < 0.5, -1, 1).astype(NP[dt]) \
        if op == "div" else it(sb, -20, 20, dt)
    return a, b


ARITH = ["add", "sub", "mul", "div", "pow", "max", "min"]
BIN_SHAPES = [  # (tag, dtype, dims a, shape a, dims b, shape b)
    ("same_f32", "f32", "N, H", (7, 5), "N, H", (7, 5)),
    ("row_f32", "f32", "N, H", (3, 65), "H", (65,)),
    ("bcast3d_f32", "f32", "N, 1, H", (3, 1, 5), "1, M, H", (1, 4, 5)),
    ("row_i32", "i32", "N, H", (17, 3), "H", (3,)),
    ("same_i64_n1", "i64", "N", (1,), "N", (1,)),
]
for op in ARITH:
    for tag, dt, da, sa, db, sb in BIN_SHAPES:
        a, b = gen_ab(op, dt, sa, sb)
        case("%s_%s" % (op, tag), [I("a", dt, da, a), I("b", dt, db, b)],
             "y = %s(a, b)" % op, [("y", arith_ref(op, a, b, dt))])
    # literal on the right, f32
    lit = {"pow": "2.0"}.get(op, "0.5")
    x = fl((3, 7), -3, 3)
    case("%s_lit_right_f32" % op, [I("x", "f32", "N, 7", x)], "y = %s(x, %s)" % (op, lit),
         [("y", arith_ref(op, x, np.float32(float(lit)), "f32"))])
    # literal on the left, f32
    lit = {"pow": "2.0", "max": "0.0", "min": "0.0"}.get(op, "1.5")
    x = nz((1, 9), 0.2, 3) if op in ("div", "pow") else fl((1, 9), -3, 3)
    case("%s_lit_left_f32" % op, [I("x", "f32", "N, 9", x)], "y = %s(%s, x)" % (op, lit),
         [("y", arith_ref(op, np.float32(float(lit)), x, "f32"))])
    # integer literal, i32 (div: truncation toward zero of negatives; pow: x**3)
    x = it((7, 3), -4, 4, "i32") if op == "pow" else it((7, 3), -20, 20, "i32")
    lit = "3" if op in ("pow", "div") else "-3"
    case("%s_lit_i32" % op, [I("x", "i32", "N, 3", x)], "y = %s(x, %s)" % (op, lit),
         [("y", arith_ref(op, x, np.int32(int(lit)), "i32"))])
for op in ["add", "mul", "div"]:
    a, b = gen_ab(op, "f16", (3, 33), (33,))
    case("%s_f16" % op, [I("a", "f16", "N, 33", a), I("b", "f16", "33", b)],
         "y = %s(a, b)" % op, [("y", arith_ref(op, a, b, "f16"))])
# integer pow with negative exponents: 0 unless the base is 1 or -1
a = rng.choice(np.array([1, -1, 2, -3, 5], dtype=np.int64), size=(7, 4))
b = it((7, 4), -3, 3, "i64")
case("pow_i64_negexp", [I("a", "i64", "N, 4", a), I("b", "i64", "N, 4", b)],
     "y = pow(a, b)", [("y", arith_ref("pow", a, b, "i64"))])
# fmod: C's exact remainder, the dividend's sign; NaN for a zero divisor or an infinite
# dividend, the dividend for an infinite divisor (np.fmod)
for dt, shape in (("f32", (7, 6)), ("f16", (3, 33))):
    a = fl(shape, -30, 30, dt)
    b = nz(shape, 0.3, 4, dt) * np.where(rng.random(shape) < 0.5, -1, 1).astype(NP[dt])
    if dt == "f32":
        a[0, 0], b[0, 0], a[1, 1], b[2, 2] = 5.0, 0.0, np.inf, np.inf
    with np.errstate(all="ignore"):
        case("fmod_%s" % dt, [I("a", dt, "N, %d" % shape[1], a), I("b", dt, "N, %d" % shape[1], b)],
             "y = fmod(a, b)", [("y", to(dt, np.fmod(d(a), d(b))))])
# max/min propagate NaN
a = fl((7, 6), -3, 3)
b = fl((7, 6), -3, 3)
a[0, 1] = a[3, 2] = np.nan
b[0, 4] = b[3, 2] = np.nan
for op in ["max", "min"]:
    case("%s_nan_f32" % op, [I("a", "f32", "N, 6", a), I("b", "f32", "N, 6", b)],
         "y = %s(a, b)" % op, [("y", arith_ref(op, a, b, "f32"))])
# a scalar input and a scientific-notation literal
x = fl((7, 5))
s = np.asarray(rng.uniform(-2, 2)).astype(np.float32)
case("mul_scalar_input", [I("x", "f32", "N, 5", x), I("s", "f32", "", s)],
     "y = mul(x, s)", [("y", to("f32", d(x) * d(s)))])
case("add_lit_exponent", [I("x", "f32", "N, 5", x)], "y = add(x, 2.5e-1)",
     [("y", to("f32", d(x) + 0.25))])

CMP = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
       "gt": np.greater, "ge": np.greater_equal}
for op, ref in CMP.items():
    a = it((3, 5), -2, 2, "i32").astype(np.float32)
    b = it((5,), -2, 2, "i32").astype(np.float32)
    a[0, 0] = a[2, 3] = np.nan
    with np.errstate(invalid="ignore"):
        exp = ref(a, b)
    case("%s_row_f32_nan" % op, [I("a", "f32", "N, H", a), I("b", "f32", "H", b)],
         "y = %s(a, b)" % op, [("y", exp)])
    a = it((7, 1, 3), -2, 2, "i32")
    b = it((1, 2, 3), -2, 2, "i32")
    case("%s_bcast3d_i32" % op, [I("a", "i32", "N, 1, H", a), I("b", "i32", "1, M, H", b)],
         "y = %s(a, b)" % op, [("y", ref(a, b))])
    x = it((17,), -3, 3, "i64")
    case("%s_lit_i64" % op, [I("x", "i64", "N", x)], "y = %s(x, 0)" % op,
         [("y", ref(x, 0))])
for op in ["eq", "ne"]:
    a, b = bo((7, 5)), bo((7, 5))
    case("%s_bool" % op, [I("a", "bool", "N, H", a), I("b", "bool", "N, H", b)],
         "y = %s(a, b)" % op, [("y", CMP[op](a, b))])
for op, ref in {"and": np.logical_and, "or": np.logical_or}.items():
    a, b = bo((7, 5)), bo((7, 5))
    case("%s_same" % op, [I("a", "bool", "N, H", a), I("b", "bool", "N, H", b)],
         "y = %s(a, b)" % op, [("y", ref(a, b))])
    a, b = bo((3, 1, 5)), bo((1, 4, 5))
    case("%s_bcast3d" % op, [I("a", "bool", "N, 1, H", a), I("b", "bool", "1, M, H", b)],
         "y = %s(a, b)" % op, [("y", ref(a, b))])


# ---- select, clip, cast --------------------------------------------------------------------

c, a, b = bo((3, 65)), fl((3, 65)), fl((65,))
case("select_row", [I("c", "bool", "N, H", c), I("a", "f32", "N, H", a), I("b", "f32", "H", b)],
     "y = select(c, a, b)", [("y", np.where(c, a, b))])
c, a, b = bo((7, 1)), fl((7, 5)), fl((1, 5))
case("select_bcast_all", [I("c", "bool", "N, 1", c), I("a", "f32", "N, H", a),
                          I("b", "f32", "1, H", b)],
     "y = select(c, a, b)", [("y", np.where(c, a, b))])
c, x = bo((1, 9)), fl((1, 9))
case("select_lit", [I("c", "bool", "N, H", c), I("x", "f32", "N, H", x)],
     "y = select(c, x, 0)", [("y", np.where(c, x, np.float32(0)))])
c, a, b = bo((3, 1, 5)), it((1, 4, 5)), it((3, 4, 5))
case("select_i32_3d", [I("c", "bool", "N, 1, H", c), I("a", "i32", "1, M, H", a),
                       I("b", "i32", "N, M, H", b)],
     "y = select(c, a, b)", [("y", np.where(c, a, b))])
c, a, b = bo((17,)), bo((17,)), bo((17,))
case("select_bool", [I("c", "bool", "N", c), I("a", "bool", "N", a), I("b", "bool", "N", b)],
     "y = select(c, a, b)", [("y", np.where(c, a, b))])

x = fl((3, 65))
case("clip_both_f32", [I("x", "f32", "N, 65", x)], "y = clip(x, lo=-0.5, hi=0.5)",
     [("y", np.minimum(np.maximum(x, np.float32(-0.5)), np.float32(0.5)))])
x = fl((1, 7))
case("clip_lo_f32", [I("x", "f32", "N, 7", x)], "y = clip(x, lo=0.25)",
     [("y", np.maximum(x, np.float32(0.25)))])
x = fl((17, 3))
case("clip_hi_f32", [I("x", "f32", "N, M", x)], "y = clip(x, hi=-0.5)",
     [("y", np.minimum(x, np.float32(-0.5)))])
x = it((7, 5))
case("clip_both_i32", [I("x", "i32", "N, 5", x)], "y = clip(x, lo=-3, hi=4)",
     [("y", np.clip(x, -3, 4).astype(np.int32))])
x = it((7,), dt="i64")
case("clip_hi_i64", [I("x", "i64", "N", x)], "y = clip(x, hi=2)",
     [("y", np.minimum(x, 2).astype(np.int64))])

x = with_specials(fl((17,), -10, 10), [3e9, -3e9, np.inf, -np.inf, np.nan, 2.5, -2.5, -0.7,
                                       0.7, 2147483520.0, -2147483648.0, -1e-3])
case("cast_f32_i32", [I("x", "f32", "N", x)], "y = cast(x, to=i32)",
     [("y", sat_cast(x, "i32"))])
x = with_specials(fl((3, 5), -10, 10), [1e19, -1e19, np.nan, np.inf, -3e9, 2.9, -2.9])
case("cast_f32_i64", [I("x", "f32", "N, 5", x)], "y = cast(x, to=i64)",
     [("y", sat_cast(x, "i64"))])
x = with_specials(fl((3, 3), -2, 2), [0.0, -0.0, np.nan, 0.1, -2.0, np.inf])
case("cast_f32_bool", [I("x", "f32", "N, 3", x)], "y = cast(x, to=bool)",
     [("y", x != 0)])
x = bo((7, 5))
case("cast_bool_f32", [I("x", "bool", "N, 5", x)], "y = cast(x, to=f32)",
     [("y", x.astype(np.float32))])
x = bo((1, 4))
case("cast_bool_i64", [I("x", "bool", "N, 4", x)], "y = cast(x, to=i64)",
     [("y", x.astype(np.int64))])
x = with_specials(it((3, 5), -1000, 1000), [16777217, -16777217, 2147483647, -2147483648])
case("cast_i32_f32", [I("x", "i32", "N, 5", x)], "y = cast(x, to=f32)",
     [("y", to("f32", d(x)))])
x = it((7, 3), -2, 2)
case("cast_i32_bool", [I("x", "i32", "N, 3", x)], "y = cast(x, to=bool)", [("y", x != 0)])
x = it((7, 3), -100, 100)
case("cast_i32_i64", [I("x", "i32", "N, 3", x)], "y = cast(x, to=i64)",
     [("y", x.astype(np.int64))])
x = with_specials(it((17,), -100, 100, "i64"), [2 ** 40, -2 ** 40, 2 ** 31, -2 ** 31 - 1,
                                                2 ** 31 - 1, -2 ** 31])
case("cast_i64_i32", [I("x", "i64", "N", x)], "y = cast(x, to=i32)",
     [("y", int_wrap(x, "i32"))])
x = with_specials(fl((3, 7), -100, 100), [70000.0, 65519.0, 65520.0, -70000.0, 1.0 / 3,
                                          np.nan, 2049.0, 2051.0])
case("cast_f32_f16", [I("x", "f32", "N, 7", x)], "y = cast(x, to=f16)",
     [("y", to("f16", d(x)))])
x = fl((3, 9), -100, 100, "f16")
case("cast_f16_f32", [I("x", "f16", "N, 9", x)], "y = cast(x, to=f32)",
     [("y", x.astype(np.float32))])
x = with_specials(fl((7,), -10, 10, "f16"), [np.nan, np.inf, -2.5, 65504.0])
case("cast_f16_i32", [I("x", "f16", "N", x)], "y = cast(x, to=i32)",
     [("y", sat_cast(x, "i32"))])
x = with_specials(fl((3, 11), -100, 100), [1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8, 1.0 + 2 ** -9,
                                           -(1.0 + 2 ** -8), 3.4e38, np.inf, np.nan])
case("cast_f32_bf16_f32", [I("x", "f32", "N, 11", x)],
     "h = cast(x, to=bf16)\ny = cast(h, to=f32)", [("y", bf16_round(x))])


# ---- reductions ----------------------------------------------------------------------------

def red(op, x, axes, keepdims, dt):
    """Reference reduction: axes None = all."""
    ax = None if axes is None else tuple(axes)
    if dt in ("f32", "f16"):
        x = d(x)
    else:
        x = np.asarray(x, np.int64)
    f = {"reduce_sum": np.sum, "reduce_mean": np.mean, "reduce_max": np.max,
         "reduce_min": np.min, "reduce_prod": np.prod}[op]
    with np.errstate(all="ignore"):
        return to(dt, f(x, axis=ax, keepdims=bool(keepdims)))


def attrs(axes, keepdims):
    s = []
    if axes is not None:
        s.append("axes=[%s]" % ", ".join(map(str, axes)))
    if keepdims is not None:
        s.append("keepdims=%d" % keepdims)
    return "".join(", " + a for a in s)


RED_CASES = {  # op: [(tag, dtype, dims, array, axes, keepdims)]
    "reduce_sum": [
        ("last_f32", "f32", "N, H, W", fl((3, 4, 65)), [-1], 0),
        ("02_keep_f32", "f32", "N, H, W", fl((7, 3, 5)), [0, 2], 1),
        ("all_f32", "f32", "N, H", fl((17, 9)), None, None),
        ("mid_i32", "i32", "N, H, W", it((3, 4, 5)), [1], 0),
        ("first_keep_i64_n1", "i64", "N, H", it((1, 6), dt="i64"), [0], 1),
    ],
    "reduce_mean": [
        ("last_f32", "f32", "N, 65", fl((3, 65)), [-1], 0),
        ("0last_keep_f32", "f32", "N, H, W", fl((7, 2, 5)), [0, -1], 1),
        ("all_f32_n1", "f32", "N, H", fl((1, 9)), None, 0),
    ],
    "reduce_max": [
        ("mid_f32", "f32", "N, H, W", fl((3, 4, 5)), [1], 0),
        ("last_keep_i32", "i32", "N, H", it((7, 9)), [-1], 1),
        ("all_f32_n1", "f32", "N, H", fl((1, 65)), None, None),
    ],
    "reduce_min": [
        ("mid_f32", "f32", "N, H, W", fl((17, 2, 3)), [-2], 1),
        ("first_i64", "i64", "N, H", it((7, 5), dt="i64"), [0], 0),
        ("all_f32", "f32", "N, H", fl((3, 65)), None, 1),
    ],
    "reduce_prod": [
        ("last_f32", "f32", "N, H", fl((3, 65), 0.8, 1.25), [-1], 0),
        ("first_keep_i64", "i64", "N, H", it((7, 3), -3, 3, "i64"), [0], 1),
        ("all_f32_n1", "f32", "N, H", fl((1, 7), 0.5, 1.5), None, None),
    ],
}
for op, lst in RED_CASES.items():
    for tag, dt, dims, x, axes, keep in lst:
        case("%s_%s" % (op, tag), [I("x", dt, dims, x)],
             "y = %s(x%s)" % (op, attrs(axes, keep)),
             [("y", red(op, x, axes, keep or 0, dt))])
# empty reductions (N = 0): sum 0, prod 1, mean NaN
x = np.zeros((0, 4), dtype=np.float32)
for op, val in [("reduce_sum", 0.0), ("reduce_prod", 1.0), ("reduce_mean", np.nan)]:
    case("%s_empty" % op, [I("x", "f32", "N, 4", x)], "y = %s(x, axes=[0])" % op,
         [("y", np.full((4,), val, dtype=np.float32))])


def argmax_ref(x, axis, keepdims):
    r = np.argmax(x, axis=axis).astype(np.int64)
    return np.expand_dims(r, axis) if keepdims else r


x = fl((3, 65))
case("argmax_last_f32", [I("x", "f32", "N, 65", x)], "y = argmax(x, axis=-1)",
     [("y", argmax_ref(x, -1, 0))])
x = fl((7, 5))
case("argmax_first_keep_f32", [I("x", "f32", "N, H", x)], "y = argmax(x, axis=0, keepdims=1)",
     [("y", argmax_ref(x, 0, 1))])
x = it((3, 4, 5), 0, 2)
case("argmax_ties_i32", [I("x", "i32", "N, M, H", x)], "y = argmax(x, axis=1)",
     [("y", argmax_ref(x, 1, 0))])
x = fl((3, 6))
x[0, 2] = x[0, 4] = x[2, 5] = np.nan
case("argmax_nan_f32", [I("x", "f32", "N, 6", x)], "y = argmax(x, axis=1, keepdims=0)",
     [("y", argmax_ref(x, 1, 0))])
x = it((17, 3), -50, 50, "i64")
case("argmax_default_i64", [I("x", "i64", "N, 3", x)], "y = argmax(x)",
     [("y", argmax_ref(x, 0, 0))])


# ---- normalizations ------------------------------------------------------------------------

x = fl((3, 65), -4, 4)
case("softmax_f32", [I("x", "f32", "N, 65", x)], "y = softmax(x)",
     [("y", to("f32", softmax(x)))])
x = fl((7, 5), -4, 4)
case("softmax_axis0", [I("x", "f32", "N, H", x)], "y = softmax(x, axis=0)",
     [("y", to("f32", softmax(x, 0)))])
x = fl((2, 3, 4), -4, 4)
case("softmax_3d_axis1", [I("x", "f32", "N, S, H", x)], "y = softmax(x, axis=1)",
     [("y", to("f32", softmax(x, 1)))])
x = fl((1, 64), -50, 50)
case("softmax_wide_n1", [I("x", "f32", "N, 64", x)], "y = softmax(x, axis=-1)",
     [("y", to("f32", softmax(x)))])
x = fl((7, 65), -4, 4)
case("log_softmax_f32", [I("x", "f32", "N, 65", x)], "y = log_softmax(x)",
     [("y", to("f32", log_softmax(x)))])
x = fl((17, 3), -4, 4)
case("log_softmax_axis0", [I("x", "f32", "N, H", x)], "y = log_softmax(x, axis=0)",
     [("y", to("f32", log_softmax(x, 0)))])
x = fl((1, 3, 64), -20, 20)
case("log_softmax_3d_n1", [I("x", "f32", "N, S, 64", x)], "y = log_softmax(x, axis=-1)",
     [("y", to("f32", log_softmax(x)))])

x, g, b = fl((3, 65), -3, 3) + np.float32(1.5), fl((65,), 0.5, 1.5), fl((65,))
case("layernorm_h65", [I("x", "f32", "N, H", x), P("g", "f32", "H", g), P("b", "f32", "H", b)],
     "y = layernorm(x, g, b)", [("y", to("f32", layernorm(x, g, b)))])
x, g, b = fl((7, 64), -3, 3), fl((64,), 0.5, 1.5), fl((64,))
case("layernorm_h64_eps", [I("x", "f32", "N, 64", x), P("g", "f32", "64", g),
                           P("b", "f32", "64", b)],
     "y = layernorm(x, g, b, axis=-1, eps=1e-3)",
     [("y", to("f32", layernorm(x, g, b, eps=1e-3)))])
x, g, b = fl((2, 3, 5), -3, 3), fl((3, 5), 0.5, 1.5), fl((5,))
case("layernorm_axis_m2", [I("x", "f32", "N, S, H", x), P("g", "f32", "S, H", g),
                           P("b", "f32", "H", b)],
     "y = layernorm(x, g, b, axis=-2)", [("y", to("f32", layernorm(x, g, b, axis=-2)))])
x, g = fl((7, 64), -3, 3), fl((64,), 0.5, 1.5)
case("rmsnorm_h64", [I("x", "f32", "N, 64", x), P("g", "f32", "64", g)],
     "y = rmsnorm(x, g)", [("y", to("f32", rmsnorm(x, g)))])
x, g = fl((1, 65), -3, 3), fl((65,), 0.5, 1.5)
case("rmsnorm_h65_eps_n1", [I("x", "f32", "N, H", x), P("g", "f32", "H", g)],
     "y = rmsnorm(x, g, eps=1e-5)", [("y", to("f32", rmsnorm(x, g, eps=1e-5)))])
x, g = fl((2, 3, 8), -3, 3), fl((8,), 0.5, 1.5)
case("rmsnorm_3d", [I("x", "f32", "N, S, H", x), P("g", "f32", "H", g)],
     "y = rmsnorm(x, g)", [("y", to("f32", rmsnorm(x, g)))])


# ---- layout --------------------------------------------------------------------------------

x = fl((3, 6, 4))
case("reshape_merge", [I("x", "f32", "N, 6, 4", x)], "y = reshape(x, shape=[N, 24])",
     [("y", x.reshape(3, 24))])
x = fl((7, 6, 4))
case("reshape_minus1_first", [I("x", "f32", "N, 6, 4", x)], "y = reshape(x, shape=[-1, 4])",
     [("y", x.reshape(-1, 4))])
x = it((1, 12))
case("reshape_minus1_last_i32", [I("x", "i32", "N, 12", x)],
     "y = reshape(x, shape=[N, 3, -1])", [("y", x.reshape(1, 3, -1))])
x = fl((3, 5))
case("reshape_flatten", [I("x", "f32", "N, M", x)], "y = reshape(x, shape=[-1])",
     [("y", x.reshape(-1))])
x = fl((3, 5))
case("reshape_swap_syms", [I("x", "f32", "N, M", x)], "y = reshape(x, shape=[M, N])",
     [("y", x.reshape(5, 3))])
x = bo((17, 6))
case("reshape_expr_bool", [I("x", "bool", "N, 6", x)], "y = reshape(x, shape=[N*6])",
     [("y", x.reshape(-1))])

x = fl((3, 65))
case("transpose_2d", [I("x", "f32", "N, H", x)], "y = transpose(x, perm=[1, 0])",
     [("y", x.T.copy())])
x = fl((7, 2, 3))
case("transpose_021", [I("x", "f32", "N, M, H", x)], "y = transpose(x, perm=[0, 2, 1])",
     [("y", np.transpose(x, (0, 2, 1)))])
x = it((1, 4, 5), dt="i64")
case("transpose_201_i64_n1", [I("x", "i64", "N, M, H", x)], "y = transpose(x, perm=[2, 0, 1])",
     [("y", np.transpose(x, (2, 0, 1)))])
x = fl((3, 4, 5))
case("transpose_default", [I("x", "f32", "N, M, H", x)], "y = transpose(x)",
     [("y", np.transpose(x))])
x = fl((3, 2, 5, 3))
case("transpose_4d", [I("x", "f32", "N, 2, M, 3", x)], "y = transpose(x, perm=[3, 1, 0, 2])",
     [("y", np.transpose(x, (3, 1, 0, 2)))])

x = fl((65,))
case("broadcast_to_row", [I("x", "f32", "H", x)], "y = broadcast_to(x, shape=[3, H])",
     [("y", np.broadcast_to(x, (3, 65)).copy())])
x = fl((3, 1, 5))
case("broadcast_to_mid", [I("x", "f32", "N, 1, H", x)], "y = broadcast_to(x, shape=[N, 4, H])",
     [("y", np.broadcast_to(x, (3, 4, 5)).copy())])
x = it((1, 1))
case("broadcast_to_i32", [I("x", "i32", "1, 1", x)], "y = broadcast_to(x, shape=[2, 5])",
     [("y", np.broadcast_to(x, (2, 5)).copy())])
x = bo((7, 1))
case("broadcast_to_rank_bool", [I("x", "bool", "N, 1", x)],
     "y = broadcast_to(x, shape=[2, N, 3])", [("y", np.broadcast_to(x, (2, 7, 3)).copy())])

SLICES = [  # (tag, dtype, dims, array, attrs, numpy index)
    ("neg_start_end", "f32", "N, 9", fl((3, 9)), "axes=[1], starts=[-3], ends=[-1]",
     (slice(None), slice(-3, -1))),
    ("step2_clamped", "f32", "N, 9", fl((1, 9)),
     "axes=[-1], starts=[1], ends=[100], steps=[2]", (slice(None), slice(1, 100, 2))),
    ("reverse", "f32", "N, 9", fl((3, 9)), "axes=[1], starts=[-1], ends=[-100], steps=[-1]",
     (slice(None), slice(-1, -100, -1))),
    ("step_m3", "f32", "N, 9", fl((7, 9)), "axes=[1], starts=[7], ends=[0], steps=[-3]",
     (slice(None), slice(7, 0, -3))),
    ("sym_tail", "f32", "N, 9", fl((7, 9)), "axes=[0], starts=[1], ends=[N]",
     (slice(1, 7),)),
    ("sym_neg", "f32", "N, 9", fl((7, 9)), "axes=[0], starts=[-2], ends=[-1]",
     (slice(-2, -1),)),
    ("sym_expr_end", "f32", "N, 5", fl((3, 5)), "axes=[0], starts=[0], ends=[N-1]",
     (slice(0, 2),)),
    ("default_axes", "f32", "N, 9", fl((3, 9)), "starts=[0, 2], ends=[N, 5]",
     (slice(0, 3), slice(2, 5))),
    ("multi_axes_i64", "i64", "N, 6, 8", it((3, 6, 8), dt="i64"),
     "axes=[2, 1], starts=[0, 5], ends=[8, -7], steps=[3, -2]",
     (slice(None), slice(5, -7, -2), slice(0, 8, 3))),
]
for tag, dt, dims, x, at, idx in SLICES:
    case("slice_%s" % tag, [I("x", dt, dims, x)], "y = slice(x, %s)" % at,
         [("y", x[idx].copy())])

a, b, c = fl((3, 4)), fl((1, 4)), fl((2, 4))
case("concat3_axis0", [I("a", "f32", "N, 4", a), I("b", "f32", "M, 4", b),
                       I("c", "f32", "2, 4", c)],
     "y = concat(a, b, c, axis=0)", [("y", np.concatenate([a, b, c], 0))])
a, b, c = fl((7, 2)), fl((7, 3)), fl((7, 1))
case("concat3_axis_m1", [I("a", "f32", "N, 2", a), I("b", "f32", "N, 3", b),
                         I("c", "f32", "N, 1", c)],
     "y = concat(a, b, c, axis=-1)", [("y", np.concatenate([a, b, c], -1))])
a, b, c = it((1, 1, 5), dt="i64"), it((1, 2, 5), dt="i64"), it((1, 1, 5), dt="i64")
case("concat3_mid_i64", [I("a", "i64", "N, 1, H", a), I("b", "i64", "N, 2, H", b),
                         I("c", "i64", "N, 1, H", c)],
     "y = concat(a, b, c, axis=1)", [("y", np.concatenate([a, b, c], 1))])
a, b, c = bo((17,)), bo((17,)), bo((17,))
case("concat3_bool", [I("a", "bool", "N", a), I("b", "bool", "N", b), I("c", "bool", "N", c)],
     "y = concat(a, b, c, axis=0)", [("y", np.concatenate([a, b, c], 0))])

x = fl((3, 1, 5))
case("squeeze_axis1", [I("x", "f32", "N, 1, 5", x)], "y = squeeze(x, axes=[1])",
     [("y", x.reshape(3, 5))])
x = fl((7, 1, 5))
case("squeeze_neg", [I("x", "f32", "N, 1, 5", x)], "y = squeeze(x, axes=[-2])",
     [("y", x.reshape(7, 5))])
x = fl((1, 1, 1, 3))
case("squeeze_default_keeps_sym", [I("x", "f32", "1, N, 1, 3", x)], "y = squeeze(x)",
     [("y", x.reshape(1, 3))])   # N = 1 at run time but is not a constant 1
x = it((1, 17))
case("squeeze_first_i32", [I("x", "i32", "1, N", x)], "y = squeeze(x, axes=[0])",
     [("y", x.reshape(17))])
x = fl((3, 1))
case("squeeze_symbol_dim", [I("x", "f32", "N, M", x)], "y = squeeze(x, axes=[1])",
     [("y", x.reshape(3))])

x = fl((3, 5))
case("unsqueeze_front", [I("x", "f32", "N, 5", x)], "y = unsqueeze(x, axes=[0])",
     [("y", x[None])])
x = fl((1, 5))
case("unsqueeze_neg", [I("x", "f32", "N, 5", x)], "y = unsqueeze(x, axes=[-1])",
     [("y", x[..., None])])
x = fl((7, 5))
case("unsqueeze_two", [I("x", "f32", "N, 5", x)], "y = unsqueeze(x, axes=[1, 3])",
     [("y", x.reshape(7, 1, 5, 1))])
x = it((17,))
case("unsqueeze_neg_two_i32", [I("x", "i32", "N", x)], "y = unsqueeze(x, axes=[0, -1])",
     [("y", x.reshape(1, 17, 1))])

x, idx = fl((10, 65)), it((7,), -10, 9, "i64")
case("gather_rows_neg", [I("x", "f32", "V, H", x), I("idx", "i64", "N", idx)],
     "y = gather(x, idx)", [("y", np.take(x, idx, 0))])
x, idx = fl((3, 6)), it((2, 3), -6, 5, "i32")
case("gather_axis1_2d_idx", [I("x", "f32", "N, H", x), I("idx", "i32", "2, 3", idx)],
     "y = gather(x, idx, axis=1)", [("y", np.take(x, idx, 1))])
x, idx = fl((1, 3, 5)), it((4,), -5, 4, "i64")
case("gather_last_neg_axis", [I("x", "f32", "N, S, H", x), I("idx", "i64", "K", idx)],
     "y = gather(x, idx, axis=-1)", [("y", np.take(x, idx, -1))])
x, idx = it((9,), dt="i64"), it((3, 2), -9, 8, "i32")
case("gather_i64_from_1d", [I("x", "i64", "V", x), I("idx", "i32", "N, M", idx)],
     "y = gather(x, idx, axis=0)", [("y", np.take(x, idx, 0))])
x, idx = fl((17, 5)), np.asarray(-3, dtype=np.int64)
case("gather_scalar_idx", [I("x", "f32", "V, H", x), I("idx", "i64", "", idx)],
     "y = gather(x, idx, axis=0)", [("y", np.take(x, idx, 0))])
x, idx = bo((5, 4)), it((3,), -5, 4, "i64")
case("gather_bool", [I("x", "bool", "V, H", x), I("idx", "i64", "N", idx)],
     "y = gather(x, idx)", [("y", np.take(x, idx, 0))])


# ---- matmul --------------------------------------------------------------------------------

def mm(a, b, ta=0, tb=0, dt="f32"):
    if ta and a.ndim >= 2:
        a = np.swapaxes(a, -1, -2)
    if tb and b.ndim >= 2:
        b = np.swapaxes(b, -1, -2)
    if dt == "f32":
        return to("f32", np.matmul(d(a), d(b)))
    return to(dt, np.matmul(a.astype(np.int64), b.astype(np.int64)))


MATMULS = [  # (tag, dtype, dims a, a, dims b, b, attrs (ta, tb))
    ("2d_n1", "f32", "N, K", fl((1, 65)), "K, M", fl((65, 7)), (0, 0)),
    ("2d_n17", "f32", "N, K", fl((17, 3)), "K, M", fl((3, 5)), (0, 0)),
    ("1d_2d", "f32", "K", fl((7,)), "K, M", fl((7, 5)), (0, 0)),
    ("2d_1d", "f32", "N, K", fl((3, 9)), "K", fl((9,)), (0, 0)),
    ("1d_1d", "f32", "K", fl((17,)), "K", fl((17,)), (0, 0)),
    ("batch_bcast", "f32", "2, 1, N, K", fl((2, 1, 3, 5)), "3, K, M", fl((3, 5, 4)), (0, 0)),
    ("batch_2d", "f32", "B, N, K", fl((3, 7, 5)), "K, M", fl((5, 2)), (0, 0)),
    ("1d_batch", "f32", "K", fl((5,)), "B, K, M", fl((3, 5, 4)), (0, 0)),
    ("trans_a", "f32", "K, N", fl((5, 3)), "K, M", fl((5, 7)), (1, 0)),
    ("trans_b", "f32", "N, K", fl((7, 65)), "M, K", fl((3, 65)), (0, 1)),
    ("trans_ab_batch", "f32", "B, K, N", fl((2, 5, 3)), "B, M, K", fl((2, 4, 5)), (1, 1)),
    ("1d_trans_b", "f32", "K", fl((5,)), "M, K", fl((3, 5)), (0, 1)),
    ("i32", "i32", "N, K", it((7, 5), -5, 5), "K, M", it((5, 3), -5, 5), (0, 0)),
]
for tag, dt, da, a, db, b, (ta, tb) in MATMULS:
    at = (", transpose_a=1" if ta else "") + (", transpose_b=1" if tb else "")
    case("matmul_%s" % tag, [I("a", dt, da, a), I("b", dt, db, b)],
         "y = matmul(a, b%s)" % at, [("y", mm(a, b, ta, tb, dt))])


# ---- constants -----------------------------------------------------------------------------
# A symbol is declared by its first use in an input/param line (docs/format.md), so a graph whose
# constants use N declares an input z: f32[N] that is not given (dvm fills it) and binds N
# with -s.
Z = ("input", "z", "f32", "N", None)

case("full_default_f32", [Z], "y = full(shape=[N, 3], value=1.5)",
     [("y", np.full((7, 3), 1.5, np.float32))], syms={"N": 7})
case("full_i32_n1", [Z], "y = full(shape=[N], value=-4, dtype=i32)",
     [("y", np.full((1,), -4, np.int32))], syms={"N": 1})
case("full_bool_expr", [Z], "y = full(shape=[2, N+1], value=1, dtype=bool)",
     [("y", np.ones((2, 4), np.bool_))], syms={"N": 3})
case("full_scalar_i64", [], "y = full(shape=[], value=7, dtype=i64)",
     [("y", np.asarray(7, np.int64))])
x = fl((3, 4))
case("full_plus_input", [I("x", "f32", "N, 4", x)],
     "f = full(shape=[N, 4], value=0.25, dtype=f32)\ny = add(x, f)",
     [("y", to("f32", d(x) + 0.25))])
case("arange_default", [Z], "y = arange(n=N)", [("y", np.arange(7, dtype=np.int64))],
     syms={"N": 7})
case("arange_f32", [Z], "y = arange(n=N, dtype=f32)", [("y", np.arange(17, dtype=np.float32))],
     syms={"N": 17})
case("arange_expr_i32", [Z], "y = arange(n=N*2+1, dtype=i32)",
     [("y", np.arange(7, dtype=np.int32))], syms={"N": 3})
case("arange_const", [], "y = arange(n=5, dtype=i64)", [("y", np.arange(5, dtype=np.int64))])
x = fl((17,))
case("arange_plus_input", [I("x", "f32", "N", x)], "a = arange(n=N, dtype=f32)\ny = add(x, a)",
     [("y", to("f32", d(x) + np.arange(17)))])


# ---- multi-op graphs (the reference rounds every op to f32) --------------------------------

x, a, b = fl((3, 65)), fl((65,)), fl((65,))
case("graph_gelu_affine", [I("x", "f32", "N, H", x), P("a", "f32", "H", a),
                           P("b", "f32", "H", b)],
     "h = mul(x, a)\nh2 = add(h, b)\ny = gelu(h2)",
     [("y", to("f32", gelu(r32(r32(d(x) * d(a)) + d(b)))))])

x = fl((7, 64), -5, 5)
m = d(x).max(axis=-1, keepdims=True)
e = r32(np.exp(r32(d(x) - m)))
s = r32(e.sum(axis=-1, keepdims=True))
case("graph_softmax_composite", [I("x", "f32", "N, 64", x)],
     """m = reduce_max(x, axes=[-1], keepdims=1)
        dd = sub(x, m)
        e = exp(dd)
        s = reduce_sum(e, axes=[-1], keepdims=1)
        y = div(e, s)""",
     [("y", to("f32", e / s))])

x, g, b = fl((3, 65), -2, 2) + np.float32(0.75), fl((65,), 0.5, 1.5), fl((65,))
mean = r32(d(x).mean(axis=-1, keepdims=True))
dx = r32(d(x) - mean)
var = r32(r32(dx * dx).mean(axis=-1, keepdims=True))
rs = r32(1.0 / np.sqrt(r32(var + d(np.float32(1e-5)))))
case("graph_layernorm_composite", [I("x", "f32", "N, H", x), P("g", "f32", "H", g),
                                   P("b", "f32", "H", b)],
     """mean = reduce_mean(x, axes=[-1], keepdims=1)
        dx = sub(x, mean)
        sq = mul(dx, dx)
        var = reduce_mean(sq, axes=[-1], keepdims=1)
        ve = add(var, 1e-5)
        rs = rsqrt(ve)
        t = mul(dx, rs)
        t2 = mul(t, g)
        y = add(t2, b)""",
     [("y", to("f32", r32(r32(dx * rs) * d(g)) + d(b)))])

x, g = fl((17, 64), -2, 2), fl((64,), 0.5, 1.5)
ms = r32(r32(d(x) * d(x)).mean(axis=-1, keepdims=True))
rs = r32(1.0 / np.sqrt(r32(ms + d(np.float32(1e-6)))))
case("graph_rmsnorm_composite", [I("x", "f32", "N, 64", x), P("g", "f32", "64", g)],
     """sq = mul(x, x)
        ms = reduce_mean(sq, axes=[-1], keepdims=1)
        ve = add(ms, 1e-6)
        rs = rsqrt(ve)
        t = mul(x, rs)
        y = mul(t, g)""",
     [("y", to("f32", r32(d(x) * rs) * d(g)))])

x, w1, b1, w2 = fl((3, 64)), fl((64, 65), -0.3, 0.3), fl((65,)), fl((65, 7), -0.3, 0.3)
act = r32(gelu_tanh(r32(r32(np.matmul(d(x), d(w1))) + d(b1))))
case("graph_mlp_two_outputs", [I("x", "f32", "N, 64", x), P("w1", "f32", "64, 65", w1),
                               P("b1", "f32", "65", b1), P("w2", "f32", "65, 7", w2)],
     "h = matmul(x, w1)\nh2 = add(h, b1)\nact = gelu_tanh(h2)\ny = matmul(act, w2)",
     [("act", to("f32", act)), ("y", to("f32", np.matmul(act, d(w2))))])

q, k, v = fl((2, 5, 8)), fl((2, 5, 8)), fl((2, 5, 8))
sc = r32(r32(np.matmul(d(q), np.swapaxes(d(k), -1, -2))) * 0.125)
p = r32(softmax(sc))
case("graph_attention", [I("q", "f32", "N, S, 8", q), I("k", "f32", "N, S, 8", k),
                         I("v", "f32", "N, S, 8", v)],
     """s = matmul(q, k, transpose_b=1)
        s2 = mul(s, 0.125)
        p = softmax(s2)
        y = matmul(p, v)""",
     [("y", to("f32", np.matmul(p, d(v))))])

x = fl((7, 9))
c = x > 0
case("graph_leaky_count", [I("x", "f32", "N, 9", x)],
     """c = gt(x, 0.0)
        l = mul(x, 0.01)
        y = select(c, x, l)
        ci = cast(c, to=i32)
        n = reduce_sum(ci, axes=[-1])""",
     [("y", np.where(c, x, to("f32", d(x) * d(np.float32(0.01))))),
      ("n", c.sum(axis=-1).astype(np.int32))])


# ---- running -------------------------------------------------------------------------------

def fmt_cmd(cmd):
    return " ".join(shlex.quote(c) for c in cmd)


def compare(name, actual, expected, tol):
    """None if equal within tolerance, else a message."""
    if actual.dtype != expected.dtype:
        return "output %s: dtype %s, expected %s" % (name, actual.dtype, expected.dtype)
    if actual.shape != expected.shape:
        return "output %s: shape %s, expected %s" % (name, actual.shape, expected.shape)
    if expected.size == 0:
        return None
    if expected.dtype.kind == "f":
        a, e = d(actual), d(expected)
        rtol, atol = tol
        with np.errstate(all="ignore"):
            ok = np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
            ok &= np.isnan(a) == np.isnan(e)
            if ok.all():
                return None
            fin = np.isfinite(a) & np.isfinite(e)
            err = np.abs(a - e)
            abs_err = err[fin].max() if fin.any() else float("nan")
            rel_err = (err / np.maximum(np.abs(e), 1e-30))[fin].max() if fin.any() \
                else float("nan")
    else:
        ok = actual == expected
        if ok.all():
            return None
        err = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
        abs_err = err.max()
        rel_err = (err / np.maximum(np.abs(expected.astype(np.float64)), 1e-30)).max()
    bad = np.argwhere(~ok)
    i = tuple(int(t) for t in bad[0])
    return ("output %s: %d/%d mismatches, max abs err %.3g, max rel err %.3g; "
            "first at %s: got %r, expected %r"
            % (name, len(bad), ok.size, abs_err, rel_err, list(i),
               actual[i].item(), expected[i].item()))


def run_case(dvm, scratch, c):
    """Returns (case name, command string, [failure messages])."""
    base = os.path.join(scratch, c.name)
    gpath = base + ".dvm"
    with open(gpath, "w") as f:
        f.write(c.graph_text())
    cmd = [dvm, "run", gpath]
    for k, v in c.syms.items():
        cmd += ["-s", "%s=%d" % (k, v)]
    for _, name, _, _, arr in c.decls:
        if arr is None:  # not given: dvm fills it from --seed, its symbols come from -s
            continue
        p = "%s.in.%s.npy" % (base, name)
        np.save(p, arr)
        cmd += ["-i", "%s=%s" % (name, p)]
    opaths = {}
    for name, _ in c.outs:
        p = "%s.out.%s.npy" % (base, name)
        if os.path.exists(p):
            os.remove(p)
        opaths[name] = p
        cmd += ["-o", "%s=%s" % (name, p)]
    cmd += ["--tier", TIER]
    scmd = fmt_cmd(cmd)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return c.name, scmd, ["timed out after 60 s"]
    if r.returncode != 0:
        msg = (r.stderr.strip().splitlines() or ["(no stderr)"])[0]
        return c.name, scmd, ["exit status %d: %s" % (r.returncode, msg)]
    fails = []
    for name, exp in c.outs:
        try:
            act = np.load(opaths[name])
        except Exception as ex:  # missing or unreadable output
            fails.append("output %s: cannot load %s: %s" % (name, opaths[name], ex))
            continue
        tol = c.tol or TOL.get({np.dtype(v): k for k, v in NP.items()}.get(exp.dtype), (0, 0))
        m = compare(name, act, exp, tol)
        if m:
            fails.append(m)
    return c.name, scmd, fails


def check_print(dvm, scratch):
    """`run` without -o prints each output's name and a summary."""
    gpath = os.path.join(scratch, "cli_print.dvm")
    with open(gpath, "w") as f:
        f.write("graph cli_print\ninput x: f32[N, 5]\ny = add(x, 1.0)\noutput y\n")
    p = os.path.join(scratch, "cli_print.in.x.npy")
    np.save(p, fl((3, 5)))
    cmd = [dvm, "run", gpath, "-i", "x=" + p, "--tier", TIER]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return "cli_print", fmt_cmd(cmd), ["exit status %d: %s" % (r.returncode,
                                                                    r.stderr.strip()[:200])]
    if "y" not in r.stdout:
        return "cli_print", fmt_cmd(cmd), ["stdout does not name output y: %r" % r.stdout[:200]]
    return "cli_print", fmt_cmd(cmd), []


def check_dtype_mismatch(dvm, scratch):
    """An i32 file for an f32 input: status 1, stderr starting with 'dvm: error:'."""
    gpath = os.path.join(scratch, "cli_dtype_mismatch.dvm")
    with open(gpath, "w") as f:
        f.write("graph cli_dtype_mismatch\ninput x: f32[N, 4]\ny = neg(x)\noutput y\n")
    p = os.path.join(scratch, "cli_dtype_mismatch.in.x.npy")
    np.save(p, it((3, 4)))
    o = os.path.join(scratch, "cli_dtype_mismatch.out.y.npy")
    cmd = [dvm, "run", gpath, "-i", "x=" + p, "-o", "y=" + o, "--tier", TIER]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    fails = []
    if r.returncode != 1:
        fails.append("exit status %d, expected 1" % r.returncode)
    if not r.stderr.startswith("dvm: error:"):
        fails.append("stderr does not start with 'dvm: error:': %r" % r.stderr[:200])
    return "cli_dtype_mismatch", fmt_cmd(cmd), fails


def check_coverage():
    with open(OPS_DEF) as f:
        ops = re.findall(r'^\s*OP\(\s*\w+\s*,\s*"([^"]+)"', f.read(), re.M)
    covered = set().union(*(c.ops() for c in CASES))
    missing = [o for o in ops if o not in NOT_TESTED_HERE and o not in covered]
    fails = ["op %s (ir/ops.def) has no case in tests/oracle/ref_vs_numpy.py" % o
             for o in missing]
    if not ops:
        fails.append("no OP(...) lines found in %s" % OPS_DEF)
    return "op_coverage", OPS_DEF, fails


def main():
    if len(sys.argv) != 3:
        print("usage: ref_vs_numpy.py DVM_BINARY SCRATCH_DIR", file=sys.stderr)
        return 2
    dvm = os.path.abspath(sys.argv[1])
    scratch = os.path.abspath(sys.argv[2])
    os.makedirs(scratch, exist_ok=True)
    only = os.environ.get("DVM_ORACLE_ONLY")  # optional substring filter, for debugging
    cases = [c for c in CASES if not only or only in c.name]

    workers = max(1, min(8, os.cpu_count() or 2))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda c: run_case(dvm, scratch, c), cases))
    results.append(check_print(dvm, scratch))
    results.append(check_dtype_mismatch(dvm, scratch))
    if not only:
        results.append(check_coverage())

    passed = failed = 0
    for name, cmd, fails in results:
        if fails:
            failed += 1
            for m in fails:
                print("FAIL %s: %s; command: %s" % (name, m, cmd))
        else:
            passed += 1
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
