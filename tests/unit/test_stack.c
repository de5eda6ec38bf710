/* tests/unit/test_stack.c — dvm called from host threads with small stacks.
 *
 * Kernels keep up to RT_KERNEL_STACK (512 KB) of blocks on the stack (the bytecode's GEMM
 * driver 358 KB, native GEMM 210 KB, column mode up to 160 KB) and LLVM compiles on the
 * caller in the llvm tier; a host thread may have 128 KB (musl's default) or less. Here a
 * thread with a 64 KB stack parses, compiles, binds params and runs a graph with a mix
 * kernel (layernorm -> matmul -> gelu) and a column reduction, in every tier, and must get
 * the results a thread with a normal stack gets: bitwise for the same tier (the same code
 * ran), and within tolerance of the reference tier (computed in double). Before runs and
 * compiles were handed to threads of dvm's own, this crashed with SIGSEGV. A failing run
 * on the small thread must leave its error in that thread's dvm_last_error(). */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dvm.h"

enum { SMALL_STACK = 64 << 10, N = 37 };

static const char text[] = "graph small_stack\n"
                           "input x: f32[N, 64]\n"
                           "param gamma: f32[64]\n"
                           "param beta: f32[64]\n"
                           "param w: f32[64, 256]\n"
                           "n = layernorm(x, gamma, beta, axis=-1, eps=1e-5)\n"
                           "h = matmul(n, w)\n"
                           "g = gelu(h)\n"
                           "s = reduce_sum(g, axes=[0])\n"
                           "output g, s\n";

static dvm_context *ctx;
static dvm_tensor *params[3], *x;
static const char *const param_names[3] = {"gamma", "beta", "w"};

/* What one thread does: parse, compile in `tier`, bind, run into out[0..1], then a run
 * with a wrong input shape, whose error must be this thread's last error. */
typedef struct Job {
  dvm_tier tier;
  dvm_tensor *out[2];
  dvm_status compiled, ran, bad;
  char bad_msg[256];
} Job;

static void *job_main(void *arg) {
  Job *j = arg;
  dvm_graph *g = NULL;
  dvm_model *m = NULL;
  j->compiled = j->ran = j->bad = DVM_ERR_RUNTIME;
  if (dvm_graph_parse(ctx, text, strlen(text), "small_stack.dvm", &g)) return NULL;
  dvm_compile_options opt = {.tier = j->tier, .threads = 2};
  j->compiled = dvm_model_compile(ctx, g, &opt, &m);
  if (j->compiled) {
    dvm_graph_destroy(g);
    return NULL;
  }
  for (int i = 0; i < 3; i++) dvm_model_set_param(m, param_names[i], params[i]);
  dvm_model_wait(m); /* auto: the same code as the thread it is compared with */
  const char *names[] = {"x"};
  j->ran = dvm_model_run_into(m, 1, names, &x, j->out);
  dvm_tensor *wrong = NULL;
  int64_t shape[2] = {N, 65};
  dvm_tensor_create(DVM_F32, 2, shape, &wrong);
  dvm_tensor *got[2] = {NULL, NULL};
  j->bad = dvm_model_run(m, 1, names, &wrong, got);
  snprintf(j->bad_msg, sizeof j->bad_msg, "%s", dvm_last_error());
  dvm_tensor_destroy(wrong);
  dvm_model_destroy(m);
  dvm_graph_destroy(g);
  return NULL;
}

static void make_out(Job *j) {
  int64_t gs[2] = {N, 256}, ss[1] = {256};
  dvm_tensor_create(DVM_F32, 2, gs, &j->out[0]);
  dvm_tensor_create(DVM_F32, 1, ss, &j->out[1]);
}

static void run_on(size_t stack, Job *j) {
  make_out(j);
  pthread_attr_t a;
  pthread_attr_init(&a);
  if (stack) pthread_attr_setstacksize(&a, stack);
  pthread_t t;
  int e = pthread_create(&t, &a, job_main, j);
  CHECK(e == 0, "pthread_create: %d", e);
  if (!e) pthread_join(t, NULL);
  pthread_attr_destroy(&a);
}

static bool same_bits(dvm_tensor *a, dvm_tensor *b) {
  return !memcmp(dvm_tensor_data(a), dvm_tensor_data(b),
                 (size_t)dvm_tensor_numel(a) * sizeof(float));
}

/* Largest |a - b| / (1 + |b|) over the elements. */
static double rel_diff(dvm_tensor *a, dvm_tensor *b) {
  const float *p = dvm_tensor_data(a), *q = dvm_tensor_data(b);
  double worst = 0;
  for (int64_t i = 0; i < dvm_tensor_numel(a); i++) {
    double d = fabs((double)p[i] - q[i]) / (1 + fabs((double)q[i]));
    worst = d > worst || d != d ? d : worst;
  }
  return worst;
}

static void free_out(Job *j) {
  for (int i = 0; i < 2; i++) dvm_tensor_destroy(j->out[i]);
}

int main(void) {
  CHECK(dvm_context_create(&ctx) == DVM_OK, "%s", dvm_last_error());
  int64_t vs[1] = {64}, ws[2] = {64, 256}, xs[2] = {N, 64};
  dvm_tensor_create(DVM_F32, 1, vs, &params[0]);
  dvm_tensor_create(DVM_F32, 1, vs, &params[1]);
  dvm_tensor_create(DVM_F32, 2, ws, &params[2]);
  dvm_tensor_create(DVM_F32, 2, xs, &x);
  for (int i = 0; i < 3; i++) dvm_tensor_fill_random(params[i], 3 + (uint64_t)i);
  dvm_tensor_fill_random(x, 11);

  Job ref = {.tier = DVM_TIER_REF};
  run_on(0, &ref);
  CHECK(ref.compiled == DVM_OK && ref.ran == DVM_OK, "reference on a default stack: %d %d",
        ref.compiled, ref.ran);

  const dvm_tier tiers[] = {DVM_TIER_REF, DVM_TIER_VM, DVM_TIER_LLVM, DVM_TIER_AUTO};
  const char *const tier_names[] = {"ref", "vm", "llvm", "auto"};
  for (int t = 0; t < 4; t++) {
    Job big = {.tier = tiers[t]}, small = {.tier = tiers[t]};
    run_on(0, &big);
    run_on(SMALL_STACK, &small);
    const char *tn = tier_names[t];
    CHECK(big.compiled == DVM_OK && big.ran == DVM_OK, "%s, default stack: %d %d", tn, big.compiled,
          big.ran);
    CHECK(small.compiled == DVM_OK, "%s, 64 KB stack: compile %d", tn, small.compiled);
    CHECK(small.ran == DVM_OK, "%s, 64 KB stack: run %d", tn, small.ran);
    if (big.ran == DVM_OK && small.ran == DVM_OK) {
      CHECK(same_bits(small.out[0], big.out[0]) && same_bits(small.out[1], big.out[1]),
            "%s: a 64 KB stack gave other results than the default stack", tn);
      double dg = rel_diff(small.out[0], ref.out[0]), ds = rel_diff(small.out[1], ref.out[1]);
      CHECK(dg < 1e-4 && ds < 1e-4, "%s against the reference: g %g, s %g", tn, dg, ds);
    }
    CHECK(small.bad == DVM_ERR_SHAPE || small.bad == DVM_ERR_USAGE, "%s: the bad run returned %d",
          tn, small.bad);
    CHECK(strstr(small.bad_msg, "65") != NULL, "%s: the bad run's error on the small thread: '%s'",
          tn, small.bad_msg);
    free_out(&big);
    free_out(&small);
  }
  free_out(&ref);
  for (int i = 0; i < 3; i++) dvm_tensor_destroy(params[i]);
  dvm_tensor_destroy(x);
  dvm_context_destroy(ctx);
  return CHECK_SUMMARY();
}
