#!/usr/bin/python3
"""ONNX import: corrupted models give clean errors, never a crash or a hang.

usage: fuzz.py DVM SCRATCH_DIR

Exports the MLP and the encoder of models.py with python3-torch, then writes corrupted
copies of each (fixed seed): truncations, random byte changes (mostly outside the weights'
raw data, where they would only change values), a wrong magic, zeroed headers and trailing
garbage. `dvm run COPY --tier ref` on each must either succeed (a change that leaves a valid
model) or exit 1 with one `dvm: error:` line, within the time limit, without a sanitizer
report. Ends with "N passed, M failed" and how many copies were refused.
"""
import os
import random
import subprocess
import sys
import warnings

warnings.filterwarnings("ignore")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import models  # noqa: E402
import onnx  # noqa: E402
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from support import check, summary  # noqa: E402

DVM, SCRATCH = sys.argv[1], sys.argv[2]
os.makedirs(SCRATCH, exist_ok=True)
refused = 0



def weight_spans(data, path):
    """Byte ranges of the initializers' raw data in the file."""
    spans = []
    for t in onnx.load(path).graph.initializer:
        if len(t.raw_data) >= 16:
            at = data.find(t.raw_data)
            if at >= 0:
                spans.append((at, at + len(t.raw_data)))
    return spans


def copies(data, spans, rnd):
    n = len(data)
    yield "empty", b""
    for cut in sorted(set([1, 2, 7, 20, 100, n // 3, n // 2, n - 100, n - 9, n - 1]
                          + [rnd.randrange(1, n) for _ in range(4)])):
        if 0 < cut < n:
            yield "truncated at %d" % cut, data[:cut]
    outside = [i for i in range(n) if not any(a <= i < b for a, b in spans)]
    for k in range(24):
        pos = rnd.choice(outside) if k < 20 else rnd.randrange(n)
        b = bytearray(data)
        b[pos] = (b[pos] + rnd.randrange(1, 256)) % 256
        yield "byte %d changed" % pos, bytes(b)
    for k in range(4):  # several bytes at once
        b = bytearray(data)
        for _ in range(8):
            b[rnd.choice(outside)] = rnd.randrange(256)
        yield "8 bytes changed (%d)" % k, bytes(b)
    yield "wrong magic", b"\x89PNG\r\n\x1a\n" + data[8:]
    yield "zeroed header", bytes(64) + data[64:]
    yield "trailing garbage", data + bytes(range(256))


def main():
    global refused
    rnd = random.Random(8)
    total = 0
    for name, syms in (("mlp", ["-s", "N=3"]), ("encoder", ["-s", "N=2", "-s", "S=5"])):
        path = os.path.join(SCRATCH, name + ".onnx")
        models.export(name, path)
        data = open(path, "rb").read()
        spans = weight_spans(data, path)
        for k, (what, blob) in enumerate(copies(data, spans, rnd)):
            bad = os.path.join(SCRATCH, "%s_%d.onnx" % (name, k))
            with open(bad, "wb") as f:
                f.write(blob)
            total += 1
            label = "%s %s (%s)" % (name, what, bad)
            try:
                r = subprocess.run([DVM, "run", bad, "--tier", "ref"] + syms, capture_output=True,
                                   text=True, errors="replace", timeout=60)
            except subprocess.TimeoutExpired:
                check(False, label + ": timed out")
                continue
            err = r.stderr
            check("Sanitizer" not in err and "runtime error" not in err,
                  label + ": sanitizer report:\n" + err[-2000:])
            if r.returncode == 0:
                check(True, label)
                os.remove(bad)
                continue
            refused += 1
            lines = err.strip().splitlines()
            check(r.returncode == 1 and len(lines) == 1 and lines[0].startswith("dvm: error: "),
                  "%s: want exit 1 and one 'dvm: error:' line, got %d: %s" % (label, r.returncode,
                                                                             err[-800:]))
            if r.returncode == 1:
                os.remove(bad)
    print("%d corrupted copies, %d refused with an error, the rest still valid models" % (total, refused))
    return summary()


if __name__ == "__main__":
    sys.exit(main())
