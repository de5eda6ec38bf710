/* tests/unit/test_native.c — the native tier is shape-generic and thread-safe.
 *
 * One model run over 100 values of N compiles each kernel once (the kernel cache's
 * counters), and its outputs agree with the reference tier at every N, including the
 * odd row length 769 (masked tails). Eight threads running one model at different N at
 * once give the reference's results (the mix kernel's packed weight made by one of
 * them), and so does a run after dvm_model_set_param gives w new values. Plans: a repeated binding finds its plan, whose
 * arena, reused across runs, still gives the reference's results. */
#include <pthread.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dvm.h"
#include "check.h"

/* gelu_tanh(x*a+b), a softmax of x, and a matmul of layernorm(x) with an epilogue: a
 * vector, a row and a mix kernel (the layernorm its prologue, computed while a is
 * packed). */
static const char *text =
    "graph native\n"
    "input x: f32[N, 769]\n"
    "param a: f32[769]\n"
    "param b: f32[769]\n"
    "param w: f32[769, 33]\n"
    "m = mul(x, a)\n"
    "s = add(m, b)\n"
    "g = gelu_tanh(s)\n"
    "l = layernorm(x, a, b)\n"
    "h = matmul(l, w)\n"
    "y = relu(h)\n"
    "z = softmax(x, axis=-1)\n"
    "output g, y, z\n";

static dvm_context *ctx;
static dvm_model *llvm, *ref;
static dvm_tensor *pa, *pb, *pw;

static dvm_model *compile(dvm_tier tier) {
  dvm_graph *g;
  dvm_model *m = NULL;
  dvm_compile_options opt = {.tier = tier};
  if (dvm_graph_parse(ctx, text, strlen(text), "native.dvm", &g)) return NULL;
  if (dvm_model_compile(ctx, g, &opt, &m) == DVM_OK) {
    dvm_model_set_param(m, "a", pa);
    dvm_model_set_param(m, "b", pb);
    dvm_model_set_param(m, "w", pw);
  }
  dvm_graph_destroy(g);
  return m;
}

/* Worst |native - ref| / (1e-4 |ref| + 1e-5 rms(ref)) over the outputs at batch n (<= 1:
 * agree); the absolute part scales with the output, as f32 dot products of 769 terms
 * near zero are only that exact relative to the terms. */
static double compare_at(int64_t n, uint64_t seed) {
  dvm_tensor *x, *o1[3] = {0}, *o2[3] = {0};
  const char *names[] = {"x"};
  if (dvm_tensor_create(DVM_F32, 2, (const int64_t[]){n, 769}, &x)) return INFINITY;
  dvm_tensor_fill_random(x, seed);
  double worst = INFINITY;
  if (!dvm_model_run(llvm, 1, names, &x, o1) && !dvm_model_run(ref, 1, names, &x, o2)) {
    worst = 0;
    for (int k = 0; k < 3; k++) {
      int64_t len = dvm_tensor_numel(o2[k]);
      double ss = 0;
      for (int64_t i = 0; i < len; i++) ss += dvm_tensor_get_f64(o2[k], i) * dvm_tensor_get_f64(o2[k], i);
      double rms = len ? sqrt(ss / (double)len) : 1;
      for (int64_t i = 0; i < len; i++) {
        double a = dvm_tensor_get_f64(o1[k], i), b = dvm_tensor_get_f64(o2[k], i);
        double e = fabs(a - b) / (1e-4 * fabs(b) + 1e-5 * (rms > 1 ? rms : 1));
        worst = e > worst ? e : worst;
      }
    }
  }
  for (int k = 0; k < 3; k++) dvm_tensor_destroy(o1[k]), dvm_tensor_destroy(o2[k]);
  dvm_tensor_destroy(x);
  return worst;
}

static void *worker(void *arg) {
  int64_t t = (int64_t)(intptr_t)arg;
  double worst = 0;
  for (int r = 0; r < 5; r++) { /* N > 16 first: the packed path */
    double e = compare_at(r ? 1 + t * 3 + r : 40 + t, 100 + (uint64_t)(t * 10 + r));
    worst = e > worst ? e : worst;
  }
  double *out = malloc(sizeof *out);
  *out = worst;
  return out;
}

/* Graph text compiled twice: m[0] native (--tier llvm), m[1] the reference. */
static void compile_pair(const char *text, const char *name, dvm_model *m[2]) {
  dvm_graph *g;
  bool parsed = !dvm_graph_parse(ctx, text, strlen(text), name, &g);
  CHECK(parsed, "%s", dvm_last_error());
  if (!parsed) return;
  for (int i = 0; i < 2; i++) {
    dvm_compile_options opt = {.tier = i ? DVM_TIER_REF : DVM_TIER_LLVM};
    CHECK(!dvm_model_compile(ctx, g, &opt, &m[i]), "%s", dvm_last_error());
  }
  dvm_graph_destroy(g);
}

/* softmax and log_softmax over rows with NaN and infinities: native code (whose softmax
 * max skips NaNs: the sum pass spreads them) gives the reference's NaNs, infinities and
 * values. */
static void special_rows(void) {
  static const char *sm = "graph sm\ninput x: f32[N, 37]\np = softmax(x, axis=-1)\n"
                          "l = log_softmax(x, axis=-1)\noutput p, l\n";
  dvm_model *m[2] = {0};
  compile_pair(sm, "sm.dvm", m);
  dvm_tensor *x, *out[2][2] = {{0}};
  dvm_tensor_create(DVM_F32, 2, (const int64_t[]){8, 37}, &x);
  dvm_tensor_fill_random(x, 5);
  float *v = dvm_tensor_data(x);
  v[1 * 37 + 5] = NAN, v[2 * 37 + 7] = INFINITY, v[4 * 37 + 3] = -INFINITY, v[6 * 37 + 36] = NAN;
  v[7 * 37] = INFINITY, v[7 * 37 + 1] = -INFINITY;
  for (int j = 0; j < 37; j++) v[3 * 37 + j] = -INFINITY, v[5 * 37 + j] = INFINITY;
  const char *names[] = {"x"};
  for (int i = 0; i < 2; i++) CHECK(!dvm_model_run(m[i], 1, names, &x, out[i]), "%s", dvm_last_error());
  int bad = 0;
  for (int o = 0; o < 2 && out[0][o] && out[1][o]; o++)
    for (int64_t e = 0; e < 8 * 37; e++) {
      double a = dvm_tensor_get_f64(out[0][o], e), b = dvm_tensor_get_f64(out[1][o], e);
      bool same = isnan(a) ? isnan(b) : isinf(b) ? a == b : !isnan(b) && fabs(a - b) <= 1e-5 * fabs(b) + 1e-6;
      if (!same && bad++ < 4) CHECK(same, "%s row %lld col %lld: native %g, reference %g", o ? "log_softmax" : "softmax",
                                    (long long)(e / 37), (long long)(e % 37), a, b);
    }
  CHECK(bad == 0, "softmax / log_softmax of NaN and infinite rows: %d elements differ", bad);
  for (int i = 0; i < 2; i++) dvm_tensor_destroy(out[i][0]), dvm_tensor_destroy(out[i][1]), dvm_model_destroy(m[i]);
  dvm_tensor_destroy(x);
}

/* bf16 values in native kernels (f32 in registers, rounded to bf16 by every op, stored as
 * 16 bits) against the reference at 1, 7 and 333 rows: an elementwise chain with a
 * literal, a softmax row, a max, casts both ways, and a transposed view. Both round every
 * op's result; the native one rounds an f32 result, the reference the exact one, so they
 * may differ by an ulp of bf16 (2^-8). */
static void bf16_kernels(void) {
  static const char *txt = "graph b\ninput x: bf16[N, 37]\ninput z: f32[N, 37]\n"
                           "x2 = mul(x, 2.0)\nx3 = add(x2, 1.0)\ny = tanh(x3)\n"
                           "s = softmax(x, axis=-1)\nm = reduce_max(x, axes=[1])\n"
                           "c0 = cast(x, to=f32)\nc = mul(c0, 3.0)\n"
                           "ez = exp(z)\nh = cast(ez, to=bf16)\nxt = transpose(x, perm=[1, 0])\nt = neg(xt)\n"
                           "zb = cast(z, to=bf16)\noutput y, s, m, c, h, t, zb\n";
  enum { NO = 7 }; /* t and zb (one rounding of the same f32 value) must be equal bit for bit */
  dvm_model *m[2] = {0};
  compile_pair(txt, "b.dvm", m);
  dvm_stats st;
  dvm_model_stats(m[0], &st);
  CHECK(st.native_kernels == st.kernels, "bf16 kernels native: %lld of %lld", (long long)st.native_kernels,
        (long long)st.kernels);
  for (int q = 0; q < 3; q++) {
    int64_t n = (int64_t[]){1, 7, 333}[q];
    dvm_tensor *in[2], *out[2][NO] = {{0}};
    dvm_tensor_create(DVM_BF16, 2, (const int64_t[]){n, 37}, &in[0]);
    dvm_tensor_create(DVM_F32, 2, (const int64_t[]){n, 37}, &in[1]);
    dvm_tensor_fill_random(in[0], 11 + (uint64_t)n), dvm_tensor_fill_random(in[1], 12 + (uint64_t)n);
    const char *names[] = {"x", "z"};
    for (int i = 0; i < 2; i++) CHECK(!dvm_model_run(m[i], 2, names, in, out[i]), "%s", dvm_last_error());
    int bad = 0;
    for (int o = 0; o < NO && out[0][o] && out[1][o]; o++)
      for (int64_t e = 0; e < dvm_tensor_numel(out[1][o]); e++) {
        double a = dvm_tensor_get_f64(out[0][o], e), b = dvm_tensor_get_f64(out[1][o], e);
        bool ok = o >= 5 ? a == b : fabs(a - b) <= 8e-3 * fabs(b) + 1e-4;
        if (!ok && bad++ < 4)
          CHECK(false, "N=%lld output %d element %lld: native %g, reference %g", (long long)n, o, (long long)e, a, b);
      }
    CHECK(bad == 0, "bf16 at N=%lld: %d elements differ from the reference (2 ulps; t, zb exactly)", (long long)n, bad);
    for (int i = 0; i < 2; i++)
      for (int o = 0; o < NO; o++) dvm_tensor_destroy(out[i][o]);
    dvm_tensor_destroy(in[0]), dvm_tensor_destroy(in[1]);
  }
  for (int i = 0; i < 2; i++) dvm_model_destroy(m[i]);
}

int main(void) {
  /* this test counts compiles and tier-up in this process: kernels an earlier process
     left in the object cache on disk would be loads instead */
  setenv("DVM_CACHE_DIR", "off", 1);
  CHECK(dvm_context_create(&ctx) == DVM_OK, "%s", dvm_last_error());
  dvm_tensor_create(DVM_F32, 1, (const int64_t[]){769}, &pa);
  dvm_tensor_create(DVM_F32, 1, (const int64_t[]){769}, &pb);
  dvm_tensor_create(DVM_F32, 2, (const int64_t[]){769, 33}, &pw);
  dvm_tensor_fill_random(pa, 1), dvm_tensor_fill_random(pb, 2), dvm_tensor_fill_random(pw, 3);
  llvm = compile(DVM_TIER_LLVM);
  ref = compile(DVM_TIER_REF);
  CHECK(llvm && ref, "compile: %s", dvm_last_error());
  if (!llvm || !ref) return CHECK_SUMMARY();
  dvm_stats s0;
  dvm_model_stats(llvm, &s0);
  CHECK(s0.kernels == 3 && s0.native_kernels == 3, "3 kernels, all native: %lld of %lld",
        (long long)s0.native_kernels, (long long)s0.kernels);
  CHECK(s0.llvm_compiles == 3, "compiled once each before the first run: %lld", (long long)s0.llvm_compiles);
  double worst = 0;
  for (int64_t n = 1; n <= 100; n++) {
    double e = compare_at(n, (uint64_t)n);
    if (e > worst) worst = e;
    if (e > 1) CHECK(e <= 1, "N=%lld: native differs from the reference by %.3g x the tolerance", (long long)n, e);
  }
  CHECK(worst <= 1, "100 values of N agree with the reference (worst %.3g x tolerance)", worst);
  dvm_stats s1;
  dvm_model_stats(llvm, &s1);
  CHECK(s1.llvm_compiles == 3 && s1.runs == 100, "100 runs at 100 N, still 3 compiles: %lld compiles, %lld runs",
        (long long)s1.llvm_compiles, (long long)s1.runs);
  /* plans: every new binding made one; a repeated binding finds it, and its arena (not
     cleared between runs) still gives the reference's results */
  CHECK(s1.plan_misses == 100 && s1.plan_hits == 0, "100 bindings, 100 plans made: %lld made, %lld found",
        (long long)s1.plan_misses, (long long)s1.plan_hits);
  for (int r = 0; r < 3; r++) {
    double e = compare_at(99, 1000 + (uint64_t)r);
    CHECK(e <= 1, "N=99 again (run %d): native differs from the reference by %.3g x the tolerance", r, e);
  }
  dvm_stats s3;
  dvm_model_stats(llvm, &s3);
  CHECK(s3.plan_misses == 100 && s3.plan_hits == 3, "a repeated binding is one lookup: %lld made, %lld found",
        (long long)s3.plan_misses, (long long)s3.plan_hits);
  double e1 = compare_at(1, 7); /* evicted long ago (16 plans are kept): made again */
  dvm_model_stats(llvm, &s3);
  CHECK(e1 <= 1 && s3.plan_misses == 101, "an evicted binding is planned again: %lld made, error %.3g",
        (long long)s3.plan_misses, e1);
  /* a second model of the same graph hits the cache */
  dvm_model *again = compile(DVM_TIER_LLVM);
  dvm_stats s2;
  dvm_model_stats(again, &s2);
  CHECK(s2.llvm_compiles == 3 && s2.cache_hits >= 3, "a second model compiles nothing: %lld compiles, %lld hits",
        (long long)s2.llvm_compiles, (long long)s2.cache_hits);
  dvm_model_destroy(again);
  /* the packed copy of w follows dvm_model_set_param: new values in the same tensor */
  dvm_tensor_fill_random(pw, 4);
  dvm_model_set_param(llvm, "w", pw);
  dvm_model_set_param(ref, "w", pw);
  for (int64_t n = 16; n <= 64; n += 48) {
    double e = compare_at(n, 77);
    CHECK(e <= 1, "N=%lld after set_param with new values: differs by %.3g x the tolerance", (long long)n, e);
  }
  /* a fresh model packs w at its first run: here eight threads' first runs at once */
  dvm_model_destroy(llvm);
  llvm = compile(DVM_TIER_LLVM);
  pthread_t t[8];
  for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
  for (int i = 0; i < 8; i++) {
    double *e;
    pthread_join(t[i], (void **)&e);
    CHECK(*e <= 1, "thread %d: native differs from the reference by %.3g x the tolerance", i, *e);
    free(e);
  }
  dvm_model_destroy(llvm);
  dvm_model_destroy(ref);
  special_rows();
  bf16_kernels();
  dvm_tensor_destroy(pa), dvm_tensor_destroy(pb), dvm_tensor_destroy(pw);
  dvm_context_destroy(ctx);
  return CHECK_SUMMARY();
}
