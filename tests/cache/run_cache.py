#!/usr/bin/python3
"""The object cache on disk (jit/objcache.c), through the dvm command.

usage: run_cache.py DVM SCRATCH_DIR

- Two processes on one directory: the second runs W7 with 0 LLVM compiles, every kernel
  native, loaded from the directory, with outputs identical to the first's.
- Damage of every class to a cached file (each header field, the body, truncated, empty,
  another kernel's file under this name) is rejected (counted, never loaded), the kernel
  is compiled again with the same output, and the file is whole again afterwards.
- Four processes of four threads on an empty directory at once: every output identical,
  and a fifth process compiles nothing.
- A directory others may write, or a file others may write, is refused; a directory that
  cannot be made degrades to compiling with a warning; DVM_CACHE_DIR=off writes nothing.
- A directory bounded by DVM_CACHE_MAX_MB stays under it, with the same outputs.
- `dvm cache stats` shows the directory and its files, `dvm cache clear` removes them.
Ends with "N passed, M failed"."""
import glob
import json
import os
import shutil
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from support import check, summary  # noqa: E402

DVM, SCRATCH = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
W1 = os.path.join(ROOT, "bench", "workloads", "W1.dvm")
W7 = os.path.join(ROOT, "bench", "workloads", "W7.dvm")



def run(graph, syms, cache, out, threads=1, tier="llvm", background=False):
    env = dict(os.environ, DVM_CACHE_DIR=cache)
    cmd = [DVM, "run", graph, "--tier", tier, "--threads", str(threads), "--stats", "-o", "y=" + out]
    for s in syms:
        cmd += ["-s", s]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         stdin=subprocess.DEVNULL)
    return p if background else finish(p)


def finish(p):
    out, err = p.communicate()
    stats = None
    for line in err.splitlines():
        if line.startswith("{"):
            stats = json.loads(line)
    return p.returncode, stats, err


def same(a, b):
    with open(a, "rb") as f, open(b, "rb") as g:
        return f.read() == g.read()


def main():
    shutil.rmtree(SCRATCH, ignore_errors=True)
    os.makedirs(SCRATCH)
    cache = os.path.join(SCRATCH, "cache")

    # two processes, W7
    w7 = ["N=1", "S=16"]
    rc, s1, err = run(W7, w7, cache, os.path.join(SCRATCH, "w7-a.npy"))
    check(rc == 0 and s1 and s1["llvm_compiles"] > 0 and s1["disk_writes"] > 0,
          "first process compiles and writes (%s %s)" % (s1, err[-300:]))
    rc, s2, err = run(W7, w7, cache, os.path.join(SCRATCH, "w7-b.npy"))
    check(rc == 0 and s2 and s2["llvm_compiles"] == 0 and s2["native_kernels"] == s2["kernels"] == 9
          and s2["disk_hits"] > 0 and s2["disk_rejects"] == 0,
          "second process: 0 LLVM compiles, 9 kernels native from the directory (%s)" % s2)
    check(same(os.path.join(SCRATCH, "w7-a.npy"), os.path.join(SCRATCH, "w7-b.npy")), "W7 outputs identical")

    # damage, W1 (one kernel)
    dcache = os.path.join(SCRATCH, "damage")
    ref = os.path.join(SCRATCH, "w1-ref.npy")
    rc, s, err = run(W1, ["N=5"], dcache, ref)
    files = glob.glob(os.path.join(dcache, "*.o"))
    check(rc == 0 and len(files) == 1, "W1: one file for its one kernel: %s" % files)
    rc, s, _ = run(W1, ["N=5"], dcache, os.path.join(SCRATCH, "w1-warm.npy"))
    check(rc == 0 and s["llvm_compiles"] == 0 and s["disk_hits"] == 1, "W1 warm: loaded (%s)" % s)
    f = files[0]
    with open(f, "rb") as h:
        good = h.read()
    w7_file = sorted(glob.glob(os.path.join(cache, "*.o")))[0]
    # header: magic 0-7, format 8-11, header length 12-15, key 16-31, stamp 32-47, body
    # length 48-55, checksum 56-71; the body (the object) from 72
    cases = [("magic", 0), ("format", 8), ("header length", 12), ("key", 20), ("stamp", 40),
             ("body length", 50), ("checksum", 60), ("body, first byte", 72), ("body, last byte", -1),
             ("truncated to the header", "trunc-h"), ("truncated mid-body", "trunc-b"), ("empty", "empty"),
             ("another kernel's file", "swap"), ("one byte more", "long")]
    for name, at in cases:
        data = bytearray(good)
        if isinstance(at, int):
            data[at] ^= 0x5A
        elif at == "trunc-h":
            data = data[:72]
        elif at == "trunc-b":
            data = data[:72 + (len(good) - 72) // 2]
        elif at == "empty":
            data = bytearray()
        elif at == "long":
            data += b"\0"
        else:
            data = bytearray(open(w7_file, "rb").read())
        with open(f, "wb") as h:
            h.write(data)
        os.chmod(f, 0o600)
        out = os.path.join(SCRATCH, "w1-damaged.npy")
        rc, s, err = run(W1, ["N=5"], dcache, out)
        check(rc == 0 and s and same(out, ref), "%s: the run succeeds with the same output (%s %s)" % (name, s, err[-200:]))
        check(s and s["disk_rejects"] == 1 and s["disk_hits"] == 0 and s["llvm_compiles"] == 1,
              "%s: rejected, never loaded, compiled again (%s)" % (name, s))
        check(os.path.exists(f) and open(f, "rb").read() == good, "%s: the file is whole again" % name)

    # a file others may write is refused (and not loaded)
    os.chmod(f, 0o666)
    rc, s, err = run(W1, ["N=5"], dcache, os.path.join(SCRATCH, "w1-perm.npy"))
    check(rc == 0 and s["disk_hits"] == 0 and s["disk_rejects"] == 1, "a file others may write is refused (%s)" % s)

    # concurrency: 4 processes x 4 threads on an empty directory
    ccache = os.path.join(SCRATCH, "concurrent")
    procs = [run(W7, w7, ccache, os.path.join(SCRATCH, "w7-c%d.npy" % i), threads=4, background=True)
             for i in range(4)]
    results = [finish(p) for p in procs]
    check(all(r[0] == 0 for r in results), "4 concurrent processes succeed")
    check(all(same(os.path.join(SCRATCH, "w7-c%d.npy" % i), os.path.join(SCRATCH, "w7-a.npy")) for i in range(4)),
          "4 concurrent processes: outputs identical")
    check(not glob.glob(os.path.join(ccache, ".tmp-*")), "no temporary file left")
    rc, s, _ = run(W7, w7, ccache, os.path.join(SCRATCH, "w7-d.npy"), threads=4)
    check(rc == 0 and s["llvm_compiles"] == 0 and s["disk_rejects"] == 0, "a fifth process compiles nothing (%s)" % s)

    # refusals and degradation
    open_dir = os.path.join(SCRATCH, "open")
    os.makedirs(open_dir)
    os.chmod(open_dir, 0o777)
    rc, s, err = run(W1, ["N=5"], open_dir, os.path.join(SCRATCH, "w1-open.npy"))
    check(rc == 0 and "writable by another user" in err and s["disk_writes"] == 0 and not os.listdir(open_dir),
          "a directory others may write is refused with a warning (%s)" % err[-200:])
    rc, s, err = run(W1, ["N=5"], "/proc/no-such/dvm", os.path.join(SCRATCH, "w1-bad.npy"))
    check(rc == 0 and "kernel cache" in err and s["llvm_compiles"] == 1,
          "a directory that cannot be made: compiled, one warning (%s)" % err[-200:])
    rc, s, err = run(W1, ["N=5"], "off", os.path.join(SCRATCH, "w1-off.npy"))
    check(rc == 0 and s["disk_misses"] == s["disk_writes"] == 0 and "warning" not in err, "DVM_CACHE_DIR=off")
    # a bounded directory: W7's kernels (about 60 KB) under DVM_CACHE_MAX_MB=0.02 (20 KiB)
    bcache = os.path.join(SCRATCH, "bounded")
    envb = dict(os.environ, DVM_CACHE_MAX_MB="0.02")
    for i in range(2):
        p = subprocess.run([DVM, "run", W7, "-s", "N=1", "-s", "S=16", "--tier", "llvm", "--stats", "-o",
                            "y=" + os.path.join(SCRATCH, "w7-bounded%d.npy" % i)],
                           capture_output=True, text=True, env=dict(envb, DVM_CACHE_DIR=bcache))
        size = sum(os.path.getsize(f) for f in glob.glob(os.path.join(bcache, "*.o")))
        check(p.returncode == 0 and size <= 0.02 * (1 << 20) and glob.glob(os.path.join(bcache, "*.o")),
              "bounded directory, run %d: %d bytes of kernels kept, at most 20 KiB" % (i, size))
        check(same(os.path.join(SCRATCH, "w7-bounded%d.npy" % i), os.path.join(SCRATCH, "w7-a.npy")),
              "bounded directory, run %d: the same outputs" % i)

    # dvm cache stats|clear
    env = dict(os.environ)
    env.pop("DVM_CACHE_DIR", None)
    p = subprocess.run([DVM, "cache", "stats", "--dir", ccache], capture_output=True, text=True,
                       env=dict(env, DVM_CACHE_DIR=os.path.join(SCRATCH, "elsewhere")))  # --dir wins
    n = len(glob.glob(os.path.join(ccache, "*.o")))
    check(p.returncode == 0 and ("dir: %s" % ccache) in p.stdout and ("files: %d" % n) in p.stdout and n > 0,
          "dvm cache stats: the directory and its %d files (%s)" % (n, p.stdout))
    p = subprocess.run([DVM, "cache", "clear", "--dir", ccache], capture_output=True, text=True, env=env)
    check(p.returncode == 0 and ("removed %d files" % n) in p.stdout and not glob.glob(os.path.join(ccache, "*.o")),
          "dvm cache clear removes them (%s)" % p.stdout)
    p = subprocess.run([DVM, "cache", "stats"], capture_output=True, text=True, env=dict(env, DVM_CACHE_DIR="off"))
    check(p.returncode == 0 and "off" in p.stdout, "dvm cache stats with the cache off")
    p = subprocess.run([DVM, "cache", "frob"], capture_output=True, text=True, env=env)
    check(p.returncode == 2 and "stats or clear" in p.stderr, "dvm cache frob: a usage error")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
