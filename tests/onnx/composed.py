#!/usr/bin/python3
"""The ONNX ops dvm composes of its own ops (onnx/compose.c, onnx/window.c) at the inputs
where a textbook formula fails: overflow, cancellation near 0, a large mean, f16's range,
out-of-range and negative indices. ONNX's node tests draw their inputs from randn and
miss these.

usage: composed.py DVM SCRATCH_DIR

Each case is a one-node model made with python3-onnx, run with `dvm run` in the ref, vm and
llvm tiers, and compared with the same function computed by NumPy in float64 (relative
1e-5 for f32 results, 2e-3 for f16, exact for integers and bools). Cases dvm must refuse
check for exit status 1 and the node named in the message. Ends with "N passed, M failed".
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
TP_OF = {np.float32: TP.FLOAT, np.float16: TP.FLOAT16, np.int32: TP.INT32, np.int64: TP.INT64,
         np.bool_: TP.BOOL}
TIERS = ("ref", "vm", "llvm")


def model(name, op, ins, consts=None, attrs=None, outs=("y",), order=None):
    """A one-node model: runtime inputs ins (name -> array), initializers consts."""
    consts = consts or {}
    node = H.make_node(op, order or list(ins) + list(consts), list(outs), **(attrs or {}))
    g = H.make_graph([node], name,
                     [H.make_tensor_value_info(n, TP_OF[a.dtype.type], a.shape) for n, a in ins.items()],
                     [H.make_tensor_value_info(o, 0, None) for o in outs],
                     [NH.from_array(a, n) for n, a in consts.items()])
    path = os.path.join(SCRATCH, name + ".onnx")
    onnx.save(H.make_model(g, opset_imports=[H.make_opsetid("", 17)]), path)
    return path


def run(path, ins, outs, tier):
    args = [DVM, "run", path, "--tier", tier]
    for n, a in ins.items():
        f = os.path.join(SCRATCH, "in_%s.npy" % n)
        np.save(f, a)
        args += ["-i", "%s=%s" % (n, f)]
    files = [os.path.join(SCRATCH, "out_%s_%s.npy" % (tier, o)) for o in outs]
    for o, f in zip(outs, files):
        args += ["-o", "%s=%s" % (o, f)]
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    return r, ([np.load(f) for f in files] if r.returncode == 0 else None)


def close(got, want, dtype, of_max=False):
    if got.shape != want.shape or got.dtype != dtype:
        return "shape %s %s, expected %s %s" % (got.shape, got.dtype, want.shape, np.dtype(dtype))
    if np.dtype(dtype).kind in "biu":
        ok = got == want
    else:
        tol = 2e-3 if dtype == np.float16 else 1e-5
        g, w = got.astype(np.float64), want.astype(np.float64)
        bound = tol * (np.abs(w[np.isfinite(w)]).max(initial=0) if of_max else np.abs(w)) + 1e-30
        ok = (np.abs(g - w) <= bound) | (g == w) | (np.isnan(g) & np.isnan(w))
    if ok.all():
        return None
    i = int(np.argmin(ok.ravel()))
    return "%d differ, first at %d: %r, expected %r" % (int((~ok).sum()), i, got.ravel()[i], want.ravel()[i])


def case(name, op, ins, want, consts=None, attrs=None, dtypes=None, order=None, of_max=False):
    """want: the expected outputs (float64 or exact), dtypes: theirs in dvm (default: the
    first input's); of_max: the tolerance is relative to the largest expected value (for
    outputs near 0 computed from larger ones), not to each."""
    outs = tuple("y%d" % k for k in range(len(want)))
    path = model(name, op, ins, consts, attrs, outs, order)
    dtypes = dtypes or [next(iter(ins.values())).dtype.type] * len(want)
    for t in TIERS:
        r, got = run(path, ins, outs, t)
        check(r.returncode == 0, "%s [%s]: dvm run: %s" % (name, t, r.stderr.strip()[-300:]))
        if r.returncode:
            continue
        for k, (g, w, dt) in enumerate(zip(got, want, dtypes)):
            why = close(g, np.asarray(w), dt, of_max)
            check(why is None, "%s [%s] output %d: %s" % (name, t, k, why))


def refused(name, op, ins, what, consts=None, attrs=None):
    path = model(name, op, ins, consts, attrs)
    for t in TIERS:
        r, _ = run(path, ins, ("y",), t)
        check(r.returncode == 1 and "(%s)" % op in r.stderr and what in r.stderr,
              "%s [%s]: refused with '%s' naming the node: exit %d, %s" % (
                  name, t, what, r.returncode, r.stderr.strip()[-300:]))


def lrn_cases(rng):
    """LRN against its formula in float64: sizes odd and even (the window leans forward)."""
    x = (rng.standard_normal((2, 7, 3, 2)) * 30).astype(np.float32)
    xd = x.astype(np.float64)
    for size, alpha, beta, bias in ((3, 1e-4, 0.75, 1.0), (4, 2e-3, 0.5, 2.0), (1, 1e-2, 1.0, 0.5)):
        lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
        sq = np.pad(xd * xd, ((0, 0), (lo, hi), (0, 0), (0, 0)))
        ssum = sum(sq[:, j:j + 7] for j in range(size))
        case("lrn_%d" % size, "LRN", {"x": x}, [xd / (bias + alpha / size * ssum) ** beta],
             attrs={"size": size, "alpha": alpha, "beta": beta, "bias": bias})
    refused("lrn_size_0", "LRN", {"x": x}, "size is 0", attrs={"size": 0})


def pad_cases(rng):
    """Pad: the three modes against np.pad, a run-time constant_value, negative pads (a
    crop), integers, a symbolic axis (index tables from arange), and reflect pads as long
    as the axis (refused)."""
    x = rng.standard_normal((3, 4)).astype(np.float32)
    pads = np.array([1, 2, 2, 1], np.int64)
    for mode in ("constant", "edge", "reflect"):
        case("pad_" + mode, "Pad", {"x": x}, [np.pad(x, ((1, 2), (2, 1)), mode=mode)], consts={"p": pads},
             attrs={"mode": mode})
    v = np.array(2.5, np.float32)
    case("pad_value_input", "Pad", {"x": x, "v": v}, [np.pad(x, ((1, 2), (2, 1)), constant_values=2.5)],
         consts={"p": pads}, order=["x", "p", "v"])
    crop = np.array([-1, 1, 0, -2], np.int64)
    case("pad_negative", "Pad", {"x": x}, [np.pad(x[1:, :-2], ((0, 0), (1, 0)))], consts={"p": crop})
    xi = rng.integers(-9, 9, (2, 3)).astype(np.int64)
    case("pad_edge_int64", "Pad", {"x": xi}, [np.pad(xi, ((2, 0), (1, 3)), mode="edge")],
         consts={"p": np.array([2, 1, 0, 3], np.int64)}, attrs={"mode": "edge"})
    refused("pad_edge_of_nothing", "Pad", {"x": np.zeros((0, 2), np.float32)}, "edge pads of 1 on axis 0 of 0",
            consts={"p": np.array([1, 0, 0, 0], np.int64)}, attrs={"mode": "edge"})
    refused("pad_reflect_too_long", "Pad", {"x": x}, "reflect pads of 3 on axis 0 of 3 elements",
            consts={"p": np.array([3, 0, 0, 0], np.int64)}, attrs={"mode": "reflect"})
    # a symbolic axis: the gather's indices come from arange over N + pads
    node = H.make_node("Pad", ["x", "p"], ["y"], mode="reflect")
    g = H.make_graph([node], "pad_sym", [H.make_tensor_value_info("x", TP.FLOAT, ["N", 4])],
                     [H.make_tensor_value_info("y", 0, None)], [NH.from_array(np.array([2, 1, 1, 3], np.int64), "p")])
    path = os.path.join(SCRATCH, "pad_sym.onnx")
    onnx.save(H.make_model(g, opset_imports=[H.make_opsetid("", 17)]), path)
    for n in (3, 6):
        xs = rng.standard_normal((n, 4)).astype(np.float32)
        for t in TIERS:
            r, got = run(path, {"x": xs}, ("y",), t)
            check(r.returncode == 0 and close(got[0], np.pad(xs, ((2, 1), (1, 3)), mode="reflect"), np.float32) is None,
                  "pad_sym N=%d [%s]: %s" % (n, t, r.stderr.strip()[-300:]))
    xs = rng.standard_normal((2, 4)).astype(np.float32)  # reflect by 2 needs N >= 3
    r, _ = run(path, {"x": xs}, ("y",), "vm")
    check(r.returncode == 1 and "pad_sym.onnx:1" in r.stderr, "pad_sym N=2: exit 1 naming the node: %s" % r.stderr)


def main():
    rng = np.random.default_rng(7)
    f32, f16 = np.float32, np.float16

    x = np.array([-1000, -100, -20, -1e-3, 0, 1e-4, 1, 20, 88, 89, 100, 1000], f32)
    case("softplus", "Softplus", {"x": x}, [np.logaddexp(0, x.astype(np.float64))])
    x = np.array([-30, -1, -1e-3, -1e-7, -2.4e-8, 0, 1e-8, 2], f32)
    xd = x.astype(np.float64)
    case("elu", "Elu", {"x": x}, [np.where(xd < 0, np.expm1(xd), xd)])
    a, g = 1.67326319217681884765625, 1.05070102214813232421875
    case("selu", "Selu", {"x": x}, [g * np.where(xd > 0, xd, a * np.expm1(xd))])
    case("celu", "Celu", {"x": x}, [np.maximum(0, xd) + np.minimum(0, 2 * np.expm1(xd / 2))],
         attrs={"alpha": 2.0})
    x = np.array([-np.inf, -1e30, -3, 0, 0.5, 1e30, np.inf], f32)
    with np.errstate(divide="ignore"):
        case("softsign", "Softsign", {"x": x}, [np.sign(x) / (1 + 1 / np.abs(x.astype(np.float64)))])

    x = np.array([-89.3, -20, -1, -1e-5, 0, 3e-6, 0.3, 5, 89.3], f32)
    case("sinh", "Sinh", {"x": x}, [np.sinh(x.astype(np.float64))])
    case("cosh", "Cosh", {"x": x}, [np.cosh(x.astype(np.float64))])
    x = np.array([-3e4, -300, -1, -1e-3, 0, 1e-4, 0.5, 300, 6e4], f16)
    case("asinh_f16", "Asinh", {"x": x}, [np.arcsinh(x.astype(np.float64))])
    x = np.array([1, 1.001, 1.5, 300, 6e4], f16)
    case("acosh_f16", "Acosh", {"x": x}, [np.arccosh(x.astype(np.float64))])
    x = np.array([-0.999, -0.5, -1e-6, 0, 1e-3, 0.9], f32)
    case("atanh", "Atanh", {"x": x}, [np.arctanh(x.astype(np.float64))])

    x = np.array([-np.inf, -1e30, -3, -1, -0.5, -1e-6, 0, 0.4142, 0.4143, 0.9, 1, 2.5, 1e8, np.inf], f32)
    case("atan", "Atan", {"x": x}, [np.arctan(x.astype(np.float64))])
    x = np.array([-1, -0.999999, -0.7, -1e-7, 0, 0.3, 0.99, 1], f32)
    case("asin", "Asin", {"x": x}, [np.arcsin(x.astype(np.float64))])
    case("acos", "Acos", {"x": x}, [np.arccos(x.astype(np.float64))])

    x = rng.standard_normal((2, 3, 1)).astype(f32)
    case("tile", "Tile", {"x": x}, [np.tile(x, (2, 1, 4))], consts={"r": np.array([2, 1, 4], np.int64)})
    x = rng.standard_normal((2, 8, 3, 2)).astype(f32)
    n, c, h, w = x.shape
    dcr = x.reshape(n, 2, 2, c // 4, h, w).transpose(0, 3, 4, 1, 5, 2).reshape(n, c // 4, h * 2, w * 2)
    crd = x.reshape(n, c // 4, 2, 2, h, w).transpose(0, 1, 4, 2, 5, 3).reshape(n, c // 4, h * 2, w * 2)
    case("depth_to_space_dcr", "DepthToSpace", {"x": x}, [dcr], attrs={"blocksize": 2})
    case("depth_to_space_crd", "DepthToSpace", {"x": x}, [crd], attrs={"blocksize": 2, "mode": "CRD"})
    x = rng.standard_normal((2, 3, 4, 6)).astype(f32)
    s2d = x.reshape(2, 3, 2, 2, 3, 2).transpose(0, 3, 5, 1, 2, 4).reshape(2, 12, 2, 3)
    case("space_to_depth", "SpaceToDepth", {"x": x}, [s2d], attrs={"blocksize": 2})
    x = (5 + rng.standard_normal((2, 3, 4, 5))).astype(f32)
    sc, bb = rng.standard_normal(3).astype(f32), rng.standard_normal(3).astype(f32)
    xd = x.astype(np.float64)
    mu, var = xd.mean((2, 3), keepdims=True), xd.var((2, 3), keepdims=True)
    case("instance_norm", "InstanceNormalization", {"x": x},
         [(xd - mu) / np.sqrt(var + 1e-5) * sc[:, None, None] + bb[:, None, None]], consts={"s": sc, "b": bb},
         of_max=True)

    x = (1000 + 0.01 * rng.standard_normal((1, 2, 2, 8))).astype(f32)
    xd = x.astype(np.float64)
    m = xd.mean(axis=(0, 2, 3), keepdims=True)
    sd = np.sqrt(((xd - m) ** 2).mean(axis=(0, 2, 3), keepdims=True))
    want = (xd - m) / (sd + 1e-9)
    path = model("mvn", "MeanVarianceNormalization", {"x": x})
    for t in TIERS:  # f32 keeps about 5 digits of x - mean here: compare to 1e-3 of the scale
        r, got = run(path, {"x": x}, ("y",), t)
        check(r.returncode == 0, "mvn [%s]: %s" % (t, r.stderr.strip()[-300:]))
        if got:
            check(np.abs(got[0] - want).max() < 1e-2, "mvn [%s]: max error %g" % (
                t, np.abs(got[0] - want).max()))

    x = rng.standard_normal((3, 16)).astype(f16)
    xd = x.astype(np.float64)
    mu = xd.mean(-1, keepdims=True)
    isd = 1 / np.sqrt(((xd - mu) ** 2).mean(-1, keepdims=True) + 1e-5)
    sc = np.ones(16, f16)
    case("layernorm_f16_stats", "LayerNormalization", {"x": x}, [(xd - mu) * isd, mu, isd],
         consts={"s": sc}, dtypes=[f16, f32, f32])

    idx = np.array([[0, -1, 5, 2, -5, 3]], np.int64)
    for axis in (-1, 0, 1):
        hot = (np.expand_dims(np.where(idx < 0, idx + 4, idx), axis) ==
               np.arange(4).reshape([4 if i == (axis % 3) else 1 for i in range(3)]))
        case("onehot_axis%d" % axis, "OneHot", {"i": idx}, [np.where(hot, 9.0, 2.0)],
             consts={"d": np.array(4, np.int64), "v": np.array([2, 9], f32)},
             attrs={"axis": axis}, dtypes=[f32])
    refused("onehot_rank8", "OneHot", {"i": np.zeros((1,) * 8, np.int64)}, "rank",
            consts={"d": np.array(4, np.int64), "v": np.array([2, 9], f32)})
    refused("isinf_int", "IsInf", {"x": np.array([1, 2], np.int32)}, "float")

    # Range from a symbolic start P (a shape's dim) with a constant count: P + 5 by 2
    nodes = [H.make_node("Shape", ["x"], ["s"]), H.make_node("Gather", ["s", "zero"], ["p"]),
             H.make_node("Add", ["p", "five"], ["l"]), H.make_node("Range", ["p", "l", "two"], ["y0"])]
    consts = {"zero": np.array(0, np.int64), "five": np.array(5, np.int64), "two": np.array(2, np.int64)}
    g = H.make_graph(nodes, "range_symbolic", [H.make_tensor_value_info("x", TP.FLOAT, ["P"])],
                     [H.make_tensor_value_info("y0", 0, None)], [NH.from_array(a, n) for n, a in consts.items()])
    path = os.path.join(SCRATCH, "range_symbolic.onnx")
    onnx.save(H.make_model(g, opset_imports=[H.make_opsetid("", 17)]), path)
    for p in (0, 7):
        for t in TIERS:
            r, got = run(path, {"x": np.zeros(p, f32)}, ("y0",), t)
            check(r.returncode == 0 and got[0].tolist() == list(range(p, p + 5, 2)),
                  "Range(P, P + 5, 2) at P = %d [%s]: %s %s" % (p, t, got, r.stderr.strip()[-200:]))

    data = rng.standard_normal((3, 5)).astype(f32)
    ind = np.array([[0, -1, 4], [2, 2, -5], [1, 0, 3]], np.int64)
    case("gather_elements", "GatherElements", {"x": data, "i": ind},
         [np.take_along_axis(data, np.where(ind < 0, ind + 5, ind), 1)], attrs={"axis": 1})

    lp = rng.standard_normal((4, 3, 2)).astype(f32)
    tg = np.array([[0, 2], [1, 1], [2, -100], [0, 1]], np.int64)
    w = np.array([0.5, 2.0, 1.5], f32)
    keep = tg != -100
    tc = np.where(keep, tg, 0)
    picked = np.take_along_axis(lp.astype(np.float64), tc[:, None, :], 1)[:, 0, :]
    wt = np.where(keep, w[tc], 0)
    case("nll_mean_ignore", "NegativeLogLikelihoodLoss", {"x": lp, "t": tg},
         [np.array((-picked * wt).sum() / wt.sum())], consts={"w": w},
         attrs={"ignore_index": -100}, dtypes=[f32])
    pad_cases(rng)
    lrn_cases(rng)
    return summary()


if __name__ == "__main__":
    sys.exit(main())
