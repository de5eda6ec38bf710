#!/usr/bin/python3
"""The "halide" peer of `dvm bench --peers` (protocol: bench/peers/README.md).

    halide_peer.py --graph G.dvm --dir DIR --threads T --reps R [--peer-name NAME]

Hand-scheduled Halide pipelines (Debian python3-halide, Halide 14, JIT) for the three
elementwise / row-normalization workloads; every other graph is a "skip":

  W1  y = gelu_tanh(x*a + b)                          x: f32[..., H], a, b: f32[H]
  W2  y = softmax(x, axis=-1)                         x: f32[..., H]
  W3  y = layernorm(x, gamma, beta, axis=-1, eps=E)   gamma, beta: f32[H]

The workload is recognized by its `graph W1|W2|W3` line, and the graph's declarations and
ops must have exactly the structure above (value names are taken from the graph); otherwise
the peer skips with "no Halide schedule for this graph".

Layout: the leading dims of x are flattened into rows, so x is an [R, H] C-order array.
Halide 14's hl.Buffer(ndarray) keeps NumPy's axis order (Halide dim 0 = NumPy axis 0,
strides honoured), so the pipelines are given x.T / y.T (views, no copy): Halide dim 0 is
the contiguous h (stride 1) and dim 1 the row. H is compiled in as a constant; R is free.
The output is realized into a preallocated NumPy array.

Schedules (what a Halide programmer would write for these shapes; host target with its
features, i.e. AVX-512 where present: 16 f32 lanes):
  - rows are split into tasks of G rows, parallel over tasks when there is more than one
    (G: at least MIN_TASK_ELEMS elements a task and about TASKS_PER_THREAD tasks a thread);
    with one thread or one task, the row loop is serial;
  - the inner (h) loop is vectorized by the native width;
  - row reductions (max, sum, sum of squares) are computed per row (compute_at the row
    loop): rfactor into ACC independent vector accumulators, then a vectorized horizontal
    reduction (atomic().vectorize) of those partials;
  - softmax keeps exp(x - max) of one row in a stack buffer (L1) and scales it by 1/sum;
    layernorm is two-pass (mean, then the population variance of x - mean), the row
    staying in L1.

Math: gelu_tanh(s) = 0.5 s (1 + tanh(u)) = s / (1 + exp(-2u)), u = sqrt(2/pi)(s + 0.044715 s^3)
(an exact identity, free of the cancellation in 1 + tanh(u) for s < 0; for s -> -inf exp
overflows to inf and the result is -0). hl.tanh lowers to scalar libm calls (~100x slower
here), hl.exp to a vectorized exact-ish exp; exp is Halide's fast_exp (polynomial, few-ulp,
overflow -> inf and underflow -> 0 handled), measured against float64 references at max
2.3e-6 relative error on W1 (hl.exp: 1e-6, ~15% slower) and 1.8e-6 on W2. Division and sqrt
are IEEE.

Threads: Halide's thread pool reads HL_NUM_THREADS at first use; it is set before
`import halide`.
"""

import gc
import math
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dvmtext import NAME_RE, emit, protocol_args, read_run, report, split_top  # noqa: E402  the peers' shared .dvm helpers

DEFAULT_PEER = "halide"
NO_SCHEDULE = "no Halide schedule for this graph"
NOT_INSTALLED = "python3-halide is not installed: apt-get install python3-halide"

VEC = 16                 # f32 lanes of a 512-bit vector (the host target's native width)
ACC = 4                  # independent vector accumulators in row reductions
MIN_TASK_ELEMS = 16384   # smallest parallel task (elements)
TASKS_PER_THREAD = 4
HSUM = True              # vectorized horizontal reduction of the rfactor partials
EXP = "fast_exp"         # hl.fast_exp (see above) or "exp"


class Skip(Exception):
    """This peer cannot run the graph: reported as a skip line."""


# ----------------------------------------------------------------------------------------
# Minimal .dvm parsing (docs/format.md): name, declarations, assignments, outputs.
# ----------------------------------------------------------------------------------------

def parse_graph(path):
    """-> dict(name, decls {name: (kind, dtype, [dims])}, order, nodes [(out, op, operands,
    attrs)], outputs). Raises Skip on anything it does not understand."""
    g = {"name": None, "decls": {}, "order": [], "nodes": [], "outputs": []}
    decl_re = re.compile(r"^(input|param)\s+(" + NAME_RE + r")\s*:\s*(\w+)\s*\[(.*)\]$")
    asg_re = re.compile(r"^(" + NAME_RE + r")\s*=\s*([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)$")
    with open(path) as f:
        text = f.read()
    for raw in text.split("\n"):
        s = raw.split("#", 1)[0].strip()
        if not s:
            continue
        if s == "graph" or s.startswith("graph "):
            g["name"] = s[5:].strip()
            continue
        m = decl_re.match(s)
        if m:
            if m.group(2) in g["decls"]:
                raise Skip(NO_SCHEDULE)
            g["decls"][m.group(2)] = (m.group(1), m.group(3), split_top(m.group(4)))
            g["order"].append(m.group(2))
            continue
        if re.match(r"^output\b", s):
            g["outputs"] += [x.strip() for x in s[6:].split(",") if x.strip()]
            continue
        m = asg_re.match(s)
        if m:
            operands, attrs = [], {}
            for a in split_top(m.group(3)):
                km = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$", a)
                if km:
                    attrs[km.group(1)] = km.group(2).strip()
                else:
                    operands.append(a)
            g["nodes"].append((m.group(1), m.group(2), operands, attrs))
            continue
        raise Skip(NO_SCHEDULE)
    return g


def match_workload(g):
    """-> (kind, spec); spec names the graph's values. Raises Skip(NO_SCHEDULE)."""
    kind = g["name"]
    decls, nodes, outs = g["decls"], g["nodes"], g["outputs"]
    if kind not in ("W1", "W2", "W3") or len(outs) != 1:
        raise Skip(NO_SCHEDULE)

    def f32_dims(name, kinds):
        d = decls.get(name)
        if d is None or d[0] not in kinds or d[1] != "f32":
            raise Skip(NO_SCHEDULE)
        return d[2]

    inputs = [n for n in g["order"] if decls[n][0] == "input"]
    if len(inputs) != 1:
        raise Skip(NO_SCHEDULE)
    x = inputs[0]
    xdims = f32_dims(x, ("input",))
    if not xdims:
        raise Skip(NO_SCHEDULE)
    hdim = xdims[-1].replace(" ", "")
    rank = len(xdims)

    def vec_param(name):
        d = f32_dims(name, ("param",))
        if len(d) != 1 or d[0].replace(" ", "") != hdim:
            raise Skip(NO_SCHEDULE)

    def last_axis(attrs):
        if "axis" in attrs:
            try:
                a = int(attrs["axis"])
            except ValueError:
                raise Skip(NO_SCHEDULE)
            if a not in (-1, rank - 1):
                raise Skip(NO_SCHEDULE)

    spec = {"x": x, "xdims": xdims, "out": outs[0], "params": []}
    if kind == "W1":
        # m = mul(x, a); s = add(m, b); y = gelu_tanh(s)   (either operand order)
        if len(nodes) != 3 or len(decls) != 3:
            raise Skip(NO_SCHEDULE)
        (m, op1, o1, at1), (s, op2, o2, at2), (y, op3, o3, at3) = nodes
        if (op1, op2, op3) != ("mul", "add", "gelu_tanh") or at1 or at2 or at3:
            raise Skip(NO_SCHEDULE)
        if len(o1) != 2 or x not in o1 or len(o2) != 2 or m not in o2 or o3 != [s]:
            raise Skip(NO_SCHEDULE)
        a = o1[1] if o1[0] == x else o1[0]
        b = o2[1] if o2[0] == m else o2[0]
        if y != outs[0] or len({x, a, b, m, s, y}) != 6:
            raise Skip(NO_SCHEDULE)
        vec_param(a)
        vec_param(b)
        spec["params"] = [a, b]
    elif kind == "W2":
        if len(nodes) != 1 or len(decls) != 1:
            raise Skip(NO_SCHEDULE)
        y, op, o, at = nodes[0]
        if op != "softmax" or o != [x] or y != outs[0] or set(at) - {"axis"}:
            raise Skip(NO_SCHEDULE)
        last_axis(at)
    else:
        if len(nodes) != 1 or len(decls) != 3:
            raise Skip(NO_SCHEDULE)
        y, op, o, at = nodes[0]
        if op != "layernorm" or len(o) != 3 or o[0] != x or y != outs[0] \
                or len(set(o)) != 3 or set(at) - {"axis", "eps"}:
            raise Skip(NO_SCHEDULE)
        last_axis(at)
        vec_param(o[1])
        vec_param(o[2])
        try:
            spec["eps"] = float(at.get("eps", "1e-5"))
        except ValueError:
            raise Skip(NO_SCHEDULE)
        spec["params"] = [o[1], o[2]]
    return kind, spec


def eval_dim(text, syms):
    """A declared dim: an integer or a bound symbol (anything else -> None, unchecked)."""
    t = text.strip()
    if re.match(r"^\d+$", t):
        return int(t)
    return syms.get(t)


# ----------------------------------------------------------------------------------------
# Pipelines
# ----------------------------------------------------------------------------------------

def row_grain(rows, H, threads):
    """Rows per parallel task, or None for a serial row loop."""
    if threads <= 1 or rows <= 1:
        return None
    g = max(-(-MIN_TASK_ELEMS // max(H, 1)), -(-rows // (threads * TASKS_PER_THREAD)))
    return None if g >= rows else g


class Pipe:
    """A built pipeline: compile() JITs it, bind() sets the inputs and the output buffer,
    run() realizes it."""

    def __init__(self, hl, out, params, target):
        self.hl, self.out, self.params, self.target = hl, out, params, target

    def compile(self):
        self.out.compile_jit(self.target)

    def bind(self, arrays, y2):
        """arrays: [x2 (R, H), then the [H] params]; y2: the (R, H) output array."""
        self.bufs = []
        for p, a in zip(self.params, arrays):
            b = self.hl.Buffer(a.T if a.ndim == 2 else a)
            p.set(b)
            self.bufs.append(b)  # keep them alive
        self.ybuf = self.hl.Buffer(y2.T)

    def run(self):
        self.out.realize(self.ybuf, self.target)


def build(hl, kind, H, rows, threads, eps=1e-5, target=None):
    f32 = hl.Float(32)
    exp = getattr(hl, EXP)
    target = target or hl.get_jit_target_from_environment()
    h, n = hl.Var("h"), hl.Var("n")
    X = hl.ImageParam(f32, 2, "x")
    X.dim(0).set_bounds(0, H).set_stride(1)
    X.dim(1).set_min(0)  # no stride constraint: a size-1 dim may arrive with any stride
    vec = VEC if H >= VEC else max(1, 1 << (H.bit_length() - 1))
    # rfactor partials: a split of the reduction that does not divide H gives wrong results
    # in Halide 14 (seen for softmax with H = 96, 100, 1000), so only exact splits are used
    # (H = 1024: 64 partials); with none, the reduction is serial.
    lanes = next((k for k in (vec * ACC, vec) if k > 1 and H % k == 0), 1)
    out = hl.Func("y")
    params = [X]

    def vparam(name):
        p = hl.ImageParam(f32, 1, name)
        p.dim(0).set_bounds(0, H).set_stride(1)
        params.append(p)
        return p

    def row_reduce(init, step, name):
        """name(n) = reduction over r in [0, H) of step(acc, r, n); scheduled by
        sched_reduce: rfactor into `lanes` partials (ACC vector accumulators), then a
        vectorized horizontal reduction of the partials."""
        r = hl.RDom([(0, H)], name + "_r")
        f = hl.Func(name)
        f[n] = init
        f[n] = step(f[n], r.x, n)
        if lanes == 1:
            return f, None, None, None
        ro, ri = hl.RVar(name + "_ro"), hl.RVar(name + "_ri")
        u = hl.Var(name + "_u")
        intm = f.update(0).split(r.x, ro, ri, lanes).rfactor(ri, u)
        return f, intm, u, ri

    def sched_reduce(red, at, var):
        f, intm, u, ri = red
        f.compute_at(at, var)
        if intm is None:
            return
        if HSUM and lanes >= vec > 1:
            f.update(0).atomic().vectorize(ri, vec)
        intm.compute_at(f, n).vectorize(u, vec)
        if lanes > vec:
            uo, ui = hl.Var(u.name() + "_o"), hl.Var(u.name() + "_i")
            intm.update(0).split(u, uo, ui, vec).vectorize(ui).unroll(uo)
        else:
            intm.update(0).vectorize(u)

    reds = []
    stages = []  # per-row Funcs stored at the row loop
    if kind == "W1":
        A, B = vparam("a"), vparam("b")
        c0 = math.sqrt(2.0 / math.pi)
        s = X[h, n] * A[h] + B[h]
        m2u = s * (hl.f32(-2.0 * c0) + hl.f32(-2.0 * c0 * 0.044715) * s * s)  # -2u
        out[h, n] = s / (hl.f32(1.0) + exp(m2u))
    elif kind == "W2":
        mx = row_reduce(f32.min(), lambda acc, r, n_: hl.max(acc, X[r, n_]), "mx")
        e = hl.Func("e")
        e[h, n] = exp(X[h, n] - mx[0][n])
        sm = row_reduce(hl.f32(0.0), lambda acc, r, n_: acc + e[r, n_], "sm")
        inv = hl.Func("inv")
        inv[n] = hl.f32(1.0) / sm[0][n]
        out[h, n] = e[h, n] * inv[n]
        reds, stages = [mx, sm], [("e", e, True), ("inv", inv, False)]
    else:
        G, Bt = vparam("gamma"), vparam("beta")
        s1 = row_reduce(hl.f32(0.0), lambda acc, r, n_: acc + X[r, n_], "s1")
        mean = hl.Func("mean")
        mean[n] = s1[0][n] * hl.f32(1.0 / H)
        d = hl.Func("d")  # inlined: x - mean, recomputed in the variance and output passes
        d[h, n] = X[h, n] - mean[n]
        s2 = row_reduce(hl.f32(0.0), lambda acc, r, n_: acc + d[r, n_] * d[r, n_], "s2")
        rstd = hl.Func("rstd")
        rstd[n] = hl.f32(1.0) / hl.sqrt(s2[0][n] * hl.f32(1.0 / H) + hl.f32(eps))
        out[h, n] = d[h, n] * rstd[n] * G[h] + Bt[h]
        reds, stages = [s1, s2], [("mean", mean, False), ("rstd", rstd, False)]

    ob = out.output_buffer()
    ob.dim(0).set_bounds(0, H).set_stride(1)
    ob.dim(1).set_min(0)

    # rows: tasks of g rows, parallel; h: vectorized
    g = row_grain(rows, H, threads)
    var = n
    if g is not None:
        no, ni = hl.Var("no"), hl.Var("ni")
        out.split(n, no, ni, g, hl.TailStrategy.GuardWithIf).parallel(no)
        var = ni
    if vec > 1:
        out.vectorize(h, vec, hl.TailStrategy.ShiftInwards)
    for red in reds:
        sched_reduce(red, out, var)
    for _, f, vectorized in stages:
        f.compute_at(out, var)
        if vectorized and vec > 1:
            f.vectorize(h, vec, hl.TailStrategy.ShiftInwards)
    return Pipe(hl, out, params, target)


# ----------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------

def main():
    ap = protocol_args(__doc__)
    args = ap.parse_args()
    peer = args.peer_name or DEFAULT_PEER
    threads = max(1, args.threads)

    try:
        kind, spec = match_workload(parse_graph(args.graph))
    except Skip as e:
        emit({"peer": peer, "skip": str(e)})
        return 0

    # Halide's thread pool reads HL_NUM_THREADS when it first runs: set it before import.
    os.environ["HL_NUM_THREADS"] = str(threads)
    try:
        import numpy as np
    except ImportError:
        emit({"peer": peer, "skip": "python3-numpy is not installed: apt-get install python3-numpy"})
        return 0
    try:
        import halide as hl
    except ImportError:
        emit({"peer": peer, "skip": NOT_INSTALLED})
        return 0

    syms, wanted = read_run(args.dir)
    if wanted is not None:
        if wanted != [spec["out"]]:
            raise ValueError("outputs.json names %s, the graph's output is %s"
                             % (wanted, spec["out"]))

    def load(name):
        arr = np.load(os.path.join(args.dir, name + ".npy"), allow_pickle=False)
        if arr.dtype != np.float32:
            raise ValueError("%s.npy is %s, the graph declares f32" % (name, arr.dtype))
        return np.ascontiguousarray(arr)

    x = load(spec["x"])
    xdims = spec["xdims"]
    if x.ndim != len(xdims) or any(eval_dim(d, syms) not in (None, k)
                                   for d, k in zip(xdims, x.shape)):
        raise ValueError("%s.npy has shape %s, the graph declares [%s]"
                         % (spec["x"], x.shape, ", ".join(xdims)))
    H = int(x.shape[-1])
    rows = int(np.prod(x.shape[:-1], dtype=np.int64))
    params = []
    for p in spec["params"]:
        arr = load(p)
        if arr.shape != (H,):
            raise ValueError("%s.npy has shape %s, expected (%d,)" % (p, arr.shape, H))
        params.append(arr)
    if H == 0 or rows == 0:
        emit({"peer": peer, "skip": "empty tensor: nothing for Halide to run"})
        return 0

    x2 = x.reshape(rows, H)
    y2 = np.empty((rows, H), dtype=np.float32)
    pipe = build(hl, kind, H, rows, threads, eps=spec.get("eps", 1e-5))
    pipe.compile()                       # JIT, untimed
    pipe.bind([x2] + params, y2)
    reps = max(1, args.reps)
    pipe.run()                           # warm-up
    times = []
    perf = time.perf_counter_ns
    gc.collect()
    gc.disable()
    for _ in range(reps):
        t0 = perf()
        pipe.run()
        times.append(perf() - t0)
    gc.enable()
    np.save(os.path.join(args.dir, "%s.%s.npy" % (spec["out"], peer)), y2.reshape(x.shape))
    report(peer, times, reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
