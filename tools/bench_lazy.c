/* tools/bench_lazy.c — `dvm bench --lazy`: workloads written op by op through the lazy API
 * against the same workloads compiled as graphs, in one process (docs/lazy.md).
 *
 * Each program below is its workload's graph file (bench/workloads/W*.dvm) written as a
 * host would write it eagerly: the weights wrapped once as constants, and per iteration
 * the request's x wrapped, the ops applied, the intermediates let go, y read. For each
 * size of the sweep (N = 1, 64, 1024 by default) it reports:
 *
 *   first_us   the first iteration at this size: recording, and when the trace is new,
 *              its compile (lowering, bytecode) and first run (packing the weights)
 *   graph_us   the graph's run (dvm_model_run_into) median
 *   lazy_us    an iteration's median: wrap, record, flush, read
 *   ratio      lazy_us / graph_us
 *   rec_op_us  recording per op (wrap and ops, before the read), median
 *   flush_us   the flush's cost beyond the graph's run: median(read) - graph_us
 *   compiles   traces compiled at this size (0: the trace cache covered it)
 *   same       y bit for bit the graph's
 *
 * A first line gives recording alone, with warm caches: a chain of 256 ops recorded and
 * read, the recording's median per op. (In the rows, rec_op_us is measured in the loop,
 * after the kernels of the previous iteration have run: a large workload's data has
 * evicted the recording's code and data from the caches by then.)
 *
 * The graph's runs and the lazy iterations alternate, after both have their native code
 * (dvm_model_wait, dvm_lazy_wait), for at least --min-time and 50 of each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

/* One op of a program: out = op(args..., attrs); names are the program's values. */
typedef struct Step {
  const char *out, *op, *args[3], *attrs;
} Step;

typedef struct Program {
  const char *name;
  const char *params[7]; /* wrapped once as constants, in the graph's param order; NULL after */
  Step steps[8];
} Program;

static const Program programs[] = {
    {"W1", {"a", "b"}, {{"m", "mul", {"x", "a"}, NULL}, {"s", "add", {"m", "b"}, NULL}, {"y", "gelu_tanh", {"s"}, NULL}}},
    {"W2", {0}, {{"y", "softmax", {"x"}, "axis=-1"}}},
    {"W3", {"gamma", "beta"}, {{"y", "layernorm", {"x", "gamma", "beta"}, "axis=-1, eps=1e-5"}}},
    {"W5",
     {"gamma", "beta", "w1", "b1", "w2", "b2"},
     {{"n", "layernorm", {"x", "gamma", "beta"}, "axis=-1, eps=1e-5"},
      {"h", "matmul", {"n", "w1"}, NULL},
      {"hb", "add", {"h", "b1"}, NULL},
      {"g", "gelu", {"hb"}, NULL},
      {"o", "matmul", {"g", "w2"}, NULL},
      {"ob", "add", {"o", "b2"}, NULL},
      {"y", "add", {"x", "ob"}, NULL}}},
};

enum { MAXV = 16, MAXREPS = 4000 };

typedef struct Env { /* a program's values by name */
  const char *name[MAXV];
  dvm_lazy *v[MAXV];
  int n;
} Env;

static dvm_lazy *lookup(const Env *e, const char *name) {
  for (int i = 0; i < e->n; i++)
    if (!strcmp(e->name[i], name)) return e->v[i];
  return NULL;
}

/* One iteration: x wrapped, the program recorded, y read (*y borrowed from *keep, which
 * the caller destroys). Times the recording (t_rec) and the read (t_read). */
static dvm_status iterate(dvm_context *ctx, const Program *p, dvm_lazy *const *params, dvm_tensor *x,
                          dvm_lazy **keep, dvm_tensor **y, double *t_rec, double *t_read, int *nops) {
  Env e = {.n = 0};
  double t0 = tool_now_us();
  dvm_status st = dvm_lazy_wrap(ctx, x, &e.v[0]);
  e.name[e.n++] = "x";
  for (int i = 0; p->params[i]; i++) e.name[e.n] = p->params[i], e.v[e.n++] = params[i];
  int np = e.n;
  *nops = 0;
  for (const Step *s = p->steps; s->out && !st; s++) {
    dvm_lazy *in[3];
    int n = 0;
    while (n < 3 && s->args[n]) in[n] = lookup(&e, s->args[n]), n++;
    st = dvm_lazy_op(ctx, s->op, n, in, s->attrs, &e.v[e.n]);
    e.name[e.n++] = s->out;
    ++*nops;
  }
  double t1 = tool_now_us();
  dvm_lazy *out = st ? NULL : e.v[e.n - 1];
  for (int i = 0; i < e.n; i++) /* intermediates let go before the read: fused */
    if (i < 1 || (i >= np && e.v[i] != out)) dvm_lazy_destroy(e.v[i]);
  if (!st) st = dvm_lazy_tensor(out, y);
  *t_rec = t1 - t0, *t_read = tool_now_us() - t1;
  *keep = out;
  return st;
}

static double median(double *v, int n) { return tool_quantile(v, (size_t)n, 0.5); }

static int bench_program(dvm_context *ctx, const char *bdir, const Program *p, const int64_t *sizes, int nsizes,
                         int threads, dvm_tier tier, double min_time, bool json) {
  char path[1200];
  snprintf(path, sizeof path, "%s/workloads/%s.dvm", bdir, p->name);
  dvm_graph *g = NULL;
  dvm_model *m = NULL;
  dvm_compile_options o = {tier, threads};
  dvm_tensor *pt[6] = {0}, *x = NULL, *gy = NULL;
  dvm_lazy *lp[6] = {0};
  double *tg = malloc(MAXREPS * sizeof *tg), *tl = malloc(MAXREPS * sizeof *tl);
  double *tr = malloc(MAXREPS * sizeof *tr), *tf = malloc(MAXREPS * sizeof *tf);
  int rc = EXIT_ERR, np = 0;
  if (!tg || !tl || !tr || !tf) goto out;
  if (tool_load_graph(ctx, path, &g) || dvm_model_compile(ctx, g, &o, &m)) goto lib;
  np = dvm_model_num_params(m);
  for (int i = 0; i < np; i++) { /* the weights: as `dvm bench` makes them */
    const char *name = dvm_model_param_name(m, i);
    int rank;
    int64_t shape[DVM_MAX_RANK];
    if (!p->params[i] || strcmp(p->params[i], name)) {
      tool_fail(EXIT_ERR, "--lazy: %s's program does not declare param '%s'", p->name, name);
      goto out;
    }
    const char *sym = "N";
    int64_t one = 1; /* params' shapes do not depend on it */
    if (dvm_model_shape(m, name, 0, NULL, NULL, 1, &sym, &one, &rank, shape) ||
        dvm_tensor_create((dvm_dtype)dvm_model_value_dtype(m, name), rank, shape, &pt[i]))
      goto lib;
    dvm_tensor_fill_random(pt[i], tool_name_seed(name, 7));
    if (dvm_model_set_param(m, name, pt[i]) || dvm_lazy_wrap_const(ctx, pt[i], &lp[i])) goto lib;
  }
  for (int si = 0; si < nsizes; si++) {
    int64_t n = sizes[si];
    const char *sym = "N", *in_name = "x";
    int rank;
    int64_t shape[DVM_MAX_RANK];
    dvm_tensor_destroy(x), dvm_tensor_destroy(gy);
    x = gy = NULL;
    if (dvm_model_shape(m, "x", 0, NULL, NULL, 1, &sym, &n, &rank, shape) ||
        dvm_tensor_create(DVM_F32, rank, shape, &x))
      goto lib;
    dvm_tensor_fill_random(x, tool_name_seed("x", 11));
    if (dvm_model_shape(m, "y", 1, &in_name, &x, 0, NULL, NULL, &rank, shape) ||
        dvm_tensor_create(DVM_F32, rank, shape, &gy))
      goto lib;
    dvm_lazy_stats s0, s1;
    dvm_lazy_stats_get(ctx, &s0);
    dvm_lazy *keep;
    dvm_tensor *ly;
    double rec, rd;
    int nops;
    double t0 = tool_now_us();
    if (iterate(ctx, p, lp, x, &keep, &ly, &rec, &rd, &nops)) goto lib;
    double first = tool_now_us() - t0;
    dvm_lazy_destroy(keep);
    dvm_lazy_stats_get(ctx, &s1);
    if (dvm_model_run_into(m, 1, &in_name, &x, &gy)) goto lib;
    dvm_model_wait(m);
    dvm_lazy_wait(ctx);
    int reps = 0;
    bool same = true;
    for (double start = tool_now_us(); reps < MAXREPS && (reps < 50 || tool_now_us() - start < min_time * 1e6); reps++) {
      double a = tool_now_us();
      if (dvm_model_run_into(m, 1, &in_name, &x, &gy)) goto lib;
      tg[reps] = tool_now_us() - a;
      a = tool_now_us();
      if (iterate(ctx, p, lp, x, &keep, &ly, &rec, &rd, &nops)) goto lib;
      tl[reps] = tool_now_us() - a;
      tr[reps] = rec / nops, tf[reps] = rd;
      if (reps == 0)
        same = dvm_tensor_numel(ly) == dvm_tensor_numel(gy) &&
               !memcmp(dvm_tensor_data(ly), dvm_tensor_data(gy), (size_t)dvm_tensor_numel(gy) * sizeof(float));
      dvm_lazy_destroy(keep);
    }
    double mg = median(tg, reps), ml = median(tl, reps), mr = median(tr, reps), mf = median(tf, reps);
    int64_t compiles = s1.misses - s0.misses;
    if (json)
      printf("{\"lazy\": true, \"workload\": \"%s\", \"N\": %lld, \"threads\": %d, \"first_us\": %.3f, "
             "\"graph_us\": %.3f, \"lazy_us\": %.3f, \"ratio\": %.4f, \"record_op_us\": %.4f, \"flush_us\": %.3f, "
             "\"compiles\": %lld, \"same\": %s, \"reps\": %d}\n",
             p->name, (long long)n, threads, first, mg, ml, ml / mg, mr, mf - mg, (long long)compiles,
             same ? "true" : "false", reps);
    else
      printf("%-8s %6lld %11.1f %10.2f %10.2f %7.3f %10.3f %9.2f %9lld %5s\n", p->name, (long long)n, first, mg, ml,
             ml / mg, mr, mf - mg, (long long)compiles, same ? "yes" : "NO");
  }
  rc = 0;
  goto out;
lib:
  rc = tool_lib_fail();
out:
  for (int i = 0; i < np; i++) dvm_lazy_destroy(lp[i]);
  dvm_model_destroy(m);
  for (int i = 0; i < np; i++) dvm_tensor_destroy(pt[i]);
  dvm_tensor_destroy(x), dvm_tensor_destroy(gy);
  dvm_graph_destroy(g);
  free(tg), free(tl), free(tr), free(tf);
  return rc;
}

/* Recording alone, caches warm: a program of 256 ops (a chain of mul, add, tanh over a
 * [64] x and two [64] constants, each result let go but the last) recorded REPS times,
 * each time read (the flush is not timed). The median per op. */
static int bench_recording(dvm_context *ctx, bool json) {
  enum { OPS = 256, REPS = 200 };
  static const char *const ops[] = {"mul", "add", "tanh"};
  int64_t n = 64;
  dvm_tensor *xt = NULL, *at = NULL;
  dvm_lazy *a = NULL;
  double *t = malloc(REPS * sizeof *t);
  int rc = EXIT_ERR;
  if (!t || dvm_tensor_create(DVM_F32, 1, &n, &xt) || dvm_tensor_create(DVM_F32, 1, &n, &at)) goto lib;
  dvm_tensor_fill_random(xt, 1), dvm_tensor_fill_random(at, 2);
  if (dvm_lazy_wrap_const(ctx, at, &a)) goto lib;
  for (int r = 0; r < REPS; r++) {
    dvm_lazy *x, *v, *y;
    double t0 = tool_now_us();
    if (dvm_lazy_wrap(ctx, xt, &x)) goto lib;
    v = x;
    for (int i = 0; i < OPS; i++) {
      const char *op = ops[i % 3];
      dvm_lazy *in[2] = {v, a};
      if (dvm_lazy_op(ctx, op, op[0] == 't' ? 1 : 2, in, NULL, &y)) goto lib;
      dvm_lazy_destroy(v);
      v = y;
    }
    t[r] = (tool_now_us() - t0) / OPS;
    dvm_tensor *out;
    if (dvm_lazy_tensor(v, &out)) goto lib;
    dvm_lazy_destroy(v);
  }
  double m = median(t, REPS);
  if (json) printf("{\"lazy\": true, \"recording\": \"chain\", \"ops\": %d, \"record_op_us\": %.4f}\n", OPS, m);
  else printf("recording alone (a chain of %d ops, caches warm): %.3f us per op\n", OPS, m);
  rc = 0;
  goto out;
lib:
  rc = tool_lib_fail();
out:
  dvm_lazy_destroy(a);
  dvm_tensor_destroy(xt), dvm_tensor_destroy(at);
  free(t);
  return rc;
}

int tool_bench_lazy(const char *bdir, const char *const *work, int nwork, const int64_t *sizes, int nsizes,
                    int threads, dvm_tier tier, double min_time, bool json) {
  static const char *const all[] = {"W1", "W2", "W3", "W5"};
  static const int64_t default_sizes[] = {1, 64, 1024};
  if (!nwork) work = all, nwork = 4;
  if (!nsizes) sizes = default_sizes, nsizes = 3;
  const Program *chosen[8];
  for (int i = 0; i < nwork; i++) {
    chosen[i] = NULL;
    for (size_t k = 0; k < sizeof programs / sizeof *programs; k++)
      if (!strcmp(programs[k].name, work[i])) chosen[i] = &programs[k];
    if (!chosen[i] || i >= 8) return tool_fail(EXIT_USAGE, "--lazy: no program for '%s' (W1 W2 W3 W5)", work[i]);
  }
  dvm_context *ctx;
  if (dvm_context_create(&ctx)) return tool_lib_fail();
  dvm_lazy_options lo = {.tier = tier, .threads = threads};
  if (dvm_context_set_lazy_options(ctx, &lo)) return dvm_context_destroy(ctx), tool_lib_fail();
  if (!json)
    printf("dvm bench --lazy: %d thread%s, tier %s; lazy: the workload written op by op (x wrapped per iteration,\n"
           "weights wrapped once as constants); graph: the workload's graph file compiled as a model\n",
           threads, threads == 1 ? "" : "s",
           tier == DVM_TIER_VM ? "vm" : tier == DVM_TIER_LLVM ? "llvm" : tier == DVM_TIER_REF ? "ref" : "auto");
  int rc = bench_recording(ctx, json);
  if (!json && !rc)
    printf("%-8s %6s %11s %10s %10s %7s %10s %9s %9s %5s\n", "workload", "N", "first_us", "graph_us", "lazy_us",
           "ratio", "rec_op_us", "flush_us", "compiles", "same");
  for (int i = 0; i < nwork && !rc; i++)
    rc = bench_program(ctx, bdir, chosen[i], sizes, nsizes, threads, tier, min_time, json);
  dvm_context_destroy(ctx);
  return rc;
}
