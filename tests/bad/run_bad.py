#!/usr/bin/env python3
"""The bad-input suite: every case must fail cleanly, with the right status and message.

    run_bad.py DVM_BINARY SCRATCH_DIR

Each tests/bad/*.dvm file is one case; its leading comment lines say what to run and what
to expect:

    # <one line saying what is wrong>
    # cmd: dump                 run `dvm dump FILE --stage ir` instead of `dvm run FILE`
    # args: -s N=3 --tier ref   more arguments (shell-split)
    # npy: NAME=KIND            write a .npy file and pass `-i NAME=path`; KIND is a corrupt
                                kind (truncated_data, truncated_header, bad_magic, fortran,
                                big_endian, wrong_dtype_c8, trailing_bytes: all of shape
                                (2, 2)) or a valid file `DTYPE[DIMS] [VALUES...]`, e.g.
                                `idx=i64[2] 0 5` (values default to zeros)
    # expect-status: 1          the exact exit status (default 1)
    # expect-line: 4            stderr starts `dvm: error: FILE:4:`
    # expect-message: TEXT      a case-insensitive substring of stderr (any number)

Every failing case must also: print nothing on stdout, start stderr with "dvm: error:",
not die of a signal or a sanitizer report, and, for a corrupt .npy kind, name the file.

Usage errors (exit status 2) and I/O errors on the command line are in CLI_CASES below,
with two control runs that must succeed (so that a dvm that rejects everything, or
rejects the .npy files this script writes, fails the suite).

Prints one line per failing case and ends with "N passed, M failed"; exits 1 if any
case failed.
"""
import os
import re
import shlex
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT = 60
KEYS = ("cmd", "args", "npy", "expect-status", "expect-line", "expect-message")
SANITIZER = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|"
                       r"\.c:\d+:\d+: runtime error:")

# ---- .npy writing -------------------------------------------------------------------------

DTYPES = {  # dvm dtype -> (.npy descr, struct code)
    "f32": ("<f4", "f"), "f16": ("<f2", "e"), "i32": ("<i4", "i"),
    "i64": ("<i8", "q"), "bool": ("|b1", "?"),
}


def npy_header(descr, shape, fortran=False):
    dims = "".join("%d," % d for d in shape) if len(shape) == 1 else \
        ", ".join(str(d) for d in shape)
    h = "{'descr': '%s', 'fortran_order': %s, 'shape': (%s), }" % (
        descr, "True" if fortran else "False", dims)
    total = 10 + len(h) + 1
    h += " " * ((64 - total % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode("latin1")


def npy_bytes(descr, shape, payload, fortran=False):
    return npy_header(descr, shape, fortran) + payload


BAD_VALUES = [1.0, 2.0, 3.0, 4.0]  # every corrupt kind is a (2, 2) array


def bad_npy(kind):
    good_f32 = struct.pack("<4f", *BAD_VALUES)
    if kind == "truncated_data":
        return npy_bytes("<f4", (2, 2), good_f32[:8])
    if kind == "truncated_header":
        return npy_bytes("<f4", (2, 2), good_f32)[:30]
    if kind == "bad_magic":
        return b"\x93NUMPZ" + npy_bytes("<f4", (2, 2), good_f32)[6:]
    if kind == "fortran":
        return npy_bytes("<f4", (2, 2), good_f32, fortran=True)
    if kind == "big_endian":
        return npy_bytes(">f4", (2, 2), struct.pack(">4f", *BAD_VALUES))
    if kind == "wrong_dtype_c8":  # complex64: a dtype dvm does not have
        return npy_bytes("<c8", (2, 2), struct.pack("<8f", *[v for x in BAD_VALUES for v in (x, 0.0)]))
    if kind == "trailing_bytes":
        return npy_bytes("<f4", (2, 2), good_f32) + b"\0\0\0\0junk"
    return None


def good_npy(spec):
    """'f32[2,3] 1 2 3 4 5 6' -> bytes of a valid C-order little-endian .npy file."""
    m = re.fullmatch(r"(\w+)\[([\d,\s]*)\]\s*(.*)", spec.strip())
    if not m or m.group(1) not in DTYPES:
        raise ValueError("bad npy spec %r" % spec)
    descr, code = DTYPES[m.group(1)]
    shape = tuple(int(d) for d in m.group(2).split(",") if d.strip())
    count = 1
    for d in shape:
        count *= d
    vals = m.group(3).split()
    if not vals:
        vals = ["0"] * count
    if len(vals) != count:
        raise ValueError("npy spec %r: %d values for %d elements" % (spec, len(vals), count))
    conv = float if code in "fe" else (lambda v: bool(int(v))) if code == "?" else int
    payload = struct.pack("<%d%s" % (count, code), *[conv(v) for v in vals])
    return npy_bytes(descr, shape, payload)


# ---- running ----------------------------------------------------------------------------


def run(argv):
    """(status, stdout, stderr, problem); status None if the process did not finish."""
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, "", "", "timed out after %ds" % TIMEOUT
    except OSError as e:
        return None, "", "", "cannot run: %s" % e
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    return p.returncode, out, err, None


def check(argv, status, out, err, want_status, want_line=None, graph=None, messages=(),
          names=(), strict_prefix=True):
    """The list of problems with one run (empty if it passed)."""
    probs = []
    if status is None:
        return probs
    if status < 0:
        probs.append("killed by signal %d" % -status)
    if status != want_status:
        probs.append("expected status %d, got %d" % (want_status, status))
    if SANITIZER.search(err):
        probs.append("sanitizer report on stderr")
    if "\ufffd" in err:  # run() decodes with replacement: the bytes were not UTF-8
        probs.append("stderr is not valid UTF-8")
    if want_status == 0:
        return probs
    if out:
        probs.append("printed on stdout on error")
    if not err.strip():
        probs.append("nothing on stderr")
    elif strict_prefix and not err.startswith("dvm: error:"):
        probs.append("stderr does not start with 'dvm: error:'")
    if want_line is not None:
        first = err.split("\n", 1)[0]
        m = re.match(r"dvm: error: (.*?):(\d+): ", first)
        if not m:
            probs.append("expected `dvm: error: %s:%d: ...`" % (graph, want_line))
        else:
            f, ln = m.group(1), int(m.group(2))
            base = os.path.basename(graph)
            if not (f == graph or f == base or f.endswith("/" + base)):
                probs.append("error names file %r, expected %r" % (f, graph))
            if ln != want_line:
                probs.append("expected line %d, got line %d" % (want_line, ln))
    low = err.lower()
    for msg in messages:
        if msg.lower() not in low:
            probs.append("stderr lacks %r" % msg)
    for n in names:
        if n not in err:
            probs.append("stderr does not name %r" % n)
    return probs


def parse_case(path):
    """The header directives of one case file."""
    spec = {"cmd": "run", "args": [], "npy": [], "status": 1, "line": None, "messages": []}
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not line.startswith("#"):
                break
            m = re.match(r"#\s*([a-z-]+):\s?(.*)$", line)
            if not m or m.group(1) not in KEYS:
                continue
            key, val = m.group(1), m.group(2).strip()
            if key == "cmd":
                if val not in ("run", "dump"):
                    raise ValueError("%s: bad cmd %r" % (path, val))
                spec["cmd"] = val
            elif key == "args":
                spec["args"] += shlex.split(val)
            elif key == "npy":
                name, _, kind = val.partition("=")
                if not name or not kind:
                    raise ValueError("%s: bad npy line %r" % (path, val))
                spec["npy"].append((name.strip(), kind.strip()))
            elif key == "expect-status":
                spec["status"] = int(val)
            elif key == "expect-line":
                spec["line"] = int(val)
            elif key == "expect-message":
                spec["messages"].append(val)
    return spec


def show(argv):
    return " ".join(shlex.quote(a) for a in argv)


def report(name, argv, probs, status, err):
    got = "no status" if status is None else "status %s" % status
    stderr = err.strip().replace("\n", "\\n")
    if len(stderr) > 600:
        stderr = stderr[:600] + "..."
    print("FAIL %s: %s\n     %s; got %s; stderr: %s" % (name, show(argv), "; ".join(probs), got,
                                                        stderr or "(empty)"))


def main():
    if len(sys.argv) != 3:
        print("usage: run_bad.py DVM_BINARY SCRATCH_DIR", file=sys.stderr)
        return 2
    dvm = os.path.abspath(sys.argv[1])
    scratch = os.path.abspath(sys.argv[2])
    os.makedirs(scratch, exist_ok=True)
    passed = failed = 0

    # ---- the .dvm cases ----
    for fn in sorted(os.listdir(HERE)):
        if not fn.endswith(".dvm"):
            continue
        name = fn[:-4]
        path = os.path.join(HERE, fn)
        try:
            spec = parse_case(path)
            files, corrupt = [], []
            for nm, kind in spec["npy"]:
                data = bad_npy(kind)
                if data is not None:
                    corrupt.append("%s.%s.npy" % (name, nm))
                else:
                    data = good_npy(kind)
                npy = os.path.join(scratch, "%s.%s.npy" % (name, nm))
                with open(npy, "wb") as f:
                    f.write(data)
                files += ["-i", "%s=%s" % (nm, npy)]
        except (ValueError, OSError) as e:
            print("FAIL %s: bad case file: %s" % (name, e))
            failed += 1
            continue
        if spec["cmd"] == "dump":
            argv = [dvm, "dump", path, "--stage", "ir"] + spec["args"] + files
        else:
            argv = [dvm, "run", path] + spec["args"] + files
        status, out, err, problem = run(argv)
        probs = [problem] if problem else []
        probs += check(argv, status, out, err, spec["status"], spec["line"], path,
                       spec["messages"], corrupt)
        if probs:
            failed += 1
            report(name, argv, probs, status, err)
        else:
            passed += 1

    # ---- command-line cases ----
    good = os.path.join(scratch, "cli_ok.dvm")
    with open(good, "w") as f:
        f.write("graph ok\ninput x: f32[N]\ny = exp(x)\noutput y\n")
    good_x = os.path.join(scratch, "cli_ok.x.npy")
    with open(good_x, "wb") as f:
        f.write(good_npy("f32[3] 0.5 1 -2"))
    missing_graph = os.path.join(scratch, "no_such_graph.dvm")
    missing_npy = os.path.join(scratch, "no_such_input.npy")
    # (name, arguments after the binary, status, stderr substrings)
    cli_cases = [
        ("control_run_symbol", ["run", good, "-s", "N=3", "--tier", "ref"], 0, []),
        ("control_run_npy", ["run", good, "-i", "x=" + good_x, "--tier", "ref"], 0, []),
        ("usage_no_arguments", [], 2, []),
        ("usage_unknown_subcommand", ["frobnicate", good], 2, []),
        ("usage_run_missing_graph", ["run"], 2, []),
        ("usage_unknown_flag", ["run", good, "-s", "N=3", "--frobnicate"], 2, []),
        ("usage_symbol_without_equals", ["run", good, "-s", "N"], 2, []),
        ("usage_symbol_not_integer", ["run", good, "-s", "N=three"], 2, []),
        ("usage_flag_without_value", ["run", good, "-s"], 2, []),
        ("usage_bad_tier", ["run", good, "-s", "N=3", "--tier", "bogus"], 2, []),
        ("usage_input_without_equals", ["run", good, "-i", "x"], 2, []),
        ("usage_dump_bad_stage", ["dump", good, "--stage", "bogus"], 2, []),
        ("io_missing_graph_file", ["run", missing_graph, "-s", "N=3", "--tier", "ref"], 1,
         ["no_such_graph.dvm"]),
        ("io_missing_npy_file", ["run", good, "-i", "x=" + missing_npy, "--tier", "ref"], 1,
         ["no_such_input.npy"]),
    ]
    for name, args, want, messages in cli_cases:
        argv = [dvm] + args
        status, out, err, problem = run(argv)
        probs = [problem] if problem else []
        # usage errors may print a usage text, so only I/O errors need the prefix
        probs += check(argv, status, out, err, want, messages=messages,
                       strict_prefix=(want == 1))
        if probs:
            failed += 1
            report(name, argv, probs, status, err)
        else:
            passed += 1

    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
