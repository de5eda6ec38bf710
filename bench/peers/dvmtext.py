"""The .dvm text format for the peers of `dvm bench` (bench/peers/README.md): one parser,
shared by eager.py (NumPy, torch), onnxrt.py (ONNX export) and halide_peer.py.

parse_graph(path) -> Graph(name, decls [(kind, name, dtype, [dim text])], nodes
[Node(out, op, operands, attrs)], outputs); eval_dim evaluates a dim expression with the
symbol values of a binding. Anything the format does not allow raises ValueError.
"""
import argparse
import json
import math
import os
import re
import statistics
import sys


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Unsupported(Exception):
    """The graph uses something this peer cannot run: reported as a skip."""


# ----------------------------------------------------------------------------------------
# Parsing the .dvm text format
# ----------------------------------------------------------------------------------------

NAME_RE = r"[A-Za-z_][A-Za-z0-9_.]*"
DTYPES = ("f32", "f16", "bf16", "i32", "i64", "bool")
FLOATS = ("f32", "f16", "bf16")
INTS = ("i32", "i64")
LIT_RE = re.compile(r"^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)$", re.I)
INT_RE = re.compile(r"^[+-]?\d+$")


def split_top(s):
    """Split on commas that are not inside () or []."""
    out, depth, cur = [], 0, []
    for ch in s:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return [x for x in out if x != ""]


def eval_dim(text, syms):
    """Evaluate a dim expression: integers, symbols, + - * and parentheses."""
    toks = re.findall(r"\d+|" + NAME_RE + r"|[-+*()]|\S", text)
    pos = [0]

    def peek():
        return toks[pos[0]] if pos[0] < len(toks) else None

    def take():
        t = toks[pos[0]]
        pos[0] += 1
        return t

    def atom():
        t = peek()
        if t is None:
            raise ValueError("bad dim expression: %r" % text)
        if t == "(":
            take()
            v = expr()
            if peek() != ")":
                raise ValueError("bad dim expression: %r" % text)
            take()
            return v
        if t in ("+", "-"):
            take()
            v = atom()
            return -v if t == "-" else v
        take()
        if t.isdigit():
            return int(t)
        if re.match("^" + NAME_RE + "$", t):
            if t not in syms:
                raise ValueError("symbol %s is not bound" % t)
            return int(syms[t])
        raise ValueError("bad dim expression: %r" % text)

    def term():
        v = atom()
        while peek() == "*":
            take()
            v *= atom()
        return v

    def expr():
        v = term()
        while peek() in ("+", "-"):
            op = take()
            w = term()
            v = v + w if op == "+" else v - w
        return v

    v = expr()
    if pos[0] != len(toks):
        raise ValueError("bad dim expression: %r" % text)
    return v


def const_dim(text):
    """The static value of a dim expression if it is an integer constant, else None."""
    text = text.strip()
    return int(text) if INT_RE.match(text) else None


def parse_number(text):
    """A numeric literal or attribute value: int, float, inf, -inf, nan, true, false."""
    t = text.strip().lower()
    if t in ("true", "false"):
        return 1 if t == "true" else 0
    if INT_RE.match(t):
        return int(t)
    return float(t)


class Node:
    def __init__(self, out, op, operands, attrs, line):
        self.out, self.op, self.operands, self.attrs, self.line = out, op, operands, attrs, line


class Graph:
    def __init__(self):
        self.name = None
        self.decls = []  # (kind, name, dtype, [dim texts])
        self.nodes = []
        self.outputs = []


def parse_graph(path):
    g = Graph()
    with open(path) as f:
        lines = f.read().split("\n")
    decl_re = re.compile(r"^(input|param)\s+(" + NAME_RE + r")\s*:\s*(\w+)\s*\[(.*)\]$")
    asg_re = re.compile(r"^(" + NAME_RE + r")\s*=\s*([A-Za-z_][A-Za-z0-9_]*)\s*\((.*)\)$")
    for ln, raw in enumerate(lines, 1):
        s = raw.split("#", 1)[0].strip()
        if not s:
            continue
        where = "%s:%d: " % (path, ln)
        if re.match(r"^graph\b", s):
            g.name = s[5:].strip()
            continue
        m = decl_re.match(s)
        if m:
            if m.group(3) not in DTYPES:
                raise ValueError(where + "unknown dtype " + m.group(3))
            g.decls.append((m.group(1), m.group(2), m.group(3), split_top(m.group(4))))
            continue
        if re.match(r"^output\b", s):
            g.outputs += [x.strip() for x in s[6:].split(",") if x.strip()]
            continue
        m = asg_re.match(s)
        if m:
            operands, attrs = [], {}
            for a in split_top(m.group(3)):
                km = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$", a)
                if km:
                    attrs[km.group(1)] = km.group(2).strip()
                else:
                    operands.append(a)
            g.nodes.append(Node(m.group(1), m.group(2), operands, attrs, ln))
            continue
        raise ValueError(where + "cannot parse: " + s)
    return g


def norm_axis(a, rank):
    """Axis a (negative counts from the end) for a value of this rank."""
    a = int(a)
    if a < 0:
        a += rank
    if not 0 <= a < max(rank, 1):
        raise ValueError("axis %d out of range for rank %d" % (a, rank))
    return a


def report(peer, times_ns, reps):
    """Print the protocol's result line from per-run times in nanoseconds."""
    times = sorted(times_ns)
    p90 = times[min(len(times) - 1, max(0, math.ceil(0.9 * len(times)) - 1))]
    emit({"peer": peer, "median_us": statistics.median(times) / 1000.0,
          "p90_us": p90 / 1000.0, "reps": reps})


def protocol_args(doc):
    """The command line every peer takes (README.md); a peer may add options of its own."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--graph", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--peer-name", default=None)
    return ap


def read_run(run_dir):
    """The run's symbol values (bindings.json) and the outputs it wants (outputs.json, or
    None when the file is absent)."""
    with open(os.path.join(run_dir, "bindings.json")) as f:
        syms = {k: int(v) for k, v in json.load(f).items()}
    path = os.path.join(run_dir, "outputs.json")
    wanted = None
    if os.path.exists(path):
        with open(path) as f:
            wanted = json.load(f)
    return syms, wanted
