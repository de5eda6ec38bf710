/* tests/unit/test_code_cache.c — the bounded in-memory code cache (jit/llvm.c, eviction).
 *
 * A context whose limit is small: models of distinct kernels (y = x·c + 1 for a new c each
 * time) compiled in the llvm tier, run and destroyed one after another keep the code no
 * model holds under the limit once each is destroyed (all the resident code under the
 * limit plus what the one live model holds), with evictions counted, every result right;
 * a kernel whose code was evicted is compiled again when a model asks for it. A live
 * model's code is never evicted: a model compiled first keeps running right throughout.
 * Then four threads compile, run and destroy models over a small set of kernels at once
 * under a tiny limit, so that entries are evicted, re-requested and recompiled while the
 * others run (built with ThreadSanitizer by `make test-tsan` too).
 *
 * DVM_TEST_KERNELS and DVM_TEST_LIMIT_KB set the distinct kernels and the limit (default
 * 120 under 48 KB; `DVM_TEST_KERNELS=10000 DVM_TEST_LIMIT_KB=4096` is the long run: objects
 * are about 1.3 KB, so ten thousand fit under 16 MB without an eviction). */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dvm.h"

#include "check.h"

enum { THREADS = 4, ROUNDS = 30, SMALL_SET = 6 };

static dvm_context *ctx;
static dvm_tensor *x;
static atomic_int wrong;

/* y = x·c + 1 over f32[N, 16]: its kernel's key depends on c. */
static dvm_model *model_for(double c) {
  char text[256];
  snprintf(text, sizeof text, "graph g\ninput x: f32[N, 16]\nm = mul(x, %.17g)\ny = add(m, 1.0)\noutput y\n", c);
  dvm_graph *g;
  dvm_model *m = NULL;
  dvm_compile_options o = {DVM_TIER_LLVM, 1};
  if (dvm_graph_parse(ctx, text, strlen(text), "g.dvm", &g) == DVM_OK) {
    if (dvm_model_compile(ctx, g, &o, &m) != DVM_OK) m = NULL;
    dvm_graph_destroy(g);
  }
  return m;
}

/* Does model m (for c) compute x·c + 1? */
static bool right(dvm_model *m, double c) {
  const char *names[] = {"x"};
  dvm_tensor *y = NULL;
  bool ok = dvm_model_run(m, 1, names, &x, &y) == DVM_OK;
  for (int64_t i = 0; ok && i < dvm_tensor_numel(x); i++) {
    float want = (float)dvm_tensor_get_f64(x, i) * (float)c + 1.0f;
    ok = fabs(dvm_tensor_get_f64(y, i) - want) <= 1e-6 * (1 + fabs(want));
  }
  dvm_tensor_destroy(y);
  return ok;
}

static dvm_stats stats_of(dvm_model *m) {
  dvm_stats s;
  dvm_model_stats(m, &s);
  return s;
}

static void *churn(void *arg) {
  int k = (int)(intptr_t)arg;
  for (int r = 0; r < ROUNDS; r++) {
    double c = 100 + (r * 7 + k) % SMALL_SET; /* kernels shared among the threads */
    dvm_model *m = model_for(c);
    if (!m || !right(m, c)) atomic_fetch_add(&wrong, 1);
    dvm_model_destroy(m);
  }
  return NULL;
}

static long env_or(const char *name, long dflt) {
  const char *v = getenv(name);
  return v && atol(v) > 0 ? atol(v) : dflt;
}

int main(void) {
  const int KERNELS = (int)env_or("DVM_TEST_KERNELS", 120);
  const size_t limit = (size_t)env_or("DVM_TEST_LIMIT_KB", 48) << 10;
  CHECK(dvm_context_create(&ctx) == DVM_OK && dvm_context_set_cache_dir(ctx, "off") == DVM_OK &&
            dvm_context_set_code_limit(ctx, limit) == DVM_OK,
        "a context with a code limit: %s", dvm_last_error());
  int64_t shape[2] = {5, 16};
  dvm_tensor_create(DVM_F32, 2, shape, &x);
  dvm_tensor_fill_random(x, 3);

  dvm_model *anchor = model_for(0.25); /* live throughout: its code is never evicted */
  CHECK(anchor && right(anchor, 0.25), "the anchor model: %s", dvm_last_error());
  /* what is resident now, the anchor's code and the warm-up's: the most a live model and
     the process's own kernel add to the limit */
  const int64_t base = stats_of(anchor).code_bytes;
  int over = 0, bad = 0;
  for (int i = 0; i < KERNELS; i++) {
    double c = 1.5 + i;
    dvm_model *m = model_for(c);
    bad += !m || !right(m, c);
    dvm_model_destroy(m);
    dvm_stats s = stats_of(anchor);
    over += s.code_bytes > (int64_t)limit + base;
    bad += !right(anchor, 0.25);
  }
  dvm_stats s = stats_of(anchor);
  CHECK(bad == 0, "%d wrong results", bad);
  CHECK(over == 0, "resident code over the limit after %d of %d destroys", over, KERNELS);
  CHECK(s.code_evictions > 0 && s.code_bytes <= (int64_t)limit + base,
        "evictions %lld, resident %lld of %zu + %lld bytes", (long long)s.code_evictions, (long long)s.code_bytes,
        limit, (long long)base);
  CHECK(s.llvm_compiles >= KERNELS, "every distinct kernel compiled once (%lld)", (long long)s.llvm_compiles);
  dvm_model *again = model_for(1.5); /* the first one's code went long ago */
  CHECK(again && right(again, 1.5) && stats_of(again).llvm_compiles > s.llvm_compiles,
        "an evicted kernel is compiled again when asked for");
  dvm_model_destroy(again);

  /* live models holding more than the limit do not push out released code: the limit is
     what is kept beyond them */
  enum { LIVE = 48 };
  dvm_model *live[LIVE];
  for (int i = 0; i < LIVE; i++) live[i] = model_for(5000.5 + i);
  CHECK(stats_of(anchor).code_bytes > (int64_t)limit, "the live models hold more than the limit");
  dvm_model *gone = model_for(7777.5);
  dvm_model_destroy(gone);
  int64_t before = stats_of(anchor).llvm_compiles;
  gone = model_for(7777.5);
  CHECK(gone && right(gone, 7777.5) && stats_of(gone).llvm_compiles == before,
        "a released kernel is kept while live models hold more than the limit (no recompile)");
  dvm_model_destroy(gone);
  for (int i = 0; i < LIVE; i++) bad += !live[i] || !right(live[i], 5000.5 + i), dvm_model_destroy(live[i]);
  CHECK(bad == 0, "the live models' results");

  pthread_t t[THREADS];
  for (int k = 0; k < THREADS; k++) pthread_create(&t[k], NULL, churn, (void *)(intptr_t)k);
  for (int k = 0; k < THREADS; k++) pthread_join(t[k], NULL);
  s = stats_of(anchor);
  CHECK(atomic_load(&wrong) == 0, "threads: %d wrong results", atomic_load(&wrong));
  CHECK(s.code_bytes <= (int64_t)limit + base, "threads: resident %lld of %zu + %lld bytes", (long long)s.code_bytes,
        limit, (long long)base);
  CHECK(right(anchor, 0.25), "the anchor still runs its code");
  printf("code cache: %lld evictions, %lld compiles, %lld bytes resident\n", (long long)s.code_evictions,
         (long long)s.llvm_compiles, (long long)s.code_bytes);
  dvm_model_destroy(anchor);
  dvm_tensor_destroy(x);
  dvm_context_destroy(ctx);
  return CHECK_SUMMARY();
}
