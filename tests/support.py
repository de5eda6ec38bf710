"""tests/support.py — what the suite's Python scripts share: a pass/fail count, and a
model of input x and output y run through the dvm command (compared, or refused).

check(ok, what) counts a pass or prints "FAIL what"; summary() prints "N passed, M failed"
(the line ctest's log is read for) and returns the script's exit status. A script in a
folder of tests/ imports it after `sys.path.insert(0, <tests/>)`."""
import os
import subprocess

passed = failed = 0


def run_x_y(dvm, scratch, path, x, tier):
    """`dvm run` of a model with input x and output y (NumPy arrays through .npy files in
    scratch): (the completed process, y or None)."""
    import numpy as np
    xf, yf = os.path.join(scratch, "x.npy"), os.path.join(scratch, "y.npy")
    np.save(xf, x)
    if os.path.exists(yf):
        os.remove(yf)
    r = subprocess.run([dvm, "run", path, "--tier", tier, "-i", "x=" + xf, "-o", "y=" + yf],
                       capture_output=True, text=True, timeout=300)
    return r, (np.load(yf) if r.returncode == 0 else None)


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL", what)


def summary():
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def compare_tiers(dvm, scratch, tiers, what, path, x, want, tol):
    """run_x_y in each tier: y must match want (float64) within tol relative to its largest
    magnitude."""
    import numpy as np
    for t in tiers:
        r, got = run_x_y(dvm, scratch, path, x, t)
        check(r.returncode == 0, "%s [%s]: %s" % (what, t, r.stderr.strip()[-300:]))
        if got is None:
            continue
        scale = max(np.abs(want).max(), 1e-30)
        err = np.abs(got.astype(np.float64) - want).max() / scale if got.shape == want.shape else None
        check(err is not None and err <= tol, "%s [%s]: shape %s vs %s, relative error %s" % (
            what, t, got.shape, want.shape, err))


def refused_tiers(dvm, scratch, tiers, what, path, x, text):
    """run_x_y in each tier: exit status 1 with `text` in the message, no sanitizer report."""
    for t in tiers:
        r, _ = run_x_y(dvm, scratch, path, x, t)
        check(r.returncode == 1 and text in r.stderr and "runtime error" not in r.stderr,
              "%s [%s]: exit 1 naming '%s': exit %d, %s" % (what, t, text, r.returncode, r.stderr.strip()[-300:]))
