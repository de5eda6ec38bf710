/* bench/tierup_load.c — does tier-up finish while every core runs the model?
 *
 * In the auto tier a model runs bytecode at once and its kernels move to native code as
 * the background compiler finishes them. A server under steady load keeps every core busy
 * running the model while that happens; this measures, for one graph at one binding:
 *
 *   idle      a fresh context (no cached code), the model compiled in the auto tier and
 *             nothing running: the time until every kernel is native (dvm_model_wait)
 *   bytecode  the model in the vm tier, run back to back: runs per second
 *   loaded    a fresh context again, the auto tier, the model run back to back from the
 *             moment it is compiled: the time until every kernel is native, and the runs
 *             per second meanwhile
 *
 * and prints loaded / idle (the goal: at most 3) and the cores the runs lost meanwhile,
 * C × (1 − loaded rate / bytecode rate), C the cores the runs' threads occupy (at most 1;
 * below 0 when the kernels that are native already make the runs faster than bytecode). Idle and loaded alternate over
 * the trials; the figures are medians.
 *
 * usage: tierup_load GRAPH [-s SYM=V]... [--threads T] [--trials K] [--cache DIR]
 *   T: the runs' threads (default 0: one per core, every core busy); K: default 5.
 *   DIR: the object cache the contexts use (default none: the compiles are measured).
 *   With a DIR that holds the graph's kernels, "idle" is a warm start: from
 *   dvm_model_compile to every kernel native with no LLVM at all (run one trial per
 *   process for a new process's). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dvm.h"

enum { MAXIO = 256, MAXSYM = 8 };
#define USAGE "usage: tierup_load GRAPH [-s SYM=V]... [--threads T] [--trials K] [--cache DIR]\n"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp);
  return v[n / 2];
}

static int fail(const char *what) {
  fprintf(stderr, "tierup_load: %s: %s\n", what, dvm_last_error());
  return 1;
}

/* The binding: symbol values, and the inputs and params made for them (random data, an
 * ONNX model's initializers as they are). */
typedef struct Bind {
  int nsym, nin, npar;
  const char *sym[MAXSYM];
  int64_t val[MAXSYM];
  char *in_name[MAXIO], *par_name[MAXIO];
  dvm_tensor *in[MAXIO], *par[MAXIO];
} Bind;

static int make_tensor(const dvm_model *m, const char *name, const Bind *b, uint64_t seed, dvm_tensor **out) {
  int rank;
  int64_t shape[DVM_MAX_RANK];
  if (dvm_model_shape(m, name, 0, NULL, NULL, b->nsym, b->sym, b->val, &rank, shape) ||
      dvm_tensor_create((dvm_dtype)dvm_model_value_dtype(m, name), rank, shape, out))
    return fail(name);
  dvm_tensor_fill_random(*out, seed);
  return 0;
}

static int make_binding(const dvm_model *m, const dvm_graph *g, Bind *b) {
  b->nin = dvm_model_num_inputs(m), b->npar = dvm_model_num_params(m);
  if (b->nin > MAXIO || b->npar > MAXIO) return fprintf(stderr, "tierup_load: too many inputs or params\n"), 1;
  for (int i = 0; i < b->npar; i++) {
    b->par_name[i] = strdup(dvm_model_param_name(m, i));
    dvm_tensor *init = dvm_graph_param_value(g, b->par_name[i]);
    if (init) b->par[i] = NULL; /* the graph keeps it */
    else if (make_tensor(m, b->par_name[i], b, 1000 + (uint64_t)i, &b->par[i])) return 1;
  }
  for (int i = 0; i < b->nin; i++) {
    b->in_name[i] = strdup(dvm_model_input_name(m, i));
    if (make_tensor(m, b->in_name[i], b, 1 + (uint64_t)i, &b->in[i])) return 1;
  }
  return 0;
}

/* The model in a tier; its params bound if b is not NULL. */
static dvm_model *compile(dvm_context *ctx, const dvm_graph *g, const Bind *b, dvm_tier tier, int threads) {
  dvm_compile_options o = {tier, threads};
  dvm_model *m;
  if (dvm_model_compile(ctx, g, &o, &m)) return fail("compile"), NULL;
  for (int i = 0; b && i < b->npar; i++) {
    dvm_tensor *t = b->par[i] ? b->par[i] : dvm_graph_param_value(g, b->par_name[i]);
    if (dvm_model_set_param(m, b->par_name[i], t)) return fail(b->par_name[i]), dvm_model_destroy(m), NULL;
  }
  return m;
}

static int run(dvm_model *m, const Bind *b) {
  dvm_tensor *out[MAXIO];
  int nout = dvm_model_num_outputs(m);
  if (nout > MAXIO) return 1;
  if (dvm_model_run(m, b->nin, (const char *const *)b->in_name, b->in, out)) return fail("run");
  for (int i = 0; i < nout; i++) dvm_tensor_destroy(out[i]);
  return 0;
}

static bool all_native(const dvm_model *m) {
  dvm_stats s;
  dvm_model_stats(m, &s);
  return s.native_kernels == s.kernels;
}

int main(int argc, char **argv) {
  /* the compiles are what is measured: code an earlier process left on disk would load
     (--cache DIR: the loads are) */
  const char *cache = "off";
  Bind b = {0};
  const char *path = NULL;
  int threads = 0, trials = 5;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-s") && i + 1 < argc && b.nsym < MAXSYM) {
      char *eq = strchr(argv[++i], '=');
      if (!eq) return fprintf(stderr, "tierup_load: -s wants SYM=V\n"), 2;
      *eq = '\0', b.sym[b.nsym] = argv[i], b.val[b.nsym++] = strtoll(eq + 1, NULL, 10);
    } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--trials") && i + 1 < argc) trials = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--cache") && i + 1 < argc) cache = argv[++i];
    else if (!path && argv[i][0] != '-') path = argv[i];
    else return fprintf(stderr, "%s", USAGE), 2;
  }
  if (!path || trials < 1 || trials > 100) return fprintf(stderr, "%s", USAGE), 2;
  setenv("DVM_CACHE_DIR", cache, 1);
  dvm_context *gctx;
  dvm_graph *g;
  if (dvm_context_create(&gctx)) return fail("context");
  size_t n = strlen(path);
  dvm_status st = n > 5 && !strcmp(path + n - 5, ".onnx") ? dvm_graph_load_onnx(gctx, path, &g)
                                                           : dvm_graph_load(gctx, path, &g);
  if (st) return fail(path);

  double idle[100], loaded[100], rate[100], vm_rate = 0;
  int64_t kernels = 0;
  for (int t = 0; t < trials; t++) {
    /* idle: nothing runs while the kernels compile */
    dvm_context *ctx;
    if (dvm_context_create(&ctx)) return fail("context");
    double t0 = now_s();
    dvm_model *m = compile(ctx, g, NULL, DVM_TIER_AUTO, threads);
    if (!m) return 1;
    dvm_model_wait(m);
    idle[t] = now_s() - t0;
    if (!all_native(m)) return fprintf(stderr, "tierup_load: not every kernel compiles to native code\n"), 1;
    dvm_stats s;
    dvm_model_stats(m, &s);
    kernels = s.kernels;
    if (!t && make_binding(m, g, &b)) return 1; /* from the first model: its names, shapes */
    dvm_model_destroy(m);
    dvm_context_destroy(ctx);
    if (!t) { /* bytecode alone, once: back to back for max(2 × idle, 1 s) */
      if (dvm_context_create(&ctx) || !(m = compile(ctx, g, &b, DVM_TIER_VM, threads))) return 1;
      long runs = 0;
      double span = 2 * idle[0] > 1 ? 2 * idle[0] : 1;
      t0 = now_s();
      while (now_s() - t0 < span)
        if (run(m, &b)) return 1;
        else runs++;
      vm_rate = (double)runs / (now_s() - t0);
      dvm_model_destroy(m);
      dvm_context_destroy(ctx);
    }
    /* loaded: the runs start as soon as the model is compiled */
    if (dvm_context_create(&ctx)) return fail("context");
    t0 = now_s();
    if (!(m = compile(ctx, g, &b, DVM_TIER_AUTO, threads))) return 1;
    long runs = 0;
    double cap = 60 + 30 * idle[t];
    while (!all_native(m) && now_s() - t0 < cap)
      if (run(m, &b)) return 1;
      else runs++;
    loaded[t] = now_s() - t0;
    rate[t] = (double)runs / loaded[t];
    if (!all_native(m)) fprintf(stderr, "tierup_load: trial %d: not native after %.0f s\n", t, cap);
    dvm_model_destroy(m);
    dvm_context_destroy(ctx);
  }
  long cores = sysconf(_SC_NPROCESSORS_ONLN); /* the runs' share of the machine */
  if (threads && threads < cores) cores = threads;
  double li = median(loaded, trials) / median(idle, trials), r = median(rate, trials);
  printf("%s: %lld kernels; idle tier-up %.0f ms; under load %.0f ms (%.2f x idle, goal <= 3)\n", path,
         (long long)kernels, 1e3 * median(idle, trials), 1e3 * median(loaded, trials), li);
  printf("runs per second: bytecode alone %.1f, during tier-up under load %.1f (%.2f of bytecode alone)", vm_rate, r,
         r / vm_rate);
  printf("; cores lost %.2f of %ld (goal <= 1)\n", (double)cores * (1 - r / vm_rate), cores);
  for (int i = 0; i < b.nin; i++) free(b.in_name[i]), dvm_tensor_destroy(b.in[i]);
  for (int i = 0; i < b.npar; i++) free(b.par_name[i]), dvm_tensor_destroy(b.par[i]);
  dvm_graph_destroy(g);
  dvm_context_destroy(gctx);
  return 0;
}
