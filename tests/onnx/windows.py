#!/usr/bin/python3
"""Conv, ConvTranspose, MaxPool, AveragePool and BatchNormalization (onnx/window.c)
against torch.

usage: windows.py DVM SCRATCH_DIR

Random configurations (seeded): 1-, 2- and 3-D, kernels, strides, dilations, asymmetric
pads, auto_pad, ceil_mode, count_include_pad, groups and depthwise convs, with and
without bias. Each is a one-node model (python3-onnx) run by `dvm run` in the ref, vm and
llvm tiers and compared with torch in float64 (relative 1e-4 of the output's scale).
Then the edges: bad ranks, huge strides and pads, a long auto_pad, a window larger
than a symbolic input when the model runs, BatchNormalization's mixed types (opset 15),
MaxPool's storage_order without Indices. Ends with "N passed, M failed".
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
from support import check, compare_tiers, refused_tiers, run_x_y, summary  # noqa: E402

DVM, SCRATCH = sys.argv[1], sys.argv[2]
os.makedirs(SCRATCH, exist_ok=True)
TIERS = ("ref", "vm", "llvm")
TP_OF = {np.float32: TP.FLOAT, np.float16: TP.FLOAT16}
count = [0]


def save(nodes, ins, inits, opset=17):
    """ins: (name, dtype, shape with str for symbols)."""
    count[0] += 1
    g = H.make_graph(nodes, "w%d" % count[0],
                     [H.make_tensor_value_info(n, t, s) for n, t, s in ins],
                     [H.make_tensor_value_info("y", 0, None)],
                     [NH.from_array(a, n) for n, a in inits.items()])
    path = os.path.join(SCRATCH, "w%d.onnx" % count[0])
    onnx.save(H.make_model(g, opset_imports=[H.make_opsetid("", opset)]), path)
    return path


def compare(what, path, x, want):
    compare_tiers(DVM, SCRATCH, TIERS, what, path, x, want, 1e-4)


def refused(what, path, x, text):
    refused_tiers(DVM, SCRATCH, TIERS, what, path, x, text)


def torch_pads(x, pads, value):
    """x padded as ONNX pads [b1.., e1..] say, for torch (which pads symmetrically)."""
    ns = len(pads) // 2
    tp = []
    for i in reversed(range(ns)):
        tp += [pads[i], pads[ns + i]]
    return F.pad(x, tp, value=value)


def same_pads(shape, k, s, dl, upper):
    pads_b, pads_e = [], []
    for n, kk, ss, dd in zip(shape, k, s, dl):
        o = -(-n // ss)
        total = max((o - 1) * ss + (kk - 1) * dd + 1 - n, 0)
        b = total // 2 if upper else total - total // 2
        pads_b.append(b)
        pads_e.append(total - b)
    return pads_b + pads_e


def pool_case(rng, kind):
    ns = int(rng.integers(1, 4))
    spatial = [int(rng.integers(3, 9)) for _ in range(ns)]
    k = [int(rng.integers(1, 4)) for _ in range(ns)]
    s = [int(rng.integers(1, 3)) for _ in range(ns)]
    dl = [int(rng.integers(1, 3)) if kind == "MaxPool" else 1 for _ in range(ns)]
    ceil = int(rng.integers(0, 2))
    mode = ["NOTSET", "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"][int(rng.integers(0, 5))]
    pads = [int(rng.integers(0, kk)) for kk in k] + [int(rng.integers(0, kk)) for kk in k]
    if mode != "NOTSET" or kind == "AveragePool":  # torch's avg pool: symmetric pads only
        ceil = 0
    if any((kk - 1) * dd + 1 > n + p + q for kk, dd, n, p, q in zip(k, dl, spatial, pads[:ns], pads[ns:])):
        return None
    attrs = {"kernel_shape": k, "strides": s, "ceil_mode": ceil}
    if kind == "MaxPool":
        attrs["dilations"] = dl
    if mode == "NOTSET":
        attrs["pads"] = pads
    else:
        attrs["auto_pad"] = mode
        pads = [0] * (2 * ns) if mode == "VALID" else same_pads(spatial, k, s, dl, mode == "SAME_UPPER")
    incl = int(rng.integers(0, 2))
    if kind == "AveragePool":
        attrs["count_include_pad"] = incl
    x = rng.standard_normal([2, 3] + spatial).astype(np.float32)
    tx = torch.from_numpy(x).double()
    pool = {1: (F.max_pool1d, F.avg_pool1d), 2: (F.max_pool2d, F.avg_pool2d), 3: (F.max_pool3d, F.avg_pool3d)}[ns]
    if kind == "MaxPool":
        want = pool[0](torch_pads(tx, pads, float("-inf")), k, s, 0, dl, ceil_mode=bool(ceil))
    else:
        xp = torch_pads(tx, pads, 0.0)
        sums = pool[1](xp, k, s, 0, ceil_mode=bool(ceil), count_include_pad=True) * float(np.prod(k))
        ones = torch_pads(torch.ones_like(tx), pads, 1.0 if incl else 0.0)
        cnt = pool[1](ones, k, s, 0, ceil_mode=bool(ceil), count_include_pad=True) * float(np.prod(k))
        want = sums / cnt
    path = save([H.make_node(kind, ["x"], ["y"], **attrs)], [("x", TP.FLOAT, list(x.shape))], {})
    return "%s %s" % (kind, attrs), path, x, want.numpy()


def conv_case(rng):
    ns = int(rng.integers(1, 4))
    spatial = [int(rng.integers(4, 10)) for _ in range(ns)]
    g = [1, 1, 2, 3][int(rng.integers(0, 4))]
    cg = int(rng.integers(1, 4))
    mg = int(rng.integers(1, 4))
    if rng.integers(0, 4) == 0:
        cg, mg = 1, 1  # depthwise
    c, m = g * cg, g * mg
    k = [int(rng.integers(1, 4)) for _ in range(ns)]
    s = [int(rng.integers(1, 3)) for _ in range(ns)]
    dl = [int(rng.integers(1, 3)) for _ in range(ns)]
    pads = [int(rng.integers(0, 3)) for _ in range(2 * ns)]
    mode = ["NOTSET", "NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"][int(rng.integers(0, 5))]
    attrs = {"strides": s, "dilations": dl, "group": g}
    if mode == "NOTSET":
        attrs["pads"] = pads
    else:
        attrs["auto_pad"] = mode
        pads = [0] * (2 * ns) if mode == "VALID" else same_pads(spatial, k, s, dl, mode == "SAME_UPPER")
    if any((kk - 1) * dd + 1 > n + p + q for kk, dd, n, p, q in zip(k, dl, spatial, pads[:ns], pads[ns:])):
        return None
    x = rng.standard_normal([2, c] + spatial).astype(np.float32)
    w = rng.standard_normal([m, cg] + k).astype(np.float32)
    b = rng.standard_normal([m]).astype(np.float32) if rng.integers(0, 2) else None
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[ns]
    want = conv(torch_pads(torch.from_numpy(x).double(), pads, 0.0), torch.from_numpy(w).double(),
                None if b is None else torch.from_numpy(b).double(), s, 0, dl, g)
    inits = {"w": w} if b is None else {"w": w, "b": b}
    path = save([H.make_node("Conv", ["x"] + list(inits), ["y"], **attrs)],
                [("x", TP.FLOAT, list(x.shape))], inits)
    return "Conv %s" % attrs, path, x, want.numpy()


def conv_transpose_case(rng):
    """ONNX's pads crop torch's unpadded result (pb at the start, pe at the end), after
    output_padding; output_shape sets the pads (SAME_UPPER: the odd one at the end)."""
    ns = int(rng.integers(1, 4))
    spatial = [int(rng.integers(2, 6)) for _ in range(ns)]
    g = [1, 1, 2][int(rng.integers(0, 3))]
    cg, mg = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    c, m = g * cg, g * mg
    k = [int(rng.integers(1, 4)) for _ in range(ns)]
    s = [int(rng.integers(1, 4)) for _ in range(ns)]
    dl = [int(rng.integers(1, 3)) for _ in range(ns)]
    op = [int(rng.integers(0, max(a, b))) for a, b in zip(s, dl)]
    full = [ss * (n - 1) + (kk - 1) * d + 1 + o for ss, n, kk, d, o in zip(s, spatial, k, dl, op)]
    attrs = {"strides": s, "dilations": dl, "group": g, "output_padding": op}
    if rng.integers(0, 3):
        pads = [int(rng.integers(0, 3)) for _ in range(2 * ns)]
        attrs["pads"] = pads
    else:  # output_shape
        shape = [f - int(rng.integers(0, 3)) for f in full]
        attrs["output_shape"] = shape
        upper = bool(rng.integers(0, 2))
        if upper:
            attrs["auto_pad"] = "SAME_UPPER"
        tot = [f - o for f, o in zip(full, shape)]
        pb = [t // 2 if upper else t - t // 2 for t in tot]
        pads = pb + [t - b for t, b in zip(tot, pb)]
    if any(f - pads[i] - pads[ns + i] < 1 for i, f in enumerate(full)):
        return None
    x = rng.standard_normal([2, c] + spatial).astype(np.float32)
    w = rng.standard_normal([c, mg] + k).astype(np.float32)
    b = rng.standard_normal([m]).astype(np.float32) if rng.integers(0, 2) else None
    conv = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[ns]
    y = conv(torch.from_numpy(x).double(), torch.from_numpy(w).double(),
             None if b is None else torch.from_numpy(b).double(), s, 0, op, g, dl).numpy()
    crop = tuple([slice(None), slice(None)] + [slice(pads[i], y.shape[2 + i] - pads[ns + i]) for i in range(ns)])
    inits = {"w": w} if b is None else {"w": w, "b": b}
    path = save([H.make_node("ConvTranspose", ["x"] + list(inits), ["y"], **attrs)],
                [("x", TP.FLOAT, ["N"] + list(x.shape[1:]))], inits)
    return "ConvTranspose %s" % attrs, path, x, y[crop]


def main():
    rng = np.random.default_rng(11)
    made = {"MaxPool": 0, "AveragePool": 0, "Conv": 0, "ConvTranspose": 0}
    while min(made.values()) < 12:
        kind = ["MaxPool", "AveragePool", "Conv", "ConvTranspose"][int(rng.integers(0, 4))]
        if made[kind] >= 12:
            continue
        c = (conv_case(rng) if kind == "Conv" else conv_transpose_case(rng) if kind == "ConvTranspose"
             else pool_case(rng, kind))
        if c:
            made[kind] += 1
            compare(*c)

    x4 = np.ones((1, 1, 4, 4), np.float32)
    w33 = np.ones((1, 1, 3, 3), np.float32)
    p = save([H.make_node("Conv", ["x", "w"], ["y"])], [("x", TP.FLOAT, [1, 1, 2, 2, 2, 2])],
             {"w": np.ones((1, 1, 1, 1, 1, 1), np.float32)})
    refused("conv of rank 6", p, np.ones((1, 1, 2, 2, 2, 2), np.float32), "rank 6")
    p = save([H.make_node("Conv", ["x", "w"], ["y"])], [("x", TP.FLOAT, [])], {"w": np.ones((), np.float32)})
    refused("conv of rank 0", p, np.ones((), np.float32), "rank 0")
    p = save([H.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", strides=[2 ** 63 - 1, 1])],
             [("x", TP.FLOAT, [1, 1, 4, 4])], {"w": w33})
    refused("conv with a huge stride", p, x4, "none huge")
    p = save([H.make_node("MaxPool", ["x"], ["y"], kernel_shape=[1, 1], pads=[2 ** 61, 0, 0, 0])],
             [("x", TP.FLOAT, [1, 1, 4, 4])], {})
    refused("maxpool with a huge pad", p, x4, "none huge")
    p = save([H.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], auto_pad="SAME_UPPER_PLUS_LONG")],
             [("x", TP.FLOAT, [1, 1, 4, 4])], {})
    refused("a long auto_pad", p, x4, "auto_pad")
    p = save([H.make_node("ConvTranspose", ["x", "w"], ["y"])], [("x", TP.FLOAT, [1, 1, "H", 4])], {"w": w33})
    refused("conv_transpose over a symbolic spatial dim", p, x4, "ConvTranspose over the symbolic dim 2")
    p = save([H.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2], output_padding=[2, 0])],
             [("x", TP.FLOAT, [1, 1, 4, 4])], {"w": w33})
    refused("conv_transpose with output_padding = stride", p, x4, "output_padding 2")
    p = save([H.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2 ** 30, 1])],
             [("x", TP.FLOAT, [1, 1, 4, 4])], {"w": w33})
    refused("conv_transpose with a huge output", p, x4, "more than 2^30 positions")
    p = save([H.make_node("Conv", ["x", "w"], ["y"])], [("x", TP.FLOAT, [1, 1, "H", "W"])], {"w": w33})
    refused("a 3x3 window over H = 2", p, np.ones((1, 1, 2, 5), np.float32), "H")
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    p = save([H.make_node("Conv", ["x", "w"], ["y"])], [("x", TP.FLOAT, [1, 1, "H", "W"])], {"w": w33})
    compare("conv over symbolic H, W", p, x, F.conv2d(torch.from_numpy(x).double(),
                                                     torch.from_numpy(w33).double()).numpy())
    p = save([H.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], storage_order=1)],
             [("x", TP.FLOAT, [1, 1, 4, 4])], {})
    compare("maxpool storage_order=1 without Indices", p, x,
            F.max_pool2d(torch.from_numpy(x).double(), 2, 1).numpy())
    xh = rng.standard_normal((2, 3, 4)).astype(np.float16)
    st = {n: rng.random(3).astype(np.float32) + 0.5 for n in ("s", "b", "m", "v")}
    p = save([H.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])],
             [("x", TP.FLOAT16, [2, 3, 4])], st, opset=15)
    xd = xh.astype(np.float64)
    want = (xd - st["m"][:, None]) / np.sqrt(st["v"][:, None] + 1e-5) * st["s"][:, None] + st["b"][:, None]
    for t in TIERS:
        r, got = run_x_y(DVM, SCRATCH, p, xh, t)
        check(r.returncode == 0 and got.dtype == np.float16 and np.abs(got - want).max() < 1e-2 * np.abs(want).max(),
              "batchnorm f16 x, f32 statistics [%s]: %s" % (t, r.stderr.strip()[-300:]))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
