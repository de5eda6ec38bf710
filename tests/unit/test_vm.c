/* tests/unit/test_vm.c — the bytecode tier (vm/vm.h) against the native tier and the
 * reference.
 *
 *   - elementwise ops (every f32 unary and binary op, compares, select, casts) give
 *     bit-identical outputs in --tier vm and --tier llvm, at a row length with a tail;
 *   - reductions and normalizations (rows and columns) agree within 1e-6 relative;
 *   - row kernels (the fold instructions, the fused output instructions, whole-row and
 *     per-tile programs) give bit-identical outputs in --tier vm and --tier llvm: every
 *     fold keeps the native tier's four accumulators and order, at widths 1 to 4163
 *     (tails of a vector, of a block of four, of a tile, of a whole-row span), 1, 3 and 17
 *     rows, and rows holding NaN, inf and -inf (the bytecode is checked to use them);
 *   - tier-up: four threads run one model in the auto tier of a fresh context while its
 *     kernels switch from bytecode to native code under them; every run agrees with the
 *     reference, some runs see bytecode and the last ones native code;
 *   - encode time: the medians over W1–W8's kernels of the bytecode encode and of the
 *     pipeline's lower stage before it are printed (each must be < 100 us even under the
 *     sanitizers). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dvm.h"
#include "check.h"
#include "fusion/fusion.h"
#include "vm/vm.h"

static dvm_context *ctx;

static dvm_model *compile(const char *text, dvm_tier tier) {
  dvm_graph *g;
  dvm_model *m = NULL;
  dvm_compile_options opt = {.tier = tier};
  if (dvm_graph_parse(ctx, text, strlen(text), "vm.dvm", &g)) {
    printf("parse: %s\n", dvm_last_error());
    return NULL;
  }
  if (dvm_model_compile(ctx, g, &opt, &m)) printf("compile: %s\n", dvm_last_error());
  dvm_graph_destroy(g);
  return m;
}

static const char *elementwise =
    "graph ew\n"
    "input x: f32[N, 1000]\n"
    "input y: f32[N, 1000]\n"
    "w = mul(x, 120.0)\n"          /* exp over its whole range, overflow and underflow */
    "v = mul(x, 6.0)\n"
    "ay = abs(y)\n"
    "p = add(ay, 0.01)\n"
    "o1 = exp(w)\n o2 = log(p)\n o3 = sqrt(p)\n o4 = rsqrt(p)\n o5 = reciprocal(v)\n"
    "o6 = tanh(v)\n o7 = sigmoid(w)\n o8 = relu(v)\n o9 = gelu(v)\n o10 = gelu_tanh(v)\n"
    "o11 = silu(w)\n o12 = erf(v)\n o13 = sin(w)\n o14 = cos(w)\n o15 = floor(v)\n"
    "o16 = ceil(v)\n o17 = round(v)\n o18 = sign(v)\n o19 = add(v, y)\n o20 = sub(v, y)\n"
    "o21 = mul(v, y)\n o22 = div(v, y)\n o23 = pow(p, v)\n o24 = max(v, y)\n o25 = min(v, y)\n"
    "o26 = clip(v, lo=-1.5, hi=2.5)\n o27 = neg(v)\n o28 = abs(v)\n"
    "o32 = mul(v, -0.0)\n"
    "nz = neg(o8)\n lv = log(v)\n"          /* -0 where relu gave +0; NaN where v < 0 */
    "o33 = max(nz, o8)\n o34 = min(o8, nz)\n o35 = max(lv, nz)\n o36 = min(nz, lv)\n"
    "mxy = mul(x, y)\n o37 = add(mxy, w)\n"   /* one MULADD (encode.c fuse) */
    "o38 = gelu_tanh(w)\n o39 = gelu_tanh(lv)\n" /* its 2^t past both clamps; NaN, -inf */
    "c1 = lt(v, y)\n c2 = ne(v, y)\n o29 = select(c1, v, y)\n"
    "o30 = cast(v, to=i32)\n o31 = cast(o30, to=f32)\n c3 = cast(o17, to=bool)\n"
    "output o1, o2, o3, o4, o5, o6, o7, o8, o9, o10, o11, o12, o13, o14, o15, o16, o17, o18, "
    "o19, o20, o21, o22, o23, o24, o25, o26, o27, o28, o29, o30, o31, o32, o33, o34, o35, o36, o37, o38, o39, c1, c2, c3\n";

static const char *reductions =
    "graph red\n"
    "input x: f32[N, 777]\n"
    "param g: f32[777]\n"
    "param b: f32[777]\n"
    "s = reduce_sum(x, axes=[1])\n"
    "m = reduce_mean(x, axes=[1], keepdims=1)\n"
    "mx = reduce_max(x, axes=[-1])\n"
    "sm = softmax(x, axis=-1)\n"
    "ls = log_softmax(x, axis=-1)\n"
    "ln = layernorm(x, g, b)\n"
    "rn = rmsnorm(x, g)\n"
    "cs = reduce_sum(x, axes=[0])\n"
    "cx = reduce_max(x, axes=[0], keepdims=1)\n"
    "cm = sub(x, cx)\n"
    "output s, m, mx, sm, ls, ln, rn, cs, cm\n";

/* Run m on inputs x (and y) of N rows; outputs into o (caller frees). */
static int run(dvm_model *m, dvm_tensor *x, dvm_tensor *y, dvm_tensor **o) {
  const char *names[] = {"x", "y"};
  dvm_tensor *in[] = {x, y};
  return dvm_model_run(m, y ? 2 : 1, names, in, o);
}

static void test_elementwise(void) {
  dvm_model *vm = compile(elementwise, DVM_TIER_VM), *nat = compile(elementwise, DVM_TIER_LLVM);
  CHECK(vm && nat, "compile");
  if (!vm || !nat) return;
  int no = dvm_model_num_outputs(vm);
  for (int64_t n = 1; n <= 9; n += 4) {
    dvm_tensor *x, *y, *a[64] = {0}, *b[64] = {0};
    dvm_tensor_create(DVM_F32, 2, (const int64_t[]){n, 1000}, &x);
    dvm_tensor_create(DVM_F32, 2, (const int64_t[]){n, 1000}, &y);
    dvm_tensor_fill_random(x, 7 + (uint64_t)n);
    dvm_tensor_fill_random(y, 70 + (uint64_t)n);
    CHECK(!run(vm, x, y, a) && !run(nat, x, y, b), "run: %s", dvm_last_error());
    for (int i = 0; i < no && a[i] && b[i]; i++) {
      size_t bytes = (size_t)dvm_tensor_numel(a[i]) * (dvm_tensor_dtype(a[i]) == DVM_BOOL ? 1 : 4);
      const uint8_t *p = dvm_tensor_data(a[i]), *q = dvm_tensor_data(b[i]);
      size_t at = 0;
      while (at < bytes && p[at] == q[at]) at++;
      CHECK(at == bytes, "output %s at N=%lld differs from native at byte %zu", dvm_model_output_name(vm, i),
            (long long)n, at);
    }
    for (int i = 0; i < no; i++) dvm_tensor_destroy(a[i]), dvm_tensor_destroy(b[i]);
    dvm_tensor_destroy(x), dvm_tensor_destroy(y);
  }
  dvm_model_destroy(vm), dvm_model_destroy(nat);
}

static void test_reductions(void) {
  dvm_model *vm = compile(reductions, DVM_TIER_VM), *nat = compile(reductions, DVM_TIER_LLVM);
  CHECK(vm && nat, "compile");
  if (!vm || !nat) return;
  dvm_tensor *g, *b;
  dvm_tensor_create(DVM_F32, 1, (const int64_t[]){777}, &g);
  dvm_tensor_create(DVM_F32, 1, (const int64_t[]){777}, &b);
  dvm_tensor_fill_random(g, 1), dvm_tensor_fill_random(b, 2);
  dvm_model *ms[] = {vm, nat};
  for (int i = 0; i < 2; i++) dvm_model_set_param(ms[i], "g", g), dvm_model_set_param(ms[i], "b", b);
  int no = dvm_model_num_outputs(vm);
  for (int64_t n = 1; n <= 300; n = n * 5 + 2) {
    dvm_tensor *x, *a[16] = {0}, *c[16] = {0};
    dvm_tensor_create(DVM_F32, 2, (const int64_t[]){n, 777}, &x);
    dvm_tensor_fill_random(x, 11 + (uint64_t)n);
    CHECK(!run(vm, x, NULL, a) && !run(nat, x, NULL, c), "run: %s", dvm_last_error());
    for (int i = 0; i < no && a[i] && c[i]; i++) {
      double worst = 0;
      for (int64_t e = 0; e < dvm_tensor_numel(a[i]); e++) {
        double p = dvm_tensor_get_f64(a[i], e), q = dvm_tensor_get_f64(c[i], e);
        /* relative to the value, or to the sum of the terms' magnitudes for sums that
           cancel (terms uniform in [-1, 1): 0.5 per term) */
        const char *on = dvm_model_output_name(vm, i);
        double terms = !strcmp(on, "s") ? 0.5 * 777 : !strcmp(on, "cs") ? 0.5 * (double)n : 1.0;
        double r = fabs(p - q) / fmax(fabs(q), terms);
        worst = r > worst ? r : worst;
      }
      CHECK(worst <= 1e-6, "output %s at N=%lld: vm vs native %.3g relative", dvm_model_output_name(vm, i),
            (long long)n, worst);
    }
    for (int i = 0; i < no; i++) dvm_tensor_destroy(a[i]), dvm_tensor_destroy(c[i]);
    dvm_tensor_destroy(x);
  }
  dvm_model_destroy(vm), dvm_model_destroy(nat);
  dvm_tensor_destroy(g), dvm_tensor_destroy(b);
}

/* ---- row kernels: folds and fused outputs ------------------------------------------------- */

static const char *rowk =
    "graph rows\n"
    "input x: f32[N, L]\n"
    "input y: f32[N, L]\n"
    "input g: f32[L]\n"
    "input b: f32[L]\n"
    "s = reduce_sum(x, axes=[1])\n"
    "mx = reduce_max(x, axes=[1])\n"
    "mn = reduce_min(x, axes=[1])\n"
    "pr = reduce_prod(y, axes=[1])\n"             /* underflows to +0 and -0 */
    "me = reduce_mean(x, axes=[1], keepdims=1)\n"
    "sm = softmax(x, axis=-1)\n"                  /* its exp row kept in its output */
    "ls = log_softmax(x, axis=-1)\n"
    "ln = layernorm(x, g, b)\n"
    "rn = rmsnorm(x, g)\n"
    "xy = mul(x, y)\n"
    "sq = reduce_sum(xy, axes=[1])\n"             /* a computed quantity: per tile */
    "mk = reduce_max(y, axes=[1], keepdims=1)\n"
    "cen = sub(y, mk)\n"                          /* a per-row value read as a tile */
    "e = exp(cen)\n"
    "se = reduce_sum(e, axes=[1], keepdims=1)\n"
    "sm2 = div(e, se)\n"
    "sc = mul(x, 3.0)\n"
    "sm3 = softmax(sc, axis=-1)\n"                /* softmax of a computed value */
    "output s, mx, mn, pr, me, sm, ls, ln, rn, sq, cen, sm2, sm3\n";

/* Both NaN, or the same bits; with tol > 0, within tol relative (or of 1: sums that cancel). */
static bool same_f32(float a, float b, double tol) {
  uint32_t p, q;
  memcpy(&p, &a, 4), memcpy(&q, &b, 4);
  if (p == q || (a != a && b != b)) return true;
  return tol > 0 && fabs((double)a - b) <= tol * fmax(fabs((double)b), 1.0);
}

static void test_rows(void) {
  dvm_graph *gr;
  CHECK(!dvm_graph_parse(ctx, rowk, strlen(rowk), "rows.dvm", &gr), "parse: %s", dvm_last_error());
  char *text = dvm_graph_dump(gr, "bytecode");
  const char *want[] = {"FOLD ", "FOLDSQ ", "FOLDSH", "FOLDEXP", "SUBEXPU", "MULU", "SUBU", "LNORMU",
                        "RMSNORMU", "(whole row)", "pass 0: "};
  for (size_t i = 0; i < sizeof want / sizeof *want; i++)
    CHECK(text && strstr(text, want[i]), "the row kernels' bytecode has no %s", want[i]);
  free(text);
  dvm_graph_destroy(gr);
  dvm_model *vm = compile(rowk, DVM_TIER_VM), *nat = compile(rowk, DVM_TIER_LLVM);
  CHECK(vm && nat, "compile");
  if (!vm || !nat) return;
  int no = dvm_model_num_outputs(vm);
  /* DVM_VM_ISA runs a copy of another width than the native code's: its folds have other
     accumulators, so only the reductions' tolerance holds */
  double tol = getenv("DVM_VM_ISA") ? 1e-5 : 0;
  const int64_t widths[] = {1, 3, 16, 17, 63, 64, 65, 255, 256, 257, 769, 2048, 2051, 4163};
  const int64_t rows[] = {1, 3, 17};
  int bad = 0;
  for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++)
    for (size_t ri = 0; ri < sizeof rows / sizeof *rows; ri++) {
      int64_t L = widths[wi], n = rows[ri];
      const char *names[] = {"x", "y", "g", "b"};
      dvm_tensor *in[4], *a[16] = {0}, *c[16] = {0};
      for (int i = 0; i < 4; i++) {
        if (i < 2) dvm_tensor_create(DVM_F32, 2, (const int64_t[]){n, L}, &in[i]);
        else dvm_tensor_create(DVM_F32, 1, &L, &in[i]);
        dvm_tensor_fill_random(in[i], 500 + (uint64_t)(i + 4 * wi + 64 * ri));
      }
      float *x = dvm_tensor_data(in[0]);
      if (n >= 3) { /* a NaN, an inf, a -inf somewhere in rows 0-2; row 16: +inf and -inf */
        x[0 * L + L / 2] = NAN;
        x[1 * L + L - 1] = INFINITY;
        x[2 * L] = -INFINITY;
      }
      if (n >= 17) x[16 * L] = INFINITY, x[16 * L + L - 1] = -INFINITY;
      CHECK(!dvm_model_run(vm, 4, names, in, a) && !dvm_model_run(nat, 4, names, in, c), "run: %s", dvm_last_error());
      for (int i = 0; i < no && a[i] && c[i]; i++) {
        const float *p = dvm_tensor_data(a[i]), *q = dvm_tensor_data(c[i]);
        int64_t at = 0, ne = dvm_tensor_numel(a[i]);
        while (at < ne && same_f32(p[at], q[at], tol)) at++;
        if (at < ne && bad++ < 10)
          printf("output %s at N=%lld L=%lld differs from native at %lld: %.9g vs %.9g\n", dvm_model_output_name(vm, i),
                 (long long)n, (long long)L, (long long)at, (double)p[at], (double)q[at]);
      }
      for (int i = 0; i < no; i++) dvm_tensor_destroy(a[i]), dvm_tensor_destroy(c[i]);
      for (int i = 0; i < 4; i++) dvm_tensor_destroy(in[i]);
    }
  CHECK(bad == 0, "%d row-kernel outputs differ from native", bad);
  dvm_model_destroy(vm), dvm_model_destroy(nat);
}

/* A vector a times a transposed b: the general matmul path with a of rank 1 (its index map
 * is a's one dim; it once wrote past the encoder's index array, caught under ASan). */
static void test_matvec(void) {
  static const char *mv = "graph mv\ninput a: f32[K]\ninput b: f32[M, K]\ny = matmul(a, b, transpose_b=1)\noutput y\n";
  dvm_model *vm = compile(mv, DVM_TIER_VM), *nat = compile(mv, DVM_TIER_LLVM);
  CHECK(vm && nat, "compile");
  if (!vm || !nat) return;
  dvm_tensor *a, *b, *y = NULL, *z = NULL;
  dvm_tensor_create(DVM_F32, 1, (const int64_t[]){37}, &a);
  dvm_tensor_create(DVM_F32, 2, (const int64_t[]){300, 37}, &b);
  dvm_tensor_fill_random(a, 5), dvm_tensor_fill_random(b, 6);
  const char *names[] = {"a", "b"};
  dvm_tensor *in[] = {a, b};
  CHECK(!dvm_model_run(vm, 2, names, in, &y) && !dvm_model_run(nat, 2, names, in, &z), "run: %s", dvm_last_error());
  double worst = 0;
  for (int64_t i = 0; y && z && i < dvm_tensor_numel(y); i++) {
    double p = dvm_tensor_get_f64(y, i), q = dvm_tensor_get_f64(z, i);
    worst = fmax(worst, fabs(p - q) / fmax(fabs(q), 1.0));
  }
  CHECK(y && z && worst <= 1e-6, "a @ b^T: vm vs native %.3g", worst);
  dvm_tensor_destroy(y), dvm_tensor_destroy(z), dvm_tensor_destroy(a), dvm_tensor_destroy(b);
  dvm_model_destroy(vm), dvm_model_destroy(nat);
}

/* ---- tier-up ---------------------------------------------------------------------------- */

static const char *mlp =
    "graph up\n"
    "input x: f32[N, 256]\n"
    "param w1: f32[256, 512]\n"
    "param w2: f32[512, 256]\n"
    "param g: f32[256]\n"
    "n = layernorm(x, g, g)\n"
    "h0 = matmul(n, w1)\n"
    "h = gelu(h0)\n"
    "o = matmul(h, w2)\n"
    "o1 = mul(o, 0.002)\n"          /* logits of a few units: a well-conditioned softmax */
    "r = add(x, o1)\n"
    "y = softmax(r, axis=-1)\n"
    "output y\n";

typedef struct Up {
  dvm_model *m;
  dvm_tensor *x, *want;
  int runs, bad, saw_vm;
} Up;

static void *up_worker(void *arg) {
  Up *u = arg;
  time_t t0 = time(NULL);
  for (int after = 0; after < 50 && time(NULL) - t0 < 60;) { /* until 50 runs after native code */
    dvm_stats s;
    dvm_model_stats(u->m, &s);
    if (s.native_kernels < s.kernels) u->saw_vm++;
    else after++;
    dvm_tensor *o = NULL;
    if (run(u->m, u->x, NULL, &o)) {
      u->bad++;
      continue;
    }
    for (int64_t e = 0; e < dvm_tensor_numel(o); e++) {
      double p = dvm_tensor_get_f64(o, e), q = dvm_tensor_get_f64(u->want, e);
      if (!(fabs(p - q) <= 1e-4 * fabs(q) + 1e-7)) {
        u->bad++;
        break;
      }
    }
    dvm_tensor_destroy(o);
    u->runs++;
  }
  return NULL;
}

static void test_tier_up(void) {
  dvm_context *fresh; /* no compiled kernels yet */
  dvm_context_create(&fresh);
  dvm_context *saved = ctx;
  ctx = fresh;
  dvm_model *up = compile(mlp, DVM_TIER_AUTO), *ref = compile(mlp, DVM_TIER_REF);
  ctx = saved;
  CHECK(up && ref, "compile");
  if (!up || !ref) return;
  const char *pn[] = {"w1", "w2", "g"};
  const int64_t shp[][2] = {{256, 512}, {512, 256}, {256, 0}};
  dvm_tensor *pt[3];
  for (int i = 0; i < 3; i++) {
    dvm_tensor_create(DVM_F32, i == 2 ? 1 : 2, shp[i], &pt[i]);
    dvm_tensor_fill_random(pt[i], 100 + (uint64_t)i);
    dvm_model_set_param(up, pn[i], pt[i]), dvm_model_set_param(ref, pn[i], pt[i]);
  }
  Up u[4];
  pthread_t th[4];
  for (int t = 0; t < 4; t++) {
    u[t] = (Up){.m = up};
    dvm_tensor_create(DVM_F32, 2, (const int64_t[]){3 + 5 * t, 256}, &u[t].x);
    dvm_tensor_fill_random(u[t].x, 1000 + (uint64_t)t);
    CHECK(!run(ref, u[t].x, NULL, &u[t].want), "reference run");
  }
  for (int t = 0; t < 4; t++) pthread_create(&th[t], NULL, up_worker, &u[t]);
  int runs = 0, bad = 0, saw_vm = 0;
  for (int t = 0; t < 4; t++) {
    pthread_join(th[t], NULL);
    runs += u[t].runs, bad += u[t].bad, saw_vm += u[t].saw_vm;
  }
  dvm_model_wait(up);
  dvm_stats s;
  dvm_model_stats(up, &s);
  printf("tier-up: %d runs on 4 threads, %d while some kernels were bytecode; %lld of %lld kernels native "
         "at the end; %lld encodes in %.1f us\n",
         runs, saw_vm, (long long)s.native_kernels, (long long)s.kernels, (long long)s.vm_encodes, s.encode_us);
  CHECK(bad == 0, "%d of %d runs differ from the reference", bad, runs);
  CHECK(saw_vm > 0, "no run saw bytecode (compiles were done before the first run)");
  CHECK(runs > saw_vm, "no run saw native code");
  CHECK(s.native_kernels == s.kernels, "native code never arrived");
  CHECK(s.vm_encodes == s.kernels, "every kernel encoded");
  for (int t = 0; t < 4; t++) dvm_tensor_destroy(u[t].x), dvm_tensor_destroy(u[t].want);
  for (int i = 0; i < 3; i++) dvm_tensor_destroy(pt[i]);
  dvm_model_destroy(up), dvm_model_destroy(ref);
  dvm_context_destroy(fresh);
}

/* ---- encode time over W1–W8 ----------------------------------------------------------------- */

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void test_encode_time(void) {
  double t[512], lo[512];
  int n = 0;
  for (int w = 1; w <= 8; w++) {
    char path[256];
    snprintf(path, sizeof path, "%s/bench/workloads/W%d.dvm", DVM_SOURCE_DIR, w);
    dvm_graph *g;
    if (dvm_graph_load(ctx, path, &g)) {
      CHECK(0, "load %s: %s", path, dvm_last_error());
      continue;
    }
    dvm_compile_options opt = {.tier = DVM_TIER_VM};
    dvm_model *m;
    for (int rep = 0; rep < 5; rep++) { /* the first encodes of a process warm its caches */
      if (dvm_model_compile(ctx, g, &opt, &m)) break;
      dvm_stats s;
      dvm_model_stats(m, &s);
      if (rep == 4 && s.vm_encodes) /* per kernel: the model's mean */
        for (int64_t k = 0; k < s.vm_encodes && n < 512; k++)
          lo[n] = s.lower_us / (double)s.kernels, t[n++] = s.encode_us / (double)s.vm_encodes;
      dvm_model_destroy(m);
    }
    dvm_graph_destroy(g);
  }
  qsort(t, (size_t)n, sizeof *t, cmp_d);
  qsort(lo, (size_t)n, sizeof *lo, cmp_d);
  double med = n ? t[n / 2] : 0, lmed = n ? lo[n / 2] : 0;
  printf("encode: median %.2f us per kernel over %d kernels of W1-W8\n", med, n);
  printf("lower: median %.2f us per kernel (the pipeline's lower stage, before encoding)\n", lmed);
  CHECK(n > 0 && med < 100, "median encode %.2f us", med);
  CHECK(n > 0 && lmed < 100, "median lowering %.2f us", lmed);
}

int main(void) {
  /* this test counts compiles and tier-up in this process: kernels an earlier process
     left in the object cache on disk would be loads instead */
  setenv("DVM_CACHE_DIR", "off", 1);
  int lanes = 0;
  const char *isa = vm_isa(&lanes);
  printf("interpreter: %s (%d x f32), tiles of %d\n", isa, lanes, VM_T);
  dvm_context_create(&ctx);
  test_elementwise();
  test_reductions();
  test_rows();
  test_matvec();
  test_tier_up();
  test_encode_time();
  dvm_context_destroy(ctx);
  return CHECK_SUMMARY();
}
