"""tests/support.py — what the suite's Python scripts share: a pass/fail count.

check(ok, what) counts a pass or prints "FAIL what"; summary() prints "N passed, M failed"
(the line ctest's log is read for) and returns the script's exit status. A script in a
folder of tests/ imports it after `sys.path.insert(0, <tests/>)`."""
passed = failed = 0


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
