#!/usr/bin/python3
"""ONNX import, op by op, against NumPy.

usage: ops_numpy.py DVM SCRATCH_DIR

Every op dvm imports (docs/onnx.md) appears in at least one small case built here with
python3-onnx (opset 17, inputs with dynamic dims named N, S, M), often behind the shape
subgraphs exporters write (Shape -> Gather -> Unsqueeze -> Concat -> Reshape, ...). All
cases go into one model, checked with onnx.checker, which dvm runs at two bindings of the
symbols (--tier auto and --tier ref); each output is compared with the same computation in
NumPy (float64 on the same float32 inputs). A failing model is retried case by case to
name the culprit. Also checks that the import recognized the erf-GELU and SiLU patterns
and kept reshape shapes symbolic. Ends with "N passed, M failed".
"""
import math
import os
import subprocess
import sys

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as H
from onnx import numpy_helper as NH
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from support import check, summary  # noqa: E402

DVM, SCRATCH = sys.argv[1], sys.argv[2]
os.makedirs(SCRATCH, exist_ok=True)
F, I64, I32, B = TP.FLOAT, TP.INT64, TP.INT32, TP.BOOL
D, U8, I8, U32 = TP.DOUBLE, TP.UINT8, TP.INT8, TP.UINT32
X = ("x", F, ["N", "S", 8])



def normal(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def positive(rng, shape):
    return (np.abs(rng.standard_normal(shape)) + 0.1).astype(np.float32)


def ints(lo, hi, dt=np.int64):
    return lambda rng, shape: rng.integers(lo, hi, shape).astype(dt)


def ci(name, vals):
    return NH.from_array(np.array(vals, dtype=np.int64), name)


def cf(name, vals):
    return NH.from_array(np.array(vals, dtype=np.float32), name)


def N(op, ins, outs, **kw):
    return H.make_node(op, ins, outs, **kw)


erf = np.vectorize(math.erf)
CASES = []


def case(name, inputs, nodes, outputs, oracle, inits=(), gens=None):
    """inputs: [(name, onnx type, dims)]; outputs: [(name, onnx type)]; oracle(dict of
    float64/int arrays) -> list of outputs; gens: {input: generator} (default normal)."""
    CASES.append(dict(name=name, inputs=inputs, nodes=nodes, outputs=outputs, oracle=oracle,
                      inits=list(inits), gens=gens or {}))


# ---- elementwise ------------------------------------------------------------------------
for op, fn, gen in [("Sqrt", np.sqrt, positive), ("Reciprocal", lambda a: 1 / a, positive),
                    ("Neg", np.negative, normal), ("Abs", np.abs, normal), ("Exp", np.exp, normal),
                    ("Log", np.log, positive), ("Tanh", np.tanh, normal),
                    ("Sigmoid", lambda a: 1 / (1 + np.exp(-a)), normal),
                    ("Relu", lambda a: np.maximum(a, 0), normal), ("Erf", erf, normal)]:
    case(op.lower(), [X], [N(op, ["x"], ["y"])], [("y", F)], lambda v, fn=fn: [fn(v["x"])],
         gens={"x": gen})

for op, fn in [("Add", np.add), ("Sub", np.subtract), ("Mul", np.multiply),
               ("Div", np.divide)]:
    case(op.lower(), [X, ("b", F, [8])], [N(op, ["x", "b"], ["y"])], [("y", F)],
         lambda v, fn=fn: [fn(v["x"], v["b"])], gens={"b": positive})

case("pow", [X, ("e", F, [8])],
     [N("Pow", ["x", "three"], ["p3"]), N("Pow", ["x", "two"], ["p2"]),
      N("Pow", ["x", "e"], ["pe"]), N("Pow", ["x", "ihalf"], ["ph"])],
     [("p3", F), ("p2", F), ("pe", F), ("ph", F)],
     lambda v: [v["x"] ** 3, v["x"] ** 2, np.power(v["x"], v["e"]), np.sqrt(v["x"])],
     inits=[cf("three", 3.0), cf("two", 2.0), cf("ihalf", 0.5)], gens={"x": positive})

case("where_cmp", [X, ("z", F, ["N", "S", 8])],
     [N("Greater", ["x", "z"], ["g"]), N("Where", ["g", "x", "z"], ["mx"]),
      N("Less", ["x", "zero"], ["l"]), N("Where", ["l", "zero", "x"], ["rl"]),
      N("Not", ["g"], ["ng"])],
     [("mx", F), ("rl", F), ("ng", B)],
     lambda v: [np.where(v["x"] > v["z"], v["x"], v["z"]), np.where(v["x"] < 0, 0, v["x"]),
                ~(v["x"] > v["z"])],
     inits=[cf("zero", 0.0)])

case("equal_int", [("a", I64, ["N"]), ("b", I64, ["N"])],
     [N("Equal", ["a", "b"], ["e"]), N("Not", ["e"], ["ne"]), N("Less", ["a", "b"], ["lt"])],
     [("e", B), ("ne", B), ("lt", B)],
     lambda v: [v["a"] == v["b"], v["a"] != v["b"], v["a"] < v["b"]],
     gens={"a": ints(0, 3), "b": ints(0, 3)})

case("cast", [X, ("i", I64, ["N"])],
     [N("Cast", ["x"], ["xi"], to=I32), N("Cast", ["i"], ["if"], to=F),
      N("Cast", ["x"], ["xb"], to=B)],
     [("xi", I32), ("if", F), ("xb", B)],
     lambda v: [np.trunc(v["x"] * 1).astype(np.int32), v["i"].astype(np.float32), v["x"] != 0],
     gens={"i": ints(-50, 50)})

# ---- normalizations, reductions, matmul -------------------------------------------------------
def softmax(a, axis):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def layernorm(a, g, b, eps):
    m = a.mean(-1, keepdims=True)
    var = ((a - m) ** 2).mean(-1, keepdims=True)
    return (a - m) / np.sqrt(var + eps) * g + b


rs = np.random.default_rng(7)
G8, B8 = rs.standard_normal(8).astype(np.float32), rs.standard_normal(8).astype(np.float32)
W85 = rs.standard_normal((8, 5)).astype(np.float32)
W58 = rs.standard_normal((5, 8)).astype(np.float32)
C5 = rs.standard_normal(5).astype(np.float32)
T104 = rs.standard_normal((10, 4)).astype(np.float32)
case("softmax", [X], [N("Softmax", ["x"], ["a"], axis=1), N("Softmax", ["x"], ["b"])],
     [("a", F), ("b", F)], lambda v: [softmax(v["x"], 1), softmax(v["x"], -1)])
case("layernorm", [X],
     [N("LayerNormalization", ["x", "g", "bb"], ["y"]),
      N("LayerNormalization", ["x", "g"], ["y2"], axis=-1, epsilon=1e-3)],
     [("y", F), ("y2", F)],
     lambda v: [layernorm(v["x"], G8, B8, 1e-5), layernorm(v["x"], G8, 0, 1e-3)],
     inits=[NH.from_array(G8, "g"), NH.from_array(B8, "bb")])
case("reduce", [X],
     [N("ReduceMean", ["x"], ["mean"], axes=[-1], keepdims=0),
      N("ReduceSum", ["x", "ax1"], ["sum"], keepdims=1),
      N("ReduceMax", ["x"], ["max"], axes=[0, 2], keepdims=0),
      N("ReduceSum", ["x"], ["all"], keepdims=0)],
     [("mean", F), ("sum", F), ("max", F), ("all", F)],
     lambda v: [v["x"].mean(-1), v["x"].sum(1, keepdims=True), v["x"].max(axis=(0, 2)),
                v["x"].sum()],
     inits=[ci("ax1", [1])])
case("matmul_gemm", [X, ("a", F, ["N", 8])],
     [N("MatMul", ["x", "w"], ["mm"]),
      N("Gemm", ["a", "wt", "c"], ["gm"], transB=1, alpha=0.5, beta=2.0),
      N("Gemm", ["a", "w"], ["g2"])],
     [("mm", F), ("gm", F), ("g2", F)],
     lambda v: [v["x"] @ W85, 0.5 * (v["a"] @ W58.T) + 2 * C5, v["a"] @ W85],
     inits=[NH.from_array(W85, "w"), NH.from_array(W58, "wt"), NH.from_array(C5, "c")])

# ---- shapes: computed at load time ------------------------------------------------------------
case("reshape_shape_subgraph", [X],
     [N("Shape", ["x"], ["s"]), N("Gather", ["s", "i0"], ["n"], axis=0),
      N("Gather", ["s", "i1"], ["k"], axis=0), N("Mul", ["n", "k"], ["nk"]),
      N("Unsqueeze", ["nk", "ax0"], ["u"]), N("Concat", ["u", "m1"], ["shp"], axis=0),
      N("Reshape", ["x", "shp"], ["y"]),
      N("Reshape", ["x", "zm1"], ["y2"]),
      N("Shape", ["x"], ["tail"], start=1), N("Concat", ["m1", "tail"], ["shp3"], axis=0),
      N("Reshape", ["y", "shp3"], ["y3"])],
     [("y", F), ("y2", F), ("y3", F)],
     lambda v: [v["x"].reshape(-1, 8), v["x"].reshape(v["x"].shape[0], -1), v["x"]],
     inits=[ci("i0", 0), ci("i1", 1), ci("ax0", [0]), ci("m1", [-1]), ci("zm1", [0, -1])])
case("transpose", [X], [N("Transpose", ["x"], ["y"], perm=[2, 0, 1])], [("y", F)],
     lambda v: [v["x"].transpose(2, 0, 1)])
case("gather", [X, ("idx", I64, ["N", "S"])],
     [N("Gather", ["tab", "idx"], ["emb"]), N("Gather", ["x", "one"], ["g1"], axis=1),
      N("Gather", ["x", "neg1"], ["gl"], axis=2), N("Gather", ["x", "two_idx"], ["g2"], axis=2)],
     [("emb", F), ("g1", F), ("gl", F), ("g2", F)],
     lambda v: [T104[v["idx"]], v["x"][:, 1, :], v["x"][:, :, -1], v["x"][:, :, [3, 0]]],
     inits=[NH.from_array(T104, "tab"), ci("one", 1), ci("neg1", -1), ci("two_idx", [3, 0])],
     gens={"idx": ints(-10, 10)})
case("concat", [X, ("z", F, ["N", "M", 8])], [N("Concat", ["x", "z"], ["y"], axis=1)],
     [("y", F)], lambda v: [np.concatenate([v["x"], v["z"]], 1)])
case("slice", [X],
     [N("Shape", ["x"], ["s"]), N("Gather", ["s", "i1"], ["len"], axis=0),
      N("Sub", ["len", "one"], ["end"]), N("Unsqueeze", ["end", "ax0"], ["ends"]),
      N("Slice", ["x", "st1", "ends", "ax1"], ["mid"]),
      N("Slice", ["x", "st0", "big", "axm1", "st2"], ["even"]),
      N("Slice", ["x", "stm2", "big", "ax1"], ["last2"]),
      N("Slice", ["x", "big_neg", "stm9", "axm1", "stepm1"], ["rev"])],
     [("mid", F), ("even", F), ("last2", F), ("rev", F)],
     lambda v: [v["x"][:, 1:-1], v["x"][..., ::2], v["x"][:, -2:], v["x"][..., ::-1]],
     inits=[ci("i1", 1), ci("one", 1), ci("ax0", [0]), ci("st1", [1]), ci("ax1", [1]),
            ci("st0", [0]), ci("big", [2 ** 63 - 1]), ci("axm1", [-1]), ci("st2", [2]),
            ci("stm2", [-2]), ci("big_neg", [-1]), ci("stm9", [-(2 ** 63)]),
            ci("stepm1", [-1])])
case("split", [X],
     [N("Split", ["x", "sizes"], ["a", "b"], axis=2), N("Split", ["x"], ["c", "d"], axis=-1)],
     [("a", F), ("b", F), ("c", F), ("d", F)],
     lambda v: [v["x"][..., :3], v["x"][..., 3:], v["x"][..., :4], v["x"][..., 4:]],
     inits=[ci("sizes", [3, 5])])
case("squeeze_unsqueeze", [X],
     [N("Unsqueeze", ["x", "ax1"], ["u"]), N("Squeeze", ["u", "ax1"], ["sq"]),
      N("Unsqueeze", ["x", "ax03"], ["u2"]), N("Squeeze", ["u2"], ["sq2"])],
     [("u", F), ("sq", F), ("u2", F), ("sq2", F)],
     lambda v: [v["x"][:, None], v["x"], v["x"][None, ..., None], v["x"]],
     inits=[ci("ax1", [1]), ci("ax03", [0, 4])])
case("expand", [X, ("r", F, [1, 8])],
     [N("Shape", ["x"], ["s"]), N("Expand", ["r", "s"], ["e"]),
      N("Expand", ["three", "s"], ["f"]), N("Expand", ["x", "ones"], ["same"])],
     [("e", F), ("f", F), ("same", F)],
     lambda v: [np.broadcast_to(v["r"], v["x"].shape), np.full(v["x"].shape, 3.0), v["x"]],
     inits=[cf("three", 3.0), ci("ones", [1, 1])])
case("constants", [X],
     [N("Constant", [], ["c"], value=H.make_tensor("cv", F, [8], list(range(8)))),
      N("Add", ["x", "c"], ["y"]),
      N("Constant", [], ["cf"], value_float=1.5), N("Mul", ["x", "cf"], ["y2"]),
      N("Shape", ["x"], ["s"]),
      N("ConstantOfShape", ["s"], ["k"], value=H.make_tensor("kv", F, [1], [2.0])),
      N("Mul", ["x", "k"], ["y3"])],
     [("y", F), ("y2", F), ("y3", F)],
     lambda v: [v["x"] + np.arange(8), v["x"] * 1.5, v["x"] * 2])
case("range", [X],
     [N("Shape", ["x"], ["s"]), N("Gather", ["s", "i1"], ["len"], axis=0),
      N("Range", ["z", "len", "one"], ["r"]), N("Cast", ["r"], ["rf"], to=F),
      N("Unsqueeze", ["rf", "ax1"], ["ru"]), N("Add", ["x", "ru"], ["y"]),
      N("Range", ["fz", "flen", "fstep"], ["fr"])],
     [("y", F), ("fr", F)],
     lambda v: [v["x"] + np.arange(v["x"].shape[1])[:, None], np.arange(0, 3, 0.5)],
     inits=[ci("i1", 1), ci("z", 0), ci("one", 1), ci("ax1", [1]), cf("fz", 0.0),
            cf("flen", 3.0), cf("fstep", 0.5)])
case("identity_dropout", [X],
     [N("Identity", ["x"], ["i"]), N("Dropout", ["i", "ratio"], ["d"]), N("Relu", ["d"], ["y"])],
     [("y", F), ("i", F)], lambda v: [np.maximum(v["x"], 0), v["x"]],
     inits=[cf("ratio", 0.5)])
case("gelu_silu_patterns", [X],
     [N("Div", ["x", "sqrt2"], ["dv"]), N("Erf", ["dv"], ["ef"]), N("Add", ["ef", "one"], ["ad"]),
      N("Mul", ["x", "ad"], ["m1"]), N("Mul", ["m1", "half"], ["gelu"]),
      N("Sigmoid", ["x"], ["sg"]), N("Mul", ["x", "sg"], ["silu"])],
     [("gelu", F), ("silu", F)],
     lambda v: [v["x"] * 0.5 * (1 + erf(v["x"] / math.sqrt(2))), v["x"] / (1 + np.exp(-v["x"]))],
     inits=[cf("sqrt2", math.sqrt(2)), cf("one", 1.0), cf("half", 0.5)])


# ---- other dtypes, quantization, Einsum, CumSum, GatherND, ReverseSequence, BitShift ---------------
def f32(a):
    return np.asarray(a).astype(np.float32)


def quantize(x, scale, zp, lo, hi):
    return np.clip(np.rint(f32(x) / f32(scale)) + zp, lo, hi)


case("double", [("d", D, ["N", 8]), ("e", D, [8])],
     [N("Mul", ["d", "e"], ["m"]), N("Exp", ["m"], ["x"]), N("ReduceSum", ["x", "ax1"], ["s"], keepdims=0),
      N("Cast", ["d"], ["df"], to=F)],
     [("m", D), ("x", D), ("s", D), ("df", F)],
     lambda v: [v["d"] * v["e"], np.exp(v["d"] * v["e"]), np.exp(v["d"] * v["e"]).sum(1), v["d"]],
     inits=[ci("ax1", [1])], gens={"d": lambda rng, s: rng.standard_normal(s), "e": lambda rng, s: rng.standard_normal(s)})
case("quantize_per_axis", [X, ("sc", F, [8]), ("zp", U8, [8])],
     [N("QuantizeLinear", ["x", "sc", "zp"], ["q"], axis=2), N("DequantizeLinear", ["q", "sc", "zp"], ["dq"], axis=2),
      N("QuantizeLinear", ["x", "s1"], ["q1"]), N("DynamicQuantizeLinear", ["x"], ["y", "ys", "yz"])],
     [("q", U8), ("dq", F), ("q1", U8), ("y", U8), ("ys", F), ("yz", U8)],
     lambda v: (lambda q, lo, hi: [q, (q.astype(np.int32) - v["zp"]) * f32(v["sc"]),
                                   quantize(v["x"], 0.02, 0, 0, 255),
                                   quantize(v["x"], (hi - lo) / 255, np.clip(np.rint(-lo / ((hi - lo) / 255)), 0, 255), 0, 255),
                                   (hi - lo) / 255, np.clip(np.rint(-lo / f32((hi - lo) / 255)), 0, 255)])(
         quantize(v["x"], v["sc"], v["zp"], 0, 255), f32(min(0, v["x"].min())), f32(max(0, v["x"].max()))),
     inits=[cf("s1", 0.02)], gens={"sc": lambda rng, s: f32(rng.uniform(0.005, 0.05, s)), "zp": ints(0, 256, np.uint8)})
case("matmul_integer", [("a", U8, ["N", 8]), ("b", I8, [8, "M"]), ("za", U8, []), ("zb", I8, ["M"])],
     [N("MatMulInteger", ["a", "b", "za", "zb"], ["y"])], [("y", I32)],
     lambda v: [(v["a"].astype(np.int64) - v["za"]) @ (v["b"].astype(np.int64) - v["zb"])],
     gens={"a": ints(0, 256, np.uint8), "b": ints(-128, 128, np.int8), "za": ints(0, 256, np.uint8),
           "zb": ints(-128, 128, np.int8)})
case("einsum", [("a", F, ["N", "S", 8]), ("b", F, ["N", 8, "M"]), ("c", F, ["N", 4, 4]), ("e", F, [8, "M"])],
     [N("Einsum", ["a", "b"], ["bmm"], equation="bij,bjk->bik"),
      N("Einsum", ["c"], ["diag"], equation="...ii ->...i"),
      N("Einsum", ["a", "e"], ["impl"], equation="bij,jk"),
      N("Einsum", ["c"], ["tr"], equation="nii")],
     [("bmm", F), ("diag", F), ("impl", F), ("tr", F)],
     lambda v: [np.einsum("bij,bjk->bik", v["a"], v["b"]), np.einsum("...ii->...i", v["c"]),
                np.einsum("bij,jk", v["a"], v["e"]), np.einsum("nii", v["c"])])
case("cumsum", [X, ("i", I64, ["N", "S"])],
     [N("CumSum", ["x", "ax1"], ["c"]), N("CumSum", ["x", "ax1"], ["cer"], exclusive=1, reverse=1),
      N("CumSum", ["i", "axm1"], ["ci"])],
     [("c", F), ("cer", F), ("ci", I64)],
     lambda v: [np.cumsum(v["x"], 1), np.flip(np.cumsum(np.flip(v["x"], 1), 1) - np.flip(v["x"], 1), 1),
                np.cumsum(v["i"], 1)],
     inits=[ci("ax1", 1), ci("axm1", -1)], gens={"i": ints(-1000, 1000)})
case("gather_nd", [X, ("i", I64, ["N", 2, 1])],
     [N("GatherND", ["x", "i"], ["g"], batch_dims=1), N("GatherND", ["x", "j"], ["h"])],
     [("g", F), ("h", F)],
     lambda v: [np.stack([v["x"][n][v["i"][n, :, 0]] for n in range(v["x"].shape[0])]),
                np.stack([v["x"][1, 2], v["x"][0, -1]])],
     inits=[ci("j", [[1, 2], [0, -1]])], gens={"i": ints(-3, 3)})
case("reverse_sequence", [("t", F, ["S", "N", 8]), ("l", I64, ["N"])],
     [N("ReverseSequence", ["t", "l"], ["r"], batch_axis=1, time_axis=0)], [("r", F)],
     lambda v: [np.stack([np.concatenate([v["t"][:v["l"][n], n][::-1], v["t"][v["l"][n]:, n]])
                          for n in range(v["t"].shape[1])], 1)],
     gens={"l": ints(1, 4)})
def topk(a, k, axis, largest):
    """The spec's order: by value, ties by the lower index first (a stable sort)."""
    o = np.argsort(-a if largest else a, axis=axis, kind="stable")
    i = np.take(o, np.arange(k), axis=axis)
    return [np.take_along_axis(a, i, axis=axis), i.astype(np.int64)]


case("top_k", [X, ("t", I64, ["N", "S"])],
     [N("TopK", ["x", "k3"], ["v", "i"], axis=2), N("TopK", ["x", "k2"], ["vs", "is"], axis=1, largest=0),
      N("TopK", ["t", "k2"], ["tv", "ti"]), N("TopK", ["t", "k3"], ["sv", "si"], largest=0)],
     [("v", F), ("i", I64), ("vs", F), ("is", I64), ("tv", I64), ("ti", I64), ("sv", I64), ("si", I64)],
     lambda v: topk(v["x"], 3, 2, True) + topk(v["x"], 2, 1, False) + topk(v["t"], 2, -1, True) +
     topk(v["t"], 3, -1, False),
     inits=[ci("k3", [3]), ci("k2", [2])], gens={"t": ints(-3, 3)})
case("fmod", [X, ("m", F, [8])], [N("Mul", ["x", "ten"], ["x10"]), N("Mod", ["x10", "m"], ["y"], fmod=1)],
     [("y", F)], lambda v: [np.fmod(f32(v["x"] * 10), f32(v["m"])).astype(np.float64)],
     inits=[cf("ten", 10.0)], gens={"m": lambda rng, s: f32(rng.uniform(0.3, 3, s) * rng.choice([-1, 1], s))})
def maxpool_indices(x, k, s, p, column_major):
    """MaxPool values and ONNX's Indices (flat positions in x; the first maximum)."""
    n, c, h, w = x.shape
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    y, z = np.zeros((n, c, oh, ow), x.dtype), np.zeros((n, c, oh, ow), np.int64)
    for a, b, i, j in np.ndindex(n, c, oh, ow):
        cells = [(x[a, b, r, q], r, q) for r in range(i * s - p, i * s - p + k) for q in range(j * s - p, j * s - p + k)
                 if 0 <= r < h and 0 <= q < w]
        v, r, q = max(cells, key=lambda t: t[0])  # the first of the largest
        y[a, b, i, j] = v
        z[a, b, i, j] = (a * c + b) * h * w + (q * h + r if column_major else r * w + q)
    return [y, z]


case("maxpool_indices", [("p", F, ["N", 2, 5, 5])],
     [N("MaxPool", ["p"], ["y", "z"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
      N("MaxPool", ["p"], ["y1", "z1"], kernel_shape=[2, 2], strides=[2, 2], storage_order=1)],
     [("y", F), ("z", I64), ("y1", F), ("z1", I64)],
     lambda v: maxpool_indices(v["p"], 3, 2, 1, False) + maxpool_indices(v["p"], 2, 2, 0, True))
case("bit_shift", [("a", U8, ["N"]), ("s", U8, ["N"]), ("w", U32, ["N"]), ("t", U32, ["N"])],
     [N("BitShift", ["a", "s"], ["l"], direction="LEFT"), N("BitShift", ["a", "s"], ["r"], direction="RIGHT"),
      N("BitShift", ["w", "t"], ["lw"], direction="LEFT")],
     [("l", U8), ("r", U8), ("lw", U32)],
     lambda v: [np.array([(int(a) << int(s)) & 0xff for a, s in zip(v["a"], v["s"])], np.uint8),
                np.array([int(a) >> int(s) for a, s in zip(v["a"], v["s"])], np.uint8),
                np.array([(int(a) << int(s)) & 0xffffffff for a, s in zip(v["w"], v["t"])], np.uint32)],
     gens={"a": ints(0, 256, np.uint8), "s": ints(0, 10, np.uint8), "w": ints(0, 2 ** 32, np.uint32),
           "t": ints(0, 40, np.uint32)})


# ---- building and running -------------------------------------------------------------------------

def rename(c, p):
    """The case's names with prefix p (empty names stay empty)."""
    f = lambda n: p + n if n else n
    nodes = []
    for nd in c["nodes"]:
        nn = onnx.NodeProto()
        nn.CopyFrom(nd)
        del nn.input[:], nn.output[:]
        nn.input.extend(f(i) for i in nd.input)
        nn.output.extend(f(o) for o in nd.output)
        nn.name = p + (nd.name or nd.op_type)
        nodes.append(nn)
    inits = []
    for t in c["inits"]:
        t2 = onnx.TensorProto()
        t2.CopyFrom(t)
        t2.name = p + t.name
        inits.append(t2)
    inputs = [H.make_tensor_value_info(p + n, t, d) for n, t, d in c["inputs"]]
    rng, syms = np.random.default_rng(0), {"N": 2, "S": 3, "M": 4}  # the outputs' ranks
    v = {n: c["gens"].get(n, normal)(rng, [syms.get(d, d) for d in dims])
         for n, t, dims in c["inputs"]}
    ranks = [np.ndim(w) for w in c["oracle"](v)]
    outputs = [H.make_tensor_value_info(p + n, t, [None] * r)
               for (n, t), r in zip(c["outputs"], ranks)]
    return nodes, inits, inputs, outputs


def model_of(cases):
    nodes, inits, inputs, outputs = [], [], [], []
    for c in cases:
        a, b, i, o = rename(c, "c%d_" % CASES.index(c))
        nodes += a
        inits += b
        inputs += i
        outputs += o
    g = H.make_graph(nodes, "ops", inputs, outputs, initializer=inits)
    m = H.make_model(g, opset_imports=[H.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


NPDT = {F: np.float32, I64: np.int64, I32: np.int32, B: np.bool_, D: np.float64, U8: np.uint8, I8: np.int8,
        U32: np.uint32}


def run(cases, path, syms, tier, tag):
    """Run the model of `cases` at one binding; returns a list of (what, ok)."""
    rng = np.random.default_rng(abs(hash((tag, tuple(sorted(syms.items()))))) % 2 ** 32)
    args, data, outs = [], {}, []
    for c in cases:
        p = "c%d_" % CASES.index(c)
        vals = {}
        for n, t, dims in c["inputs"]:
            shape = [syms[d] if isinstance(d, str) else d for d in dims]
            a = c["gens"].get(n, normal)(rng, shape)
            vals[n] = a
            f = os.path.join(SCRATCH, p + n + ".npy")
            np.save(f, a)
            args += ["-i", "%s=%s" % (p + n, f)]
        data[c["name"]] = vals
        for n, t in c["outputs"]:
            f = os.path.join(SCRATCH, p + n + ".out.npy")
            if os.path.exists(f):
                os.remove(f)
            args += ["-o", "%s=%s" % (p + n, f)]
    r = subprocess.run([DVM, "run", path, "--tier", tier] + args, capture_output=True, text=True,
                       timeout=300)
    if r.returncode != 0:
        return [("%s: dvm run exit %d: %s" % (tag, r.returncode, r.stderr.strip()[-600:]), False)]
    res = []
    for c in cases:
        p = "c%d_" % CASES.index(c)
        v64 = {k: (a.astype(np.float64) if a.dtype == np.float32 else a)
               for k, a in data[c["name"]].items()}
        want = c["oracle"](v64)
        for (n, t), w in zip(c["outputs"], want):
            got = np.load(os.path.join(SCRATCH, p + n + ".out.npy"))
            w = np.asarray(w)
            what = "%s %s %s %s" % (c["name"], n, tier, syms)
            if got.dtype != NPDT[t] or got.shape != w.shape:
                res.append(("%s: got %s%s, want %s%s" % (what, got.dtype, got.shape,
                                                         np.dtype(NPDT[t]), w.shape), False))
            elif t in (F, D):
                scale = max(1.0, float(np.abs(w).max()) if w.size else 1.0)
                err = float(np.abs(got - w).max() / scale) if w.size else 0.0
                res.append(("%s: max error %.3g" % (what, err), err <= (2e-5 if t == F else 1e-13)))
            else:
                res.append((what + ": values differ", bool(np.array_equal(got, w.astype(got.dtype)))))
    return res


def main():
    path = os.path.join(SCRATCH, "ops.onnx")
    onnx.save(model_of(CASES), path)
    # symbolic shapes and recognized patterns
    r = subprocess.run([DVM, "dump", path, "--stage", "ir"], capture_output=True, text=True)
    check(r.returncode == 0, "dump ops.onnx: %s" % r.stderr.strip()[-600:])
    ir = r.stdout
    pre = "c%d_" % [c["name"] for c in CASES].index("reshape_shape_subgraph")
    check("%sy = reshape(%sx, shape=[N*S, 8])" % (pre, pre) in ir,
          "the Shape->Gather->Mul->Concat subgraph becomes reshape(shape=[N*S, 8])")
    pre = "c%d_" % [c["name"] for c in CASES].index("gelu_silu_patterns")
    check("%sgelu = gelu(%sx)" % (pre, pre) in ir, "the erf pattern becomes gelu")
    check("%ssilu = silu(%sx)" % (pre, pre) in ir, "x*sigmoid(x) becomes silu")
    check("Shape" not in ir and "shape(" not in ir.replace("reshape(", ""),
          "no shape computation is left for run time")
    for syms in ({"N": 2, "S": 3, "M": 4}, {"N": 3, "S": 6, "M": 1}):
        for tier in ("auto", "ref"):
            res = run(CASES, path, syms, tier, "all")
            if len(res) == 1 and not res[0][1]:  # the model failed: find the case(s)
                check(False, res[0][0])
                for c in CASES:
                    one = os.path.join(SCRATCH, "case_%s.onnx" % c["name"])
                    onnx.save(model_of([c]), one)
                    for what, ok in run([c], one, syms, tier, c["name"]):
                        check(ok, what)
                continue
            for what, ok in res:
                check(ok, what)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
