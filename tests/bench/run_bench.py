#!/usr/bin/env python3
"""dvm bench: the JSON and CSV schemas of docs/format.md, and peers compared honestly.

usage: run_bench.py DVM SCRATCH_DIR

Runs `dvm bench` on small bindings of W1 and W2 (and one .dvm path) with the numpy peer
and a deliberately wrong peer (wrong_peer.py, plugged in through DVM_PEERS), then checks:
every JSON line is a limit line or a result line with the fields docs/format.md names; the
numpy peer matches with a ratio equal to dvm/peer; the wrong peer is reported as a
mismatch; CSV carries the same fields with peers flattened; --sweep bindings and
recompiles are reported; `--lazy` reports its fields, the lazy programs' outputs equal the
graphs' and compile once over two sizes; `--eager` (bench/eager.py) agrees with NumPy; a
model of 100 params runs over 40 sweep values. Ends with "N passed, M failed".
"""
import csv
import io
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/
from support import check, summary  # noqa: E402

DVM, SCRATCH = sys.argv[1], sys.argv[2]
HERE = os.path.dirname(os.path.abspath(__file__))
os.makedirs(SCRATCH, exist_ok=True)



env = dict(os.environ, DVM_PEERS=f"wrong=/usr/bin/python3 {HERE}/wrong_peer.py")
common = ["--sweep", "N=1,3", "--min-time", "0.01", "--budget", "5", "--peers=numpy,wrong"]
r = subprocess.run([DVM, "bench", "W1", "W2", "--format", "json"] + common,
                   capture_output=True, text=True, env=env)
check(r.returncode == 0, f"bench --format json exits 0 (got {r.returncode}: {r.stderr[-500:]})")
lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
limits = {l["limit"]: l for l in lines if "limit" in l}
results = [l for l in lines if "workload" in l]
check(set(limits) == {"triad_dram", "triad_l2", "sgemm_openblas"}, f"limit lines: {sorted(limits)}")
check(limits.get("triad_dram", {}).get("gbps", 0) > 0, "triad_dram has gbps")
check(limits.get("triad_l2", {}).get("gbps", 0) > limits.get("triad_dram", {}).get("gbps", 1e9) * 0,
      "triad_l2 has gbps")
check("gflops" in limits.get("sgemm_openblas", {}), "sgemm_openblas has gflops")
FIELDS = ["workload", "bindings", "threads", "tier", "kernels", "encode_us", "compile_ms",
          "first_run_us", "median_us", "p90_us", "gbps", "pct_bw", "gflops", "recompiles", "peers"]
check(len(results) == 4, f"4 result lines (W1, W2 x N=1,3), got {len(results)}")
for res in results:
    tag = f"{res.get('workload')} {res.get('bindings')}"
    missing = [f for f in FIELDS if f not in res]
    check(not missing, f"{tag}: fields missing: {missing}")
    if missing:
        continue
    check(res["bindings"] in ({"N": 1}, {"N": 3}), f"{tag}: bindings from --sweep")
    check(res["threads"] == 1 and res["tier"] == "auto", f"{tag}: threads 1, tier auto")
    check(res["kernels"] == 1, f"{tag}: W1 and W2 are one kernel each")
    check(0 < res["median_us"] <= res["p90_us"], f"{tag}: 0 < median <= p90")
    check(res["gbps"] > 0 and res["pct_bw"] > 0, f"{tag}: gbps and pct_bw")
    check(res["gflops"] is None, f"{tag}: no matmul, so no gflops")
    check(res["recompiles"] == 0, f"{tag}: new N costs no compiles")
    peers = res["peers"]
    check("numpy" in peers and "wrong" in peers, f"{tag}: peers numpy and wrong: {sorted(peers)}")
    np_ = peers.get("numpy", {})
    check(np_.get("match") is True, f"{tag}: numpy matches dvm: {np_}")
    if np_.get("median_us"):
        check(abs(np_["ratio"] - res["median_us"] / np_["median_us"]) <= 1e-3 * np_["ratio"] + 1e-6,
              f"{tag}: ratio is dvm/peer")
    wr = peers.get("wrong", {})
    check(wr.get("match") is False and wr.get("error"), f"{tag}: the wrong peer is a mismatch: {wr}")

# CSV: same fields, peers flattened
r = subprocess.run([DVM, "bench", "W1", "--format", "csv"] + common, capture_output=True,
                   text=True, env=env)
check(r.returncode == 0, f"bench --format csv exits 0: {r.stderr[-300:]}")
rows = list(csv.DictReader(io.StringIO(r.stdout)))
head = rows[0].keys() if rows else []
for f in [f for f in FIELDS if f != "peers"] + ["numpy_median_us", "numpy_ratio", "numpy_match",
                                                 "wrong_median_us", "wrong_ratio", "wrong_match"]:
    check(f in head, f"csv column {f}")
check(len(rows) == 2 and all(r["wrong_match"] == "false" and r["numpy_match"] == "true" for r in rows),
      f"csv rows report the match of each peer: {rows}")

# a .dvm path as the workload, and a table
g = os.path.join(SCRATCH, "tiny.dvm")
with open(g, "w") as f:
    f.write("graph tiny\ninput x: f32[B, 8]\nparam w: f32[8, 4]\ny = matmul(x, w)\noutput y\n")
r = subprocess.run([DVM, "bench", g, "--sweep", "B=2,5", "--min-time", "0.01", "--format", "json"],
                   capture_output=True, text=True)
res = [json.loads(l) for l in r.stdout.splitlines() if '"workload"' in l]
check(r.returncode == 0 and len(res) == 2 and all(x["gflops"] and x["gflops"] > 0 for x in res),
      f"a .dvm path benches, with gflops for its matmul: {r.stderr[-300:]}")
r = subprocess.run([DVM, "bench", "W1", "--sweep", "N=2", "--min-time", "0.01"], capture_output=True, text=True)
check(r.returncode == 0 and "median" in r.stdout and "W1" in r.stdout, "the table prints")
r = subprocess.run([DVM, "bench", "W99"], capture_output=True, text=True)
check(r.returncode == 1 and "W99" in r.stderr, "an unknown workload is an error naming it")
r = subprocess.run([DVM, "bench", "--format", "xml"], capture_output=True, text=True)
check(r.returncode == 2, "a bad --format is a usage error")
# --lazy: the workloads written op by op against their graphs (docs/lazy.md)
r = subprocess.run([DVM, "bench", "--lazy", "W1", "W3", "--sweep", "N=2,5", "--min-time", "0.01", "--format", "json",
                    "--tier", "vm"], capture_output=True, text=True)
lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
res = [l for l in lines if "workload" in l]
rec = [l for l in lines if "recording" in l]
check(r.returncode == 0 and len(res) == 4, f"bench --lazy: 4 lines (W1, W3 x N=2,5): {r.stderr[-300:]}")
check(len(rec) == 1 and rec[0].get("ops", 0) > 0 and rec[0].get("record_op_us", 0) > 0,
      f"bench --lazy: the recording line: {rec}")
for x in res:
    tag = f"lazy {x.get('workload')} N={x.get('N')}"
    missing = [f for f in ("first_us", "graph_us", "lazy_us", "ratio", "record_op_us", "flush_us", "compiles",
                           "same", "reps", "threads") if f not in x]
    check(not missing, f"{tag}: fields missing: {missing}")
    check(x.get("same") is True, f"{tag}: the lazy program's y is the graph's bit for bit")
    check(x.get("graph_us", 0) > 0 and x.get("lazy_us", 0) > 0 and x.get("record_op_us", 0) > 0, f"{tag}: timings")
    check(abs(x.get("ratio", 0) - x.get("lazy_us", 0) / x.get("graph_us", 1)) <= 1e-3 * x.get("ratio", 1), f"{tag}: ratio")
    check(x.get("compiles") == (1 if x.get("N") == 2 else 0), f"{tag}: one compile for both sizes: {x.get('compiles')}")
# --eager: bench/eager.py through the command, dvm's lazy arrays against NumPy and torch
# (where this build made the Python module: not the sanitizer builds, which link no
# shared library)
pydir = os.path.join(os.path.dirname(os.path.abspath(DVM)), "python")
has_module = os.path.isdir(pydir) and any(f.startswith("dvm") and f.endswith(".so") for f in os.listdir(pydir))
if not has_module:
    print("skip bench --eager: no Python module next to", DVM)
r = not has_module or subprocess.run([DVM, "bench", "--eager", "E1", "E4", "--sweep", "N=2,3", "--min-time", "0.01", "--format", "json"],
                   capture_output=True, text=True)
lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()] if has_module else []
rows = [l for l in lines if "program" in l]
if has_module:
    check(r.returncode == 0 and len(rows) == 4, f"bench --eager: 4 rows (E1, E4 x N=2,3): {r.stderr[-500:]}")
    check(any(l.get("eager") and l.get("record_op_us", 0) > 0 for l in lines), "bench --eager: the recording cost line")
for x in rows:
    tag = f"eager {x.get('program')} N={x.get('N')}"
    check(x.get("dvm_match") and x.get("numpy_match"), f"{tag}: dvm and numpy agree with float64")
    check(x.get("dvm_us", 0) > 0 and x.get("numpy_us", 0) > 0, f"{tag}: timings")
    check(x.get("compiles") == 0, f"{tag}: the timed calls compile nothing ({x.get('compiles')})")
    if x.get("program") == "E4":
        check(x.get("dvm_iterations") == x.get("numpy_iterations"), f"{tag}: the loop stops where NumPy's does")
r = subprocess.run([DVM, "bench", "--lazy", "W4"], capture_output=True, text=True)
check(r.returncode == 2 and "W4" in r.stderr, "bench --lazy without a program for the workload is a usage error")

# a model with more params (100) than any fixed table, swept over more values (40) than one
many = os.path.join(SCRATCH, "many_params.dvm")
with open(many, "w") as f:
    f.write("graph many\ninput x: f32[N, 4]\n")
    f.write("".join("param p%d: f32[4]\n" % i for i in range(100)))
    f.write("h0 = add(x, p0)\n" + "".join("h%d = add(h%d, p%d)\n" % (i, i - 1, i) for i in range(1, 100)))
    f.write("output h99\n")
r = subprocess.run([DVM, "bench", many, "--sweep", "N=" + ",".join(str(n) for n in range(1, 41)),
                    "--format", "json", "--min-time", "0.001", "--budget", "2"], capture_output=True, text=True)
res = [json.loads(l) for l in r.stdout.splitlines() if '"workload"' in l]
check(r.returncode == 0 and len(res) == 40 and [x["bindings"]["N"] for x in res] == list(range(1, 41)),
      f"bench: 100 params, 40 sweep values: {r.returncode}, {len(res)} rows: {r.stderr[-300:]}")
sys.exit(summary())
