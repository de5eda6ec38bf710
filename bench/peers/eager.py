#!/usr/bin/python3
"""The "numpy" and "torch" peers of `dvm bench --peers` (protocol: bench/peers/README.md).

    eager.py --backend numpy|torch --graph G.dvm --dir DIR --threads T --reps R [--peer-name NAME]

A generic interpreter of the .dvm text format (docs/format.md, docs/ops.md): the
graph is parsed and turned into a list of Python closures once (untimed); each timed run
then executes the ops eagerly, one library call sequence per op, the way a user of NumPy or
PyTorch eager mode writes the model (matmul via BLAS, torch.softmax, F.layer_norm, F.gelu,
...). Values that are dead after an op are dropped at once, as local variables of
hand-written eager code would be. glibc malloc is told to keep freed memory (see
keep_freed_memory), so timed runs measure the ops, not page faults on fresh temporaries.

Precision: every value is computed in its declared dtype (the workloads are f32). f16/bf16
values are computed in f32 and rounded to nearest even after every op (numpy has no bf16:
it is stored as f32 holding bf16-exact values; torch runs matmul, reductions and
normalizations in f32, and elementwise ops with its native half kernels where it has them).

NumPy has no erf (and scipy is not available): erf (and so gelu) uses the float32 rational
approximation of Eigen / XLA (x clamped to [-4, 4], erf(x) = x*P(x^2)/Q(x^2) with an odd
degree-13 numerator and an even degree-8 denominator), evaluated with in-place NumPy ufuncs;
measured max error against math.erf: 4.2e-7 absolute, 2.2e-7 relative near 0.

Threads: OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS are set from --threads
before numpy is imported; torch also gets torch.set_num_threads(T),
torch.set_num_interop_threads(1) and, unless the caller set it, OMP_WAIT_POLICY=PASSIVE.
numpy's matmul of a [..., M, K] batch by a [K, N] matrix folds the batch into one GEMM, as
torch.matmul does (np.matmul would run one small GEMM per batch element).

Not supported: `call` (extern C functions) -> a "skip" line.
"""

import gc
import math
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dvmtext import (  # noqa: E402  the .dvm parser the peers share
    DTYPES, FLOATS, INT_RE, INTS, LIT_RE, NAME_RE, Unsupported, const_dim, emit, eval_dim,
    norm_axis, parse_graph, parse_number, protocol_args, read_run, report, split_top)


def parse_value(text):
    """A numeric attribute value (full's value=): a number, inf, nan, true or false."""
    return float(parse_number(text))


# ----------------------------------------------------------------------------------------
# Static dtypes and (partial) shapes: dtypes give literals their type; shapes (an int for a
# constant dim, None for a symbolic one) give squeeze's default axes ("constant 1" dims).
# ----------------------------------------------------------------------------------------

UNARY = {"neg", "abs", "exp", "log", "sqrt", "rsqrt", "reciprocal", "tanh", "sigmoid", "relu",
         "gelu", "gelu_tanh", "silu", "erf", "sin", "cos", "floor", "ceil", "round", "sign",
         "not"}
BINARY = {"add", "sub", "mul", "div", "pow", "max", "min", "eq", "ne", "lt", "le", "gt", "ge",
          "and", "or"}
BOOL_RESULT = {"eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not"}
REDUCE = {"reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod"}
LAYOUT = {"reshape", "transpose", "broadcast_to", "slice", "concat", "squeeze", "unsqueeze",
          "gather", "select"}
ACCUMULATING = REDUCE | {"matmul", "softmax", "log_softmax", "layernorm", "rmsnorm"}
KNOWN = UNARY | BINARY | REDUCE | LAYOUT | {"clip", "cast", "argmax", "softmax", "log_softmax",
                                            "layernorm", "rmsnorm", "matmul", "full",
                                            "arange", "call"}


def bcast_static(a, b):
    n = max(len(a), len(b))
    a = [1] * (n - len(a)) + list(a)
    b = [1] * (n - len(b)) + list(b)
    out = []
    for x, y in zip(a, b):
        if x == 1:
            out.append(y)
        elif y == 1:
            out.append(x)
        elif x is None:
            out.append(y)
        else:
            out.append(x)
    return out


def attr_list(text):
    t = text.strip()
    if not (t.startswith("[") and t.endswith("]")):
        raise ValueError("expected a list, got %r" % text)
    return split_top(t[1:-1])


def static_info(node, ins):
    """(dtype, shape) of node's result; ins: [(dtype, shape) or None for a literal]."""
    op = node.op
    vals = [x for x in ins if x is not None]
    first = vals[0] if vals else ("f32", [])
    A = node.attrs
    if op in BOOL_RESULT:
        dt = "bool"
    elif op == "cast":
        dt = A["to"]
    elif op == "argmax":
        dt = "i64"
    elif op in ("full", "call"):
        dt = A.get("dtype", "f32")
    elif op == "arange":
        dt = A.get("dtype", "i64")
    elif op == "select":
        v = [x for x in ins[1:] if x is not None]
        dt = v[0][0] if v else "f32"
    else:
        dt = first[0]
    shp = list(first[1])
    try:
        if op in UNARY or op in ("clip", "cast", "softmax", "log_softmax", "layernorm",
                                 "rmsnorm"):
            pass
        elif op in BINARY or op == "select":
            shp = []
            for v in vals:
                shp = bcast_static(shp, v[1])
        elif op in REDUCE or op == "argmax":
            r = len(shp)
            keep = int(A.get("keepdims", "0"))
            if op == "argmax":
                axes = [norm_axis(int(A.get("axis", "0")), r)] if r else []
            elif "axes" in A:
                axes = [norm_axis(int(a), r) for a in attr_list(A["axes"])]
            else:
                axes = list(range(r))
            shp = [1 if i in axes else d for i, d in enumerate(shp) if keep or i not in axes]
        elif op in ("reshape", "broadcast_to", "full", "call"):
            items = attr_list(A["shape"])
            new = [const_dim(t) for t in items]
            if op == "reshape" and -1 in new:
                total = 1
                for d in shp:
                    total = None if (total is None or d is None) else total * d
                rest = 1
                for d in new:
                    if d != -1:
                        rest = None if (rest is None or d is None) else rest * d
                k = new.index(-1)
                new[k] = total // rest if (total is not None and rest) else None
            shp = new
        elif op == "transpose":
            perm = [int(p) for p in attr_list(A["perm"])] if "perm" in A else \
                list(range(len(shp)))[::-1]
            shp = [shp[p] for p in perm]
        elif op == "slice":
            starts = attr_list(A["starts"])
            ends = attr_list(A["ends"])
            axes = attr_list(A["axes"]) if "axes" in A else [str(i) for i in range(len(starts))]
            steps = attr_list(A["steps"]) if "steps" in A else ["1"] * len(starts)
            for a, s, e, st in zip(axes, starts, ends, steps):
                a = norm_axis(int(a), len(shp))
                d = shp[a]
                cs, ce, cst = const_dim(s), const_dim(e), const_dim(st)
                if d is None or cs is None or ce is None or cst is None:
                    shp[a] = None
                else:
                    shp[a] = len(range(*slice(cs, ce, cst).indices(d)))
        elif op == "concat":
            a = norm_axis(int(A["axis"]), len(shp))
            tot = 0
            for v in vals:
                tot = None if (tot is None or v[1][a] is None) else tot + v[1][a]
            shp[a] = tot
        elif op == "squeeze":
            if "axes" in A:
                axes = [norm_axis(int(x), len(shp)) for x in attr_list(A["axes"])]
            else:
                axes = [i for i, d in enumerate(shp) if d == 1]
            shp = [d for i, d in enumerate(shp) if i not in axes]
        elif op == "unsqueeze":
            axes = [int(x) for x in attr_list(A["axes"])]
            r = len(shp) + len(axes)
            axes = sorted(norm_axis(a, r) for a in axes)
            for a in axes:
                shp.insert(a, 1)
        elif op == "gather":
            a = norm_axis(int(A.get("axis", "0")), len(shp))
            shp = shp[:a] + list(vals[1][1]) + shp[a + 1:]
        elif op == "matmul":
            a, b = list(vals[0][1]), list(vals[1][1])
            if int(A.get("transpose_a", "0")) and len(a) >= 2:
                a[-1], a[-2] = a[-2], a[-1]
            if int(A.get("transpose_b", "0")) and len(b) >= 2:
                b[-1], b[-2] = b[-2], b[-1]
            if len(a) == 1 and len(b) == 1:
                shp = []
            elif len(a) == 1:
                shp = b[:-2] + b[-1:]
            elif len(b) == 1:
                shp = a[:-1]
            else:
                shp = bcast_static(a[:-2], b[:-2]) + [a[-2], b[-1]]
        elif op == "arange":
            shp = [const_dim(A["n"])]
    except (KeyError, ValueError, IndexError):
        shp = None  # unknown: only matters for a later default squeeze
    return dt, shp


# ----------------------------------------------------------------------------------------
# Backends. Each op builder gets (node, attribute helpers, operand dtypes) and returns a
# closure over the operand values.
# ----------------------------------------------------------------------------------------

# erf(x) ~= x * P(x^2) / Q(x^2) for x in [-4, 4] (Eigen / XLA float32 coefficients)
ERF_ALPHA = (-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
             -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
             -1.60960333262415e-02)
ERF_BETA = (-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
            -7.37332916720468e-03, -1.42647390514189e-02)


class Ctx:
    """Per-node helpers: attributes evaluated with the bound symbols."""

    def __init__(self, node, syms):
        self.node, self.syms, self.A = node, syms, node.attrs

    def has(self, k):
        return k in self.A

    def int(self, k, default=None):
        if k not in self.A:
            if default is None:
                raise ValueError("%s: attribute %s is required" % (self.node.op, k))
            return default
        return eval_dim(self.A[k], self.syms)

    def float(self, k, default=None):
        if k not in self.A:
            return default
        return float(self.A[k])

    def ints(self, k, default=None):
        if k not in self.A:
            return default
        return [eval_dim(t, self.syms) for t in attr_list(self.A[k])]

    def str(self, k, default=None):
        return self.A.get(k, default)


def make_numpy_backend(np):
    np.seterr(all="ignore")
    f32 = np.float32
    NPDT = {"f32": np.float32, "f16": np.float16, "bf16": np.float32, "i32": np.int32,
            "i64": np.int64, "bool": np.bool_}
    IRANGE = {"i32": (-2 ** 31, 2 ** 31 - 1), "i64": (-2 ** 63, 2 ** 63 - 1)}

    def bf16_round(x):
        """Round an f32 array to bf16 precision (nearest even), kept as f32."""
        x = np.asarray(x, dtype=np.float32)
        u = x.view(np.uint32).astype(np.uint64)
        r = (u + np.uint64(0x7FFF) + ((u >> np.uint64(16)) & np.uint64(1))) \
            & np.uint64(0xFFFF0000)
        r = r.astype(np.uint32).view(np.float32)
        nan = np.isnan(x)
        if nan.any():
            r = np.where(nan, np.float32("nan"), r)
        return r.reshape(x.shape)

    def to_bf16_from_f64(x):
        x = np.asarray(x, dtype=np.float64)
        u = x.view(np.uint64)
        r = (u + np.uint64(0x1FFFFFFFFFFF) + ((u >> np.uint64(45)) & np.uint64(1))) \
            & np.uint64(0xFFFFE00000000000)
        return bf16_round(r.view(np.float64).astype(np.float32))

    class B:
        name = "numpy"

        @staticmethod
        def load(arr, dt):
            if dt == "bf16":
                if arr.dtype.kind != "V" or arr.dtype.itemsize != 2:
                    raise ValueError("bf16 data must be '<V2', got %s" % arr.dtype)
                u = arr.view(np.uint16).astype(np.uint32) << 16
                return u.view(np.float32)
            want = np.dtype(NPDT[dt])
            if arr.dtype != want:
                raise ValueError("expected %s data, got %s" % (dt, arr.dtype))
            return arr

        @staticmethod
        def store(val, dt):
            a = np.asarray(val)
            if dt == "bf16":
                b = bf16_round(a.astype(np.float32))
                return (b.view(np.uint32) >> 16).astype(np.uint16).view("V2")
            return np.asarray(a, dtype=NPDT[dt])

        @staticmethod
        def literal(v, dt):
            if dt in INTS:
                v = int(v) if math.isfinite(v) else 0
            elif dt == "bool":
                v = bool(v)
            a = np.array(v, dtype=NPDT[dt])
            return bf16_round(a) if dt == "bf16" else a

    def erf_into(z, out):
        """out <- erf(z) (out may be z's storage: z is read first)."""
        x = np.clip(z, f32(-4), f32(4), out=out)
        x2 = np.square(x)
        p = np.multiply(x2, f32(ERF_ALPHA[0]))
        p += f32(ERF_ALPHA[1])
        for c in ERF_ALPHA[2:]:
            p *= x2
            p += f32(c)
        q = np.multiply(x2, f32(ERF_BETA[0]))
        q += f32(ERF_BETA[1])
        for c in ERF_BETA[2:]:
            q *= x2
            q += f32(c)
        p *= x
        return np.divide(p, q, out=out)

    def int_div(a, b):
        if np.any(b == 0):
            raise ZeroDivisionError("integer division by zero")
        neg1 = b == -1
        bb = np.where(neg1, 1, b).astype(b.dtype) if np.any(neg1) else b
        q = np.floor_divide(a, bb)
        r = a - q * bb
        q = q + ((r != 0) & ((a < 0) != (bb < 0))).astype(q.dtype)
        if bb is not b:
            q = np.where(neg1, np.negative(a), q)
        return q

    def int_pow(a, b):
        neg = b < 0
        r = np.power(a, np.where(neg, 0, b).astype(b.dtype))
        if np.any(neg):
            one = np.ones((), a.dtype)
            odd = (b & 1) != 0
            special = np.where(a == 1, one, np.where(a == -1, np.where(odd, -one, one), 0))
            r = np.where(neg, special.astype(r.dtype), r)
        return r

    def float_to_int(x, dt):
        lo, hi = IRANGE[dt]
        x = np.asarray(x)
        xf = x.astype(np.float64) if x.dtype != np.float64 else x
        big = xf >= float(hi + 1)
        small = xf < float(lo)
        bad = np.isnan(xf) | big | small
        y = np.where(bad, 0.0, xf).astype(NPDT[dt])
        if np.any(bad):
            y = np.where(big, hi, np.where(small, lo, y)).astype(NPDT[dt])
        return y

    def build(node, c, dts, rdt):
        op = node.op
        dt0 = dts[0] if dts else None
        isint = dt0 in INTS or dt0 == "bool"

        if op == "neg":
            return np.negative
        if op == "abs":
            return np.abs
        if op in ("exp", "log", "sqrt", "tanh", "sin", "cos"):
            return getattr(np, op)
        if op == "rsqrt":
            def rsqrt(x):
                y = np.sqrt(x)
                return np.reciprocal(y, out=y)
            return rsqrt
        if op == "reciprocal":
            return np.reciprocal
        if op == "sigmoid":
            def sigmoid(x):
                t = np.negative(x)
                np.exp(t, out=t)
                t += f32(1)
                return np.reciprocal(t, out=t)
            return sigmoid
        if op == "silu":
            def silu(x):
                t = np.negative(x)
                np.exp(t, out=t)
                t += f32(1)
                return np.divide(x, t, out=t)
            return silu
        if op == "relu":
            zero = np.zeros((), NPDT[dt0])
            return lambda x: np.maximum(x, zero)
        if op == "erf":
            return lambda x: erf_into(x, np.empty_like(x))
        if op == "gelu":
            rs2 = f32(1 / math.sqrt(2))

            def gelu(x):
                t = np.multiply(x, rs2)
                erf_into(t, t)
                t += f32(1)
                t *= x
                t *= f32(0.5)
                return t
            return gelu
        if op == "gelu_tanh":
            k = math.sqrt(2 / math.pi)
            ka, kb = f32(k * 0.044715), f32(k)

            def gelu_tanh(x):
                t = np.square(x)
                t *= ka
                t += kb
                t *= x
                np.tanh(t, out=t)
                t += f32(1)
                t *= x
                t *= f32(0.5)
                return t
            return gelu_tanh
        if op in ("floor", "ceil", "round"):
            if isint:
                return lambda x: x
            return {"floor": np.floor, "ceil": np.ceil, "round": np.rint}[op]
        if op == "sign":
            return np.sign
        if op == "not":
            return np.logical_not
        if op == "add":
            return np.add
        if op == "sub":
            return np.subtract
        if op == "mul":
            return np.multiply
        if op == "div":
            return int_div if isint else np.divide
        if op == "pow":
            return int_pow if isint else np.power
        if op == "max":
            return np.maximum
        if op == "min":
            return np.minimum
        if op in ("eq", "ne", "lt", "le", "gt", "ge"):
            return {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
                    "gt": np.greater, "ge": np.greater_equal}[op]
        if op == "and":
            return np.logical_and
        if op == "or":
            return np.logical_or
        if op == "select":
            return np.where
        if op == "clip":
            lo, hi = c.float("lo"), c.float("hi")
            lo = None if lo is None else B.literal(lo, dt0)
            hi = None if hi is None else B.literal(hi, dt0)
            if lo is None and hi is None:
                return lambda x: x
            if lo is None:
                return lambda x: np.minimum(x, hi)
            if hi is None:
                return lambda x: np.maximum(x, lo)
            return lambda x: np.minimum(np.maximum(x, lo), hi)
        if op == "cast":
            to = c.str("to")
            if to not in DTYPES:
                raise ValueError("cast: unknown dtype %s" % to)
            if to == "bool":
                return lambda x: x != 0
            if to in INTS and dt0 in FLOATS:
                return lambda x: float_to_int(x, to)
            if to == "bf16":
                if dt0 in INTS:
                    return to_bf16_from_f64
                return lambda x: bf16_round(np.asarray(x, dtype=np.float32))
            if to == "f16" and dt0 in INTS:
                return lambda x: x.astype(np.float64).astype(np.float16)
            t = NPDT[to]
            return lambda x: x.astype(t)
        if op in REDUCE:
            axes = c.ints("axes")
            axis = None if axes is None else tuple(axes)
            keep = bool(c.int("keepdims", 0))
            if op == "reduce_sum" or op == "reduce_prod":
                fn = np.sum if op == "reduce_sum" else np.prod
                kw = {"dtype": NPDT[dt0]} if dt0 in INTS else {}
                return lambda x: fn(x, axis=axis, keepdims=keep, **kw)
            fn = {"reduce_mean": np.mean, "reduce_max": np.max, "reduce_min": np.min}[op]
            return lambda x: fn(x, axis=axis, keepdims=keep)
        if op == "argmax":
            axis, keep = c.int("axis", 0), bool(c.int("keepdims", 0))
            return lambda x: np.argmax(x, axis=axis, keepdims=keep).astype(np.int64)
        if op == "softmax":
            axis = c.int("axis", -1)

            def softmax(x):
                e = np.subtract(x, np.max(x, axis=axis, keepdims=True))
                np.exp(e, out=e)
                e /= np.sum(e, axis=axis, keepdims=True)
                return e
            return softmax
        if op == "log_softmax":
            axis = c.int("axis", -1)

            def log_softmax(x):
                e = np.subtract(x, np.max(x, axis=axis, keepdims=True))
                s = np.sum(np.exp(e), axis=axis, keepdims=True)
                e -= np.log(s, out=s)
                return e
            return log_softmax
        if op == "layernorm":
            axis, eps = c.int("axis", -1), f32(c.float("eps", 1e-5))

            def layernorm(x, gamma, beta):
                ax = tuple(range(norm_axis(axis, x.ndim), x.ndim))
                xc = np.subtract(x, np.mean(x, axis=ax, keepdims=True))
                var = np.mean(np.square(xc), axis=ax, keepdims=True)
                var += eps
                np.sqrt(var, out=var)
                xc /= var
                xc *= gamma
                xc += beta
                return xc
            return layernorm
        if op == "rmsnorm":
            eps = f32(c.float("eps", 1e-6))

            def rmsnorm(x, gamma):
                ms = np.mean(np.square(x), axis=-1, keepdims=True)
                ms += eps
                np.sqrt(ms, out=ms)
                y = np.divide(x, ms)
                y *= gamma
                return y
            return rmsnorm
        if op == "reshape":
            shape = tuple(c.ints("shape"))
            return lambda x: np.reshape(x, shape)
        if op == "transpose":
            perm = c.ints("perm")
            perm = None if perm is None else tuple(perm)
            return lambda x: np.transpose(x, perm)
        if op == "broadcast_to":
            shape = tuple(c.ints("shape"))
            return lambda x: np.broadcast_to(x, shape)
        if op == "slice":
            starts, ends = c.ints("starts"), c.ints("ends")
            axes = c.ints("axes", list(range(len(starts))))
            steps = c.ints("steps", [1] * len(starts))

            def slc(x):
                idx = [slice(None)] * x.ndim
                for a, s, e, st in zip(axes, starts, ends, steps):
                    idx[norm_axis(a, x.ndim)] = slice(s, e, st)
                return x[tuple(idx)]
            return slc
        if op == "concat":
            axis = c.int("axis")
            return lambda *xs: np.concatenate(xs, axis=axis)
        if op == "squeeze":
            axes = c.ints("axes")
            if axes is None:
                axes = c.default_squeeze
            axes = tuple(axes)
            return lambda x: np.squeeze(x, axis=axes)
        if op == "unsqueeze":
            axes = tuple(c.ints("axes"))
            return lambda x: np.expand_dims(x, axes)
        if op == "gather":
            axis = c.int("axis", 0)
            return lambda x, i: np.take(x, i, axis=axis)
        if op == "matmul":
            ta, tb = c.int("transpose_a", 0), c.int("transpose_b", 0)

            def matmul(a, b):
                if ta and a.ndim >= 2:
                    a = np.swapaxes(a, -1, -2)
                if tb and b.ndim >= 2:
                    b = np.swapaxes(b, -1, -2)
                if a.ndim > 2 and b.ndim == 2:
                    # [..., M, K] @ [K, N]: one GEMM over the folded rows (what torch does),
                    # not np.matmul's loop of one small GEMM per batch element
                    y = np.matmul(a.reshape(-1, a.shape[-1]), b)
                    return y.reshape(a.shape[:-1] + (b.shape[-1],))
                return np.matmul(a, b)
            return matmul
        if op == "full":
            shape, dt = tuple(c.ints("shape")), c.str("dtype", "f32")
            v = B.literal(parse_value(c.A["value"]), dt)
            return lambda: np.full(shape, v, dtype=NPDT[dt])
        if op == "arange":
            n, dt = c.int("n"), c.str("dtype", "i64")
            if dt == "bf16":
                return lambda: bf16_round(np.arange(n, dtype=np.float32))
            return lambda: np.arange(n, dtype=NPDT[dt])
        raise Unsupported("op %s is not supported by the %s peer" % (op, B.name))

    def wrap(fn, node, dts, rdt):
        """f16/bf16: compute in f32, round the result to the value's dtype."""
        if node.op in LAYOUT or node.op in ("cast", "full", "arange"):
            return fn
        if "f16" in dts:
            inner = fn

            def fn(*xs):
                return inner(*[x.astype(np.float32) if x.dtype == np.float16 else x
                               for x in xs])
        if rdt == "f16":
            inner2 = fn
            return lambda *xs: inner2(*xs).astype(np.float16)
        if rdt == "bf16":
            inner3 = fn
            return lambda *xs: bf16_round(inner3(*xs))
        return fn

    B.build = staticmethod(build)
    B.wrap = staticmethod(wrap)
    B.sync = staticmethod(lambda: None)
    return B


def make_torch_backend(torch, np, threads):
    import torch.nn.functional as F
    try:
        torch.set_num_threads(threads)
    except Exception:
        pass
    try:
        torch.set_num_interop_threads(1)
    except Exception:
        pass
    TDT = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16,
           "i32": torch.int32, "i64": torch.int64, "bool": torch.bool}
    IRANGE = {"i32": (-2 ** 31, 2 ** 31 - 1), "i64": (-2 ** 63, 2 ** 63 - 1)}
    LOW = (torch.float16, torch.bfloat16)

    class B:
        name = "torch"

        @staticmethod
        def load(arr, dt):
            if dt == "bf16":
                if arr.dtype.kind != "V" or arr.dtype.itemsize != 2:
                    raise ValueError("bf16 data must be '<V2', got %s" % arr.dtype)
                return torch.from_numpy(arr.view(np.int16).copy()).view(torch.bfloat16)
            want = {"f32": np.float32, "f16": np.float16, "i32": np.int32, "i64": np.int64,
                    "bool": np.bool_}[dt]
            if arr.dtype != np.dtype(want):
                raise ValueError("expected %s data, got %s" % (dt, arr.dtype))
            return torch.from_numpy(np.ascontiguousarray(arr))

        @staticmethod
        def store(val, dt):
            t = val.to(TDT[dt]).contiguous()
            if dt == "bf16":
                return t.view(torch.int16).numpy().view("V2")
            return t.numpy()

        @staticmethod
        def literal(v, dt):
            if dt in INTS:
                v = int(v) if math.isfinite(v) else 0
            elif dt == "bool":
                v = bool(v)
            return torch.tensor(v, dtype=TDT[dt])

    def int_div(a, b):
        if bool((b == 0).any()):
            raise ZeroDivisionError("integer division by zero")
        neg1 = b == -1
        if bool(neg1.any()):
            bb = torch.where(neg1, torch.ones_like(b), b)
            return torch.where(neg1, torch.neg(a), torch.div(a, bb, rounding_mode="trunc"))
        return torch.div(a, b, rounding_mode="trunc")

    def int_pow(a, b):
        neg = b < 0
        r = torch.pow(a, torch.where(neg, torch.zeros_like(b), b))
        if bool(neg.any()):
            one = torch.ones((), dtype=a.dtype)
            odd = (b & 1) != 0
            special = torch.where(a == 1, one, torch.where(
                a == -1, torch.where(odd, -one, one), torch.zeros((), dtype=a.dtype)))
            r = torch.where(neg, special.to(r.dtype), r)
        return r

    def float_to_int(x, dt):
        lo, hi = IRANGE[dt]
        xf = x.double()
        big = xf >= float(hi + 1)
        small = xf < float(lo)
        bad = torch.isnan(xf) | big | small
        y = torch.where(bad, torch.zeros_like(xf), xf).to(TDT[dt])
        y = y.masked_fill(big, hi).masked_fill(small, lo)
        return y

    def int_to_bf16(x):
        """Round once: f64 (exact for |x| < 2^53) to bf16 precision by its bits."""
        u = x.double().view(torch.int64)
        u = (u + 0x1FFFFFFFFFFF + ((u >> 45) & 1)) & -(1 << 45)
        return u.view(torch.float64).float().to(torch.bfloat16)

    def reduce_dims(x, axes):
        """Normalized dims to reduce, or None for 'nothing to reduce'."""
        if axes is None:
            dims = list(range(x.dim()))
        else:
            dims = [norm_axis(a, x.dim()) for a in axes]
        return dims or None

    def build(node, c, dts, rdt):
        op = node.op
        dt0 = dts[0] if dts else None
        isint = dt0 in INTS or dt0 == "bool"

        simple = {"neg": torch.neg, "abs": torch.abs, "exp": torch.exp, "log": torch.log,
                  "sqrt": torch.sqrt, "rsqrt": torch.rsqrt, "reciprocal": torch.reciprocal,
                  "tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu,
                  "silu": F.silu, "erf": torch.erf, "sin": torch.sin, "cos": torch.cos,
                  "not": torch.logical_not, "add": torch.add, "sub": torch.sub,
                  "mul": torch.mul, "max": torch.maximum, "min": torch.minimum,
                  "eq": torch.eq, "ne": torch.ne, "lt": torch.lt, "le": torch.le,
                  "gt": torch.gt, "ge": torch.ge, "and": torch.logical_and,
                  "or": torch.logical_or, "select": torch.where}
        if op in simple:
            if op == "relu" and isint:
                zero = torch.zeros((), dtype=TDT[dt0])
                return lambda x: torch.maximum(x, zero)
            return simple[op]
        if op == "gelu":
            return lambda x: F.gelu(x)
        if op == "gelu_tanh":
            return lambda x: F.gelu(x, approximate="tanh")
        if op in ("floor", "ceil", "round"):
            if isint:
                return lambda x: x
            return {"floor": torch.floor, "ceil": torch.ceil, "round": torch.round}[op]
        if op == "sign":
            if isint:
                return torch.sign
            return lambda x: torch.where(torch.isnan(x), x, torch.sign(x))
        if op == "div":
            return int_div if isint else torch.div
        if op == "pow":
            return int_pow if isint else torch.pow
        if op == "clip":
            lo, hi = c.float("lo"), c.float("hi")
            lo = None if lo is None else B.literal(lo, dt0)
            hi = None if hi is None else B.literal(hi, dt0)
            if lo is None and hi is None:
                return lambda x: x
            if lo is None:
                return lambda x: torch.minimum(x, hi)
            if hi is None:
                return lambda x: torch.maximum(x, lo)
            return lambda x: torch.minimum(torch.maximum(x, lo), hi)
        if op == "cast":
            to = c.str("to")
            if to not in DTYPES:
                raise ValueError("cast: unknown dtype %s" % to)
            if to == "bool":
                return lambda x: x != 0
            if to in INTS and dt0 in FLOATS:
                return lambda x: float_to_int(x, to)
            if to == "bf16" and dt0 in INTS:
                return int_to_bf16
            if to == "f16" and dt0 in INTS:
                return lambda x: x.double().to(TDT[to])
            t = TDT[to]
            return lambda x: x.to(t)
        if op in REDUCE:
            axes = c.ints("axes")
            keep = bool(c.int("keepdims", 0))
            if op == "reduce_prod":
                def prod(x):
                    dims = reduce_dims(x, axes)
                    if dims is None:
                        return x
                    kept = [i for i in range(x.dim()) if i not in dims]
                    out_shape = [1 if i in dims else x.shape[i] for i in range(x.dim())] \
                        if keep else [x.shape[i] for i in kept]
                    y = x.permute(kept + dims).reshape([x.shape[i] for i in kept] + [-1])
                    kw = {"dtype": x.dtype} if isint else {}
                    return torch.prod(y, -1, **kw).reshape(out_shape)
                return prod
            if op == "reduce_sum":
                kw = {"dtype": TDT[dt0]} if isint else {}

                def rsum(x):
                    dims = reduce_dims(x, axes)
                    return x if dims is None else torch.sum(x, dims, keepdim=keep, **kw)
                return rsum
            fn = {"reduce_mean": torch.mean, "reduce_max": torch.amax,
                  "reduce_min": torch.amin}[op]

            def red(x):
                dims = reduce_dims(x, axes)
                return x if dims is None else fn(x, dims, keepdim=keep)
            return red
        if op == "argmax":
            axis, keep = c.int("axis", 0), bool(c.int("keepdims", 0))
            return lambda x: torch.argmax(x, dim=axis, keepdim=keep)
        if op == "softmax":
            axis = c.int("axis", -1)
            return lambda x: torch.softmax(x, axis)
        if op == "log_softmax":
            axis = c.int("axis", -1)
            return lambda x: torch.log_softmax(x, axis)
        if op == "layernorm":
            axis, eps = c.int("axis", -1), c.float("eps", 1e-5)

            def affine_fits(p, ns):
                """p, applied over the normalized dims only, as an ns-shaped weight."""
                s = list(p.shape)
                while len(s) > len(ns) and s[0] == 1:
                    s.pop(0)
                if len(s) > len(ns):
                    return None
                full = [1] * (len(ns) - len(s)) + s
                if any(d != 1 and d != n for d, n in zip(full, ns)):
                    return None
                q = p.reshape(full)
                return q if list(q.shape) == list(ns) else q.expand(ns)

            def layernorm(x, gamma, beta):
                ns = tuple(x.shape[norm_axis(axis, x.dim()):])
                w, b = affine_fits(gamma, ns), affine_fits(beta, ns)
                if w is not None and b is not None:
                    return F.layer_norm(x, ns, w, b, eps)
                return F.layer_norm(x, ns, None, None, eps) * gamma + beta
            return layernorm
        if op == "rmsnorm":
            eps = c.float("eps", 1e-6)
            return lambda x, g: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * g
        if op == "reshape":
            shape = tuple(c.ints("shape"))
            return lambda x: torch.reshape(x, shape)
        if op == "transpose":
            perm = c.ints("perm")

            def transpose(x):
                return x.permute(perm if perm is not None else list(range(x.dim()))[::-1])
            return transpose
        if op == "broadcast_to":
            shape = tuple(c.ints("shape"))
            return lambda x: torch.broadcast_to(x, shape)
        if op == "slice":
            starts, ends = c.ints("starts"), c.ints("ends")
            axes = c.ints("axes", list(range(len(starts))))
            steps = c.ints("steps", [1] * len(starts))

            def slc(x):
                idx = [slice(None)] * x.dim()
                negs = []
                for a, s, e, st in zip(axes, starts, ends, steps):
                    a = norm_axis(a, x.dim())
                    if st > 0:
                        idx[a] = slice(s, e, st)
                    else:
                        negs.append((a, slice(s, e, st)))
                y = x[tuple(idx)]
                for a, sl in negs:
                    r = range(*sl.indices(x.shape[a]))
                    y = torch.index_select(y, a, torch.tensor(list(r), dtype=torch.int64))
                return y
            return slc
        if op == "concat":
            axis = c.int("axis")
            return lambda *xs: torch.cat(xs, axis)
        if op == "squeeze":
            axes = c.ints("axes")
            if axes is None:
                axes = c.default_squeeze

            def squeeze(x):
                ax = [norm_axis(a, x.dim()) for a in axes]
                for a in ax:
                    if x.shape[a] != 1:
                        raise ValueError("squeeze: dim %d is %d, not 1" % (a, x.shape[a]))
                return x.reshape([d for i, d in enumerate(x.shape) if i not in ax])
            return squeeze
        if op == "unsqueeze":
            axes = c.ints("axes")

            def unsqueeze(x):
                r = x.dim() + len(axes)
                for a in sorted(norm_axis(a, r) for a in axes):
                    x = x.unsqueeze(a)
                return x
            return unsqueeze
        if op == "gather":
            axis = c.int("axis", 0)

            def gather(x, i):
                a = norm_axis(axis, x.dim())
                n = x.shape[a]
                i64 = i.long()
                i64 = torch.where(i64 < 0, i64 + n, i64)
                y = torch.index_select(x, a, i64.reshape(-1))
                return y.reshape(list(x.shape[:a]) + list(i.shape) + list(x.shape[a + 1:]))
            return gather
        if op == "matmul":
            ta, tb = c.int("transpose_a", 0), c.int("transpose_b", 0)
            if not ta and not tb:
                return torch.matmul

            def matmul(a, b):
                if ta and a.dim() >= 2:
                    a = a.transpose(-1, -2)
                if tb and b.dim() >= 2:
                    b = b.transpose(-1, -2)
                return torch.matmul(a, b)
            return matmul
        if op == "full":
            shape, dt = tuple(c.ints("shape")), c.str("dtype", "f32")
            v = B.literal(parse_value(c.A["value"]), dt).item()
            return lambda: torch.full(shape, v, dtype=TDT[dt])
        if op == "arange":
            n, dt = c.int("n"), c.str("dtype", "i64")
            return lambda: torch.arange(n, dtype=TDT[dt])
        raise Unsupported("op %s is not supported by the %s peer" % (op, B.name))

    def wrap(fn, node, dts, rdt):
        """f16/bf16: try torch's native kernel; if it has none, compute in f32 and round."""
        if node.op in LAYOUT or node.op in ("cast", "full", "arange"):
            return fn
        if not any(d in ("f16", "bf16") for d in dts):
            return fn
        # ops that accumulate always run in f32 (torch's native bf16 CPU matmul, for one,
        # loses digits to cancellation); elementwise ops use native kernels when they exist
        state = {"native": node.op not in ACCUMULATING}
        rt = TDT[rdt]

        def lowp(*xs):
            if state["native"]:
                try:
                    return fn(*xs)
                except (RuntimeError, TypeError, NotImplementedError):
                    state["native"] = False
            y = fn(*[x.float() if x.dtype in LOW else x for x in xs])
            return y.to(rt)
        return lowp

    B.build = staticmethod(build)
    B.wrap = staticmethod(wrap)
    B.sync = staticmethod(lambda: None)  # CPU tensors: every op has finished on return
    return B


# ----------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------

def compile_graph(g, B, syms, data):
    """-> (base value list, steps, output slots with dtypes)."""
    slot = {}
    info = {}  # name -> (dtype, static shape)
    base = []
    for kind, name, dt, dims in g.decls:
        if name in slot:
            raise ValueError("%s is declared twice" % name)
        slot[name] = len(base)
        base.append(data[name])
        info[name] = (dt, [const_dim(d) for d in dims])
    steps = []
    node_slots = []
    for node in g.nodes:
        if node.op not in KNOWN:
            raise Unsupported("op %s is not supported by the %s peer" % (node.op, B.name))
        if node.op == "call":
            raise Unsupported("extern op call(fn=%s) is not supported by the %s peer"
                              % (node.attrs.get("fn", "?"), B.name))
        ins = []
        for o in node.operands:
            if o in slot:
                ins.append(info[o])
            elif LIT_RE.match(o):
                ins.append(None)
            else:
                raise ValueError("line %d: %s is not defined" % (node.line, o))
        rdt, rshape = static_info(node, ins)
        # literals take the other (value) operand's dtype
        others = [x[0] for x in ins if x is not None]
        if node.op == "select":
            others = [x[0] for x in ins[1:] if x is not None]
        lit_dt = others[0] if others else "f32"
        in_slots, dts = [], []
        for o, inf in zip(node.operands, ins):
            if inf is None:
                v = int(o) if INT_RE.match(o) else float(o)
                slot_lit = len(base)
                base.append(B.literal(v, lit_dt))
                in_slots.append(slot_lit)
                dts.append(lit_dt)
            else:
                in_slots.append(slot[o])
                dts.append(inf[0])
        c = Ctx(node, syms)
        if node.op == "squeeze" and "axes" not in node.attrs:
            shp = ins[0][1] if ins[0] is not None else None
            if shp is None:
                raise Unsupported("squeeze without axes of a value of unknown shape")
            c.default_squeeze = [i for i, d in enumerate(shp) if d == 1]
        try:
            fn = B.build(node, c, dts, rdt)
        except (Unsupported, ZeroDivisionError):
            raise
        except Exception as e:
            raise ValueError("line %d: %s: %s" % (node.line, node.op, e))
        fn = B.wrap(fn, node, dts, rdt)
        if node.out in slot:
            raise ValueError("line %d: %s is assigned twice" % (node.line, node.out))
        slot[node.out] = len(base)
        base.append(None)
        info[node.out] = (rdt, rshape)
        steps.append([fn, in_slots, slot[node.out], ()])
        node_slots.append(in_slots)
    outs = []
    for o in g.outputs:
        if o not in slot:
            raise ValueError("output %s is not defined" % o)
        outs.append((o, slot[o], info[o][0]))
    # drop each computed value after its last use (outputs are kept)
    keep = {s for _, s, _ in outs}
    ndecl = len(g.decls)
    last = {}
    for k, in_slots in enumerate(node_slots):
        for s in in_slots:
            last[s] = k
    frees = [[] for _ in steps]
    for s, k in last.items():
        if s not in keep and s >= ndecl and base[s] is None:
            frees[k].append(s)
    for k, st in enumerate(steps):
        st[3] = tuple(frees[k])
    return base, [tuple(s) for s in steps], outs


def keep_freed_memory():
    """Ask glibc malloc to keep freed memory instead of returning it to the kernel.

    Eager code allocates a fresh buffer for nearly every op. With glibc's defaults, buffers
    of ~1 MB and more are mmap'ed (or the heap top trimmed) and handed back on free, so every
    run page-faults all of its temporaries in again; on this VM that costs more than the
    arithmetic (a 64x4096 f32 temporary: ~8 ms of faults vs ~30 us of work). dvm reuses its
    buffers across runs; a long-running NumPy/PyTorch process would have a warm allocator.
    Set DVM_PEER_MALLOC=default to measure with glibc's defaults instead.
    """
    if os.environ.get("DVM_PEER_MALLOC") == "default":
        return
    try:
        import ctypes
        libc = ctypes.CDLL(None)
        M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
        libc.mallopt(M_MMAP_MAX, 0)
        libc.mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1)
    except Exception:
        pass


def main():
    ap = protocol_args(__doc__)
    ap.add_argument("--backend", choices=("numpy", "torch"), required=True)
    args = ap.parse_args()
    peer = args.peer_name or args.backend
    threads = max(1, args.threads)

    keep_freed_memory()
    # BLAS / OpenMP pools read these at library load: set them before importing numpy.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)

    try:
        import numpy as np
    except ImportError:
        emit({"peer": peer, "skip": "python3-numpy is not installed: apt-get install python3-numpy"})
        return 0
    if args.backend == "torch":
        # Debian's torch runs GEMM on OpenBLAS's pthread pool and its other ops on GOMP's
        # pool; GOMP threads spin-waiting between regions steal the cores from OpenBLAS
        # (W5, N=64, 2 threads on 2 cores: ~95 ms spinning vs ~22 ms passive).
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            import torch
        except ImportError:
            emit({"peer": peer,
                  "skip": "python3-torch is not installed: apt-get install python3-torch"})
            return 0
        B = make_torch_backend(torch, np, threads)
    else:
        B = make_numpy_backend(np)

    syms, wanted = read_run(args.dir)
    g = parse_graph(args.graph)

    try:
        data = {}
        for kind, name, dt, dims in g.decls:
            arr = np.load(os.path.join(args.dir, name + ".npy"), allow_pickle=False)
            # symbols not in bindings.json: take them from the data's shapes
            if len(dims) == len(arr.shape):
                for d, n in zip(dims, arr.shape):
                    d = d.strip()
                    if re.match("^" + NAME_RE + "$", d) and d not in syms:
                        syms[d] = int(n)
            data[name] = B.load(arr, dt)
        base, steps, outs = compile_graph(g, B, syms, data)
    except Unsupported as e:
        emit({"peer": peer, "skip": str(e)})
        return 0
    if wanted is not None:
        have = {o[0]: o for o in outs}
        missing = [w for w in wanted if w not in have]
        if missing:
            raise ValueError("outputs.json names %s, not outputs of the graph" % missing)
        outs = [have[w] for w in wanted]

    def run():
        vals = list(base)
        for fn, ins, out, frees in steps:
            vals[out] = fn(*[vals[i] for i in ins])
            for j in frees:
                vals[j] = None
        return vals

    ctx = None
    if args.backend == "torch":
        ctx = torch.inference_mode()
        ctx.__enter__()
    reps = max(1, args.reps)
    vals = run()  # warm-up
    B.sync()
    times = []
    perf = time.perf_counter_ns
    gc.collect()
    gc.disable()
    for _ in range(reps):
        vals = None
        t0 = perf()
        vals = run()
        B.sync()
        times.append(perf() - t0)
    gc.enable()
    for name, s, dt in outs:
        np.save(os.path.join(args.dir, "%s.%s.npy" % (name, peer)), B.store(vals[s], dt))
    if ctx is not None:
        ctx.__exit__(None, None, None)
    report(peer, times, reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
