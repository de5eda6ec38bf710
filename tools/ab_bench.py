#!/usr/bin/python3
"""A/B of two dvm binaries on the bundled workloads: `dvm bench W1..W8 --format csv` run by
each binary in turn (old, new, then new, old in the next round, for every thread count),
the median over the rounds of each cell's median_us and first_run_us, and their ratios.
For refactorings that must not change speed; OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are
removed from the benches' environment (they halve OpenBLAS, whose sgemm the bench
measures as a limit).

usage: /usr/bin/python3 tools/ab_bench.py OLD_DVM NEW_DVM [ROUNDS=3] [THREADS=1,2]
Prints a Markdown table (one row per workload, binding and thread count) and, per thread
count, the median, least and largest new/old ratio of the cells' medians, the median
ratio of their first runs and, per workload, of their encode_us (each bench process
compiles a workload once: a first compile's time to bytecode); the progress of the rounds
goes to standard error."""
import csv, io, os, statistics, subprocess, sys, time
OLD, NEW = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
threads = sys.argv[4].split(',') if len(sys.argv) > 4 else ['1', '2']
env = dict(os.environ); env.pop('OPENBLAS_CORETYPE', None); env.pop('OPENBLAS_L2_SIZE', None)
W = ['W%d' % i for i in range(1, 9)]
data = {}  # (binary, workload, bindings, threads) -> {field: [values]}
for r in range(rounds):
    for t in threads:
        order = (OLD, NEW) if r % 2 == 0 else (NEW, OLD)
        for b in order:
            t0 = time.time()
            out = subprocess.run([b, 'bench'] + W + ['--threads', t, '--format', 'csv'], capture_output=True, text=True, env=env)
            if out.returncode:
                print('FAILED', b, t, out.stderr[-500:]); continue
            for row in csv.DictReader(io.StringIO(out.stdout)):
                if not row.get('median_us'): continue
                key = (b, row['workload'], row['bindings'], t)
                d = data.setdefault(key, {})
                for f in ('median_us', 'first_run_us', 'encode_us'):
                    try: d.setdefault(f, []).append(float(row[f]))
                    except (ValueError, KeyError): pass
            print('round %d threads %s %s: %.0f s' % (r, t, 'old' if b == OLD else 'new', time.time() - t0), file=sys.stderr, flush=True)
print('| workload | bindings | threads | old median us | new median us | new/old | old first run us | new first run us | new/old |')
print('|---|---|---|---|---|---|---|---|---|')
ratios, fratios, eratios = {}, {}, {}
for (b, w, bi, t), d in sorted(data.items(), key=lambda kv: (kv[0][3], kv[0][1], kv[0][2])):
    if b != OLD: continue
    n = data.get((NEW, w, bi, t))
    if not n or not d.get('median_us') or not n.get('median_us'): continue
    om, nm = statistics.median(d['median_us']), statistics.median(n['median_us'])
    of, nf = statistics.median(d['first_run_us']), statistics.median(n['first_run_us'])
    ratios.setdefault(t, []).append(nm / om); fratios.setdefault(t, []).append(nf / of)
    if d.get('encode_us') and n.get('encode_us') and statistics.median(d['encode_us']) > 0:
        eratios.setdefault(t, {})[w] = statistics.median(n['encode_us']) / statistics.median(d['encode_us'])
    print('| %s | %s | %s | %.2f | %.2f | %.3f | %.1f | %.1f | %.3f |' % (w, bi, t, om, nm, nm / om, of, nf, nf / of))
for t in ratios:
    rs = sorted(ratios[t]); fs = sorted(fratios[t])
    print('threads %s: %d cells, median new/old %.3f (min %.3f, max %.3f); first runs median %.3f' % (t, len(rs), statistics.median(rs), rs[0], rs[-1], statistics.median(fs)))
    if eratios.get(t):
        es = eratios[t]
        print('threads %s: encode_us new/old per workload %s; median %.3f' % (t, ' '.join('%s %.3f' % (w, es[w]) for w in sorted(es)), statistics.median(es.values())))
