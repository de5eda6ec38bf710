#!/usr/bin/python3
"""ONNX import of models exported by python3-torch, against torch.

usage: torch_models.py DVM SCRATCH_DIR ONNX_API

Exports (once, into SCRATCH_DIR) the models of models.py with torch.onnx.export and
dynamic_axes: an MLP, a one-layer BERT-style encoder (nn.TransformerEncoderLayer with GELU),
a LLaMA-style block (RMSNorm, rotary embeddings, causal mask, SiLU-gated MLP) and a
ResNet-18 on 64x64 images (convolutions with batch norm folded by the exporter, max and
global average pooling, residual adds). Then:

- `dvm run MODEL.onnx -i x=... -o y=...` at several batch/sequence sizes matches torch
  within 1e-4 relative (max |dvm - torch| / max |torch|);
- the import is shape-generic: `dvm dump --stage ir` has no constant in place of N or S;
- the encoder runs at three sequence lengths in one process through the C API (ONNX_API,
  onnx_api.c, native tier): each output matches torch, and no binding after the first
  compiles anything (llvm_compiles and cache_misses stay put);
- a GPT-style decoder step with a KV cache (positions computed inside from the cache's length
  P) in a greedy decode loop through the Python module: a prompt on an empty cache, then
  one token a step; logits, caches and tokens match torch's, and steps compile nothing;
- with onnxruntime-node installed (bench/node_modules), `dvm bench` on the encoder file
  runs ONNX Runtime on the same file and reports that it matches; skipped (said so) if not.

Ends with "N passed, M failed".
"""
import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np

warnings.filterwarnings("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import models  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from support import check, summary  # noqa: E402

DVM, SCRATCH, API = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(SCRATCH, exist_ok=True)
TOL = 1e-4
SIZES = {"mlp": [(1, None), (7, None), (64, None)],
         "encoder": [(1, 1), (2, 7), (3, 33)],
         "llama": [(1, 1), (2, 9), (1, 40)],
         "resnet": [(1, None), (3, None)]}



def rel_err(got, want):
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def gpt_decode(rng):
    """The GPT decoder step with a KV cache, driven by a greedy decode loop through the
    Python module: a 5-token prompt on an empty cache (P = 0), then 11 steps of one token
    as P grows. Each step's logits match torch and the greedy tokens are torch's; no step
    after the first compiles anything."""
    path = os.path.join(SCRATCH, "gpt.onnx")
    tm = models.export_gpt(path)
    env_dir = os.path.join(os.path.dirname(os.path.abspath(DVM)), "python")
    sys.path.insert(0, env_dir)
    try:
        import dvm
    except ImportError:
        print("skip: the gpt decode loop needs the Python module (not in a sanitizer build)")
        return
    import torch
    m = dvm.Model(path, tier="auto", threads=1)
    g = models.GPT
    pk = np.zeros((g.LAYERS, 1, g.HEADS, 0, g.DIM // g.HEADS), np.float32)
    pv, ids = pk.copy(), rng.integers(0, g.VOCAB, (1, 5)).astype(np.int64)
    tk, tv = torch.from_numpy(pk), torch.from_numpy(pv)
    worst, compiles = 0.0, None
    for step in range(12):
        lg, pk, pv = m(ids=ids, past_k=pk, past_v=pv)
        with torch.no_grad():
            tl, tk, tv = tm(torch.from_numpy(ids), tk, tv)
        worst = max(worst, rel_err(lg, tl.numpy()))
        check(pk.shape[3] == 5 + step and np.allclose(pk, tk.numpy(), rtol=1e-4, atol=1e-5),
              "gpt step %d: the cache grows to %d and matches torch's" % (step, 5 + step))
        nxt, tn = int(lg[0, -1].argmax()), int(tl[0, -1].argmax())
        check(nxt == tn, "gpt step %d: greedy token %d, torch's %d" % (step, nxt, tn))
        st = m.stats()
        if step == 1:
            compiles = (st["vm_encodes"], st["cache_misses"])
        elif step > 1:
            check((st["vm_encodes"], st["cache_misses"]) == compiles,
                  "gpt step %d (P = %d): nothing compiled since the first step: %r" % (step, 5 + step, st))
        ids = np.array([[nxt]], np.int64)
    check(worst <= TOL, "gpt: logits relative error %.3g > %g" % (worst, TOL))
    print("gpt: 12 greedy steps, P = 0 .. 16, max relative error vs torch %.3g" % worst)


def main():
    rng = np.random.default_rng(2024)
    mods = {}
    for name in SIZES:
        path = os.path.join(SCRATCH, name + ".onnx")
        mods[name] = models.export(name, path)
        r = subprocess.run([DVM, "dump", path, "--stage", "ir"], capture_output=True, text=True)
        check(r.returncode == 0, "%s: dump: %s" % (name, r.stderr.strip()))
        inp = [l for l in r.stdout.splitlines() if l.startswith("input")]
        want = {"mlp": "input  x: f32[N, 32]", "resnet": "input  x: f32[N, 3, %d, %d]" % (
            models.IMAGE, models.IMAGE)}.get(name, "input  x: f32[N, S, 64]")
        check(inp == [want], "%s: inputs %r, want [%r]" % (name, inp, want))
        # every reshape/broadcast/full/arange of the activations is symbolic in N and S
        body = [l.split("#")[0] for l in r.stdout.splitlines() if "shape=" in l or "arange" in l]
        if name not in ("mlp", "resnet"):
            check(body and all("S" in l for l in body),
                  "%s: shape attributes follow the symbols: %r" % (name, body))
        worst = 0.0
        for n, s in SIZES[name]:
            x = models.inputs(name, rng, n, s)
            xf, yf = os.path.join(SCRATCH, "x.npy"), os.path.join(SCRATCH, "y.npy")
            np.save(xf, x)
            r = subprocess.run([DVM, "run", path, "-i", "x=" + xf, "-o", "y=" + yf],
                               capture_output=True, text=True, timeout=300)
            what = "%s N=%d S=%s" % (name, n, s)
            check(r.returncode == 0, "%s: dvm run: %s" % (what, r.stderr.strip()))
            if r.returncode:
                continue
            e = rel_err(np.load(yf), models.reference(mods[name], x))
            worst = max(worst, e)
            check(e <= TOL, "%s: relative error %.3g > %g" % (what, e, TOL))
        print("%s: max relative error vs torch %.3g over %s" % (name, worst, SIZES[name]))

    # the encoder at three sequence lengths in one process, through the C API
    enc = os.path.join(SCRATCH, "encoder.onnx")
    args, xs = [API, enc], []
    for s in (8, 16, 48):
        x = models.inputs("encoder", rng, 2, s)
        xf, yf = os.path.join(SCRATCH, "xe%d.npy" % s), os.path.join(SCRATCH, "ye%d.npy" % s)
        np.save(xf, x)
        args += [xf, yf]
        xs.append((s, x, yf))
    r = subprocess.run(args, capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, "onnx_api: %s" % r.stderr.strip())
    if r.returncode == 0:
        stats = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
        check(len(stats) == 3, "onnx_api: three runs reported")
        for s, x, yf in xs:
            e = rel_err(np.load(yf), models.reference(mods["encoder"], x))
            check(e <= TOL, "encoder via the C API at S=%d: relative error %.3g" % (s, e))
        c0 = (stats[0]["llvm_compiles"], stats[0]["cache_misses"])
        check(all((st["llvm_compiles"], st["cache_misses"]) == c0 for st in stats),
              "no recompiles after the first binding: %r" % stats)
        check(stats[0]["native_kernels"] > 0, "native kernels ran: %r" % stats[0])
        print("encoder in one process at S=8,16,48: %s" % stats)

    gpt_decode(rng)

    # ONNX Runtime on the same file, where onnxruntime-node is installed
    bench = os.path.join(os.path.dirname(os.path.dirname(HERE)), "bench")
    if not shutil.which("node") or not os.path.isdir(os.path.join(bench, "node_modules",
                                                                  "onnxruntime-node")):
        print("skip: onnxruntime-node is not installed (make demo-deps); ONNX Runtime not compared")
    else:
        r = subprocess.run([DVM, "bench", enc, "--sweep", "N=2", "--sweep", "S=8,32",
                            "--peers=onnxruntime", "--format", "json", "--min-time", "0.02",
                            "--budget", "5"], capture_output=True, text=True, timeout=600)
        check(r.returncode == 0, "dvm bench encoder.onnx: %s" % r.stderr.strip()[-500:])
        rows = [json.loads(l) for l in r.stdout.splitlines() if '"workload"' in l]
        check(len(rows) == 2, "two bench rows")
        for row in rows:
            p = row.get("peers", {}).get("onnxruntime", {})
            check(p.get("match") is True, "onnxruntime matches dvm on encoder.onnx: %r" % row)
            check(row.get("recompiles") == 0, "bench: no recompiles: %r" % row)
            print("bench %s: dvm %.1f us, onnxruntime %s us" % (
                row["bindings"], row["median_us"], p.get("median_us")))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
