#!/usr/bin/python3
"""The installed package: `cmake --install` into a temporary prefix, then the embedder of
examples/embed built against it through pkg-config and through CMake (find_package), and
run on an ONNX model exported by python3-torch.

usage: run_install.py BUILD_DIR SCRATCH_DIR

Checks: the files are where pkg-config and CMake look; libdvm.so has the soname
libdvm.so.MAJOR and exports dvm_ functions alone; both embedders serve their 16 requests
from 4 threads, and every request's output agrees with torch on the same inputs (1e-4);
the Python module, installed under the prefix, imports with that prefix's dist-packages
on PYTHONPATH and runs the model to the same outputs.
Ends with "N passed, M failed"."""
import glob
import os
import shutil
import subprocess
import sys

import numpy as np
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from support import check, summary  # noqa: E402

BUILD, SCRATCH = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "onnx"))



def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw)
    if p.returncode:
        print("$ " + " ".join(cmd) + "\n" + p.stdout[-2000:] + p.stderr[-2000:])
    return p


def main():
    shutil.rmtree(SCRATCH, ignore_errors=True)
    os.makedirs(SCRATCH)
    prefix = os.path.join(SCRATCH, "prefix")
    check(run(["cmake", "--install", BUILD, "--prefix", prefix]).returncode == 0, "cmake --install")
    libdir = os.path.join(prefix, "lib")
    libs = glob.glob(os.path.join(libdir, "libdvm.so.*.*.*"))
    check(len(libs) == 1, "one libdvm.so.X.Y.Z in %s" % libdir)
    for f in ("include/dvm.h", "lib/libdvm.so", "lib/pkgconfig/dvm.pc", "lib/cmake/dvm/dvmConfig.cmake",
              "lib/cmake/dvm/dvmConfigVersion.cmake", "bin/dvm"):
        check(os.path.exists(os.path.join(prefix, f)), "installed " + f)
    if libs:
        dyn = run(["readelf", "-d", libs[0]]).stdout
        check("Library soname: [libdvm.so.0]" in dyn, "soname libdvm.so.0")
        syms = [l.split()[-1] for l in run(["nm", "-D", "--defined-only", libs[0]]).stdout.splitlines()]
        other = [s for s in syms if not s.startswith("dvm_") and s != "DVM_0"]
        check(len(syms) > 20 and not other, "exports dvm_ functions alone (others: %s)" % other[:5])
    # the embedder, through pkg-config and through CMake
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(libdir, "pkgconfig"))
    flags = run(["pkg-config", "--cflags", "--libs", "dvm"], env=env)
    check(flags.returncode == 0 and "-ldvm" in flags.stdout, "pkg-config dvm: " + flags.stdout.strip())
    src = os.path.join(ROOT, "examples", "embed")
    pc_bin = os.path.join(SCRATCH, "embed-pc")
    check(run(["cc", "-std=c11", "-Wall", "-Werror", os.path.join(src, "embed.c"), "-o", pc_bin]
              + flags.stdout.split() + ["-lpthread", "-Wl,-rpath," + libdir]).returncode == 0, "build with pkg-config")
    cm = os.path.join(SCRATCH, "embed-cmake")
    ok = run(["cmake", "-S", src, "-B", cm, "-DCMAKE_PREFIX_PATH=" + prefix,
              "-DCMAKE_BUILD_RPATH=" + libdir]).returncode == 0
    ok = ok and run(["cmake", "--build", cm]).returncode == 0
    check(ok, "build with CMake (find_package(dvm))")
    # one model, 16 requests from 4 threads, each against torch
    import models
    model = os.path.join(SCRATCH, "mlp.onnx")
    m = models.export("mlp", model)
    for name, exe in (("pkg-config", pc_bin), ("cmake", os.path.join(cm, "embed"))):
        if not os.path.exists(exe):
            continue
        out = os.path.join(SCRATCH, "out-" + name)
        os.makedirs(out)
        p = run([exe, model, out])
        check(p.returncode == 0 and p.stdout.count("request ") == 16, "%s embedder: 16 requests served" % name)
        for r in range(16):
            try:
                x, y = np.load(os.path.join(out, "r%d-x.npy" % r)), np.load(os.path.join(out, "r%d-y.npy" % r))
            except OSError:
                check(False, "%s embedder: request %d saved" % (name, r))
                continue
            want = models.reference(m, x)
            check(y.shape == want.shape and np.allclose(y, want, rtol=1e-4, atol=1e-5),
                  "%s embedder: request %d (batch %d) against torch" % (name, r, x.shape[0]))
    # the Python module, installed where Debian's Python looks under the prefix
    pydirs = glob.glob(os.path.join(prefix, "lib", "python3*", "dist-packages"))
    check(len(pydirs) == 1 and glob.glob(os.path.join(pydirs[0], "dvm.*.so")), "the Python module installed")
    if pydirs:
        env = dict(os.environ, PYTHONPATH=pydirs[0])
        code = ("import dvm, numpy as np, sys; m = dvm.Model(sys.argv[1]);"
                "np.save(sys.argv[3], m(np.load(sys.argv[2])))")
        x = np.load(os.path.join(SCRATCH, "out-pkg-config", "r3-x.npy"))
        y_path = os.path.join(SCRATCH, "py-y.npy")
        p = run(["/usr/bin/python3", "-c", code, model, os.path.join(SCRATCH, "out-pkg-config", "r3-x.npy"), y_path],
                env=env)
        ok = p.returncode == 0 and os.path.exists(y_path)
        check(ok, "the installed module runs the ONNX model (%s)" % p.stderr.strip()[-300:])
        if ok:
            y, want = np.load(y_path), models.reference(m, x)
            check(y.shape == want.shape and np.allclose(y, want, rtol=1e-4, atol=1e-5),
                  "the installed module's output against torch")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
