#!/usr/bin/python3
"""Run one libFuzzer target of tests/fuzz from seeds made of the suite's own files.

usage: run_fuzz.py TARGET_BINARY graph|onnx|npy|objcache|lazy SCRATCH_DIR [--seconds S] [--jobs J]

Seeds: graph, every .dvm of tests/graphs, tests/bad, examples and bench/workloads; onnx, the
models of tests/onnx/models.py exported by python3-torch (but the ResNet), the op models of
tests/onnx/ops_numpy.py and the in-scope models of ONNX's node tests (node_tests.py); npy, arrays of every dtype and a few ranks written by NumPy;
objcache, files of the object cache's layout; lazy, programs of a few bytes each (its
input decodes as shapes, then ops with operands and attributes: fuzz_lazy.c). The
corpus grows in SCRATCH_DIR/corpus (kept between runs: a long run resumes it). A finding
(crash, sanitizer report, leak, timeout, memory blow-up) is saved under SCRATCH_DIR as
crash-*, leak-*, timeout-* or oom-*, and the script exits 1.

The suite runs each target for 30 seconds (ctest, a build configured with
`CC=clang cmake -S . -B build-fuzz -DDVM_FUZZ=ON`, which `make test` makes). A long run,
e.g. eight hours of the text graph target on both cores:

    make build-fuzz
    /usr/bin/python3 tests/fuzz/run_fuzz.py build-fuzz/tests/fuzz/fuzz_graph graph \\
        fuzz-out/graph --seconds 28800 --jobs 2
"""
import glob
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def graph_seeds(out):
    pats = ["tests/graphs/*.dvm", "tests/bad/*.dvm", "examples/*.dvm", "bench/workloads/*.dvm"]
    for pat in pats:
        for f in sorted(glob.glob(os.path.join(ROOT, pat))):
            shutil.copy(f, os.path.join(out, os.path.basename(os.path.dirname(f)) + "-" + os.path.basename(f)))


def onnx_seeds(out):
    import warnings
    warnings.filterwarnings("ignore")
    sys.path.insert(0, os.path.join(ROOT, "tests", "onnx"))
    import models
    for name in ("mlp", "encoder", "llama"):
        models.export(name, os.path.join(out, name + ".onnx"))
    saved, sys.argv = sys.argv, [sys.argv[0], "", out]  # ops_numpy reads DVM, SCRATCH at import
    try:
        import ops_numpy
    finally:
        sys.argv = saved
    for c in ops_numpy.CASES:  # one small model per case
        with open(os.path.join(out, "op-%s.onnx" % c["name"]), "wb") as f:
            f.write(ops_numpy.model_of([c]).SerializeToString())
    models.export_gpt(os.path.join(out, "gpt.onnx"))
    saved, sys.argv = sys.argv, [sys.argv[0], "", out]
    try:
        import node_tests  # ONNX's node tests: a model per op form, every op dvm imports
    finally:
        sys.argv = saved
    cases, _ = node_tests.collect()
    for name, m, _, _ in cases:
        with open(os.path.join(out, "node-%s.onnx" % name), "wb") as f:
            f.write(m.SerializeToString())


def objcache_seeds(out):
    """Entries of the object cache's layout (jit/objcache.c: magic, format, header length,
    key, stamp, body length, XXH3-128 of the body, then the body) around bodies of a few
    sizes; their stamps and checksums are not this build's, so the fuzzer starts from the
    shape of a file and mutates it."""
    import struct
    key = bytes([0xd, 0x1, 0x5, 0xc, 0xa, 0xc, 0x4, 0xe, 1, 2, 3, 4, 5, 6, 7, 8])
    for i, n in enumerate((0, 1, 64, 4096)):
        body = bytes((7 * j + i) & 0xff for j in range(n))
        head = b"DVMOBJ\0\1" + struct.pack("<II", 1, 72) + key + bytes(16) + struct.pack("<Q", n) + bytes(16)
        with open(os.path.join(out, "entry-%d" % n), "wb") as f:
            f.write(head + body)
    open(os.path.join(out, "empty"), "wb").close()


def lazy_seeds(out):
    """Programs for fuzz_lazy.c: x rank, y form, step count, then per step an op byte (its
    low bits pick the op, bit 5 a variant, bit 7 holds the result), two operands and two
    slice bounds; then two size pairs."""
    import random
    r = random.Random(5)
    for i in range(64):
        steps = 1 + i % 8
        body = [i % 2, i % 3, steps - 1]
        for s in range(steps):
            body += [r.randrange(256), r.randrange(2 + s), r.randrange(2 + s), r.randrange(9), r.randrange(11)]
        body += [r.randrange(6) for _ in range(4)]
        with open(os.path.join(out, "prog-%02d" % i), "wb") as f:
            f.write(bytes(body))


def npy_seeds(out):
    import numpy as np
    rng = np.random.default_rng(1)
    for dt in ("float32", "float16", "int32", "int64", "bool", "float64", "uint8"):
        for shape in ((), (3,), (2, 3), (2, 1, 4), (0, 5)):
            a = (rng.standard_normal(shape) * 4).astype(dt)
            np.save(os.path.join(out, "%s-%s.npy" % (dt, "x".join(map(str, shape)) or "scalar")), a)
    np.save(os.path.join(out, "big-endian.npy"), np.arange(6, dtype=">f4"))
    np.save(os.path.join(out, "fortran.npy"), np.asfortranarray(np.ones((2, 3), np.float32)))


def main():
    args = sys.argv[1:]
    seconds, jobs = 30, 1
    if "--seconds" in args:
        i = args.index("--seconds"); seconds = int(args[i + 1]); del args[i:i + 2]
    if "--jobs" in args:
        i = args.index("--jobs"); jobs = int(args[i + 1]); del args[i:i + 2]
    if len(args) != 3 or args[1] not in ("graph", "onnx", "npy", "objcache", "lazy"):
        sys.exit(__doc__)
    binary, kind, scratch = os.path.abspath(args[0]), args[1], os.path.abspath(args[2])
    seeds, corpus = os.path.join(scratch, "seeds"), os.path.join(scratch, "corpus")
    shutil.rmtree(seeds, ignore_errors=True)
    os.makedirs(seeds); os.makedirs(corpus, exist_ok=True)
    {"graph": graph_seeds, "onnx": onnx_seeds, "npy": npy_seeds, "objcache": objcache_seeds,
     "lazy": lazy_seeds}[kind](seeds)
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    cmd = [binary, corpus, seeds, "-max_total_time=%d" % seconds, "-timeout=60", "-rss_limit_mb=6144",
           "-max_len=65536" if kind != "onnx" else "-max_len=1048576", "-seed=1",
           "-artifact_prefix=" + scratch + "/", "-print_final_stats=1"]
    if jobs > 1:
        cmd += ["-jobs=%d" % jobs, "-workers=%d" % jobs]
    print(" ".join(cmd), flush=True)
    p = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, errors="replace", cwd=scratch)  # -jobs writes fuzz-N.log in the cwd
    log = p.stdout
    tail = "\n".join(log.splitlines()[-40:])
    print(tail)
    found = [f for pre in ("crash-", "leak-", "timeout-", "oom-", "slow-unit-")
             for f in glob.glob(os.path.join(scratch, pre + "*"))]
    if p.returncode != 0 or any(not os.path.basename(f).startswith("slow-unit-") for f in found):
        print("FAIL fuzz %s: exit %d; findings: %s" % (kind, p.returncode, " ".join(found) or "none saved"))
        sys.exit(1)
    print("fuzz %s: %d seconds, no finding" % (kind, seconds))


if __name__ == "__main__":
    main()
