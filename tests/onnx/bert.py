#!/usr/bin/python3
"""A 12-layer BERT-base-size encoder exported by python3-torch, against torch.

usage: bert.py DVM SCRATCH_DIR

Exports (once, into SCRATCH_DIR/bert.onnx) models.Bert with torch.onnx.export: vocabulary
30522, width 768, 12 heads, feed-forward 3072, 12 post-LN layers, random weights from a
fixed seed; inputs input_ids and attention_mask (int64 [N, S], N and S dynamic), positions
computed inside (Shape, Range), the additive mask (1 - mask) * -10000. Then, through the
Python module (tier auto, one model):

- at (N, S) = (1, 16) and (2, 33), the second batch row of the latter padded (mask zeros
  at its end), the last hidden state matches torch within 1e-3 relative
  (max |dvm - torch| / max |torch|), and the padding changes the output (the mask is read);
- after the first binding's background compiles (Model.wait), the second binding compiles
  nothing (vm_encodes, cache_misses and llvm_compiles stay put): the first binding runs
  while the auto tier compiles, the second on native code.

Without the Python module (a sanitizer build) it prints "skip: ..." and exits 0. Ends with
"N passed, M failed".
"""
import os
import sys
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))  # tests/
from support import check, summary  # noqa: E402

DVM, SCRATCH = sys.argv[1], sys.argv[2]
TOL = 1e-3
SIZES = [(1, 16), (2, 33)]
PAD = 9  # mask zeros at the end of the second row


def rel_err(got, want):
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))


def main():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(DVM)), "python"))
    try:
        import dvm
    except ImportError:
        print("skip: the BERT test needs the Python module (not in a sanitizer build)")
        return 0
    import torch
    import models
    os.makedirs(SCRATCH, exist_ok=True)
    path = os.path.join(SCRATCH, "bert.onnx")
    t0 = time.time()
    tm = models.export_bert(path)
    t1 = time.time()
    m = dvm.Model(path, tier="auto", threads=1)
    t2 = time.time()
    check(list(m.inputs) == ["input_ids", "attention_mask"] and list(m.outputs) == ["y"],
          "interface: inputs %s, outputs %s" % (m.inputs, m.outputs))
    rng = np.random.default_rng(2026)
    worst, compiles, runs, waited = 0.0, None, [], 0.0
    for n, s in SIZES:
        ids = rng.integers(0, models.Bert.VOCAB, (n, s)).astype(np.int64)
        mask = np.ones((n, s), np.int64)
        if n > 1:
            mask[1, s - PAD:] = 0
        t = time.time()
        y = m(input_ids=ids, attention_mask=mask)
        runs.append(time.time() - t)
        with torch.no_grad():
            want = tm(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
        what = "N=%d S=%d" % (n, s)
        check(y.shape == (n, s, models.Bert.DIM), "%s: shape %s" % (what, y.shape))
        if y.shape != want.shape:
            continue
        e = rel_err(y, want)
        worst = max(worst, e)
        check(e <= TOL, "%s: relative error %.3g > %g" % (what, e, TOL))
        if n > 1:
            with torch.no_grad():
                unmasked = tm(torch.from_numpy(ids), torch.ones(n, s, dtype=torch.int64)).numpy()
            d = rel_err(y[1], unmasked[1])
            check(d > 100 * TOL, "%s: the padding changes row 1 (%.3g relative to no mask)" % (what, d))
        if hasattr(m, "stats"):
            if compiles is None:  # the first binding's background compiles done
                t = time.time()
                m.wait()
                waited = time.time() - t
                st = m.stats()
                compiles = (st["vm_encodes"], st["cache_misses"], st["llvm_compiles"])
            else:
                st = m.stats()
                check((st["vm_encodes"], st["cache_misses"], st["llvm_compiles"]) == compiles,
                      "%s: nothing compiled since the first binding: %r then %r" % (what, compiles, st))
    print("bert: 12 layers, max relative error vs torch %.3g over %s; export %.1f s, load %.1f s, "
          "runs %s s, compiles waited for %.1f s"
          % (worst, SIZES, t1 - t0, t2 - t1, ", ".join("%.2f" % r for r in runs), waited))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
