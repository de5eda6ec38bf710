#!/usr/bin/python3
"""ONNX models whose structure depends on the values of an input (a Reshape's shape, a
ReduceSum's axes, an Unsqueeze's axes given as graph inputs): dvm compiles one variant per
distinct set of values (runtime/spec.c).

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
]
RNG = np.random.default_rng(7)
XV = RNG.standard_normal((4, 6)).astype(np.float32)
X3 = RNG.standard_normal((2, 3, 4)).astype(np.float32)


def want(path, vals):
    if path == RESHAPE:
        return np_reshape(XV, vals["s"])
    if path == REDUCE:
        return X3.astype(np.float64).sum(axis=tuple(int(a) for a in vals["a"]), keepdims=True)
    return np.expand_dims(XV, int(vals["u"][0])).reshape([int(v) for v in vals["s"]])


def data_in(path):
    return {"x3": X3} if path == REDUCE else {"x": XV}


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
