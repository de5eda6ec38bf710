/* tests/unit/test_lazy.c — the lazy API's rules (include/dvm.h, docs/lazy.md): shapes at
 * once, errors at the op, what a flush computes, the wrapped-buffer rule, a host loop
 * with a data-dependent trip count that compiles once, the cache's bounds, threads, and
 * 10^5 iterations without growth. Values are checked against C computed here. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dvm.h"
#include "tests/unit/check.h"

static dvm_context *ctx;

static dvm_lazy *op1(const char *op, dvm_lazy *a, const char *attrs) {
  dvm_lazy *y = NULL;
  dvm_status st = dvm_lazy_op(ctx, op, 1, &a, attrs, &y);
  CHECK(st == DVM_OK, "%s: %s", op, dvm_last_error());
  return y;
}

static dvm_lazy *op2(const char *op, dvm_lazy *a, dvm_lazy *b) {
  dvm_lazy *in[2] = {a, b}, *y = NULL;
  dvm_status st = dvm_lazy_op(ctx, op, 2, in, NULL, &y);
  CHECK(st == DVM_OK, "%s: %s", op, dvm_last_error());
  return y;
}

static dvm_lazy *scalar(double v) {
  dvm_lazy *s;
  CHECK(!dvm_lazy_scalar(ctx, v, DVM_F32, &s), "scalar: %s", dvm_last_error());
  return s;
}

static float *data(dvm_lazy *x) {
  dvm_tensor *t = NULL;
  dvm_status st = dvm_lazy_tensor(x, &t);
  CHECK(st == DVM_OK && t, "read: %s", dvm_last_error());
  return t ? dvm_tensor_data(t) : NULL;
}

static dvm_tensor *vec(int64_t n, float base) {
  dvm_tensor *t;
  dvm_tensor_create(DVM_F32, 1, &n, &t);
  float *p = dvm_tensor_data(t);
  for (int64_t i = 0; i < n; i++) p[i] = base + (float)i;
  return t;
}

static dvm_lazy_stats stats(void) {
  dvm_lazy_stats s;
  dvm_lazy_stats_get(ctx, &s);
  return s;
}

static void test_basic_and_errors(void) {
  int64_t shape[2] = {3, 4};
  dvm_tensor *xt;
  dvm_tensor_create(DVM_F32, 2, shape, &xt);
  float *xp = dvm_tensor_data(xt);
  for (int i = 0; i < 12; i++) xp[i] = (float)i - 5;
  dvm_lazy *x, *two = scalar(2);
  CHECK(!dvm_lazy_wrap(ctx, xt, &x), "wrap");
  dvm_lazy *y = op2("mul", x, two), *r = op1("relu", y, NULL), *s = op1("reduce_sum", r, "axes=[1]");
  /* shapes at once, before anything ran */
  CHECK(dvm_lazy_rank(s) == 1 && dvm_lazy_shape(s)[0] == 3 && dvm_lazy_dtype(s) == DVM_F32, "shape of s");
  dvm_lazy_destroy(y), dvm_lazy_destroy(r); /* intermediates: fused, never written */
  float *sp = data(s);
  for (int i = 0; sp && i < 3; i++) {
    double want = 0;
    for (int j = 0; j < 4; j++) want += fmax(0, 2.0 * xp[i * 4 + j]);
    CHECK(sp[i] == (float)want, "s[%d] = %g, want %g", i, sp[i], want);
  }
  /* errors at the op, naming it and the dims */
  int64_t n5 = 5;
  dvm_tensor *zt;
  dvm_tensor_create(DVM_F32, 1, &n5, &zt);
  dvm_lazy *z, *bad = NULL, *in[2];
  dvm_lazy_wrap(ctx, zt, &z);
  in[0] = x, in[1] = z;
  dvm_status st = dvm_lazy_op(ctx, "add", 2, in, NULL, &bad);
  CHECK(st == DVM_ERR_SHAPE && !bad && strstr(dvm_last_error(), "lazy add(f32[3, 4], f32[5])"),
        "broadcast error: %d %s", st, dvm_last_error());
  st = dvm_lazy_op(ctx, "frobnicate", 1, in, NULL, &bad);
  CHECK(st == DVM_ERR_GRAPH && strstr(dvm_last_error(), "frobnicate"), "unknown op: %s", dvm_last_error());
  st = dvm_lazy_op(ctx, "reduce_sum", 1, in, "axes=[7]", &bad);
  CHECK(st != DVM_OK && strstr(dvm_last_error(), "reduce_sum(f32[3, 4])"), "bad axis: %s", dvm_last_error());
  st = dvm_lazy_op(ctx, "reshape", 1, in, "shape=[N, 4]", &bad);
  CHECK(st == DVM_ERR_SYNTAX && !bad && strstr(dvm_last_error(), "'N' is a name"), "a symbol in a lazy attribute: %s",
        dvm_last_error());
  st = dvm_lazy_op(ctx, "softmax", 1, in, "axis=-1, bogus=3", &bad);
  CHECK(st != DVM_OK && strstr(dvm_last_error(), "softmax"), "bad attribute: %s", dvm_last_error());
  /* the trace goes on after errors */
  dvm_lazy *ok = op2("add", x, x);
  float *op = data(ok);
  CHECK(op && op[11] == 2 * xp[11], "after errors");
  dvm_lazy_destroy(ok), dvm_lazy_destroy(s), dvm_lazy_destroy(two), dvm_lazy_destroy(x), dvm_lazy_destroy(z);
  dvm_tensor_destroy(xt), dvm_tensor_destroy(zt);
}

/* Values the host let go are not part of the flushed graph (the same cache entry as
 * without them); one it still holds is computed by the same flush. */
static void test_flush_rules(void) {
  dvm_tensor *xt = vec(100, 0.5f);
  dvm_lazy *x;
  dvm_lazy_wrap(ctx, xt, &x);
  dvm_lazy *e = op1("exp", x, NULL), *y = op1("tanh", e, NULL);
  dvm_lazy_destroy(e);
  data(y);
  dvm_lazy_destroy(y);
  dvm_lazy_stats s0 = stats();
  e = op1("exp", x, NULL), y = op1("tanh", e, NULL);
  dvm_lazy *dead = op1("sqrt", x, NULL); /* recorded, let go, never computed */
  dvm_lazy_destroy(dead), dvm_lazy_destroy(e);
  data(y);
  dvm_lazy_stats s1 = stats();
  CHECK(s1.misses == s0.misses && s1.hits == s0.hits + 1, "a dead value changed the flushed trace (%lld misses)",
        (long long)(s1.misses - s0.misses));
  dvm_lazy_destroy(y);
  /* held: computed by the flush that reads another value */
  e = op1("exp", x, NULL), y = op1("tanh", e, NULL);
  data(y);
  dvm_lazy_stats s2 = stats();
  float *ep = data(e);
  CHECK(stats().flushes == s2.flushes && ep && fabsf(ep[3] - expf(3.5f)) <= 1e-5f * expf(3.5f),
        "a held value is an output of the flush");
  dvm_lazy_destroy(e), dvm_lazy_destroy(y);
  /* sync computes what is held */
  y = op1("neg", x, NULL);
  CHECK(!dvm_lazy_sync(ctx), "sync");
  dvm_lazy_stats s3 = stats();
  float *yp = data(y);
  CHECK(stats().flushes == s3.flushes && yp && yp[2] == -2.5f, "sync computed y");
  dvm_lazy_destroy(y), dvm_lazy_destroy(x);
  dvm_tensor_destroy(xt);
}

/* The wrapped-buffer rule: data is read at the flush; after it the host may write. */
static void test_wrapped_buffer(void) {
  dvm_tensor *xt = vec(16, 1);
  float *xp = dvm_tensor_data(xt);
  dvm_lazy *x, *one = scalar(1);
  dvm_lazy_wrap(ctx, xt, &x);
  dvm_lazy *y = op2("add", x, one);
  float *yp = data(y);
  CHECK(yp && yp[5] == 7, "y before the write");
  for (int i = 0; i < 16; i++) xp[i] = 100;
  CHECK(yp[5] == 7, "a computed value does not change when the wrapped buffer does");
  dvm_lazy *z = op2("add", x, one);
  float *zp = data(z);
  CHECK(zp && zp[5] == 101, "a later flush reads the new data: %g", zp ? zp[5] : -1);
  dvm_lazy_destroy(y), dvm_lazy_destroy(z);
  z = op2("mul", x, one); /* pending over x: sync before the host writes or frees it */
  CHECK(!dvm_lazy_sync(ctx), "sync");
  dvm_lazy_destroy(x), dvm_lazy_destroy(one);
  dvm_tensor_destroy(xt); /* ASan: nothing reads it after this */
  CHECK(data(z)[0] == 100, "z");
  dvm_lazy_destroy(z);
  /* adopted: the host lets go at once; the tensor lives while the trace needs it (ASan) */
  dvm_tensor *at = vec(16, 3);
  dvm_lazy *a, *two = scalar(2);
  CHECK(!dvm_lazy_adopt(ctx, at, &a), "adopt");
  dvm_lazy *b = op2("mul", a, two);
  dvm_lazy_destroy(a), dvm_lazy_destroy(two);
  float *bp = data(b);
  CHECK(bp && bp[4] == 14, "an adopted tensor read after its handle went");
  dvm_lazy_destroy(b);
}

/* Newton's iteration for sqrt until the residual (read each iteration) is small: a trip
 * count that depends on data, compiled once per trace shape, at any size. */
static int newton(int64_t n, int64_t *compiles) {
  dvm_tensor *xt = vec(n, 2);
  dvm_lazy *x, *y, *half = scalar(0.5);
  dvm_lazy_wrap(ctx, xt, &x);
  y = op2("add", x, half); /* y0 = x + 0.5, computed before the loop */
  CHECK(!dvm_lazy_sync(ctx), "sync");
  dvm_lazy_stats s0 = stats();
  int it = 0;
  for (; it < 100; it++) {
    dvm_lazy *q = op2("div", x, y), *sum = op2("add", y, q), *y1 = op2("mul", sum, half);
    dvm_lazy *sq = op2("mul", y1, y1), *d = op2("sub", sq, x), *ad = op1("abs", d, NULL);
    dvm_lazy *r = op1("reduce_max", ad, "axes=[0]");
    dvm_lazy_destroy(q), dvm_lazy_destroy(sum), dvm_lazy_destroy(sq), dvm_lazy_destroy(d), dvm_lazy_destroy(ad);
    dvm_lazy_destroy(y);
    y = y1;
    float *rp = data(r);
    float res = rp ? rp[0] : 0;
    dvm_lazy_destroy(r);
    if (res < 1e-3f * (float)n) break;
  }
  *compiles = stats().misses - s0.misses;
  float *yp = data(y);
  int bad = 0;
  for (int64_t i = 0; yp && i < n; i++) bad += fabsf(yp[i] - sqrtf(2.0f + (float)i)) > 1e-3f * sqrtf(2.0f + (float)i);
  CHECK(yp && !bad && it > 2 && it < 100, "newton n=%lld: %d iterations, %d wrong", (long long)n, it, bad);
  dvm_lazy_destroy(y), dvm_lazy_destroy(x), dvm_lazy_destroy(half);
  dvm_tensor_destroy(xt);
  return it;
}

static void test_host_loop(void) {
  int64_t c1, c2, c3;
  newton(1000, &c1);
  newton(37, &c2);
  newton(100000, &c3);
  /* the loop: one trace, compiled at the first size, hit at every size after */
  CHECK(c1 == 1 && c2 == 0 && c3 == 0, "compiles over the Newton loops: %lld, %lld, %lld", (long long)c1,
        (long long)c2, (long long)c3);
}

static void test_cache_bounds(void) {
  dvm_lazy_options o = {.tier = DVM_TIER_VM, .threads = 1, .cache_entries = 2};
  CHECK(!dvm_context_set_lazy_options(ctx, &o), "options");
  dvm_lazy_stats s0 = stats();
  dvm_tensor *xt = vec(8, 0);
  dvm_lazy *x;
  dvm_lazy_wrap(ctx, xt, &x);
  const char *ops[] = {"sin", "cos", "exp", "tanh", "sigmoid"};
  for (int round = 0; round < 2; round++)
    for (int i = 0; i < 5; i++) {
      dvm_lazy *y = op1(ops[i], x, NULL);
      float *yp = data(y);
      double want = i == 0 ? sin(3) : i == 1 ? cos(3) : i == 2 ? exp(3) : i == 3 ? tanh(3) : 1 / (1 + exp(-3));
      CHECK(yp && fabs(yp[3] - want) <= 1e-5 * fabs(want) + 1e-6, "%s(3) = %g", ops[i], yp ? yp[3] : 0);
      dvm_lazy_destroy(y);
    }
  dvm_lazy_stats s1 = stats();
  CHECK(s1.entries <= 2 && s1.evictions - s0.evictions >= 8 && s1.bytes > 0, "bounded: %lld entries, %lld evictions",
        (long long)s1.entries, (long long)(s1.evictions - s0.evictions));
  dvm_lazy_destroy(x);
  dvm_tensor_destroy(xt);
  o.cache_entries = 0; /* the default again */
  dvm_context_set_lazy_options(ctx, &o);
}

/* Threads: each records its own trace; a value pending in one thread's trace used by
 * another is computed first. */
typedef struct Shared {
  dvm_lazy *pending; /* recorded by the main thread, not yet flushed */
  int id, bad;
} Shared;

static void *worker(void *p) {
  Shared *sh = p;
  int64_t n = 50 + sh->id * 13;
  dvm_tensor *xt = vec(n, (float)sh->id);
  dvm_lazy *x, *k = NULL;
  dvm_lazy_wrap(ctx, xt, &x);
  dvm_lazy_scalar(ctx, sh->id + 1, DVM_F32, &k);
  for (int it = 0; it < 300; it++) {
    dvm_lazy *in[2] = {x, k}, *y = NULL, *z = NULL;
    dvm_lazy_op(ctx, "mul", 2, in, NULL, &y);
    in[0] = y, in[1] = sh->pending; /* [1] broadcast: the main thread's value */
    if (!y || dvm_lazy_op(ctx, "add", 2, in, NULL, &z)) {
      sh->bad++;
      dvm_lazy_destroy(y);
      break;
    }
    dvm_tensor *t;
    if (dvm_lazy_tensor(z, &t)) sh->bad++;
    else {
      float *zp = dvm_tensor_data(t);
      for (int64_t i = 0; i < n; i++) sh->bad += zp[i] != ((float)sh->id + (float)i) * (float)(sh->id + 1) + 7.0f;
    }
    dvm_lazy_destroy(y), dvm_lazy_destroy(z);
  }
  dvm_lazy_destroy(x), dvm_lazy_destroy(k);
  dvm_tensor_destroy(xt);
  return NULL;
}

static void test_threads(void) {
  int64_t one = 1;
  dvm_tensor *ct;
  dvm_tensor_create(DVM_F32, 1, &one, &ct);
  *(float *)dvm_tensor_data(ct) = 3;
  dvm_lazy *c, *four = scalar(4);
  dvm_lazy_wrap(ctx, ct, &c);
  dvm_lazy *pending = op2("add", c, four); /* 7, pending in this thread's trace */
  Shared sh[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) sh[i] = (Shared){pending, i, 0}, pthread_create(&th[i], NULL, worker, &sh[i]);
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 4; i++) CHECK(sh[i].bad == 0, "thread %d: %d wrong", i, sh[i].bad);
  CHECK(data(pending)[0] == 7, "the shared value");
  dvm_lazy_destroy(pending), dvm_lazy_destroy(c), dvm_lazy_destroy(four);
  dvm_tensor_destroy(ct);
}

static long rss_kb(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, res = 0;
  if (f && fscanf(f, "%ld %ld", &pages, &res) != 2) res = 0;
  if (f) fclose(f);
  return res * 4;
}

static void test_no_growth(void) {
  dvm_tensor *xt = vec(64, 0);
  dvm_lazy *one = scalar(1);
  long at10k = 0;
  int bad = 0;
  for (int it = 1; it <= 100000; it++) {
    dvm_lazy *x, *y, *z;
    dvm_lazy_wrap(ctx, xt, &x);
    y = op2("add", x, one);
    z = op1("sqrt", y, NULL);
    dvm_lazy_destroy(y);
    dvm_tensor *t;
    if (dvm_lazy_tensor(z, &t) || ((float *)dvm_tensor_data(t))[3] != 2.0f) bad++;
    dvm_lazy_destroy(z), dvm_lazy_destroy(x);
    if (it == 10000) at10k = rss_kb();
  }
  long at100k = rss_kb();
  CHECK(!bad, "%d iterations wrong", bad);
  CHECK(at100k - at10k < 4096, "RSS grew by %ld KB from 10^4 to 10^5 iterations", at100k - at10k);
  dvm_lazy_destroy(one);
  dvm_tensor_destroy(xt);
}

static void test_apply(void) {
  dvm_graph *g;
  const char *text = "graph g\ninput x: f32[N, 4]\nparam b: f32[4]\ns = slice(x, axes=[0], starts=[1], ends=[N])\n"
                     "y = add(s, b)\noutput y, x\n";
  CHECK(!dvm_graph_parse(ctx, text, strlen(text), "g.dvm", &g), "parse: %s", dvm_last_error());
  int64_t sh[2] = {5, 4}, n4 = 4;
  dvm_tensor *xt, *bt;
  dvm_tensor_create(DVM_F32, 2, sh, &xt), dvm_tensor_create(DVM_F32, 1, &n4, &bt);
  dvm_tensor_fill_random(xt, 1), dvm_tensor_fill_random(bt, 2);
  dvm_lazy *args[2], *outs[2] = {0};
  dvm_lazy_wrap(ctx, xt, &args[0]), dvm_lazy_wrap(ctx, bt, &args[1]);
  CHECK(!dvm_lazy_apply(ctx, g, 2, args, outs), "apply: %s", dvm_last_error());
  CHECK(outs[0] && dvm_lazy_shape(outs[0])[0] == 4 && outs[1] == args[0], "apply's outputs");
  float *yp = data(outs[0]), *xp = dvm_tensor_data(xt), *bp = dvm_tensor_data(bt);
  CHECK(yp && yp[5] == xp[9] + bp[1], "apply's values");
  dvm_lazy *one_arg[1] = {args[0]}, *none[2] = {args[0], args[0]};
  CHECK(dvm_lazy_apply(ctx, g, 1, one_arg, none) == DVM_ERR_USAGE && !none[0] && !none[1],
        "apply with a missing arg: no outputs");
  for (int i = 0; i < 2; i++) dvm_lazy_destroy(outs[i]), dvm_lazy_destroy(args[i]);
  dvm_tensor_destroy(xt), dvm_tensor_destroy(bt);
  dvm_graph_destroy(g);
}

/* What review found: shapes inference cannot determine, symbolic forms that differ from
 * the trace at some sizes, a failed parse, reentry from an extern, scalars out of range,
 * threads that exit with pending values, and the cache's byte bound. */
static dvm_status reentry_status = DVM_OK;
static void reenter_cb(const float *x, float *out, int64_t n) {
  reentry_status = dvm_lazy_sync(ctx); /* refused, not a deadlock */
  for (int64_t i = 0; i < n; i++) out[i] = x[i] + 1;
}

static void *leave_pending(void *p) {
  dvm_lazy **held = p, *x, *dead;
  dvm_tensor *t = vec(32, 1);
  dvm_lazy_adopt(ctx, t, &x);
  dead = op1("exp", x, NULL);
  *held = op1("neg", x, NULL); /* pending when this thread exits */
  dvm_lazy_destroy(dead), dvm_lazy_destroy(x);
  return NULL;
}

static void test_review_cases(void) {
  dvm_tensor *t3 = vec(3, 0);
  dvm_lazy *x3, *bad = NULL, *ok;
  dvm_lazy_wrap(ctx, t3, &x3);
  dvm_status st = dvm_lazy_op(ctx, "reshape", 1, &x3, "shape=[-1, 2]", &bad);
  CHECK(st == DVM_ERR_SHAPE && !bad && strstr(dvm_last_error(), "do not determine"), "reshape [-1, 2] of 3: %d %s", st,
        dvm_last_error());
  st = dvm_lazy_op(ctx, "reshape", 1, &x3, "shape=[N, 1], bogus=1", &bad);
  CHECK(st != DVM_OK && !bad, "a parse that fails after a name");
  ok = op1("exp", x3, NULL); /* the trace is as it was */
  CHECK(ok && data(ok) && fabsf(data(ok)[2] - expf(2)) < 1e-5f, "after the failed ops");
  dvm_lazy_destroy(ok), dvm_lazy_destroy(x3);
  dvm_tensor_destroy(t3);
  /* reshape with -1 and squeeze without axes: symbolic forms that do not hold at every
     size are pinned, and every size computes what it should */
  const int64_t shapes[][2] = {{6, 10}, {10, 6}, {12, 2}, {6, 10}, {5, 3}, {8, 3}, {5, 3}, {9, 3}};
  for (int i = 0; i < 8; i++) {
    dvm_tensor *t;
    dvm_tensor_create(DVM_F32, 2, shapes[i], &t);
    float *p = dvm_tensor_data(t);
    for (int64_t k = 0; k < shapes[i][0] * shapes[i][1]; k++) p[k] = (float)k;
    dvm_lazy *x, *r;
    dvm_lazy_wrap(ctx, t, &x);
    if (i < 4) { /* 60 or 24 elements as rows of 12 */
      r = op1("reshape", x, "shape=[-1, 12]");
      float *rp = data(r);
      CHECK(rp && dvm_lazy_shape(r)[0] == shapes[i][0] * shapes[i][1] / 12 && rp[13] == 13,
            "reshape [%lld, %lld] to [-1, 12]", (long long)shapes[i][0], (long long)shapes[i][1]);
    } else { /* rows 4.. of [n, 3]: one row (squeezed away) at n = 5 */
      dvm_lazy *s2 = op1("slice", x, "axes=[0], starts=[4], ends=[1000000]");
      r = op1("squeeze", s2, NULL);
      dvm_lazy_destroy(s2);
      float *rp = data(r);
      CHECK(rp && dvm_lazy_rank(r) == (shapes[i][0] == 5 ? 1 : 2) && rp[0] == 12 && rp[2] == 14,
            "squeeze of rows 4.. of [%lld, 3]: rank %d", (long long)shapes[i][0], dvm_lazy_rank(r));
    }
    dvm_lazy_destroy(r), dvm_lazy_destroy(x);
    dvm_tensor_destroy(t);
  }
  /* a max over zero elements has no identity: an error in every tier, as in the reference */
  dvm_tensor *t1 = vec(1, 0);
  dvm_lazy *x1, *e1, *m1;
  dvm_lazy_wrap(ctx, t1, &x1);
  e1 = op1("slice", x1, "axes=[0], starts=[3], ends=[-3]");
  m1 = op1("reduce_max", e1, "axes=[0]");
  dvm_tensor *mt = NULL;
  st = dvm_lazy_tensor(m1, &mt);
  CHECK(st == DVM_ERR_RUNTIME && strstr(dvm_last_error(), "no identity"), "max of nothing: %d %s", st, dvm_last_error());
  dvm_lazy_destroy(m1), dvm_lazy_destroy(e1), dvm_lazy_destroy(x1);
  dvm_tensor_destroy(t1);
  /* scalars: in range or refused */
  dvm_lazy *s;
  CHECK(dvm_lazy_scalar(ctx, 3e9, DVM_I32, &s) == DVM_ERR_DTYPE && !s, "3e9 is not an i32");
  CHECK(dvm_lazy_scalar(ctx, NAN, DVM_I64, &s) == DVM_ERR_DTYPE, "NaN is not an i64");
  CHECK(dvm_lazy_scalar(ctx, 9223372036854775808.0, DVM_I64, &s) == DVM_ERR_DTYPE, "2^63 is not an i64");
  CHECK(!dvm_lazy_scalar(ctx, -2147483648.0, DVM_I32, &s), "-2^31 is an i32");
  dvm_lazy_destroy(s);
  /* an extern function that enters the lazy API is refused there */
  CHECK(!dvm_register_extern(ctx, "reenter", (dvm_extern_fn)reenter_cb, "void <- f32* x, f32* out, i64 n"), "register");
  dvm_tensor *t4 = vec(4, 0);
  dvm_lazy *x4, *y4;
  dvm_lazy_wrap(ctx, t4, &x4);
  st = dvm_lazy_op(ctx, "call", 1, &x4, "fn=reenter, shape=[4], dtype=f32, dims=[4]", &y4);
  CHECK(st == DVM_OK && reentry_status == DVM_ERR_USAGE && data(y4)[3] == 4, "reentry: %d, inside %d", st,
        reentry_status);
  dvm_lazy_destroy(y4), dvm_lazy_destroy(x4);
  dvm_tensor_destroy(t4);
  /* a thread that exits with values pending: the held one is computed, readable here */
  for (int i = 0; i < 20; i++) {
    dvm_lazy *held = NULL;
    pthread_t th;
    pthread_create(&th, NULL, leave_pending, &held);
    pthread_join(th, NULL);
    float *hp = held ? data(held) : NULL;
    CHECK(hp && hp[5] == -6, "a value left pending by an exited thread");
    dvm_lazy_destroy(held);
  }
  /* the byte bound counts what runs make (arenas): programs passing a 4 MB intermediate
     from one matmul to another evict each other under a 4 MB bound */
  dvm_lazy_options o = {.tier = DVM_TIER_VM, .threads = 1, .cache_bytes = 4 << 20};
  dvm_context_set_lazy_options(ctx, &o);
  dvm_lazy_stats b0 = stats();
  int64_t sq[2] = {1024, 1024};
  dvm_tensor *bt;
  dvm_tensor_create(DVM_F32, 2, sq, &bt);
  dvm_lazy *bx;
  dvm_lazy_wrap(ctx, bt, &bx);
  const char *un[] = {"exp", "tanh", "sin", "cos"};
  for (int i = 0; i < 4; i++) {
    dvm_lazy *a = op2("matmul", bx, bx), *b = op1(un[i], a, NULL), *c = op2("matmul", b, bx);
    dvm_lazy_destroy(a), dvm_lazy_destroy(b);
    CHECK(data(c) != NULL, "matmuls");
    dvm_lazy_destroy(c);
  }
  dvm_lazy_stats b1 = stats();
  CHECK(b1.evictions - b0.evictions >= 3 && b1.entries >= 1, "byte bound: %lld evictions, %lld bytes",
        (long long)(b1.evictions - b0.evictions), (long long)b1.bytes);
  dvm_lazy_destroy(bx);
  dvm_tensor_destroy(bt);
  o.cache_bytes = 0;
  dvm_context_set_lazy_options(ctx, &o);
}

int main(void) {
  if (dvm_context_create(&ctx)) return 1;
  dvm_lazy_options o = {.tier = DVM_TIER_VM, .threads = 1};
  dvm_context_set_lazy_options(ctx, &o);
  test_basic_and_errors();
  test_flush_rules();
  test_wrapped_buffer();
  test_host_loop();
  test_cache_bounds();
  test_threads();
  test_apply();
  test_review_cases();
  test_no_growth();
  dvm_context_destroy(ctx);
  return CHECK_SUMMARY();
}
