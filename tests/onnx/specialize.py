#!/usr/bin/python3
"""ONNX models whose structure depends on the values of an input (a Reshape's shape, a
ReduceSum's axes, an Unsqueeze's axes given as graph inputs): dvm compiles one variant per
distinct set of values (runtime/spec.c), or, where the values only size the result (a
Reshape's, an Expand's, a Tile's, a ConstantOfShape's, a Range's limit, a constant Pad's
pads), one variant per class of values whose sizes bind symbols at run time.

usage: specialize.py DVM SCRATCH_DIR

Through `dvm run` in every tier: each model with several values against NumPy, and the
errors (the value input not given). Through the Python module when the build has it: one
model object run with alternating values (results against NumPy; a value seen before
compiles nothing: the bytecode encode count stays put), more distinct values than the
variant table holds, and four threads at once. Ends with "N passed, M failed".
"""
import os
import subprocess
import sys
import threading

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as H

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from support import check, summary  # noqa: E402

DVM, SCRATCH = sys.argv[1], sys.argv[2]
os.makedirs(SCRATCH, exist_ok=True)
TIERS = ("ref", "vm", "llvm", "auto")


def save(name, nodes, inputs):
    g = H.make_graph(nodes, name, inputs, [H.make_tensor_value_info("y", TP.FLOAT, None)])
    path = os.path.join(SCRATCH, name + ".onnx")
    onnx.save(H.make_model(g, opset_imports=[H.make_opsetid("", 17)]), path)
    return path


X = H.make_tensor_value_info("x", TP.FLOAT, ["N", 6])
RESHAPE = save("reshape", [H.make_node("Reshape", ["x", "s"], ["r"]), H.make_node("Relu", ["r"], ["y"])],
               [X, H.make_tensor_value_info("s", TP.INT64, [3])])
REDUCE = save("reduce", [H.make_node("ReduceSum", ["x3", "a"], ["y"], keepdims=1)],
              [H.make_tensor_value_info("x3", TP.FLOAT, [2, 3, 4]), H.make_tensor_value_info("a", TP.INT64, [2])])
# two value inputs, the second needed only once the first is known
TWO = save("two", [H.make_node("Unsqueeze", ["x", "u"], ["e"]), H.make_node("Reshape", ["e", "s"], ["y"])],
           [X, H.make_tensor_value_info("u", TP.INT64, [1]), H.make_tensor_value_info("s", TP.INT64, [2])])


XS = H.make_tensor_value_info("xs", TP.FLOAT, [1, 3])
EXPAND = save("expand", [H.make_node("Expand", ["xs", "s"], ["y"])], [XS, H.make_tensor_value_info("s", TP.INT64, [2])])
TILE = save("tile", [H.make_node("Tile", ["xs", "s"], ["y"])], [XS, H.make_tensor_value_info("s", TP.INT64, [2])])
FILL = save("fill", [H.make_node("ConstantOfShape", ["s"], ["c"], value=H.make_tensor("v", TP.FLOAT, [1], [1.5])),
                     H.make_node("Mul", ["c", "c"], ["y"])], [H.make_tensor_value_info("s", TP.INT64, [3])])
SLICE = save("slice", [H.make_node("Slice", ["x", "b", "e", "a"], ["y"])],
             [X] + [H.make_tensor_value_info(n, TP.INT64, [1]) for n in "bea"])
PAD = save("pad", [H.make_node("Pad", ["x", "p"], ["y"], mode="constant")],
           [X, H.make_tensor_value_info("p", TP.INT64, [4])])
REFLECT = save("reflect", [H.make_node("Pad", ["x", "p"], ["y"], mode="reflect")],
               [X, H.make_tensor_value_info("p", TP.INT64, [4])])
C2 = H.make_tensor("two", TP.INT64, [1], [2])
# sizes computed from the values (s - 2 may be 0, which Reshape reads as "copy", or 1,
# which Expand reads as "keep"): the input is needed as constants for these
DERIVED = save("derived", [H.make_node("Constant", [], ["two"], value=C2), H.make_node("Sub", ["s", "two"], ["t"]),
                           H.make_node("Concat", ["t", "six"], ["shape"], axis=0),
                           H.make_node("Reshape", ["x16", "shape"], ["r"]), H.make_node("Expand", ["r", "t2"], ["y"])],
               [H.make_tensor_value_info("x16", TP.FLOAT, [1, 6]), H.make_tensor_value_info("s", TP.INT64, [1]),
                H.make_tensor_value_info("six", TP.INT64, [1]), H.make_tensor_value_info("t2", TP.INT64, [2])])
# two inputs whose dvm names would be the same ("a-b" and "a_b")
ONE = H.make_tensor("v", TP.FLOAT, [1], [1.0])
TWIN = save("twin", [H.make_node("ConstantOfShape", ["a-b"], ["c"], value=ONE),
                     H.make_node("ConstantOfShape", ["a_b"], ["d"], value=ONE),
                     H.make_node("ReduceSum", ["c"], ["sc"], keepdims=0), H.make_node("ReduceSum", ["d"], ["sd"], keepdims=0),
                     H.make_node("Div", ["sc", "sd"], ["y"])],
            [H.make_tensor_value_info("a-b", TP.INT64, [1]), H.make_tensor_value_info("a_b", TP.INT64, [1])])
# x [M, 2] reshaped by s joins s's symbol with 2*M; s - 2 may still be 0 ("copy")
JOINED = save("joined", [H.make_node("Reshape", ["xm", "s"], ["a"]), H.make_node("Constant", [], ["two"], value=C2),
                         H.make_node("Sub", ["s", "two"], ["d"]),
                         H.make_node("Constant", [], ["m1"], value=H.make_tensor("m1v", TP.INT64, [1], [-1])),
                         H.make_node("Concat", ["d", "m1"], ["shp"], axis=0), H.make_node("Reshape", ["w", "shp"], ["r"]),
                         H.make_node("ReduceSum", ["a"], ["sa"], keepdims=0), H.make_node("Add", ["r", "sa"], ["y"])],
               [H.make_tensor_value_info("xm", TP.FLOAT, ["M", 2]), H.make_tensor_value_info("w", TP.FLOAT, [4, 6]),
                H.make_tensor_value_info("s", TP.INT64, [1])])
# a value computed from the values as data, cast to float: int64 arithmetic, one rounding
EXACT = save("exact", [H.make_node("Constant", [], ["one"], value=H.make_tensor("ov", TP.INT64, [1], [1])),
                       H.make_node("Add", ["s", "one"], ["a1"]), H.make_node("Cast", ["a1"], ["y"], to=TP.FLOAT),
                       H.make_node("ConstantOfShape", ["s"], ["c"], value=H.make_tensor("cv", TP.INT8, [1], [0])),
                       H.make_node("Shape", ["c"], ["cs"])],
              [H.make_tensor_value_info("s", TP.INT64, [1])])
RANGE = save("range", [H.make_node("Range", ["lo", "hi", "one"], ["r"]), H.make_node("Cast", ["r"], ["y"], to=TP.FLOAT)],
             [H.make_tensor_value_info(n, TP.INT64, []) for n in ("lo", "hi", "one")])


def np_reshape(x, s):
    s = [x.shape[i] if v == 0 else v for i, v in enumerate(s)]
    return np.maximum(x.reshape(s), 0)


CASES = [  # model, inputs, expected output
    (RESHAPE, {"s": np.array([2, -1, 3])}, lambda x, s: np_reshape(x, s)),
    (RESHAPE, {"s": np.array([0, 3, 2])}, lambda x, s: np_reshape(x, s)),
    (RESHAPE, {"s": np.array([1, 1, -1])}, lambda x, s: np_reshape(x, s)),
    (REDUCE, {"a": np.array([0, 2])}, None),
    (REDUCE, {"a": np.array([-1, 1])}, None),
    (TWO, {"u": np.array([1]), "s": np.array([-1, 2])}, None),
    (TWO, {"u": np.array([0]), "s": np.array([3, -1])}, None),
    (RESHAPE, {"s": np.array([3, 4, 2])}, None),
    (RESHAPE, {"s": np.array([2, 12, 1])}, None),
    (EXPAND, {"s": np.array([5, 3])}, None),
    (EXPAND, {"s": np.array([2, 1])}, None),
    (TILE, {"s": np.array([3, 2])}, None),
    (TILE, {"s": np.array([1, 0])}, None),
    (FILL, {"s": np.array([2, 3, 4])}, None),
    (FILL, {"s": np.array([5, 1, 0])}, None),
    (SLICE, {"b": np.array([2]), "e": np.array([9]), "a": np.array([1])}, None),
    (SLICE, {"b": np.array([-3]), "e": np.array([5]), "a": np.array([1])}, None),
    (DERIVED, {"s": np.array([2]), "six": np.array([6]), "t2": np.array([1, 6])}, None),
    (DERIVED, {"s": np.array([3]), "six": np.array([6]), "t2": np.array([3, 6])}, None),
    (DERIVED, {"s": np.array([5]), "six": np.array([2]), "t2": np.array([3, 2])}, None),
    (TWIN, {"a_b": np.array([3]), "a_b_2": np.array([4])}, None),
    (PAD, {"p": np.array([2, 3, 4, 5])}, None),
    (PAD, {"p": np.array([0, 2, 1, 3])}, None),
    (PAD, {"p": np.array([-1, 2, 0, 3])}, None),
    (REFLECT, {"p": np.array([2, 1, 1, 3])}, None),
    (RANGE, {"lo": np.array(0), "hi": np.array(7), "one": np.array(1)}, None),
    (RANGE, {"lo": np.array(5), "hi": np.array(3), "one": np.array(1)}, None),
    (RANGE, {"lo": np.array(2), "hi": np.array(9), "one": np.array(3)}, None),
]
RNG = np.random.default_rng(7)
XV = RNG.standard_normal((4, 6)).astype(np.float32)
X3 = RNG.standard_normal((2, 3, 4)).astype(np.float32)


XSV = RNG.standard_normal((1, 3)).astype(np.float32)


def want(path, vals):
    if path == RESHAPE:
        return np_reshape(XV, vals["s"])
    if path == REDUCE:
        return X3.astype(np.float64).sum(axis=tuple(int(a) for a in vals["a"]), keepdims=True)
    if path == EXPAND:
        return XSV * np.ones(vals["s"], np.float32)
    if path == TILE:
        return np.tile(XSV, vals["s"])
    if path == FILL:
        return np.full(vals["s"], 2.25, np.float32)
    if path == SLICE:
        sl = [slice(None)] * 2
        sl[int(vals["a"][0])] = slice(int(vals["b"][0]), int(vals["e"][0]))
        return XV[tuple(sl)]
    if path == DERIVED:
        x16 = np.arange(6, dtype=np.float32).reshape(1, 6)
        t = int(vals["s"][0]) - 2
        shape = [x16.shape[0] if t == 0 else t, int(vals["six"][0])]
        return x16.reshape(shape) * np.ones(vals["t2"], np.float32)
    if path in (PAD, REFLECT):
        p = vals["p"]
        x = XV[max(-p[0], 0):XV.shape[0] - max(-p[2], 0), max(-p[1], 0):XV.shape[1] - max(-p[3], 0)]
        widths = ((max(p[0], 0), max(p[2], 0)), (max(p[1], 0), max(p[3], 0)))
        return np.pad(x, widths, mode="constant" if path == PAD else "reflect")
    if path == TWIN:
        return np.array(float(vals["a_b"][0]) / float(vals["a_b_2"][0]), np.float32)
    if path == RANGE:
        return np.arange(int(vals["lo"]), int(vals["hi"]), int(vals["one"])).astype(np.float32)
    return np.expand_dims(XV, int(vals["u"][0])).reshape([int(v) for v in vals["s"]])


def data_in(path):
    return {REDUCE: {"x3": X3}, EXPAND: {"xs": XSV}, TILE: {"xs": XSV}, FILL: {}, RANGE: {}, TWIN: {},
            DERIVED: {"x16": np.arange(6, dtype=np.float32).reshape(1, 6)}}.get(path, {"x": XV})


def cli(path, ins, tier, out=None):
    args = [DVM, "run", path, "--tier", tier]
    for n, a in ins.items():
        f = os.path.join(SCRATCH, "in_%s.npy" % n)
        np.save(f, a.astype(np.int64) if a.dtype.kind == "i" else a)
        args += ["-i", "%s=%s" % (n, f)]
    if out:
        args += ["-o", "y=" + out]
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


def through_cli():
    for tier in TIERS:
        for k, (path, vals, _) in enumerate(CASES):
            out = os.path.join(SCRATCH, "y_%s_%d.npy" % (tier, k))
            r = cli(path, {**data_in(path), **vals}, tier, out)
            ok = r.returncode == 0
            check(ok, "%s %s %s: exit %d: %s" % (os.path.basename(path), vals, tier, r.returncode, r.stderr[-300:]))
            if ok:
                got, w = np.load(out), want(path, vals)
                check(got.shape == w.shape and np.allclose(got, w, rtol=1e-5, atol=1e-5),
                      "%s %s %s: got shape %s, want %s" % (os.path.basename(path), vals, tier, got.shape, w.shape))
    r = cli(RESHAPE, {"x": XV}, "vm")
    check(r.returncode == 1 and "input 's' is not given" in r.stderr and "depends on its values" in r.stderr,
          "value input missing: exit 1 naming it: %d %s" % (r.returncode, r.stderr))
    r = cli(RESHAPE, {"x": XV, "s": np.array([5, 2, 1])}, "vm")
    check(r.returncode == 1 and "reshape.onnx:1:" in r.stderr and "must be equal" in r.stderr,
          "a shape that does not fit: exit 1 naming the node's line and the dims: %s" % r.stderr)
    r = cli(TWO, {"x": XV, "u": np.array([1])}, "vm")
    check(r.returncode == 1 and "input 's' is not given" in r.stderr,
          "the second value input missing: exit 1 naming it: %s" % r.stderr)


def one(r):
    return r[0] if isinstance(r, (tuple, list)) else r


def through_module():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(DVM)), "python"))
    try:
        import dvm
    except ImportError:
        print("skip: the Python module is not in this build")
        return
    m = dvm.Model(RESHAPE, tier="vm", threads=1)
    check(list(m.inputs) == ["x", "s"] and list(m.outputs) == ["y"], "interface: %s %s" % (m.inputs, m.outputs))
    shapes = [np.array(s) for s in ([2, -1, 3], [0, 3, 2], [2, -1, 3], [0, 3, 2])]
    encodes = []
    for s in shapes:
        got = one(m(x=XV, s=s))
        check(np.array_equal(got, np_reshape(XV, s)), "module: reshape to %s" % s)
        encodes.append(m.stats()["vm_encodes"])
    check(encodes[2] == encodes[1] and encodes[3] == encodes[1] and encodes[1] > encodes[0] > 0,
          "values seen before compile nothing: encodes after each run %s" % encodes)
    # more distinct values than the variant table keeps: every result still right
    for n in range(1, 25):
        s = np.array([n, -1, 1]) if 24 % n == 0 else np.array([1, 24, 1])
        check(np.array_equal(one(m(x=XV, s=s)), np_reshape(XV, s)), "module: reshape to %s after evictions" % s)
    # values that only size the result bind symbols: after the first run of a class, new
    # values of it compile nothing
    classes = [
        (RESHAPE, "s", [[3, 8, 1], [2, 12, 1], [4, 6, 1], [12, 2, 1], [6, 4, 1]]),
        (EXPAND, "s", [[2, 3], [7, 3], [40, 3], [3, 3]]),
        (TILE, "s", [[2, 3], [5, 2], [3, 9], [2, 2]]),
        (FILL, "s", [[2, 3, 4], [9, 2, 7], [3, 3, 3]]),
        (RANGE, "hi", [7, 30, 2, 1000]),
        (PAD, "p", [[2, 3, 4, 5], [3, 2, 2, 7], [5, 5, 5, 5]]),
    ]
    for path, name, values in classes:
        mc = dvm.Model(path, tier="vm", threads=1)
        fixed = {"lo": np.array(0), "one": np.array(1)} if path == RANGE else {}
        counts = []
        for v in values:
            vals = {**fixed, name: np.array(v)}
            got = one(mc(**data_in(path), **vals))
            w = want(path, vals)
            check(got.shape == w.shape and np.allclose(got, w), "module: %s %s=%s" % (os.path.basename(path), name, v))
            counts.append(mc.stats()["vm_encodes"])
        check(counts[0] > 0 and all(c == counts[0] for c in counts),
              "module: %s: new values of one class compile nothing: encodes after each run %s"
              % (os.path.basename(path), counts))
    # a value symbol joined with a shape's, then read where 0 would mean "copy"
    mj = dvm.Model(JOINED, tier="vm", threads=1)
    w = np.arange(24, dtype=np.float32).reshape(4, 6)
    for m_, s_ in ((2, 4), (1, 2), (3, 6), (1, 2)):
        xm = np.arange(2 * m_, dtype=np.float32).reshape(m_, 2)
        d = s_ - 2
        want_y = w.reshape([d if d else 4, -1]) + xm.sum()
        try:
            got = one(mj(xm=xm, w=w, s=np.array([s_])))
            check(got.shape == want_y.shape and np.allclose(got, want_y), "module: joined M=%d s=%d" % (m_, s_))
        except dvm.Error as e:
            check(False, "module: joined M=%d s=%d: %s" % (m_, s_, e))
    me = dvm.Model(EXACT, tier="vm", threads=1)
    for v in (16777217, 3, 16777219):
        got = one(me(s=np.array([v])))
        check(np.array_equal(got, (np.array([v]) + 1).astype(np.float32)), "module: float(s + 1) for s = %d: %s" % (v, got))
    # values that fail (two -1s) leave the others binding: still no compile after them
    mr = dvm.Model(RESHAPE, tier="vm", threads=1)
    counts = []
    for v in ([4, 6, 1], [3, 8, 1], [-1, -1, 1], [2, 12, 1], [6, 4, 1]):
        try:
            got = one(mr(x=XV, s=np.array(v)))
            check(v[0] > 0 and np.array_equal(got, np_reshape(XV, np.array(v))), "module: reshape to %s" % v)
            counts.append(mr.stats()["vm_encodes"])
        except dvm.Error as e:
            check(v[0] < 0 and "-1" in str(e), "module: reshape to %s fails naming the -1: %s" % (v, e))
    check(len(set(counts)) == 1, "module: an invalid value does not end binding: encodes %s" % counts)
    # a Slice's bounds are needed as constants (ONNX clamps them): still right per value
    ms = dvm.Model(SLICE, tier="vm", threads=1)
    for b, e in ((2, 9), (3, 4), (-4, 5), (0, 100)):
        vals = {"b": np.array([b]), "e": np.array([e]), "a": np.array([1])}
        got = one(ms(x=XV, **vals))
        check(np.array_equal(got, want(SLICE, vals)), "module: slice %d:%d" % (b, e))
    # threads with alternating values
    errors = []

    def work(t):
        for i in range(30):
            s = shapes[(t + i) % 2]
            if not np.array_equal(one(m(x=XV, s=s)), np_reshape(XV, s)):
                errors.append((t, i))
    ts = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    check(not errors, "four threads, alternating values: wrong at %s" % errors[:5])


def main():
    through_cli()
    through_module()
    return summary()


if __name__ == "__main__":
    sys.exit(main())
