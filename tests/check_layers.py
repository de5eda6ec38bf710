#!/usr/bin/env python3
"""Layer check: every `#include "..."` of dvm's C sources goes down the layer order.

usage: check_layers.py [SOURCE_DIR]      (default: the tree this script is in)

Reads every *.c, *.h, *.inc and *.def under the layer folders below, resolves each quoted
include as the compiler does (the including file's folder first, then include/, then the
generated headers of the build) and checks the edge against ALLOWED: a layer includes its
own files and the layers listed for it, nothing else. System includes (<...>) are not
checked. Each edge not allowed is printed as

    FILE:LINE: includes X (layer A -> layer B: upward|sideways)

(upward: B is above A in the order; sideways: B is beside or below A but not allowed, as
vm <-> jit). An include that resolves to no file, or to a file outside the layer folders,
is a violation too, and so is <llvm-c/...> outside jit/ or <ffi.h> outside runtime/ffi.c.
Exit status 1 if any violation is found, else 0; the last line is
"N includes checked, M violations".

The back ends (vm/, jit/) take the lowered kernel (kernel/kernel.h) alone, although its
header brings the graph's and the partition's declarations with it: a use in their code
(comments aside) of a graph or partition accessor or type (ir_node, ir_shape, ir_operand,
ir_attr*, ir_dim_*, fu_*, Graph, Node, Partition, Kernel, Dim) is a violation too,
printed as

    FILE:LINE: uses X (the back ends read the lowered kernel alone)

The order, highest first:  tools -> runtime -> {vm, jit} -> kernel -> fusion -> ir
  include/  the public dvm.h: anyone may include it
  onnx/     the ONNX front end: ir/ and include/ only (and its generated onnx.pb-c.h);
            runtime calls it, so runtime (and tools above it) may include it
  vm, jit   siblings: neither includes the other
"""
import os
import re
import sys

# ---- the layers and the edges allowed between them ---------------------------------------

# Layer -> the other layers it may include (its own files are always allowed).
ALLOWED = {
    "include": set(),
    "ir":      {"include"},
    "fusion":  {"ir", "include"},
    "kernel":  {"fusion", "ir", "include"},
    "vm":      {"kernel", "fusion", "ir", "include"},
    "jit":     {"kernel", "fusion", "ir", "include"},
    "onnx":    {"ir", "include"},
    "runtime": {"vm", "jit", "onnx", "kernel", "fusion", "ir", "include"},
    "tools":   {"include"},  # the command line uses the public API alone
    "python":  {"include"},  # so does the Python module
}
# Height in the order, for the label of a violation only (upward: to a higher layer).
RANK = {"include": -1, "ir": 0, "onnx": 1, "fusion": 1, "kernel": 2, "vm": 3, "jit": 3,
        "runtime": 4, "tools": 5, "python": 5}
# System headers that one place alone may include: (prefix of the <...> name, the folder or
# file that may include it).
PRIVATE_SYSTEM = [("llvm-c/", "jit/"), ("ffi.h", "runtime/ffi.c")]
SYSTEM = re.compile(r'^\s*#\s*include\s*<([^>]+)>')
# Headers generated at build time (not in the tree), and the layer each belongs to.
GENERATED = {"onnx.pb-c.h": "onnx"}
EXTENSIONS = (".c", ".h", ".inc", ".def")

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')
# What the back ends may not use: the graph's and the partition's accessors and types.
BACK_ENDS = ("vm", "jit")
GRAPH_USE = re.compile(r'\b(ir_node|ir_shape|ir_operand|ir_attr\w*|ir_dim_\w+|fu_\w+|Graph|Node|Partition|Kernel|Dim)\b')
COMMENT = re.compile(r'/\*.*?\*/|//[^\n]*', re.S)


def code_lines(text):
    """text with its comments and string literals blanked, newlines kept."""
    text = re.sub(r'"(\\.|[^"\\\n])*"', '""', text)
    return COMMENT.sub(lambda m: "\n" * m.group(0).count("\n"), text).split("\n")


def layer_of(root, path):
    """The layer folder that holds path (absolute), or None."""
    rel = os.path.relpath(path, root)
    top = rel.split(os.sep, 1)[0]
    return top if top in ALLOWED and not rel.startswith("..") else None


def resolve(root, src, name):
    """(layer, resolved path or None) of `#include "name"` in file src, as the compiler
    finds it: src's folder, then include/, then the generated headers."""
    for base in (os.path.dirname(src), os.path.join(root, "include")):
        p = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(p):
            return layer_of(root, p), p
    if name in GENERATED:
        return GENERATED[name], None
    return None, None


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                           os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    checked, violations = 0, []
    for layer in sorted(ALLOWED):
        folder = os.path.join(root, layer)
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            for fn in sorted(filenames):
                if not fn.endswith(EXTENSIONS):
                    continue
                src = os.path.join(dirpath, fn)
                rel = os.path.relpath(src, root)
                with open(src, encoding="utf-8", errors="replace") as f:
                    text = f.read()
                lines = text.split("\n")
                if layer in BACK_ENDS:
                    for no, line in enumerate(code_lines(text), 1):
                        for u in GRAPH_USE.finditer(line):
                            violations.append("%s:%d: uses %s (the back ends read the lowered kernel alone)"
                                              % (rel, no, u.group(1)))
                for no, line in enumerate(lines, 1):
                    s = SYSTEM.match(line)
                    for prefix, owner in PRIVATE_SYSTEM if s else ():
                        if s.group(1).startswith(prefix) and not rel.startswith(owner):
                            checked += 1
                            violations.append("%s:%d: includes <%s> (only %s may)" % (rel, no, s.group(1), owner))
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    name = m.group(1)
                    checked += 1
                    to, path = resolve(root, src, name)
                    where = "%s:%d: includes %s" % (rel, no, name)
                    if to is None:
                        why = "not found in the tree" if path is None else "outside the layer folders"
                        violations.append("%s (layer %s -> ?: %s)" % (where, layer, why))
                        continue
                    if to == layer or to in ALLOWED[layer]:
                        continue
                    kind = "upward" if RANK[to] > RANK[layer] else "sideways"
                    violations.append("%s (layer %s -> layer %s: %s)" % (where, layer, to, kind))
    for v in violations:
        print(v)
    print("%d includes checked, %d violations" % (checked, len(violations)))
    return 1 if violations or not checked else 0


if __name__ == "__main__":
    sys.exit(main())
