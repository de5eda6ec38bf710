#!/usr/bin/env python3
"""Charts for `dvm bench --plot DIR`: one PNG per workload, run time against the swept
symbol on log-log axes, dvm against each peer that ran.

usage: plot.py BENCH.jsonl OUT_DIR   (Debian's python3-matplotlib)
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

src, out = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(src) if l.strip()]
limits = {r["limit"]: r for r in rows if "limit" in r}
results = [r for r in rows if "workload" in r and "median_us" in r]
by_workload = {}
for r in results:
    by_workload.setdefault(r["workload"], []).append(r)

for w, rs in by_workload.items():
    syms = list(rs[0]["bindings"])
    # x: the product of the symbol values (tokens for W7's N·S), labelled by the binding
    def x_of(r):
        p = 1
        for s in syms:
            p *= max(1, r["bindings"][s])
        return p

    rs.sort(key=x_of)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot([x_of(r) for r in rs], [r["median_us"] for r in rs], "o-", lw=2,
            label=f"dvm ({rs[0]['tier']})")
    peers = sorted({p for r in rs for p in r.get("peers", {})})
    for p in peers:
        pts = [(x_of(r), r["peers"][p]["median_us"]) for r in rs
               if r["peers"].get(p, {}).get("median_us")]
        if pts:
            bad = any(r["peers"].get(p, {}).get("match") is False for r in rs)
            ax.plot(*zip(*pts), "s--", label=p + (" (MISMATCH)" if bad else ""))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(" x ".join(syms) if syms else "binding")
    ax.set_ylabel("median run time (us)")
    threads = rs[0]["threads"]
    bw = limits.get("triad_dram", {}).get("gbps")
    ax.set_title(f"{w}: {threads} thread{'s' if threads > 1 else ''}"
                 + (f", DRAM triad {bw:.0f} GB/s" if bw else ""))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, f"{w.replace('/', '_')}.png"), dpi=110)
    plt.close(fig)
print(f"wrote {len(by_workload)} charts to {out}")
