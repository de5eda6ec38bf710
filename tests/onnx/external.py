#!/usr/bin/python3
"""ONNX external data (onnx/external.c): initializers stored in files beside the model.

usage: external.py DVM SCRATCH_DIR

A small MLP saved by python3-onnx with every initializer in one external file (offsets as
onnx lays them out) runs like the same model with its data inline, bit for bit; so do
files written by hand with an offset aligned to a page (mapped) and one that is not
(read), and a location through "sub/../". Then the locations dvm must refuse, each with
exit 1 and a message naming the tensor: an absolute path, a "../" out of the directory, a
symbolic link out of it, a missing file, a file too short, a length that disagrees with the
shape, an offset that is not a number, a directory, a FIFO (opened without blocking). A
loaded model keeps its data when the files are rewritten or truncated. Ends with "N passed,
M failed".
"""
import os
import shutil
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
shutil.rmtree(SCRATCH, ignore_errors=True)
os.makedirs(SCRATCH)
rng = np.random.default_rng(5)
W1 = rng.standard_normal((16, 32)).astype(np.float32)
B1 = rng.standard_normal((32,)).astype(np.float32)
W2 = rng.standard_normal((32, 8)).astype(np.float32)


def mlp(inits):
    nodes = [H.make_node("MatMul", ["x", "w1"], ["h"]), H.make_node("Add", ["h", "b1"], ["a"]),
             H.make_node("Relu", ["a"], ["r"]), H.make_node("MatMul", ["r", "w2"], ["y"])]
    g = H.make_graph(nodes, "mlp", [H.make_tensor_value_info("x", TP.FLOAT, ["N", 16])],
                     [H.make_tensor_value_info("y", TP.FLOAT, None)], inits)
    return H.make_model(g, opset_imports=[H.make_opsetid("", 17)])


def external(name, arr, location, offset=None, length=None):
    """An initializer whose entry points at `location` (the caller writes the bytes)."""
    t = NH.from_array(arr, name)
    t.ClearField("raw_data")
    t.data_location = TP.EXTERNAL
    for k, v in (("location", location), ("offset", offset), ("length", length)):
        if v is not None:
            e = t.external_data.add()
            e.key, e.value = k, str(v)
    return t


X = rng.standard_normal((5, 16)).astype(np.float32)
np.save(os.path.join(SCRATCH, "x.npy"), X)


def run(path):
    y = os.path.join(SCRATCH, "y.npy")
    if os.path.exists(y):
        os.remove(y)
    r = subprocess.run([DVM, "run", path, "--tier", "vm", "-i", "x=" + os.path.join(SCRATCH, "x.npy"),
                        "-o", "y=" + y], capture_output=True, text=True, timeout=120)
    return r, (np.load(y) if r.returncode == 0 else None)


def main():
    inline = os.path.join(SCRATCH, "inline.onnx")
    onnx.save(mlp([NH.from_array(W1, "w1"), NH.from_array(B1, "b1"), NH.from_array(W2, "w2")]), inline)
    r, want = run(inline)
    check(r.returncode == 0, "the inline model runs: %s" % r.stderr.strip())

    # onnx's own external-data writer: one file, offsets as it lays them out
    d = os.path.join(SCRATCH, "saved")
    os.makedirs(d)
    m = mlp([NH.from_array(W1, "w1"), NH.from_array(B1, "b1"), NH.from_array(W2, "w2")])
    onnx.save_model(m, os.path.join(d, "model.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    saved = onnx.load(os.path.join(d, "model.onnx"), load_external_data=False)
    check(all(t.data_location == TP.EXTERNAL for t in saved.graph.initializer), "onnx wrote external data")
    r, got = run(os.path.join(d, "model.onnx"))
    check(r.returncode == 0 and np.array_equal(got, want), "onnx's external file: %s" % r.stderr.strip())

    # by hand: w1 at a page-aligned offset (mapped), b1 right after a 2-byte gap (read), w2
    # in a file under sub/, named through "sub/../sub/"
    d = os.path.join(SCRATCH, "hand")
    os.makedirs(os.path.join(d, "sub"))
    with open(os.path.join(d, "data.bin"), "wb") as f:
        f.write(b"\0" * 4096 + W1.tobytes() + b"\0\0" + B1.tobytes())
    with open(os.path.join(d, "sub", "w2.bin"), "wb") as f:
        f.write(W2.tobytes())
    good = [external("w1", W1, "data.bin", 4096, W1.nbytes),
            external("b1", B1, "data.bin", 4096 + W1.nbytes + 2),
            external("w2", W2, "sub/../sub/w2.bin")]
    onnx.save(mlp(good), os.path.join(d, "model.onnx"))
    r, got = run(os.path.join(d, "model.onnx"))
    check(r.returncode == 0 and np.array_equal(got, want), "mapped, read and sub/../ data: %s" % r.stderr.strip())

    outside = os.path.join(SCRATCH, "outside.bin")
    with open(outside, "wb") as f:
        f.write(W2.tobytes())
    os.symlink(outside, os.path.join(d, "link.bin"))
    bad = {
        "absolute": (external("w2", W2, outside), "is absolute"),
        "dotdot": (external("w2", W2, "../outside.bin"), "outside the model's directory"),
        "symlink": (external("w2", W2, "link.bin"), "outside the model's directory"),
        "missing": (external("w2", W2, "nothing.bin"), "No such file"),
        "short": (external("w2", W2, "sub/w2.bin", 8), "the tensor needs"),
        "length": (external("w2", W2, "sub/w2.bin", 0, 12), "length 12"),
        "offset": (external("w2", W2, "sub/w2.bin", "x1"), "not a byte count"),
        "directory": (external("w2", W2, "sub"), "not a regular file"),
        "no_location": (external("w2", W2, ""), "without a location"),
    }
    os.mkfifo(os.path.join(d, "fifo"))
    bad["fifo"] = (external("w2", W2, "fifo"), "not a regular file")  # opened without blocking
    for name, (t, text) in bad.items():
        path = os.path.join(d, "bad_%s.onnx" % name)
        onnx.save(mlp(good[:2] + [t]), path)
        r, _ = run(path)
        check(r.returncode == 1 and "w2" in r.stderr and text in r.stderr and "runtime error" not in r.stderr,
              "%s: exit 1 naming w2 and '%s': exit %d, %s" % (name, text, r.returncode, r.stderr.strip()))
    # the bytes are read when the model loads: rewriting or truncating the file afterwards
    # changes nothing (and cannot kill the process, as a mapping of it could)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(DVM)), "python"))
    try:
        import dvm
    except ImportError:
        print("skip: the rewrite check needs the Python module (not in a sanitizer build)")
        return summary()
    m = dvm.Model(os.path.join(d, "model.onnx"), tier="vm", threads=1)
    first = m(x=X).copy()
    with open(os.path.join(d, "data.bin"), "r+b") as f:
        f.write(b"\x7f" * 4096 * 2)
    with open(os.path.join(d, "sub", "w2.bin"), "wb"):
        pass
    check(np.array_equal(m(x=X), first) and np.array_equal(first, want),
          "a loaded model keeps its external data when the files change")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
