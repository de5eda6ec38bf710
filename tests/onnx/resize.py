#!/usr/bin/python3
"""Resize (onnx/resize.c) against torch's interpolate, as exporters write it.

usage: resize.py DVM SCRATCH_DIR

Random configurations (seeded) of what torch.nn.functional.interpolate exports: nearest
(ONNX asymmetric + floor), linear, bilinear and bicubic with align_corners on
(align_corners) and off (half_pixel, and pytorch_half_pixel), by scale factor and by
size, up and down, 1-D to 3-D, with the scales or sizes as initializers. Each is a
one-node model run by `dvm run` in the ref, vm and llvm tiers and compared with torch in
float64 (relative 1e-4 of the output's scale); f16 inputs to 2e-3. Then the edges:
nearest on integers (exact), an axis of symbolic length to resize (refused naming the
axis), scales of the wrong length, bad modes. Ends with "N passed, M failed".
"""
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto as TP
from onnx import helper as H
from onnx import numpy_helper as NH

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from support import compare_tiers, refused_tiers, summary  # noqa: E402

DVM, SCRATCH = sys.argv[1], sys.argv[2]
os.makedirs(SCRATCH, exist_ok=True)
TIERS = ("ref", "vm", "llvm")
TP_OF = {np.float32: TP.FLOAT, np.float16: TP.FLOAT16, np.int64: TP.INT64}
count = [0]


def save(attrs, x_shape, x_dtype, scales=None, sizes=None):
    count[0] += 1
    inits, ins = [], ["x", ""]
    if scales is not None:
        inits.append(NH.from_array(np.array(scales, np.float32), "scales"))
        ins.append("scales")
    else:
        inits.append(NH.from_array(np.array(sizes, np.int64), "sizes"))
        ins += ["", "sizes"]
    node = H.make_node("Resize", ins, ["y"], **attrs)
    g = H.make_graph([node], "r%d" % count[0], [H.make_tensor_value_info("x", TP_OF[x_dtype], x_shape)],
                     [H.make_tensor_value_info("y", 0, None)], inits)
    path = os.path.join(SCRATCH, "r%d.onnx" % count[0])
    onnx.save(H.make_model(g, opset_imports=[H.make_opsetid("", 13)]), path)
    return path


def compare(what, path, x, want, tol):
    compare_tiers(DVM, SCRATCH, TIERS, what, path, x, want, tol)


def refused(what, path, x, text):
    refused_tiers(DVM, SCRATCH, TIERS, what, path, x, text)


MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}


def random_case(rng):
    ns = int(rng.integers(1, 4))
    kind = rng.choice(["nearest", "linear", "cubic"] if ns == 2 else ["nearest", "linear"])
    shape = [int(rng.integers(1, 3)), int(rng.integers(1, 4))] + [int(rng.integers(2, 9)) for _ in range(ns)]
    align = bool(rng.integers(0, 2)) and kind != "nearest"
    by_size = bool(rng.integers(0, 2))
    x = rng.standard_normal(shape).astype(np.float32)
    tx = torch.from_numpy(x.astype(np.float64))
    tmode = {"nearest": "nearest", "linear": MODES[ns], "cubic": "bicubic"}[kind]
    kw = {} if kind == "nearest" else {"align_corners": align}
    if by_size:
        out = [int(rng.integers(1, 13)) for _ in range(ns)]
        want = F.interpolate(tx, size=out, mode=tmode, **kw).numpy()
        sizes = shape[:2] + out
        scales = None
    else:
        f = [float(rng.choice([0.5, 0.75, 1.5, 2.0, 3.0])) for _ in range(ns)]
        want = F.interpolate(tx, scale_factor=f, mode=tmode, recompute_scale_factor=False, **kw).numpy()
        scales, sizes = [1.0, 1.0] + f, None
    if align and not by_size and any((fi * n) % 1 for fi, n in zip(f, shape[2:])):
        return None  # ONNX's align_corners divides by scale · length, torch by the integer output length
    coord = "asymmetric" if kind == "nearest" else "align_corners" if align else "half_pixel"
    if kind != "nearest" and not align and by_size and rng.integers(0, 2):
        coord = "pytorch_half_pixel"  # what torch exports; the same as half_pixel unless an output length is 1
        if any(o == 1 for o in out):
            return None
    attrs = {"mode": kind, "coordinate_transformation_mode": coord}
    if kind == "nearest":
        attrs["nearest_mode"] = "floor"
    if kind == "cubic":
        attrs["cubic_coeff_a"] = -0.75
    if coord == "half_pixel" and kind != "nearest" and by_size and any(o == 1 for o in out):
        return None  # torch's half-pixel for an output of 1 is pytorch_half_pixel's
    what = "%s %s %s %s" % (kind, coord, "sizes" if by_size else "scales", sizes or scales)
    return what, save(attrs, shape, np.float32, scales, sizes), x, want


def exported(rng):
    """A decoder stage as torch.onnx.export writes it: conv, upsample (nearest and
    bilinear), conv; batch dynamic."""
    import warnings
    warnings.filterwarnings("ignore", category=UserWarning)  # torch.onnx.export's shape-inference notes
    torch.manual_seed(5)

    class Up(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.b = torch.nn.Conv2d(8, 4, 3, padding=1)

        def forward(self, x):
            h = F.interpolate(torch.relu(self.a(x)), scale_factor=2.0, mode="nearest")
            return self.b(F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False))
    m = Up().eval()
    path = os.path.join(SCRATCH, "up.onnx")
    torch.onnx.export(m, torch.zeros(1, 3, 6, 5), path, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "N"}}, opset_version=13)
    x = rng.standard_normal((2, 3, 6, 5)).astype(np.float32)
    with torch.no_grad():
        want = m.double()(torch.from_numpy(x.astype(np.float64))).numpy()
    compare("exported conv-upsample-conv, N = 2", path, x, want, 1e-4)


def crop_model(roi, kind, values, **attrs):
    """A tf_crop_and_resize of x [1, 1, 4, 5] by roi and `kind` (scales or sizes)."""
    count[0] += 1
    ins = ["x", "roi", "scales"] if kind == "scales" else ["x", "roi", "", "sizes"]
    node = H.make_node("Resize", ins, ["y"], coordinate_transformation_mode="tf_crop_and_resize", **attrs)
    g = H.make_graph([node], "c%d" % count[0], [H.make_tensor_value_info("x", TP.FLOAT, [1, 1, 4, 5])],
                     [H.make_tensor_value_info("y", 0, None)], [NH.from_array(roi, "roi"), NH.from_array(values, kind)])
    path = os.path.join(SCRATCH, "c%d.onnx" % count[0])
    onnx.save(H.make_model(g, opset_imports=[H.make_opsetid("", 13)]), path)
    return path


def crop_cases(rng):
    """tf_crop_and_resize against ONNX's reference implementation (torch has no such mode):
    nearest and linear, extrapolation values 0 and 10, a crop reaching past the input."""
    from onnx.backend.test.case.node.resize import interpolate_nd, linear_coeffs, nearest_coeffs
    x = rng.standard_normal((1, 1, 4, 5)).astype(np.float32)
    roi = np.array([0, 0, 0.4, -0.2, 1, 1, 1.2, 0.9], np.float32)
    for mode, coeffs in (("nearest", nearest_coeffs), ("linear", linear_coeffs)):
        for ev in (0.0, 10.0):
            path = crop_model(roi, "sizes", np.array([1, 1, 3, 4], np.int64), mode=mode, extrapolation_value=ev)
            want = interpolate_nd(x.astype(np.float64), coeffs, output_size=[1, 1, 3, 4], roi=roi,
                                  coordinate_transformation_mode="tf_crop_and_resize", extrapolation_value=ev)
            compare("tf_crop_and_resize %s extrapolation %g" % (mode, ev), path, x, want, 1e-5)
    bad = np.array([0, 0, 0.8, 0, 1, 1, 0.2, 1], np.float32)  # an end before its start: no elements
    path = crop_model(bad, "scales", np.array([1, 1, 2, 2], np.float32), mode="linear")
    refused("a crop that ends before it starts", path, x, "resized to -")


def main():
    rng = np.random.default_rng(11)
    done = 0
    while done < 40:
        case = random_case(rng)
        if case is None:
            continue
        what, path, x, want = case
        compare(what, path, x, want, 1e-4)
        done += 1
    # f16: interpolated in f32, rounded once
    x = rng.standard_normal((1, 2, 5, 7)).astype(np.float16)
    want = F.interpolate(torch.from_numpy(x.astype(np.float64)), scale_factor=[2.0, 1.5], mode="bilinear",
                         align_corners=False, recompute_scale_factor=False).numpy()
    compare("f16 bilinear", save({"mode": "linear"}, [1, 2, 5, 7], np.float16, scales=[1, 1, 2.0, 1.5]), x, want, 2e-3)
    # nearest on integers is exact; a symbolic batch is fine
    xi = rng.integers(-100, 100, (3, 2, 3, 4)).astype(np.int64)
    want = F.interpolate(torch.from_numpy(xi.astype(np.float64)), scale_factor=[2.0, 3.0], mode="nearest").numpy()
    compare("nearest int64, symbolic batch", save({"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
                                                   "nearest_mode": "floor"}, ["N", 2, 3, 4], np.int64,
                                                  scales=[1, 1, 2.0, 3.0]), xi, want, 0)
    exported(rng)
    crop_cases(rng)
    # the edges
    x = rng.standard_normal((1, 2, 4, 4)).astype(np.float32)
    refused("symbolic length to resize", save({"mode": "linear"}, [1, 2, "H", 4], np.float32, scales=[1, 1, 2, 2]),
            x, "axis 2, whose length is symbolic")
    refused("scales of the wrong length", save({"mode": "linear"}, [1, 2, 4, 4], np.float32, scales=[2, 2]),
            x, "scales has 2 entries for an input of rank 4")
    refused("bad mode", save({"mode": "area"}, [1, 2, 4, 4], np.float32, scales=[1, 1, 2, 2]),
            x, "attribute 'mode' must be one of nearest, linear, cubic")
    refused("linear on integers", save({"mode": "linear"}, [1, 2, 4, 4], np.int64, scales=[1, 1, 2, 2]),
            x.astype(np.int64), "only nearest takes integers")
    refused("negative scale", save({"mode": "linear"}, [1, 2, 4, 4], np.float32, scales=[1, 1, -2, 2]),
            x, "scales[2] is -2")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
