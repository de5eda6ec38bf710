/* tests/unit/test_soak.c — concurrency soak: eight threads run models of one context at
 * random bindings in the default tier while its background compiler tiers their kernels
 * up; every output is compared with the reference tier's at the same inputs. Meanwhile
 * two models are compiled at once on one context, and another thread compiles models and
 * destroys them at once, with their native compiles in flight. Built with
 * ThreadSanitizer (`make test-tsan`), a data race is a failure; in the other builds it is
 * a run of the same paths under ASan and without sanitizers.
 *
 * DVM_SOAK_RUNS sets the runs per thread before it waits for the tier-up (default 60). */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dvm.h"
#include "check.h"

enum { THREADS = 8, CHURN = 24 };

typedef struct Case {
  const char *file;
  dvm_graph *g;
  dvm_model *ref, *fused; /* the reference tier; the default (auto) tier */
  int nparams;
  dvm_tensor *params[16];
} Case;

static const char *const files[] = {"bench/workloads/W2.dvm", "bench/workloads/W3.dvm", "bench/workloads/W6.dvm",
                                    "tests/graphs/fuse_attention.dvm", "tests/graphs/fuse_norms.dvm",
                                    "tests/graphs/gemm_small.dvm"};
enum { NCASES = sizeof files / sizeof *files };
static Case cases[NCASES];
static dvm_context *ctx;
static int runs_per_thread = 60;
static atomic_int failures, runs_done, runs_native;
static atomic_bool stop_churn;
static pthread_mutex_t say = PTHREAD_MUTEX_INITIALIZER;

static void fail(const char *fmt, const char *a, const char *b) {
  if (atomic_fetch_add(&failures, 1) < 10) {
    pthread_mutex_lock(&say);
    printf("FAIL soak: ");
    printf(fmt, a, b);
    printf("\n");
    pthread_mutex_unlock(&say);
  }
}

static uint64_t next(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Outputs a (fused) and r (reference) agree: integers and bools exactly, floats within
 * 1e-4 relative and 1e-4 of the larger of 1 and the output's RMS absolute (a sum of 1024
 * inputs in [-1, 1) that cancels to 0.01 is off by ~1e-6 in f32), NaN where it has NaN.
 * What a race breaks is off by far more. */
static bool agree(const dvm_tensor *a, const dvm_tensor *r) {
  int64_t n = dvm_tensor_numel(r);
  if (dvm_tensor_numel(a) != n || dvm_tensor_dtype(a) != dvm_tensor_dtype(r)) return false;
  if (dvm_tensor_dtype(r) != DVM_F32) {
    for (int64_t i = 0; i < n; i++)
      if (dvm_tensor_get_i64(a, i) != dvm_tensor_get_i64(r, i)) return false;
    return true;
  }
  const float *x = dvm_tensor_data((dvm_tensor *)a), *y = dvm_tensor_data((dvm_tensor *)r);
  double ss = 0;
  for (int64_t i = 0; i < n; i++) ss += isfinite(y[i]) ? (double)y[i] * y[i] : 0;
  double rms = n ? sqrt(ss / (double)n) : 0;
  for (int64_t i = 0; i < n; i++) {
    if (isnan(y[i]) != isnan(x[i])) return false;
    if (!isnan(y[i]) && fabs((double)x[i] - y[i]) > 1e-4 * fabs(y[i]) + 1e-4 * (rms > 1 ? rms : 1)) return false;
  }
  return true;
}

/* One run of case c at symbol values from s: inputs made for them, the fused and the
 * reference model run on the same inputs, outputs compared. */
static void one_run(Case *c, uint64_t *s) {
  dvm_model *m = c->fused;
  int ns = dvm_model_num_symbols(m), ni = dvm_model_num_inputs(m), no = dvm_model_num_outputs(m);
  const char *sn[8], *in[16];
  int64_t sv[8];
  dvm_tensor *it[16] = {0}, *out[16] = {0}, *ref[16] = {0};
  if (ns > 8 || ni > 16 || no > 16) {
    fail("%s: more symbols, inputs or outputs than the soak holds%s", c->file, "");
    return;
  }
  for (int i = 0; i < ns; i++) sn[i] = dvm_model_symbol_name(m, i), sv[i] = 1 + (int64_t)(next(s) % 9);
  bool ok = true;
  for (int i = 0; i < ni && ok; i++) {
    int rank;
    int64_t shape[DVM_MAX_RANK];
    in[i] = dvm_model_input_name(m, i);
    ok = dvm_model_shape(m, in[i], 0, NULL, NULL, ns, sn, sv, &rank, shape) == DVM_OK &&
         dvm_tensor_create((dvm_dtype)dvm_model_value_dtype(m, in[i]), rank, shape, &it[i]) == DVM_OK;
    if (ok) dvm_tensor_fill_random(it[i], next(s));
  }
  if (!ok) fail("%s: inputs not made: %s", c->file, dvm_last_error());
  else if (dvm_model_run(m, ni, in, it, out) != DVM_OK) fail("%s: fused run: %s", c->file, dvm_last_error());
  else if (dvm_model_run(c->ref, ni, in, it, ref) != DVM_OK) fail("%s: reference run: %s", c->file, dvm_last_error());
  else
    for (int o = 0; o < no; o++)
      if (!agree(out[o], ref[o])) fail("%s: output %s differs from the reference", c->file, dvm_model_output_name(m, o));
  dvm_stats st;
  dvm_model_stats(m, &st);
  atomic_fetch_add(&runs_done, 1);
  if (st.native_kernels == st.kernels) atomic_fetch_add(&runs_native, 1);
  for (int i = 0; i < 16; i++) dvm_tensor_destroy(it[i]), dvm_tensor_destroy(out[i]), dvm_tensor_destroy(ref[i]);
}

static bool all_native(void) {
  for (int i = 0; i < NCASES; i++) {
    dvm_stats st;
    dvm_model_stats(cases[i].fused, &st);
    if (st.native_kernels < st.kernels) return false;
  }
  return true;
}

/* runs_per_thread runs, then on until every model runs native code (at most two
 * minutes), then ten more: runs before, during and after the tier-up. */
static void *runner(void *arg) {
  uint64_t s = (uint64_t)(uintptr_t)arg * 7919 + 1;
  for (int r = 0; r < runs_per_thread; r++) one_run(&cases[next(&s) % NCASES], &s);
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  do {
    one_run(&cases[next(&s) % NCASES], &s);
    clock_gettime(CLOCK_MONOTONIC, &t);
  } while (!all_native() && t.tv_sec - t0.tv_sec < 120);
  for (int r = 0; r < 10; r++) one_run(&cases[next(&s) % NCASES], &s);
  return NULL;
}

/* Models compiled and destroyed at once: their kernels' native compiles are requested,
 * and the model goes while the background compiler may hold them. */
static void *churn(void *arg) {
  (void)arg;
  dvm_compile_options opt = {.tier = DVM_TIER_AUTO, .threads = 1};
  for (int k = 0; k < CHURN && !atomic_load(&stop_churn); k++) {
    dvm_model *m = NULL;
    if (dvm_model_compile(ctx, cases[k % NCASES].g, &opt, &m) != DVM_OK) fail("%s: churn compile: %s", cases[k % NCASES].file, dvm_last_error());
    dvm_model_destroy(m);
  }
  return NULL;
}

/* Case i's models and params. */
static void *make_case(void *arg) {
  Case *c = &cases[(uintptr_t)arg];
  c->file = files[(uintptr_t)arg];
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", DVM_SOURCE_DIR, c->file);
  dvm_compile_options fo = {.tier = DVM_TIER_AUTO, .threads = 2}, ro = {.tier = DVM_TIER_REF, .threads = 1};
  if (dvm_graph_load(ctx, path, &c->g) != DVM_OK || dvm_model_compile(ctx, c->g, &fo, &c->fused) != DVM_OK ||
      dvm_model_compile(ctx, c->g, &ro, &c->ref) != DVM_OK) {
    fail("%s: %s", c->file, dvm_last_error());
    return NULL;
  }
  int np = dvm_model_num_params(c->fused), ns = dvm_model_num_symbols(c->fused);
  const char *sn[8];
  int64_t one[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  for (int i = 0; i < ns && i < 8; i++) sn[i] = dvm_model_symbol_name(c->fused, i);
  for (int i = 0; i < np && i < 16; i++) { /* params of constant shapes (every case's) */
    const char *name = dvm_model_param_name(c->fused, i);
    int rank;
    int64_t shape[DVM_MAX_RANK];
    if (dvm_model_shape(c->fused, name, 0, NULL, NULL, ns < 8 ? ns : 8, sn, one, &rank, shape) != DVM_OK ||
        dvm_tensor_create((dvm_dtype)dvm_model_value_dtype(c->fused, name), rank, shape, &c->params[i]) != DVM_OK) {
      fail("%s: param: %s", c->file, dvm_last_error());
      continue;
    }
    dvm_tensor_fill_random(c->params[i], 1000 + (uint64_t)i);
    c->nparams = i + 1;
    if (dvm_model_set_param(c->fused, name, c->params[i]) || dvm_model_set_param(c->ref, name, c->params[i]))
      fail("%s: set param: %s", c->file, dvm_last_error());
  }
  return NULL;
}

int main(void) {
  /* this test counts compiles and tier-up in this process: kernels an earlier process
     left in the object cache on disk would be loads instead */
  setenv("DVM_CACHE_DIR", "off", 1);
  const char *e = getenv("DVM_SOAK_RUNS");
  if (e && atoi(e) > 0) runs_per_thread = atoi(e);
  CHECK(dvm_context_create(&ctx) == DVM_OK, "%s", dvm_last_error());
  /* every case compiled on its own thread: several compiles on one context at once */
  pthread_t mk[NCASES];
  for (uintptr_t i = 0; i < NCASES; i++) CHECK(pthread_create(&mk[i], NULL, make_case, (void *)i) == 0, "thread");
  for (int i = 0; i < NCASES; i++) pthread_join(mk[i], NULL);
  CHECK(atomic_load(&failures) == 0, "the models were not all made");
  if (atomic_load(&failures)) return CHECK_SUMMARY();
  pthread_t th[THREADS], ch;
  CHECK(pthread_create(&ch, NULL, churn, NULL) == 0, "thread");
  for (uintptr_t i = 0; i < THREADS; i++) CHECK(pthread_create(&th[i], NULL, runner, (void *)i) == 0, "thread");
  for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
  atomic_store(&stop_churn, true);
  pthread_join(ch, NULL);
  int before = atomic_load(&runs_done) - atomic_load(&runs_native);
  printf("soak: %d runs on %d threads, %d of them before their model's kernels were all native\n",
         atomic_load(&runs_done), THREADS, before);
  CHECK(before > 0 && before < atomic_load(&runs_done), "runs before and after the tier-up: %d of %d before", before,
        atomic_load(&runs_done));
  CHECK(atomic_load(&failures) == 0, "%d failures", atomic_load(&failures));
  /* after the soak, each model's kernels all reach native code */
  for (int i = 0; i < NCASES; i++) {
    dvm_stats st;
    dvm_model_wait(cases[i].fused);
    dvm_model_stats(cases[i].fused, &st);
    CHECK(st.native_kernels == st.kernels, "%s: %lld of %lld kernels native", files[i], (long long)st.native_kernels,
          (long long)st.kernels);
  }
  for (int i = 0; i < NCASES; i++) {
    dvm_model_destroy(cases[i].fused), dvm_model_destroy(cases[i].ref);
    for (int p = 0; p < cases[i].nparams; p++) dvm_tensor_destroy(cases[i].params[p]);
    dvm_graph_destroy(cases[i].g);
  }
  dvm_context_destroy(ctx);
  return CHECK_SUMMARY();
}
