#!/usr/bin/python3
"""ONNX import: bad models give clear errors.

usage: bad_models.py DVM SCRATCH_DIR

Each case is a model made with python3-onnx (or bytes that are no model at all) and the
message expected from `dvm run`: exit status 1, one `dvm: error:` line on stderr that
names the file and, for a node, its number, name and op type; never a crash (the
sanitizer build runs this too). Ends with "N passed, M failed".
"""
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
X = H.make_tensor_value_info("x", TP.FLOAT, ["N", 4])
Y = H.make_tensor_value_info("y", TP.FLOAT, None)



def model(nodes, inits=(), opset=17, inputs=None, ir=8):
    g = H.make_graph(nodes, "bad", inputs or [X], [Y], initializer=list(inits))
    m = H.make_model(g, opset_imports=[H.make_opsetid("", opset)])
    m.ir_version = ir
    return m.SerializeToString()


W = NH.from_array(np.ones((4, 3), np.float32), "w")
CASES = [
    ("unsupported_op", model([H.make_node("Det", ["x"], ["y"], name="my_det")], [W]),
     ["node 1 'my_det' (Det)", "op Det is not supported"]),
    ("conv_channels", model([H.make_node("Conv", ["x", "w"], ["y"], name="my_conv")], [W]),
     ["node 1 'my_conv' (Conv)", "input of rank 2"]),
    ("unsupported_op_unnamed", model([H.make_node("Relu", ["x"], ["r"]),
                                      H.make_node("NonZero", ["r"], ["y"])], [W]),
     ["node 2 'y' (NonZero)", "not supported"]),
    ("opset_too_old", model([H.make_node("Relu", ["x"], ["y"])], opset=11),
     ["opset 11 is out of the supported range 13-17"]),
    ("opset_too_new", model([H.make_node("Relu", ["x"], ["y"])], opset=18),
     ["opset 18 is out of the supported range 13-17"]),
    ("missing_initializer", model([H.make_node("MatMul", ["x", "w"], ["y"], name="mm")]),
     ["node 1 'mm' (MatMul)", "input 2 'w' is not defined"]),
    ("unknown_input", model([H.make_node("Add", ["x", "nowhere"], ["y"], name="add0")]),
     ["node 1 'add0' (Add)", "'nowhere' is not defined"]),
    ("undefined_output", model([H.make_node("Relu", ["x"], ["z"])]),
     ["output 'y' is not computed by any node"]),
    ("other_domain", model([H.make_node("FastGelu", ["x"], ["y"], domain="com.microsoft")]),
     ["(FastGelu)", "domain 'com.microsoft'"]),
    ("complex_initializer", model([H.make_node("Add", ["x", "d"], ["y"], name="addd")],
                                  [NH.from_array(np.ones(4, np.complex64), "d")]),
     ["initializer 'd' has data type COMPLEX64"]),
    ("raw_data_short", None, ["initializer 'w' holds 40 bytes of raw data, its shape needs 48"]),
    ("runtime_shape", model([H.make_node("Cast", ["x"], ["xi"], to=TP.INT64),
                             H.make_node("ReduceMax", ["xi"], ["m"], keepdims=0),
                             H.make_node("Reshape", ["x", "m"], ["y"], name="rs")]),
     ["node 3 'rs' (Reshape)", "computed from run-time data"]),
    ("shape_contradiction", model([H.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
                                  [NH.from_array(np.ones((5, 3), np.float32), "w")]),
     ["node 1 'mm' (MatMul)", "matmul"]),
    ("dim_overflow", model([H.make_node("Reshape", ["x", "s"], ["y"], name="rs")],
                           [NH.from_array(np.array([2 ** 62, 4, 4], np.int64), "s")]),
     ["node 1 'rs' (Reshape)", "overflow"]),
    ("range_overflow", model([H.make_node("Range", ["a", "b", "c"], ["r"], name="rg"),
                              H.make_node("Add", ["x", "r"], ["y"])],
                             [NH.from_array(np.array(0, np.float32), "a"),
                              NH.from_array(np.array(1e30, np.float32), "b"),
                              NH.from_array(np.array(1e-30, np.float32), "c")]),
     ["node 1 'rg' (Range)", "Range of"]),
    ("empty_string_attribute", None, ["node 1 'nll' (NegativeLogLikelihoodLoss)",
                                      "attribute 'reduction' must be one of none, sum, mean"]),
    ("bad_auto_pad", model([H.make_node("Conv", ["i", "k"], ["y"], name="cv", auto_pad="SAME")],
                           [NH.from_array(np.ones((2, 3, 3, 3), np.float32), "k")],
                           inputs=[H.make_tensor_value_info("i", TP.FLOAT, ["N", 3, 8, 8])]),
     ["node 1 'cv' (Conv)", "attribute 'auto_pad' must be one of NOTSET, VALID, SAME_UPPER, SAME_LOWER"]),
    ("no_graph", b"\x08\x08", ["the model imports no ai.onnx opset"]),
    ("empty_file", b"", ["no ir_version"]),
    ("text_file", b"graph g\ninput x: f32[N]\ny = relu(x)\noutput y\n",
     ["not an ONNX model"]),
    ("wrong_magic", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, ["not an ONNX model"]),
]


def raw_short():
    t = NH.from_array(np.ones((4, 3), np.float32), "w")
    t.raw_data = t.raw_data[:40]
    return model([H.make_node("MatMul", ["x", "w"], ["y"])], [t])


def empty_string_attribute():
    """A STRING attribute with no bytes at all (protobuf leaves the field unset)."""
    n = H.make_node("NegativeLogLikelihoodLoss", ["x", "t"], ["y"], name="nll")
    n.attribute.append(onnx.AttributeProto(name="reduction", type=onnx.AttributeProto.STRING))
    return model([n], [NH.from_array(np.zeros((2,), np.int64), "t")])


BUILT = {"raw_data_short": raw_short, "empty_string_attribute": empty_string_attribute}


def main():
    for name, data, want in CASES:
        if data is None:
            data = BUILT[name]()
        path = os.path.join(SCRATCH, name + ".onnx")
        with open(path, "wb") as f:
            f.write(data)
        r = subprocess.run([DVM, "run", path, "-s", "N=2"], capture_output=True, text=True,
                           timeout=60)
        err = r.stderr.strip()
        check(r.returncode == 1, "%s: exit status %d (want 1): %s" % (name, r.returncode, err[-400:]))
        lines = err.splitlines()
        check(len(lines) == 1 and lines[0].startswith("dvm: error: " + path),
              "%s: one 'dvm: error: FILE...' line, got %r" % (name, err[-600:]))
        for w in want:
            check(w in err, "%s: message names %r: %s" % (name, w, err))
    # the same failures through dump
    r = subprocess.run([DVM, "dump", os.path.join(SCRATCH, "unsupported_op.onnx")],
                       capture_output=True, text=True)
    check(r.returncode == 1 and "(Det)" in r.stderr, "dump of a bad model: exit 1, names the op")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
