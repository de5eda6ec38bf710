#!/usr/bin/python3
"""ONNX's own backend node tests, run through dvm in every tier.

usage: node_tests.py DVM SCRATCH_DIR [--tiers ref,vm,llvm,auto] [--only SUBSTRING] [-v]

The cases come from the installed `onnx` package (`onnx.backend.test.case.node`, the
generators behind ONNX's backend test data): nothing of them is copied into the tree. A case
is in scope when its model imports the default domain at an opset dvm reads (13-17; one
written at an older opset is lifted to 13 when none of its ops changed in between), its
inputs and outputs are tensors of a non-string type, and its op is not in OUT_OF_SCOPE
below. Each in-scope case runs in each tier through the Python module (`dvm.Model`, one
model per case and tier, 1 thread) in worker processes, so that a crash is caught and
named; the outputs are compared with the case's expected outputs as ONNX's backend runner
compares them (rtol 1e-3, atol 1e-7, NaN equal to NaN, same shape and dtype).

Every case ends as one of:
  pass      every output matches;
  refused   loading the model raised a dvm.Error (an op, an attribute or a dtype it lacks);
  wrong     an output differs (shape, dtype or values), or the run raised a dvm.Error
            (unless RUN_REFUSED below says why the case cannot run);
  crash     the worker died, timed out or raised something other than dvm.Error.

The test fails on any wrong or crash, and when a tier passes fewer cases than FLOOR (a
ratchet: raise it as ops land, so that no case silently turns into a refusal). Without
the Python module (a sanitizer build has no shared library) the cases run through the
`dvm` command instead, in the vm tier only, where load and run errors are not told apart.
"""
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import onnx
from onnx import defs
from onnx.backend.test.case import node as node_cases

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from support import check, summary  # noqa: E402

# Ops whose node tests are out of scope, and why (the one table of them).
OUT_OF_SCOPE = {
    # random generators: their outputs are not a function of their inputs
    "Bernoulli": "random", "RandomNormal": "random", "RandomNormalLike": "random",
    "RandomUniform": "random", "RandomUniformLike": "random", "Multinomial": "random",
    # strings and text
    "StringNormalizer": "strings", "RegexFullMatch": "strings", "StringConcat": "strings",
    "StringSplit": "strings", "TfIdfVectorizer": "strings (n-gram counting over token ids)",
    # sequences and optionals
    "SequenceInsert": "sequence type", "SequenceAt": "sequence type",
    "SequenceConstruct": "sequence type", "SequenceEmpty": "sequence type",
    "SequenceErase": "sequence type", "SequenceLength": "sequence type",
    "SequenceMap": "sequence type", "SplitToSequence": "sequence type",
    "ConcatFromSequence": "sequence type", "Optional": "optional type",
    "OptionalHasElement": "optional type", "OptionalGetElement": "optional type",
    # training only
    "Gradient": "training", "Adagrad": "training", "Adam": "training", "Momentum": "training",
}
# Cases by name: training-mode forms of ops dvm runs in inference form.
OUT_OF_SCOPE_CASES = {
    re.compile(r"^test_training_dropout"): "training mode (a random mask)",
}



def bf16_rne(ins, outs):
    """float32 -> bfloat16 rounded to nearest even, as torch does and ONNX's Cast specifies
    since opset 19; the onnx 1.12 generator truncates."""
    import torch
    return [torch.from_numpy(ins[0]).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)]


# Cases whose expected outputs in the installed onnx are superseded, and their oracle.
SUPERSEDED = {"test_cast_FLOAT_to_BFLOAT16": bf16_rne}

OPSET_MIN, OPSET_MAX, LIFT_TO = 13, 17, 13
TIERS = ["ref", "vm", "llvm", "auto"]
# Cases whose run fails by design, and why.
RUN_REFUSED = {n: "feeds 'like' in another shape than the [3, 4] it declares; dvm checks declared shapes"
               for n in ("test_castlike_FLOAT_to_BFLOAT16", "test_castlike_BFLOAT16_to_FLOAT",
                         "test_castlike_FLOAT_to_BFLOAT16_expanded",
                         "test_castlike_BFLOAT16_to_FLOAT_expanded")}
# The passes each tier must keep, of the in-scope cases (a floor, not the expected count).
FLOOR = {"ref": 783, "vm": 783, "llvm": 783, "auto": 783}
CLI_FLOOR = 781  # the vm tier through the dvm command: bf16 cases cannot go through .npy
TIMEOUT = 120.0


def tensor_type(t):
    return t.HasField("tensor_type") and t.tensor_type.elem_type != onnx.TensorProto.STRING


def collect():
    """The in-scope cases as (name, model, inputs, outputs), and the out-of-scope counts."""
    cases, out = [], {}
    # The generators of onnx 1.12 still use the NumPy aliases removed in NumPy 1.24.
    for alias, t in (("float", float), ("int", int), ("bool", bool), ("object", object)):
        if alias not in np.__dict__:
            setattr(np, alias, t)
    np.random.seed(0)  # their inputs are drawn at random: the same ones every run
    for c in node_cases.collect_testcases(""):
        m = c.model
        nodes = list(m.graph.node)
        why = None
        opset = {o.domain: o.version for o in m.opset_import}
        v = opset.get("", opset.get("ai.onnx"))
        if any(n.domain not in ("", "ai.onnx") for n in nodes) or v is None:
            why = "another domain"
        elif any(n.op_type in OUT_OF_SCOPE for n in nodes):
            why = next(OUT_OF_SCOPE[n.op_type] for n in nodes if n.op_type in OUT_OF_SCOPE)
        elif any(p.search(c.name) for p in OUT_OF_SCOPE_CASES):
            why = next(w for p, w in OUT_OF_SCOPE_CASES.items() if p.search(c.name))
        elif v > OPSET_MAX:
            why = "opset above %d" % OPSET_MAX
        elif not all(tensor_type(x.type) for x in list(m.graph.input) + list(m.graph.output)):
            why = "non-tensor or string values"
        elif v < OPSET_MIN:
            try:  # lift when every op reads the same at LIFT_TO
                same = all(defs.get_schema(n.op_type, LIFT_TO).since_version <= v for n in nodes)
            except Exception:
                same = False
            if not same:
                why = "opset %d form of an op changed since" % v
            else:
                m = onnx.ModelProto()
                m.CopyFrom(c.model)
                for o in m.opset_import:
                    if o.domain in ("", "ai.onnx"):
                        o.version = LIFT_TO
        if why:
            out[why] = out.get(why, 0) + 1
            continue
        for k, (ins, outs) in enumerate(c.data_sets):
            if not all(isinstance(a, (np.ndarray, np.generic)) for a in list(ins) + list(outs)):
                out["non-tensor values"] = out.get("non-tensor values", 0) + 1
                continue
            ins, outs = [np.asarray(a) for a in ins], [np.asarray(a) for a in outs]
            if c.name in SUPERSEDED:
                outs = SUPERSEDED[c.name](ins, outs)
            name = c.name + ("" if k == 0 else "_%d" % k)
            while any(name == e[0] for e in cases):  # onnx 1.12 gives two Resize cases one name
                name += "_again"
            cases.append((name, m, ins, outs))
    return cases, out


def write_case(root, name, model, ins, outs):
    d = os.path.join(root, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    inits = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    arrays = {"in_%d" % k: a for k, a in enumerate(ins)}
    arrays.update({"out_%d" % k: a for k, a in enumerate(outs)})
    np.savez(os.path.join(d, "data.npz"), **arrays)
    bf16 = onnx.TensorProto.BFLOAT16
    types = {i.name: i.type.tensor_type.elem_type for i in list(model.graph.input) + list(model.graph.output)}
    with open(os.path.join(d, "names.json"), "w") as f:
        json.dump({"inputs": names[:len(ins)], "outputs": [o.name for o in model.graph.output],
                   "bf16": [n for n, t in types.items() if t == bf16]}, f)
    return d


def compare(want, got):
    """None when got matches want as ONNX's runner compares, else why not."""
    got = np.asarray(got)
    if got.shape != want.shape:
        return "shape %s, expected %s" % (got.shape, want.shape)
    if got.dtype != want.dtype:
        return "dtype %s, expected %s" % (got.dtype, want.dtype)
    if want.dtype == object or want.dtype.kind in "bui":
        bad = got != want
    else:
        w, g = want.astype(np.float64), got.astype(np.float64)
        bad = ~((np.abs(g - w) <= 1e-7 + 1e-3 * np.abs(w)) | (np.isnan(w) & np.isnan(g)) | (w == g))
    if bad.any():
        i = tuple(int(x) for x in np.argwhere(bad)[0])
        return "%d of %d differ, first at %s: %r, expected %r" % (
            int(bad.sum()), bad.size, list(i), got[i].item(), want[i].item())
    return None


def as_bf16(a):
    """A uint16 array of bf16 bits (ONNX's form) as a bf16 tensor dvm takes (torch's)."""
    import torch
    return torch.from_numpy(np.ascontiguousarray(a).view(np.int16)).view(torch.bfloat16)


def bf16_bits(t):
    """A bf16 result (dvm.Tensor) as ONNX's uint16 bits."""
    import torch
    return torch.from_dlpack(t).view(torch.int16).numpy().view(np.uint16)


def bf16_float(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


# ---- the worker: runs jobs "TIER CASE_DIR" from stdin, one JSON answer per line -----------

def worker():
    import dvm
    for line in sys.stdin:
        tier, d = line.rstrip("\n").split(" ", 1)
        with open(os.path.join(d, "names.json")) as f:
            names = json.load(f)
        data = np.load(os.path.join(d, "data.npz"))
        ins = [data["in_%d" % k] for k in range(len(names["inputs"]))]
        outs = [data["out_%d" % k] for k in range(len(data.files) - len(ins))]
        name = os.path.basename(d)
        try:
            m = dvm.Model(os.path.join(d, "model.onnx"), tier=tier, threads=1)
        except dvm.Error as e:
            print(json.dumps(("refused", str(e).splitlines()[0] if str(e) else "")), flush=True)
            continue
        except Exception as e:  # noqa: BLE001
            print(json.dumps(("crash", "%s: %s" % (type(e).__name__, e))), flush=True)
            continue
        try:
            ins = [as_bf16(a) if n in names["bf16"] else a for n, a in zip(names["inputs"], ins)]
            got = m(**dict(zip(names["inputs"], ins)))
            got = list(got) if isinstance(got, tuple) else [got]
            bf = [n in names["bf16"] for n in names["outputs"]]  # compared as the values they hold
            got = [bf16_float(bf16_bits(g)) if b else g for b, g in zip(bf, got)]
            outs = [bf16_float(w) if b else w for b, w in zip(bf, outs)]
            if len(got) != len(outs):
                ans = ("wrong", "%d outputs, expected %d" % (len(got), len(outs)))
            else:
                why = [(k, compare(w, g)) for k, (w, g) in enumerate(zip(outs, got))]
                why = ["output %s: %s" % (names["outputs"][k], w) for k, w in why if w]
                ans = ("wrong", "; ".join(why)) if why else ("pass", "")
        except dvm.Error as e:
            msg = str(e).splitlines()[0] if str(e) else ""
            ans = ("refused", msg) if name in RUN_REFUSED else ("wrong", "the run failed: " + msg)
        except Exception as e:  # noqa: BLE001 - anything else is the module misbehaving
            ans = ("crash", "%s: %s" % (type(e).__name__, e))
        print(json.dumps(ans), flush=True)


class Worker:
    def __init__(self, env):
        self.env = env
        self.p = None

    def run(self, tier, d):
        if self.p is None or self.p.poll() is not None:
            self.p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker"],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, env=self.env, text=True)
        self.p.stdin.write("%s %s\n" % (tier, d))
        self.p.stdin.flush()
        return self.p

    def answer(self, deadline):
        left = deadline - time.monotonic()
        r, _, _ = select.select([self.p.stdout], [], [], max(left, 0))
        line = self.p.stdout.readline() if r else None
        if line:
            return json.loads(line)
        if not r:
            self.p.kill()
            self.p.wait()
            self.p = None
            return ["crash", "timed out after %.0f s" % TIMEOUT]
        err = self.p.stderr.read()[-400:]
        rc = self.p.wait()
        self.p = None
        sig = -rc if rc < 0 else 0
        return ["crash", "worker died (%s): %s" % (
            signal.Signals(sig).name if sig else "exit %d" % rc, err.strip().replace("\n", " | "))]

    def close(self):
        if self.p is not None:
            self.p.stdin.close()
            self.p.wait()


def run_module(jobs, env, nworkers):
    """Results of (tier, name, dir) jobs, in order, over nworkers workers."""
    ws = [Worker(env) for _ in range(nworkers)]
    res, busy, todo = [None] * len(jobs), {}, list(range(len(jobs)))
    while todo or busy:
        for w in ws:
            if all(w is not v for v, _ in busy.values()) and todo:
                j = todo.pop(0)
                w.run(jobs[j][0], jobs[j][2])
                busy[j] = (w, time.monotonic())
        ready, _, _ = select.select([w.p.stdout for w, _ in busy.values()], [], [], 1.0)
        for j, (w, t0) in list(busy.items()):
            if w.p.stdout in ready or time.monotonic() > t0 + TIMEOUT:
                res[j] = w.answer(t0 + TIMEOUT)
                del busy[j]
    for w in ws:
        w.close()
    return res


def run_cli(dvm_bin, jobs):
    """The same through the dvm command (no Python module), two at a time."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(2) as ex:
        return list(ex.map(lambda job: run_cli1(dvm_bin, *job), jobs))


def run_cli1(dvm_bin, tier, name, d):
    """One job through the dvm command: run, then compare."""
    with open(os.path.join(d, "names.json")) as f:
        names = json.load(f)
    if names["bf16"]:
        return ["refused", "bf16 values cannot be passed as .npy files"]
    data = np.load(os.path.join(d, "data.npz"))
    args = [dvm_bin, "run", os.path.join(d, "model.onnx"), "--tier", tier, "--threads", "1"]
    for k, n in enumerate(names["inputs"]):
        np.save(os.path.join(d, "in_%d.npy" % k), data["in_%d" % k])
        args += ["-i", "%s=%s" % (n, os.path.join(d, "in_%d.npy" % k))]
    outdir = os.path.join(d, "out-" + tier)
    shutil.rmtree(outdir, ignore_errors=True)
    os.makedirs(outdir)
    for n in names["outputs"]:  # dvm's name for it (docs/onnx.md)
        dn = re.sub(r"[^A-Za-z0-9_.]", "_", n)
        dn = "_" + dn if dn[:1].isdigit() else dn
        args += ["-o", "%s=%s" % (dn, os.path.join(outdir, n + ".npy"))]
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return ["crash", "timed out after %.0f s" % TIMEOUT]
    if any(s in p.stderr for s in ("runtime error:", "AddressSanitizer", "LeakSanitizer")):
        return ["crash", "sanitizer: %s" % p.stderr.strip()[-300:]]
    if p.returncode == 1:
        return ["refused", (p.stderr.strip().splitlines() or [""])[-1]]
    if p.returncode != 0:
        return ["crash", "exit %d: %s" % (p.returncode, p.stderr.strip()[-300:])]
    why = []
    for k, n in enumerate(names["outputs"]):
        f = os.path.join(outdir, n + ".npy")
        w = compare(data["out_%d" % k], np.load(f)) if os.path.exists(f) else "missing"
        if w:
            why.append("output %s: %s" % (n, w))
    return ["wrong", "; ".join(why)] if why else ["pass", ""]


def main():
    if sys.argv[1:] == ["--worker"]:
        return worker()
    dvm_bin, scratch = sys.argv[1], sys.argv[2]
    opts = sys.argv[3:]
    tiers = opts[opts.index("--tiers") + 1].split(",") if "--tiers" in opts else TIERS
    only = opts[opts.index("--only") + 1] if "--only" in opts else None
    verbose = "-v" in opts
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    cases, out = collect()
    if only:
        cases = [c for c in cases if only in c[0]]
    dirs = [(n, write_case(scratch, n, *rest)) for n, *rest in cases]
    moddir = os.path.join(os.path.dirname(os.path.abspath(dvm_bin)), "python")
    env = dict(os.environ, PYTHONPATH=moddir)
    has_module = subprocess.run([sys.executable, "-c", "import dvm"], env=env,
                                capture_output=True).returncode == 0
    if not has_module:
        tiers = ["vm"]
    jobs = [(t, n, d) for t in tiers for n, d in dirs]
    res = run_module(jobs, env, 2) if has_module else run_cli(dvm_bin, jobs)
    print("ONNX node tests: %d cases in scope; out of scope: %s" % (
        len(cases), ", ".join("%d %s" % (v, k) for k, v in sorted(out.items(), key=lambda x: -x[1]))))
    for t in tiers:
        mine = [(n, r) for (tt, n, _), r in zip(jobs, res) if tt == t]
        count = {s: sum(1 for _, r in mine if r[0] == s) for s in ("pass", "refused", "wrong", "crash")}
        print("ONNX node tests, tier %s: %d of %d pass (%.0f%%), %d refused, %d wrong, %d crash" % (
            t, count["pass"], len(mine), 100.0 * count["pass"] / max(len(mine), 1), count["refused"],
            count["wrong"], count["crash"]))
        for n, r in mine:
            if r[0] in ("wrong", "crash"):
                check(False, "%s [%s] %s: %s" % (n, t, r[0], r[1]))
            elif verbose and r[0] == "refused":
                print("  refused %s [%s]: %s" % (n, t, r[1]))
        floor = FLOOR[t] if has_module else CLI_FLOOR
        check(count["pass"] >= floor, "tier %s: %d passes, fewer than %d" % (t, count["pass"], floor))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
