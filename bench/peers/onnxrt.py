#!/usr/bin/python3
"""The "onnxruntime" peer of `dvm bench --peers` (protocol: bench/peers/README.md).

    onnxrt.py --graph G.dvm --dir DIR --threads T --reps R [--peer-name NAME]
              [--params initializers|inputs] [--shapes symbolic|static]
              [--save-model FILE.onnx] [--save-optimized FILE.onnx]

The graph (docs/format.md, docs/ops.md) is exported to an ONNX model (opset 17,
Debian's python3-onnx, checked with onnx.checker and strict shape inference), which
bench/peers/ort_run.mjs runs with onnxruntime-node (CPU execution provider, from
bench/node_modules) in a Node.js process: intraOpNumThreads = T, interOpNumThreads = 1,
sequential execution, graphOptimizationLevel 'all'. Only session.run is timed (after a
warm-up; the span includes onnxruntime-node's JS binding, ~15 us per run here); exporting,
loading the model and building the session are not. Timed runs fetch only a one-element
"probe" of each output (an extra Reshape+Slice per output, ~1 us): onnxruntime-node copies
every fetched output into a fresh JS ArrayBuffer, which would otherwise dominate (W2 at
N=64: ~1.2 ms per run instead of ~45 us); the outputs are written from one more, untimed run.

Model:
- `param`s become initializers (constant weights, the way ONNX models ship: ORT may
  constant-fold and pre-pack them), filled from DIR/NAME.npy; `--params inputs` makes
  them graph inputs fed at every run instead. `input`s are graph inputs.
- Input dims that are symbols (or expressions of symbols) stay symbolic (dim_param);
  `--shapes static` fixes them to the bound values. Attributes that depend on symbols
  (reshape/broadcast_to/full shapes, slice bounds, arange's n) are evaluated with this
  binding's values: one model per binding.
- Ops are written with standard ONNX ops, in the patterns ORT's graph optimizer fuses:
  gelu = (x*0.5)*(1+Erf(x/sqrt2)) (-> com.microsoft Gelu / BiasGelu), silu = x*Sigmoid(x)
  (-> QuickGelu), rmsnorm = Pow/ReduceMean/Add/Sqrt/Div/Mul (-> SimplifiedLayerNormalization),
  layernorm -> LayerNormalization (opset 17), matmul + bias add (-> Gemm / FusedGemm),
  transpose_a/b -> Transpose (folded into FusedMatMul, or into a constant weight). One
  exception: f32 gelu_tanh is emitted as com.microsoft FastGelu, which ORT's FastGeluFusion
  would produce from the tanh pattern except when the result is a graph output (W1); f16
  gelu_tanh uses the pattern.

Not supported (a "skip" line): `call` (extern C functions); bf16 values (ORT's CPU EP has
almost no bf16 kernels); an op ORT has no CPU kernel for with the dtypes used (reported by
ort_run.mjs when the session is built).
"""

import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dvmtext import (  # noqa: E402  the .dvm parser the peers share
    INT_RE, INTS, LIT_RE, NAME_RE, Unsupported, emit, eval_dim, norm_axis, parse_graph,
    parse_number, protocol_args, read_run, split_top)

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
RUNNER = os.path.join(HERE, "ort_run.mjs")
NPM_HINT = "cd bench && ONNXRUNTIME_NODE_INSTALL=skip npm install"
OPSET = 17
MS = "com.microsoft"


# ----------------------------------------------------------------------------------------
# Export to ONNX
# ----------------------------------------------------------------------------------------

UNARY_ONNX = {"neg": "Neg", "abs": "Abs", "exp": "Exp", "log": "Log", "sqrt": "Sqrt",
              "reciprocal": "Reciprocal", "tanh": "Tanh", "sigmoid": "Sigmoid", "erf": "Erf",
              "sin": "Sin", "cos": "Cos", "floor": "Floor", "ceil": "Ceil", "round": "Round",
              "sign": "Sign", "not": "Not", "relu": "Relu"}
BINARY_ONNX = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow",
               "max": "Max", "min": "Min", "eq": "Equal", "lt": "Less", "le": "LessOrEqual",
               "gt": "Greater", "ge": "GreaterOrEqual", "and": "And", "or": "Or", "ne": None}
REDUCE_ONNX = {"reduce_sum": "ReduceSum", "reduce_mean": "ReduceMean",
               "reduce_max": "ReduceMax", "reduce_min": "ReduceMin",
               "reduce_prod": "ReduceProd"}
CMP = {"eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not"}
INT64_MIN = -(2 ** 63)


def bcast(*shapes):
    r = max([len(s) for s in shapes] + [0])
    out = []
    for i in range(r):
        d = 1
        for s in shapes:
            k = i - (r - len(s))
            if k < 0:
                continue
            x = s[k]
            if x != 1:
                if d != 1 and d != x:
                    raise ValueError("shapes %s do not broadcast" % (shapes,))
                d = x
        out.append(d)
    return out


class Exporter:
    def __init__(self, np, onnx, g, syms, data, params_as, shapes_mode):
        from onnx import TensorProto, helper, numpy_helper
        self.np, self.onnx, self.h, self.nh = np, onnx, helper, numpy_helper
        self.g, self.syms, self.data = g, syms, data
        self.params_as, self.shapes_mode = params_as, shapes_mode
        self.ONNX_DT = {"f32": TensorProto.FLOAT, "f16": TensorProto.FLOAT16,
                        "i32": TensorProto.INT32, "i64": TensorProto.INT64,
                        "bool": TensorProto.BOOL}
        self.NP_DT = {"f32": np.float32, "f16": np.float16, "i32": np.int32,
                      "i64": np.int64, "bool": np.bool_}
        self.nodes, self.inits, self.inputs = [], [], []
        self.info = {}      # value name -> (dtype, concrete shape list, const-dim flags)
        self.consts = {}    # cache of scalar/vector constants
        self.tmp = 0
        self.used = set()

    # -- helpers ----------------------------------------------------------------------
    def fresh(self, hint):
        while True:
            self.tmp += 1
            n = "_%s_%d" % (hint, self.tmp)
            if n not in self.used:
                self.used.add(n)
                return n

    def node(self, op, ins, out=None, domain=None, **attrs):
        out = out or self.fresh(op.lower())
        kw = {"domain": domain} if domain else {}
        self.nodes.append(self.h.make_node(op, list(ins), [out], **kw, **attrs))
        return out

    def const(self, value, dtype, shape=None):
        """An initializer holding value (scalar when shape is None) of dvm dtype."""
        np = self.np
        if dtype == "bf16":
            raise Unsupported("bf16 is not supported by this peer (ORT CPU has no bf16 kernels)")
        arr = np.array(value, dtype=self.NP_DT[dtype])
        if shape is not None:
            arr = arr.reshape(shape)
        key = (dtype, arr.shape, arr.tobytes())
        if key in self.consts:
            return self.consts[key]
        name = self.fresh("c")
        self.inits.append(self.nh.from_array(arr, name))
        self.consts[key] = name
        return name

    def ints(self, vals):
        return self.const(list(vals), "i64", [len(vals)])

    def dim(self, text):
        return eval_dim(text, self.syms)

    def attr_list(self, node, key, default=None):
        if key not in node.attrs:
            return default
        t = node.attrs[key].strip()
        if not (t.startswith("[") and t.endswith("]")):
            raise ValueError("line %d: %s= expects a list, got %r" % (node.line, key, t))
        return [self.dim(x) for x in split_top(t[1:-1])]

    def attr_int(self, node, key, default=None):
        if key not in node.attrs:
            if default is None:
                raise ValueError("line %d: %s needs %s=" % (node.line, node.op, key))
            return default
        return self.dim(node.attrs[key])

    def attr_float(self, node, key, default=None):
        if key not in node.attrs:
            return default
        return float(parse_number(node.attrs[key]))

    def onnx_dt(self, dt):
        if dt == "bf16":
            raise Unsupported("bf16 is not supported by this peer (ORT CPU has no bf16 kernels)")
        return self.ONNX_DT[dt]

    # -- declarations -----------------------------------------------------------------
    def declare(self):
        np = self.np
        for kind, name, dt, dims in self.g.decls:
            self.used.add(name)
            self.onnx_dt(dt)
            shape = [self.dim(d) for d in dims]
            const = [INT_RE.match(d.strip()) is not None for d in dims]
            self.info[name] = (dt, shape, const)
            arr = self.data[name]
            if list(arr.shape) != shape:
                raise ValueError("%s.npy has shape %s, the graph declares %s = %s"
                                 % (name, list(arr.shape), dims, shape))
            if arr.dtype != np.dtype(self.NP_DT[dt]):
                raise ValueError("%s.npy has dtype %s, the graph declares %s"
                                 % (name, arr.dtype, dt))
            if kind == "param" and self.params_as == "initializers":
                self.inits.append(self.nh.from_array(np.ascontiguousarray(arr), name))
            else:
                if self.shapes_mode == "static":
                    sdims = shape
                else:
                    sdims = [int(d) if c else d.replace(" ", "") for d, c in zip(dims, const)]
                self.inputs.append(self.h.make_tensor_value_info(name, self.ONNX_DT[dt], sdims))
        for nd in self.g.nodes:
            self.used.add(nd.out)

    # -- operands ---------------------------------------------------------------------
    def operands(self, nd):
        """[(value name, None) or (None, literal text)] for the operands of nd."""
        vals = []
        for o in nd.operands:
            if o in self.info:
                vals.append((o, None))
            elif LIT_RE.match(o):
                vals.append((None, o))
            else:
                raise ValueError("line %d: unknown value %r" % (nd.line, o))
        return vals

    def materialize(self, vals, dt):
        out = []
        for name, lit in vals:
            if name is not None:
                out.append(name)
            else:
                v = parse_number(lit)
                if dt in INTS:
                    v = int(v)
                elif dt == "bool":
                    v = bool(v)
                out.append(self.const(v, dt))
        return out

    # -- ops --------------------------------------------------------------------------
    def export_node(self, nd):
        op, out, A = nd.op, nd.out, nd.attrs
        vals = self.operands(nd)
        infos = [self.info[n] if n else None for n, _ in vals]
        known = [i for i in infos if i is not None]

        if op == "call":
            raise Unsupported("call (extern C function %s) is not supported by the onnxruntime "
                              "peer" % A.get("fn", "?"))

        if op in UNARY_ONNX or op in ("rsqrt", "gelu", "gelu_tanh", "silu"):
            (x,) = self.materialize(vals, known[0][0] if known else "f32")
            dt, shp, cst = self.info[x]
            if op in ("floor", "ceil", "round") and dt in INTS:
                self.node("Identity", [x], out)
            elif op == "relu" and dt in INTS:
                self.node("Max", [x, self.const(0, dt)], out)
            elif op in UNARY_ONNX:
                self.node(UNARY_ONNX[op], [x], out)
            elif op == "rsqrt":
                self.node("Reciprocal", [self.node("Sqrt", [x])], out)
            elif op == "silu":
                self.node("Mul", [x, self.node("Sigmoid", [x])], out)
            elif op == "gelu":
                # ORT's GeluFusion pattern (-> com.microsoft Gelu):
                # (x * 0.5) * (1 + erf(x / sqrt(2)))
                d = self.node("Div", [x, self.const(math.sqrt(2.0), dt)])
                e = self.node("Erf", [d])
                a = self.node("Add", [e, self.const(1.0, dt)])
                h = self.node("Mul", [x, self.const(0.5, dt)])
                self.node("Mul", [h, a], out)
            elif op == "gelu_tanh" and dt == "f32":
                # ORT's FastGeluFusion rewrites the pattern below into com.microsoft FastGelu
                # (f32 only on the CPU EP), but never when its result is a graph output, as
                # in W1; emit the fused op directly (measured ~1.4x faster there).
                self.node("FastGelu", [x], out, domain=MS)
            elif op == "gelu_tanh":
                # ORT's FastGeluFusion pattern (-> com.microsoft FastGelu):
                # (x * 0.5) * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
                p = self.node("Pow", [x, self.const(3.0, dt)])
                m1 = self.node("Mul", [p, self.const(0.044715, dt)])
                a1 = self.node("Add", [x, m1])
                m2 = self.node("Mul", [a1, self.const(math.sqrt(2.0 / math.pi), dt)])
                t = self.node("Tanh", [m2])
                a2 = self.node("Add", [t, self.const(1.0, dt)])
                h = self.node("Mul", [x, self.const(0.5, dt)])
                self.node("Mul", [h, a2], out)
            res = ("bool" if op == "not" else dt, list(shp), list(cst))

        elif op in BINARY_ONNX:
            dt = known[0][0] if known else "f32"
            a, b = self.materialize(vals, dt)
            ia, ib = self.info.get(a) or (dt, [], []), self.info.get(b) or (dt, [], [])
            if op == "ne":
                self.node("Not", [self.node("Equal", [a, b])], out)
            else:
                self.node(BINARY_ONNX[op], [a, b], out)
            shp = bcast(ia[1], ib[1])
            res = ("bool" if op in CMP else dt, shp, self.bcast_const(shp, ia, ib))

        elif op == "select":
            vdt = [i[0] for i in infos[1:] if i is not None]
            dt = vdt[0] if vdt else "f32"
            c = self.materialize(vals[:1], "bool")[0]
            a, b = self.materialize(vals[1:], dt)
            self.node("Where", [c, a, b], out)
            ii = [self.info.get(n) or (dt, [], []) for n in (c, a, b)]
            shp = bcast(*[i[1] for i in ii])
            res = (dt, shp, self.bcast_const(shp, *ii))

        elif op == "clip":
            (x,) = self.materialize(vals, "f32")
            dt, shp, cst = self.info[x]
            lo = self.attr_float(nd, "lo")
            hi = self.attr_float(nd, "hi")
            ins = [x]
            for v in (lo, hi):
                if v is None or (dt in INTS and math.isinf(v)):
                    ins.append("")
                else:
                    ins.append(self.const(int(v) if dt in INTS else v, dt))
            while ins[-1] == "":
                ins.pop()
            self.node("Clip", ins, out)
            res = (dt, shp, cst)

        elif op == "cast":
            (x,) = self.materialize(vals, "f32")
            dt, shp, cst = self.info[x]
            to = A["to"]
            self.node("Cast", [x], out, to=self.onnx_dt(to))
            res = (to, shp, cst)

        elif op in REDUCE_ONNX or op == "argmax":
            (x,) = self.materialize(vals, "f32")
            dt, shp, cst = self.info[x]
            r = len(shp)
            keep = self.attr_int(nd, "keepdims", 0)
            if op == "argmax":
                axes = [norm_axis(self.attr_int(nd, "axis", 0), r)] if r else []
            else:
                al = self.attr_list(nd, "axes")
                axes = list(range(r)) if al is None else [norm_axis(a, r) for a in al]
            if op == "argmax":
                if r == 0:  # argmax of a scalar is 0
                    self.node("Identity", [self.const(0, "i64")], out)
                else:
                    self.node("ArgMax", [x], out, axis=axes[0], keepdims=keep,
                              select_last_index=0)
                rdt = "i64"
            elif not axes:
                self.node("Identity", [x], out)
                rdt = dt
            elif op == "reduce_sum":
                self.node("ReduceSum", [x, self.ints(axes)], out, keepdims=keep)
                rdt = dt
            else:
                self.node(REDUCE_ONNX[op], [x], out, axes=axes, keepdims=keep)
                rdt = dt
            nshp = [1 if i in axes else d for i, d in enumerate(shp) if keep or i not in axes]
            ncst = [True if i in axes else c for i, c in enumerate(cst) if keep or i not in axes]
            res = (rdt, nshp, ncst)

        elif op in ("softmax", "log_softmax"):
            (x,) = self.materialize(vals, "f32")
            dt, shp, cst = self.info[x]
            axis = self.attr_int(nd, "axis", -1)
            self.node("Softmax" if op == "softmax" else "LogSoftmax", [x], out, axis=axis)
            res = (dt, shp, cst)

        elif op == "layernorm":
            x, gm, bt = self.materialize(vals, known[0][0])
            dt, shp, cst = self.info[x]
            r = len(shp)
            axis = norm_axis(self.attr_int(nd, "axis", -1), r)
            eps = self.attr_float(nd, "eps", 1e-5)
            norm_shape = shp[axis:]
            gs, bs = self.info[gm][1], self.info[bt][1]

            def strip(s):
                s = list(s)
                while s and s[0] == 1 and len(s) > len(norm_shape):
                    s.pop(0)
                return s

            if strip(gs) == norm_shape and strip(bs) == norm_shape:
                if len(gs) != len(norm_shape):
                    gm = self.node("Reshape", [gm, self.ints(norm_shape)])
                if len(bs) != len(norm_shape):
                    bt = self.node("Reshape", [bt, self.ints(norm_shape)])
                self.node("LayerNormalization", [x, gm, bt], out, axis=axis, epsilon=eps)
            else:  # gamma/beta broadcast over more than the normalized axes: decompose
                axes = list(range(axis, r))
                mean = self.node("ReduceMean", [x], axes=axes, keepdims=1)
                d = self.node("Sub", [x, mean])
                var = self.node("ReduceMean", [self.node("Mul", [d, d])], axes=axes,
                                keepdims=1)
                sd = self.node("Sqrt", [self.node("Add", [var, self.const(eps, dt)])])
                nrm = self.node("Div", [d, sd])
                self.node("Add", [self.node("Mul", [nrm, gm]), bt], out)
            res = (dt, shp, cst)

        elif op == "rmsnorm":
            x, gm = self.materialize(vals, known[0][0])
            dt, shp, cst = self.info[x]
            eps = self.attr_float(nd, "eps", 1e-6)
            # ORT's SimplifiedLayerNormFusion pattern:
            # x / Sqrt(ReduceMean(Pow(x, 2), axes=[-1]) + eps) * gamma
            p = self.node("Pow", [x, self.const(2.0, dt)])
            m = self.node("ReduceMean", [p], axes=[-1], keepdims=1)
            s = self.node("Sqrt", [self.node("Add", [m, self.const(eps, dt)])])
            self.node("Mul", [self.node("Div", [x, s]), gm], out)
            res = (dt, shp, cst)

        elif op == "matmul":
            a, b = self.materialize(vals, known[0][0])
            dt = self.info[a][0]
            sa, ca = list(self.info[a][1]), list(self.info[a][2])
            sb, cb = list(self.info[b][1]), list(self.info[b][2])
            if self.attr_int(nd, "transpose_a", 0) and len(sa) >= 2:
                perm = list(range(len(sa) - 2)) + [len(sa) - 1, len(sa) - 2]
                a = self.node("Transpose", [a], perm=perm)
                sa[-1], sa[-2], ca[-1], ca[-2] = sa[-2], sa[-1], ca[-2], ca[-1]
            if self.attr_int(nd, "transpose_b", 0) and len(sb) >= 2:
                perm = list(range(len(sb) - 2)) + [len(sb) - 1, len(sb) - 2]
                b = self.node("Transpose", [b], perm=perm)
                sb[-1], sb[-2], cb[-1], cb[-2] = sb[-2], sb[-1], cb[-2], cb[-1]
            self.node("MatMul", [a, b], out)
            if len(sa) == 1 and len(sb) == 1:
                shp, cst = [], []
            elif len(sa) == 1:
                shp, cst = sb[:-2] + sb[-1:], cb[:-2] + cb[-1:]
            elif len(sb) == 1:
                shp, cst = sa[:-1], ca[:-1]
            else:
                bs = bcast(sa[:-2], sb[:-2])
                shp = bs + [sa[-2], sb[-1]]
                cst = self.bcast_const(bs, (dt, sa[:-2], ca[:-2]), (dt, sb[:-2], cb[:-2])) \
                    + [ca[-2], cb[-1]]
            res = (dt, shp, cst)

        elif op == "reshape":
            (x,) = self.materialize(vals, "f32")
            dt, shp, cst = self.info[x]
            items = split_top(A["shape"].strip()[1:-1])
            new = [self.dim(t) for t in items]
            total = int(self.np.prod(shp, dtype=self.np.int64)) if shp else 1
            if -1 in new:
                k = new.index(-1)
                rest = 1
                for i, d in enumerate(new):
                    if i != k:
                        rest *= d
                new[k] = total // rest if rest else 0
            kw = {"allowzero": 1} if 0 in new else {}
            self.node("Reshape", [x, self.ints(new)], out, **kw)
            cst = [INT_RE.match(t.strip()) is not None for t in items]
            res = (dt, new, cst)

        elif op == "transpose":
            (x,) = self.materialize(vals, "f32")
            dt, shp, cst = self.info[x]
            perm = self.attr_list(nd, "perm", list(range(len(shp)))[::-1])
            perm = [norm_axis(p, len(shp)) for p in perm]
            self.node("Transpose", [x], out, perm=perm)
            res = (dt, [shp[p] for p in perm], [cst[p] for p in perm])

        elif op == "broadcast_to":
            (x,) = self.materialize(vals, "f32")
            dt, shp, cst = self.info[x]
            items = split_top(A["shape"].strip()[1:-1])
            new = [self.dim(t) for t in items]
            self.node("Expand", [x, self.ints(new)], out)
            res = (dt, new, [INT_RE.match(t.strip()) is not None for t in items])

        elif op == "slice":
            (x,) = self.materialize(vals, "f32")
            dt, shp, cst = self.info[x]
            starts = self.attr_list(nd, "starts")
            n = len(starts)
            ends = self.attr_list(nd, "ends", [None] * n)
            axes = self.attr_list(nd, "axes", list(range(n)))
            steps = self.attr_list(nd, "steps", [1] * n)
            axes = [norm_axis(a, len(shp)) for a in axes]
            nshp, ncst = list(shp), list(cst)
            os_, oe, ost = [], [], []
            for a, s, e, st in zip(axes, starts, ends, steps):
                b0, e0, s0 = slice(s, e, st).indices(shp[a])
                os_.append(b0)
                oe.append(INT64_MIN if e0 < 0 else e0)
                ost.append(s0)
                nshp[a] = len(range(b0, e0, s0))
                ncst[a] = cst[a]
            self.node("Slice", [x, self.ints(os_), self.ints(oe), self.ints(axes),
                                self.ints(ost)], out)
            res = (dt, nshp, ncst)

        elif op == "concat":
            xs = self.materialize(vals, known[0][0])
            dt, shp, cst = self.info[xs[0]]
            axis = norm_axis(self.attr_int(nd, "axis"), len(shp))
            self.node("Concat", xs, out, axis=axis)
            nshp, ncst = list(shp), list(cst)
            nshp[axis] = sum(self.info[v][1][axis] for v in xs)
            ncst[axis] = all(self.info[v][2][axis] for v in xs)
            res = (dt, nshp, ncst)

        elif op == "squeeze":
            (x,) = self.materialize(vals, "f32")
            dt, shp, cst = self.info[x]
            al = self.attr_list(nd, "axes")
            if al is None:
                axes = [i for i, (d, c) in enumerate(zip(shp, cst)) if c and d == 1]
            else:
                axes = sorted(norm_axis(a, len(shp)) for a in al)
            if axes:
                self.node("Squeeze", [x, self.ints(axes)], out)
            else:
                self.node("Identity", [x], out)
            res = (dt, [d for i, d in enumerate(shp) if i not in axes],
                   [c for i, c in enumerate(cst) if i not in axes])

        elif op == "unsqueeze":
            (x,) = self.materialize(vals, "f32")
            dt, shp, cst = self.info[x]
            al = self.attr_list(nd, "axes")
            r = len(shp) + len(al)
            axes = sorted(norm_axis(a, r) for a in al)
            self.node("Unsqueeze", [x, self.ints(axes)], out)
            nshp, ncst = list(shp), list(cst)
            for a in axes:
                nshp.insert(a, 1)
                ncst.insert(a, True)
            res = (dt, nshp, ncst)

        elif op == "gather":
            x, idx = self.materialize(vals, "i64")
            dt, shp, cst = self.info[x]
            axis = norm_axis(self.attr_int(nd, "axis", 0), len(shp))
            self.node("Gather", [x, idx], out, axis=axis)
            ish, ic = self.info[idx][1], self.info[idx][2]
            res = (dt, shp[:axis] + list(ish) + shp[axis + 1:],
                   cst[:axis] + list(ic) + cst[axis + 1:])

        elif op == "full":
            dt = A.get("dtype", "f32")
            items = split_top(A["shape"].strip()[1:-1])
            shp = [self.dim(t) for t in items]
            v = parse_number(A.get("value", "0"))
            v = int(v) if dt in INTS else (bool(v) if dt == "bool" else v)
            val = self.nh.from_array(self.np.array([v], dtype=self.NP_DT[dt]), "value")
            self.onnx_dt(dt)
            self.node("ConstantOfShape", [self.ints(shp)], out, value=val)
            res = (dt, shp, [INT_RE.match(t.strip()) is not None for t in items])

        elif op == "arange":
            dt = A.get("dtype", "i64")
            if dt not in ("f32", "i32", "i64"):
                raise Unsupported("arange with dtype %s (ONNX Range: f32/i32/i64)" % dt)
            n = self.dim(A["n"])
            self.node("Range", [self.const(0, dt), self.const(n, dt), self.const(1, dt)], out)
            res = (dt, [n], [INT_RE.match(A["n"].strip()) is not None])

        else:
            raise Unsupported("op %s is not supported by the onnxruntime peer" % op)

        if res[0] == "bf16":
            self.onnx_dt("bf16")
        self.info[out] = res

    @staticmethod
    def bcast_const(shp, *infos):
        r = len(shp)
        out = []
        for i in range(r):
            c = True
            for _, s, cs in infos:
                k = i - (r - len(s))
                if k < 0:
                    continue
                if cs[k] and s[k] != 1:
                    c = True
                    break
                if not cs[k]:
                    c = False
            out.append(c)
        return out

    def build(self, wanted):
        self.declare()
        for nd in self.g.nodes:
            try:
                self.export_node(nd)
            except Unsupported:
                raise
            except (KeyError, ValueError, IndexError, TypeError) as e:
                raise ValueError("%s:%d: %s: %s" % (self.g.name, nd.line, nd.op, e))
        outputs, onames = [], []
        self.input_names = set(i.name for i in self.inputs)
        for name in wanted:
            if name not in self.info:
                raise ValueError("output %s is not a value of the graph" % name)
            dt, shp, cst = self.info[name]
            oname = name
            if name in self.input_names or name in (i.name for i in self.inits) \
                    or name in onames:
                # an input/initializer (or a value listed twice) as an output: a copy under
                # another name (ort_run.mjs is told the dvm names of the outputs in order)
                oname = self.fresh("out")
                self.node("Identity", [name], oname)
            onames.append(oname)
            if self.shapes_mode == "static":
                oshape = list(shp)
            else:
                oshape = [d if c else None for d, c in zip(shp, cst)]
            outputs.append(self.h.make_tensor_value_info(oname, self.onnx_dt(dt), oshape))
        # Probes: the first element of each output, as extra graph outputs. Timed runs fetch
        # only these (see ort_run.mjs): onnxruntime-node copies every fetched output into a
        # fresh JS ArrayBuffer after the run, which costs more than the run for large outputs
        # (page faults on fresh memory: ~1 ms for W2's 256 KB at N=64, where ORT's own
        # Session::Run takes ~50 us). The real outputs are still computed in full (into
        # ORT's arena, as IOBinding would); they are fetched once, untimed, at the end.
        for k, oname in enumerate(onames):
            dt = self.info[wanted[k]][0]
            flat = self.node("Reshape", [oname, self.ints([-1])])
            probe = self.fresh("probe")
            self.node("Slice", [flat, self.ints([0]), self.ints([1])], probe)
            outputs.append(self.h.make_tensor_value_info(probe, self.onnx_dt(dt), [None]))
        graph = self.h.make_graph(self.nodes, self.g.name or "dvm", self.inputs, outputs,
                                  initializer=self.inits)
        model = self.h.make_model(
            graph, producer_name="dvm bench onnxrt.py",
            opset_imports=[self.h.make_opsetid("", OPSET), self.h.make_opsetid(MS, 1)])
        model.ir_version = min(model.ir_version, 8)
        return model


# ----------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------

def main():
    ap = protocol_args(__doc__)
    ap.add_argument("--params", choices=("initializers", "inputs"), default="initializers",
                    help="params as constant initializers (default) or as graph inputs")
    ap.add_argument("--shapes", choices=("symbolic", "static"), default="symbolic",
                    help="symbolic input dims (dim_param, default) or this binding's values")
    ap.add_argument("--save-model", default=None, help="also write the exported model here")
    ap.add_argument("--save-optimized", default=None,
                    help="have ORT write its optimized model here (for inspection)")
    args = ap.parse_args()
    peer = args.peer_name or "onnxruntime"
    threads = max(1, args.threads)
    reps = max(1, args.reps)

    try:
        import numpy as np
    except ImportError:
        emit({"peer": peer, "skip": "python3-numpy is not installed: apt-get install python3-numpy"})
        return 0
    try:
        import onnx
        import onnx.checker
        import onnx.helper
        import onnx.numpy_helper
        import onnx.shape_inference
    except ImportError:
        emit({"peer": peer, "skip": "python3-onnx is not installed: apt-get install python3-onnx"})
        return 0
    node = shutil.which("node")
    if node is None:
        emit({"peer": peer, "skip": "node is not installed: apt-get install nodejs npm, then "
              + NPM_HINT})
        return 0
    if not os.path.isfile(os.path.join(BENCH, "node_modules", "onnxruntime-node",
                                       "package.json")):
        emit({"peer": peer, "skip": "onnxruntime-node is not installed: " + NPM_HINT})
        return 0

    syms, wanted = read_run(args.dir)
    if args.graph.endswith(".onnx"):  # an ONNX workload: the very file dvm ran
        model, wanted = onnx_workload(np, onnx, args.graph, wanted)
    else:
        model, wanted = export_graph(np, onnx, args, syms, wanted)
    if model is None:
        emit({"peer": peer, "skip": wanted})
        return 0
    return run_model(onnx, node, model, args, peer, threads, reps, wanted)


def dvm_name(name):
    """The name dvm gives an ONNX value (onnx/val.c onnx_base_name): characters outside
    [A-Za-z0-9_.] become '_', and '_' goes first before a digit."""
    s = re.sub(r"[^A-Za-z0-9_.]", "_", name)
    s = "_" + s if not s or s[0].isdigit() else s
    return "_" + s if s in ("inf", "nan") else s


def onnx_workload(np, onnx, path, wanted):
    """The model of an .onnx workload with its inputs renamed as dvm names them (dvm wrote
    DIR/NAME.npy under those names) and a probe output per output (see Exporter.build)."""
    model = onnx.load(path)
    g = model.graph
    inits = set(t.name for t in g.initializer)
    for vi in g.input:
        if vi.name in inits or dvm_name(vi.name) == vi.name:
            continue
        old, vi.name = vi.name, dvm_name(vi.name)
        for nd in g.node:
            for i, n in enumerate(nd.input):
                if n == old:
                    nd.input[i] = vi.name
    outs = [o.name for o in g.output]
    wanted = [dvm_name(o) for o in outs] if wanted is None else wanted
    if len(wanted) != len(outs):
        return None, "outputs.json names %d outputs, the model has %d" % (len(wanted), len(outs))
    h, nh = onnx.helper, onnx.numpy_helper
    g.initializer.extend([nh.from_array(np.array(v, dtype=np.int64), "_dvm_probe_" + n)
                          for n, v in (("shape", [-1]), ("start", [0]), ("end", [1]))])
    for k, o in enumerate(list(g.output)):
        flat, probe = "_dvm_probe_flat_%d" % k, "_dvm_probe_%d" % k
        g.node.extend([h.make_node("Reshape", [o.name, "_dvm_probe_shape"], [flat]),
                       h.make_node("Slice", [flat, "_dvm_probe_start", "_dvm_probe_end"],
                                   [probe])])
        g.output.append(h.make_tensor_value_info(probe, o.type.tensor_type.elem_type, [None]))
    return model, wanted


def export_graph(np, onnx, args, syms, wanted):
    """A .dvm workload exported to ONNX: (model, wanted) or (None, skip reason)."""
    g = parse_graph(args.graph)
    wanted = list(g.outputs) if wanted is None else wanted
    try:
        data = {}
        for kind, name, dt, dims in g.decls:
            if dt == "bf16":
                raise Unsupported("bf16 is not supported by this peer (ORT CPU has no bf16 "
                                  "kernels)")
            arr = np.load(os.path.join(args.dir, name + ".npy"), allow_pickle=False)
            if len(dims) == len(arr.shape):  # symbols not in bindings.json: from the shapes
                for d, n in zip(dims, arr.shape):
                    d = d.strip()
                    if re.match("^" + NAME_RE + "$", d) and d not in syms:
                        syms[d] = int(n)
            data[name] = arr
        ex = Exporter(np, onnx, g, syms, data, args.params, args.shapes)
        return ex.build(wanted), wanted
    except Unsupported as e:
        return None, str(e)


def run_model(onnx, node, model, args, peer, threads, reps, wanted):
    """Save the model, run it with ort_run.mjs, print its result line."""
    tmpdir = tempfile.mkdtemp(prefix="dvm-onnxrt-")
    try:
        path = os.path.join(tmpdir, "model.onnx")
        # protobuf cannot serialize 2 GB: large weights go to an external data file
        big = sum(len(t.raw_data) for t in model.graph.initializer) > 1_500_000_000
        if big:
            onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                            location="model.onnx.data", size_threshold=1024)
            onnx.checker.check_model(path)
        else:
            onnx.checker.check_model(model)
            onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
            onnx.save_model(model, path)
        if args.save_model:
            shutil.copy(path, args.save_model)
            if big:
                shutil.copy(path + ".data", os.path.join(os.path.dirname(
                    os.path.abspath(args.save_model)), "model.onnx.data"))
        model = None
        cmd = [node, RUNNER, path, args.dir, str(threads), str(reps), peer, ",".join(wanted)]
        if args.save_optimized:
            cmd.append(os.path.abspath(args.save_optimized))
        env = dict(os.environ)
        for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[v] = str(threads)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    sys.stderr.write(p.stderr.decode(errors="replace"))
    line = None
    for ln in p.stdout.decode(errors="replace").splitlines():
        ln = ln.strip()
        if ln.startswith("{"):
            try:
                obj = json.loads(ln)
            except ValueError:
                continue
            if isinstance(obj, dict) and "peer" in obj:
                line = obj
    if p.returncode != 0 or line is None:
        sys.stderr.write("onnxrt.py: %s exited with status %d%s\n" % (
            RUNNER, p.returncode, "" if line else " and printed no JSON line"))
        if p.stdout:
            sys.stderr.write(p.stdout.decode(errors="replace"))
        return 1
    if "skip" not in line:
        ok = all(isinstance(line.get(k), (int, float)) for k in ("median_us", "p90_us", "reps"))
        if not ok:
            sys.stderr.write("onnxrt.py: malformed result line from ort_run.mjs: %r\n" % line)
            return 1
    line["peer"] = peer
    emit(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
