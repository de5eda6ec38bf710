/* tests/unit/test_cache_threads.c — the object cache under threads (built with
 * ThreadSanitizer by `make test-tsan` too).
 *
 * A graph of several kernels, in a private cache directory: four threads compile it in
 * the auto tier on one context and run it, while the background compiler compiles the
 * kernels and writes them to the directory; then four threads do the same on a second
 * context, whose kernels load from the directory on the threads that compile the models,
 * concurrently. Every run's output is bitwise what a model of the llvm tier computes (the
 * same code, loaded or compiled); the second context runs LLVM for none of them. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dvm.h"

#include "check.h"

enum { THREADS = 4, RUNS = 40, NS = 3 };

static const char graph[] =
    "graph g\n"
    "input x: f32[N, 64]\n"
    "param w: f32[64, 32]\n"
    "input g: f32[64]\n"
    "input b: f32[64]\n"
    "n = layernorm(x, g, b, axis=1)\n"
    "h = matmul(n, w)\n"
    "s = softmax(h, axis=1)\n"
    "t = transpose(s)\n"
    "c = reduce_sum(t, axes=[1])\n"
    "output s, c\n";

static const int64_t sizes[NS] = {1, 7, 33};
static dvm_tensor *in[NS][3], *want[NS][2], *w;
static const char *in_names[] = {"x", "g", "b"};
static dvm_graph *g;
static atomic_int failures;
static atomic_llong compiles;

typedef struct Job {
  dvm_context *ctx;
  int seed;
} Job;

static bool same(const dvm_tensor *a, const dvm_tensor *b) {
  return dvm_tensor_numel(a) == dvm_tensor_numel(b) &&
         !memcmp(dvm_tensor_data((dvm_tensor *)a), dvm_tensor_data((dvm_tensor *)b),
                 (size_t)dvm_tensor_numel(a) * sizeof(float));
}

static void *work(void *arg) {
  Job *j = arg;
  dvm_compile_options o = {DVM_TIER_AUTO, 1};
  dvm_model *m;
  if (dvm_model_compile(j->ctx, g, &o, &m) || dvm_model_set_param(m, "w", w)) {
    atomic_fetch_add(&failures, 1);
    printf("FAIL compile: %s\n", dvm_last_error());
    return NULL;
  }
  for (int r = 0; r < RUNS; r++) {
    int k = (r + j->seed) % NS;
    dvm_tensor *out[2] = {0};
    if (dvm_model_run(m, 3, in_names, in[k], out) || !same(out[0], want[k][0]) || !same(out[1], want[k][1])) {
      if (atomic_fetch_add(&failures, 1) < 5) printf("FAIL run %d at N=%lld: %s\n", r, (long long)sizes[k], dvm_last_error());
    }
    dvm_tensor_destroy(out[0]);
    dvm_tensor_destroy(out[1]);
  }
  dvm_model_wait(m);
  dvm_stats s;
  dvm_model_stats(m, &s);
  atomic_fetch_add(&compiles, s.llvm_compiles);
  dvm_model_destroy(m);
  return NULL;
}

/* Four threads on a new context with the cache in dir; the context's LLVM compiles. */
static long long round_of_threads(const char *dir, int64_t *disk_hits) {
  dvm_context *ctx;
  CHECK(dvm_context_create(&ctx) == DVM_OK && dvm_context_set_cache_dir(ctx, dir) == DVM_OK, "context: %s",
        dvm_last_error());
  pthread_t t[THREADS];
  Job jobs[THREADS];
  atomic_store(&compiles, 0);
  for (int i = 0; i < THREADS; i++) jobs[i] = (Job){ctx, i}, pthread_create(&t[i], NULL, work, &jobs[i]);
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  dvm_compile_options o = {DVM_TIER_AUTO, 1};
  dvm_model *m;
  dvm_stats s = {0};
  if (dvm_model_compile(ctx, g, &o, &m) == DVM_OK) dvm_model_stats(m, &s), dvm_model_destroy(m);
  *disk_hits = s.disk_hits;
  dvm_context_destroy(ctx);
  return s.llvm_compiles; /* the context's, counted by every model of it */
}

int main(void) {
  unsetenv("DVM_CACHE_DIR"); /* the directory is this test's own (the API's setting) */
  const char *tmp = getenv("TMPDIR");
  char dir[512];
  snprintf(dir, sizeof dir, "%s/dvm-cache-test-XXXXXX", tmp && *tmp ? tmp : P_tmpdir);
  CHECK(mkdtemp(dir) != NULL, "a scratch directory");
  dvm_context *ref;
  CHECK(dvm_context_create(&ref) == DVM_OK && dvm_graph_parse(ref, graph, sizeof graph - 1, "g.dvm", &g) == DVM_OK,
        "graph: %s", dvm_last_error());
  CHECK(dvm_context_set_cache_dir(ref, "off") == DVM_OK, "the reference context without a cache");
  int64_t wshape[2] = {64, 32};
  dvm_tensor_create(DVM_F32, 2, wshape, &w);
  dvm_tensor_fill_random(w, 5);
  dvm_compile_options o = {DVM_TIER_LLVM, 1};
  dvm_model *llvm;
  CHECK(dvm_model_compile(ref, g, &o, &llvm) == DVM_OK && dvm_model_set_param(llvm, "w", w) == DVM_OK,
        "the llvm tier's model: %s", dvm_last_error());
  for (int k = 0; k < NS; k++) {
    int64_t xs[2] = {sizes[k], 64}, vs[1] = {64};
    dvm_tensor_create(DVM_F32, 2, xs, &in[k][0]);
    dvm_tensor_create(DVM_F32, 1, vs, &in[k][1]);
    dvm_tensor_create(DVM_F32, 1, vs, &in[k][2]);
    for (int i = 0; i < 3; i++) dvm_tensor_fill_random(in[k][i], (uint64_t)(10 * k + i));
    CHECK(dvm_model_run(llvm, 3, in_names, in[k], want[k]) == DVM_OK, "the llvm tier's outputs: %s", dvm_last_error());
  }
  dvm_model_destroy(llvm);

  int64_t hits;
  long long first = round_of_threads(dir, &hits);
  dvm_cache_info info;
  CHECK(dvm_cache_info_get(dir, &info) == DVM_OK && info.files > 0, "the first context wrote its kernels (%lld files)",
        (long long)info.files);
  CHECK(first > 0, "the first context compiled (%lld)", first);
  long long second = round_of_threads(dir, &hits);
  CHECK(second == 0 && hits > 0, "the second context loaded every kernel: %lld compiles, %lld loads", second,
        (long long)hits);
  CHECK(atomic_load(&failures) == 0, "%d runs differ from the llvm tier", atomic_load(&failures));

  int64_t removed;
  CHECK(dvm_cache_clear(dir, &removed) == DVM_OK && removed == info.files, "cleared");
  rmdir(dir);
  for (int k = 0; k < NS; k++)
    for (int i = 0; i < 3; i++) dvm_tensor_destroy(in[k][i]), i < 2 ? dvm_tensor_destroy(want[k][i]) : (void)0;
  dvm_tensor_destroy(w);
  dvm_graph_destroy(g);
  dvm_context_destroy(ref);
  return CHECK_SUMMARY();
}
