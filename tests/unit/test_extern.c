/* tests/unit/test_extern.c — extern ops (docs/extern.md) as an embedder uses them.
 *
 * Registers host functions of several signatures (tensor pointers of f32, i32, i64 and
 * bool, void*, a by-value f32 from a literal, a by-value i64 from a tensor, i32 and i64
 * dims from dims=[...] with symbols, a void result and an f64 result), builds a graph
 * that mixes them with fused elementwise ops before and after (and a view read by a call),
 * runs it at several N in every tier (ref, vm, llvm, auto before and after its native
 * code arrives) and compares each output with the same computation written here in plain
 * C; and by-value operands of each dtype converted to each parameter type. Checks that the vm and llvm tiers run every kernel as bytecode / native code (the
 * calls are not left on the reference path), that a call nobody reads is still made,
 * that one name in two contexts calls each context's function (native code embeds the
 * address), concurrent runs, and the errors: bad signatures, a second registration,
 * unregistered functions, arity, dtype and shape mismatches, and `dvm dump`. The last
 * line printed is "N passed, M failed". */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dvm.h"

#include "check.h"

static dvm_context *ctx;
static bool msg_has(const char *s) { return strstr(dvm_last_error(), s) != NULL; }

/* ---- the host's functions -------------------------------------------------------------- */

static atomic_int calls_saxpy, calls_dead;

/* out = 3·x + y over n elements */
static void saxpy(const float *x, const float *y, float *out, int64_t n) {
  atomic_fetch_add(&calls_saxpy, 1);
  for (int64_t i = 0; i < n; i++) out[i] = 3.0f * x[i] + y[i];
}

/* out = alpha·x */
static void scale(const float *x, float alpha, float *out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = alpha * x[i];
}

/* out[r] = how many of row r's cols elements are > 0 (i32 dims) */
static void count_pos(const float *x, int32_t *out, int32_t rows, int32_t cols) {
  for (int32_t r = 0; r < rows; r++) {
    int32_t c = 0;
    for (int32_t j = 0; j < cols; j++) c += x[r * cols + j] > 0;
    out[r] = c;
  }
}

/* the sum of n floats, in double: a scalar result */
static double sum_all(const float *x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += x[i];
  return s;
}

/* out = ids + offset (i64 tensors, the offset by value) */
static void shift(const int64_t *ids, int64_t offset, int64_t *out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = ids[i] + offset;
}

/* out = x > 0.25 (x through void*, a bool output) */
static void mask(const void *x, bool *out, int64_t n) {
  const float *f = x;
  for (int64_t i = 0; i < n; i++) out[i] = f[i] > 0.25f;
}

/* a call nobody reads: only counts */
static void dead(const float *x, float *out, int64_t n) {
  atomic_fetch_add(&calls_dead, 1);
  for (int64_t i = 0; i < n; i++) out[i] = x[i];
}

static void plus1(const float *x, float *out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = x[i] + 1;
}
static void plus2(const float *x, float *out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = x[i] + 2;
}

/* by-value conversions: each parameter written back as a float */
static void conv(float a, double b, int32_t c, int64_t d, double e, int32_t f, int32_t g, float *out) {
  out[0] = a, out[1] = (float)b, out[2] = (float)c, out[3] = (float)d, out[4] = (float)e, out[5] = (float)f;
  out[6] = (float)g;
}

static void register_all(void) {
  static const struct {
    const char *name;
    dvm_extern_fn fn;
    const char *sig;
  } fns[] = {
      {"saxpy", (dvm_extern_fn)saxpy, "void <- f32* x, f32* y, f32* out, i64 n"},
      {"scale", (dvm_extern_fn)scale, "void <- f32*, f32 alpha, f32*, i64"},
      {"count_pos", (dvm_extern_fn)count_pos, "void<-f32*,i32*,i32 rows,i32 cols"},
      {"sum_all", (dvm_extern_fn)sum_all, "f64 <- f32*, i64"},
      {"lib.shift", (dvm_extern_fn)shift, "void <- i64*, i64, i64*, i64"},
      {"mask", (dvm_extern_fn)mask, "void <- void* x, bool* out, i64 n"},
      {"dead", (dvm_extern_fn)dead, "void <- f32*, f32*, i64"},
      {"conv", (dvm_extern_fn)conv, "void <- f32 a, f64 b, i32 c, i64 d, f64 e, i32 f, i32 g, f32* out"},
  };
  for (size_t i = 0; i < sizeof fns / sizeof *fns; i++)
    CHECK(dvm_register_extern(ctx, fns[i].name, fns[i].fn, fns[i].sig) == DVM_OK, "register %s: %s", fns[i].name,
          dvm_last_error());
}

/* ---- the graph and its oracle ------------------------------------------------------------ */

static const char graph_text[] =
    "graph ext\n"
    "input x: f32[N, 4]\n"
    "input y: f32[N, 4]\n"
    "input ids: i64[N]\n"
    "input off: i64[]\n"
    "a = mul(x, 2)\n"                                                          /* fused before */
    "b = add(y, 1)\n"
    "s = call(a, b, fn=saxpy, shape=[N, 4], dtype=f32, dims=[N*4])\n"
    "t = call(s, 0.25, fn=scale, shape=[N, 4], dtype=f32, dims=[4*N])\n"        /* literal by value */
    "u = tanh(t)\n"                                                            /* fused after */
    "c = call(u, fn=count_pos, shape=[N], dtype=i32, dims=[N, 4])\n"           /* i32 out, i32 dims */
    "tot = call(u, fn=sum_all, shape=[], dtype=f32, dims=[N*4])\n"              /* scalar result */
    "v = mul(u, tot)\n"
    "cf = cast(c, to=f32)\n"
    "cr = reshape(cf, shape=[N, 1])\n"
    "w = add(v, cr)\n"
    "sh = call(ids, off, fn=lib.shift, shape=[N], dtype=i64, dims=[N])\n"      /* i64 by value */
    "xt = transpose(x, perm=[1, 0])\n"
    "m = call(xt, fn=mask, shape=[4, N], dtype=bool, dims=[4*N])\n"            /* a view operand */
    "z = select(m, xt, 0)\n"
    "d = call(x, fn=dead, shape=[N, 4], dtype=f32, dims=[N*4])\n"              /* nobody reads d */
    "output w, sh, z, c\n";

typedef struct Io {
  int64_t n;
  dvm_tensor *in[4]; /* x, y, ids, off */
  dvm_tensor *out[4];
} Io;

static const char *const in_names[] = {"x", "y", "ids", "off"};

static dvm_tensor *tensor(dvm_dtype dt, int rank, const int64_t *shape) {
  dvm_tensor *t = NULL;
  CHECK(dvm_tensor_create(dt, rank, shape, &t) == DVM_OK, "%s", dvm_last_error());
  return t;
}

static void make_inputs(Io *io, int64_t n, uint64_t seed) {
  memset(io, 0, sizeof *io);
  io->n = n;
  int64_t s2[2] = {n, 4}, s1[1] = {n};
  io->in[0] = tensor(DVM_F32, 2, s2), io->in[1] = tensor(DVM_F32, 2, s2);
  io->in[2] = tensor(DVM_I64, 1, s1), io->in[3] = tensor(DVM_I64, 0, NULL);
  dvm_tensor_fill_random(io->in[0], seed);
  dvm_tensor_fill_random(io->in[1], seed + 1);
  dvm_tensor_fill_random(io->in[2], seed + 2);
  *(int64_t *)dvm_tensor_data(io->in[3]) = 1000 + (int64_t)seed;
}

static void free_io(Io *io) {
  for (int i = 0; i < 4; i++) dvm_tensor_destroy(io->in[i]), dvm_tensor_destroy(io->out[i]);
  memset(io, 0, sizeof *io);
}

static bool close_to(double got, double want) { return fabs(got - want) <= 1e-5 + 1e-5 * fabs(want); }

/* The graph's outputs computed here, in float as the kernels do (tanh in double). */
static void oracle_check(const Io *io, const char *what) {
  int64_t n = io->n;
  const float *x = dvm_tensor_data(io->in[0]), *y = dvm_tensor_data(io->in[1]);
  const int64_t *ids = dvm_tensor_data(io->in[2]), off = *(const int64_t *)dvm_tensor_data(io->in[3]);
  float *u = malloc((size_t)(n * 4 + 1) * sizeof *u);
  int32_t *c = malloc((size_t)(n + 1) * sizeof *c);
  double tot = 0;
  for (int64_t i = 0; i < n * 4; i++) {
    float s = 3.0f * (x[i] * 2.0f) + (y[i] + 1.0f), t = 0.25f * s;
    u[i] = (float)tanh(t);
    tot += u[i];
  }
  for (int64_t r = 0; r < n; r++) {
    c[r] = 0;
    for (int j = 0; j < 4; j++) c[r] += u[r * 4 + j] > 0;
  }
  int bad = 0;
  for (int i = 0; i < 4; i++)
    if (!io->out[i]) {
      CHECK(0, "%s N=%lld: output %d missing", what, (long long)n, i);
      free(u), free(c);
      return;
    }
  CHECK(dvm_tensor_dtype(io->out[0]) == DVM_F32 && dvm_tensor_rank(io->out[0]) == 2 &&
            dvm_tensor_shape(io->out[0])[0] == n && dvm_tensor_dtype(io->out[1]) == DVM_I64 &&
            dvm_tensor_dtype(io->out[2]) == DVM_F32 && dvm_tensor_shape(io->out[2])[0] == 4 &&
            dvm_tensor_shape(io->out[2])[1] == n && dvm_tensor_dtype(io->out[3]) == DVM_I32,
        "%s N=%lld: output dtypes/shapes", what, (long long)n);
  const float *w = dvm_tensor_data(io->out[0]), *z = dvm_tensor_data(io->out[2]);
  const int64_t *sh = dvm_tensor_data(io->out[1]);
  const int32_t *cc = dvm_tensor_data(io->out[3]);
  for (int64_t r = 0; r < n; r++) {
    bad += cc[r] != c[r];
    bad += sh[r] != ids[r] + off;
    for (int j = 0; j < 4; j++) {
      double want_w = (double)u[r * 4 + j] * (float)tot + c[r];
      if (!close_to(w[r * 4 + j], want_w) && bad++ < 5)
        printf("  %s w[%lld,%d] = %.9g, want %.9g\n", what, (long long)r, j, w[r * 4 + j], want_w);
      float xv = x[r * 4 + j];
      bad += z[j * n + r] != (xv > 0.25f ? xv : 0.0f); /* z = select(x.T > 0.25, x.T, 0) */
    }
  }
  CHECK(bad == 0, "%s N=%lld: %d elements differ from the plain-C oracle", what, (long long)n, bad);
  free(u);
  free(c);
}

static dvm_graph *parse(const char *text, const char *file) {
  dvm_graph *g = NULL;
  CHECK(dvm_graph_parse(ctx, text, strlen(text), file, &g) == DVM_OK, "%s", dvm_last_error());
  return g;
}

static dvm_model *compile(const dvm_graph *g, dvm_tier tier) {
  dvm_compile_options opt = {.tier = tier, .threads = 2};
  dvm_model *m = NULL;
  CHECK(dvm_model_compile(ctx, g, &opt, &m) == DVM_OK, "tier %d: %s", (int)tier, dvm_last_error());
  return m;
}

/* ---- every tier against the oracle -------------------------------------------------------- */

static void tiers(void) {
  dvm_graph *g = parse(graph_text, "ext.dvm");
  if (!g) return;
  static const struct {
    dvm_tier tier;
    const char *name;
  } ts[] = {{DVM_TIER_REF, "ref"}, {DVM_TIER_VM, "vm"}, {DVM_TIER_LLVM, "llvm"}, {DVM_TIER_AUTO, "auto"}};
  static const int64_t ns[] = {1, 3, 17, 64, 5};
  for (size_t t = 0; t < sizeof ts / sizeof *ts; t++) {
    dvm_model *m = compile(g, ts[t].tier);
    if (!m) continue;
    for (int pass = 0; pass < (ts[t].tier == DVM_TIER_AUTO ? 2 : 1); pass++) {
      if (pass) dvm_model_wait(m); /* auto: now on native code */
      for (size_t i = 0; i < sizeof ns / sizeof *ns; i++) {
        Io io;
        make_inputs(&io, ns[i], 7 * i + t);
        int before = atomic_load(&calls_dead), sax = atomic_load(&calls_saxpy);
        dvm_status st = dvm_model_run(m, 4, in_names, io.in, io.out);
        CHECK(st == DVM_OK, "%s N=%lld: %s", ts[t].name, (long long)ns[i], dvm_last_error());
        if (st == DVM_OK) oracle_check(&io, ts[t].name);
        CHECK(atomic_load(&calls_dead) == before + 1 && atomic_load(&calls_saxpy) == sax + 1,
              "%s: each function called once per run (dead %d, saxpy %d)", ts[t].name,
              atomic_load(&calls_dead) - before, atomic_load(&calls_saxpy) - sax);
        free_io(&io);
      }
    }
    dvm_stats s;
    dvm_model_stats(m, &s);
    if (ts[t].tier == DVM_TIER_VM)
      CHECK(s.vm_encodes == s.kernels, "vm: %lld of %lld kernels are bytecode", (long long)s.vm_encodes,
            (long long)s.kernels);
    if (ts[t].tier == DVM_TIER_LLVM || ts[t].tier == DVM_TIER_AUTO)
      CHECK(s.native_kernels == s.kernels, "%s: %lld of %lld kernels native", ts[t].name,
            (long long)s.native_kernels, (long long)s.kernels);
    if (ts[t].tier == DVM_TIER_AUTO)
      CHECK(s.vm_encodes == s.kernels, "auto: %lld of %lld kernels encoded", (long long)s.vm_encodes,
            (long long)s.kernels);
    dvm_model_destroy(m);
  }
  /* run_into: the caller's output tensors, written in place */
  dvm_model *m = compile(g, DVM_TIER_LLVM);
  if (m) {
    Io io, into;
    make_inputs(&io, 9, 99);
    make_inputs(&into, 9, 99);
    dvm_tensor *dst[4];
    int64_t s2[2] = {9, 4}, s1[1] = {9}, st2[2] = {4, 9};
    dst[0] = tensor(DVM_F32, 2, s2), dst[1] = tensor(DVM_I64, 1, s1), dst[2] = tensor(DVM_F32, 2, st2);
    dst[3] = tensor(DVM_I32, 1, s1);
    CHECK(dvm_model_run_into(m, 4, in_names, io.in, dst) == DVM_OK, "run_into: %s", dvm_last_error());
    for (int i = 0; i < 4; i++) io.out[i] = dst[i];
    oracle_check(&io, "llvm run_into");
    free_io(&io);
    free_io(&into);
    dvm_model_destroy(m);
  }
  dvm_graph_destroy(g);
}

/* ---- scalar operands converted to each parameter type, in every tier --------------------- */

static void conversions(void) {
  static const char text[] = "graph conv\ninput p: f32[]\ninput q: i64[1]\ninput r: bool[]\n"
                             "o = call(p, p, p, q, r, q, 3.9, fn=conv, shape=[7], dtype=f32)\noutput o\n";
  dvm_graph *g = parse(text, "conv.dvm");
  if (!g) return;
  int64_t one = 1;
  dvm_tensor *in[3] = {tensor(DVM_F32, 0, NULL), tensor(DVM_I64, 1, &one), tensor(DVM_BOOL, 0, NULL)};
  if (!in[0] || !in[1] || !in[2]) return;
  *(float *)dvm_tensor_data(in[0]) = -2.7f;
  *(int64_t *)dvm_tensor_data(in[1]) = 5000000000;
  *(uint8_t *)dvm_tensor_data(in[2]) = 1;
  const float want[7] = {-2.7f, (float)(double)-2.7f, -2.0f, (float)5000000000LL, 1.0f,
                         (float)(int32_t)(uint32_t)5000000000ULL, 3.0f};
  const char *names[] = {"p", "q", "r"};
  static const dvm_tier ts[] = {DVM_TIER_REF, DVM_TIER_VM, DVM_TIER_LLVM, DVM_TIER_AUTO};
  for (int t = 0; t < 4; t++) {
    dvm_model *m = compile(g, ts[t]);
    if (!m) continue;
    if (ts[t] == DVM_TIER_AUTO) dvm_model_wait(m);
    dvm_tensor *out = NULL;
    CHECK(dvm_model_run(m, 3, names, in, &out) == DVM_OK, "tier %d: %s", (int)ts[t], dvm_last_error());
    for (int i = 0; out && i < 7; i++)
      CHECK(((float *)dvm_tensor_data(out))[i] == want[i], "tier %d: argument %d is %.9g, want %.9g", (int)ts[t],
            i + 1, ((float *)dvm_tensor_data(out))[i], want[i]);
    dvm_tensor_destroy(out);
    dvm_model_destroy(m);
  }
  for (int i = 0; i < 3; i++) dvm_tensor_destroy(in[i]);
  dvm_graph_destroy(g);
}

/* ---- one name, two contexts: each model calls its own context's function --------------- */

static void two_contexts(void) {
  static const char text[] = "graph two\ninput x: f32[N]\ny = call(x, fn=bump, shape=[N], dtype=f32, dims=[N])\n"
                             "z = mul(y, 2)\noutput z\n";
  dvm_context *c2[2] = {NULL, NULL};
  dvm_model *m[2] = {NULL, NULL};
  for (int i = 0; i < 2; i++) {
    CHECK(dvm_context_create(&c2[i]) == DVM_OK, "%s", dvm_last_error());
    CHECK(dvm_register_extern(c2[i], "bump", i ? (dvm_extern_fn)plus2 : (dvm_extern_fn)plus1,
                              "void <- f32*, f32*, i64") == DVM_OK,
          "%s", dvm_last_error());
    dvm_graph *g = NULL;
    CHECK(dvm_graph_parse(c2[i], text, strlen(text), "two.dvm", &g) == DVM_OK, "%s", dvm_last_error());
    dvm_compile_options opt = {.tier = DVM_TIER_LLVM, .threads = 1};
    CHECK(dvm_model_compile(c2[i], g, &opt, &m[i]) == DVM_OK, "%s", dvm_last_error());
    dvm_graph_destroy(g);
  }
  int64_t n = 6;
  dvm_tensor *x = tensor(DVM_F32, 1, &n);
  dvm_tensor_fill_random(x, 5);
  const char *nm[] = {"x"};
  for (int i = 0; i < 2 && m[0] && m[1]; i++) {
    dvm_tensor *out = NULL;
    CHECK(dvm_model_run(m[i], 1, nm, &x, &out) == DVM_OK, "%s", dvm_last_error());
    int bad = 0;
    for (int64_t k = 0; out && k < n; k++)
      bad += ((float *)dvm_tensor_data(out))[k] != (((float *)dvm_tensor_data(x))[k] + (float)(i + 1)) * 2.0f;
    CHECK(out && bad == 0, "context %d: %d elements are not (x + %d)·2", i, bad, i + 1);
    dvm_tensor_destroy(out);
  }
  dvm_tensor_destroy(x);
  for (int i = 0; i < 2; i++) dvm_model_destroy(m[i]), dvm_context_destroy(c2[i]);
}

/* ---- concurrent runs ---------------------------------------------------------------------- */

typedef struct Th {
  dvm_model *m;
  int64_t n;
  int errors;
} Th;

static void *run_thread(void *p) {
  Th *t = p;
  for (int it = 0; it < 20; it++) {
    Io io;
    make_inputs(&io, t->n, (uint64_t)it);
    if (dvm_model_run(t->m, 4, in_names, io.in, io.out) != DVM_OK) t->errors++;
    else oracle_check(&io, "thread");
    free_io(&io);
  }
  return NULL;
}

static void concurrent(void) {
  dvm_graph *g = parse(graph_text, "ext.dvm");
  dvm_model *m = g ? compile(g, DVM_TIER_LLVM) : NULL;
  dvm_graph_destroy(g);
  if (!m) return;
  enum { T = 4 };
  Th th[T];
  pthread_t id[T];
  for (int i = 0; i < T; i++) th[i] = (Th){m, 2 + 5 * i, 0}, pthread_create(&id[i], NULL, run_thread, &th[i]);
  for (int i = 0; i < T; i++) pthread_join(id[i], NULL);
  for (int i = 0; i < T; i++) CHECK(th[i].errors == 0, "thread %d: %d errors", i, th[i].errors);
  dvm_model_destroy(m);
}

/* ---- errors ------------------------------------------------------------------------------- */

static void bad_signatures(void) {
  static const struct {
    const char *sig, *says;
  } bad[] = {
      {"void f32*, f32*", "expected '<-'"},
      {"void <- f33*, i64", "unknown type 'f33'"},
      {"void <- f32*,", "expected a type"},
      {"void <- f32* x y", "expected ','"},
      {"f32* <- f32*", "a result is void or a scalar"},
      {"void <- u8", "is a tensor dtype, not a scalar type"},
      {"void <- f32*, void", "cannot be void"},
      {"void <- bool", "not a scalar type"},
      {"", "expected a type"},
      {"<- f32*", "expected a type"},
      {"void <- \xdb", "found byte 0xDB"},        /* a non-ASCII byte by its value, never raw */
      {"void <- f32* x \x01", "found byte 0x01"},
      {"void <- i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64",
       "more than 16 parameters"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    dvm_status st = dvm_register_extern(ctx, "badsig", (dvm_extern_fn)plus1, bad[i].sig);
    CHECK(st == DVM_ERR_SYNTAX && msg_has("badsig") && msg_has(bad[i].says), "\"%s\": %s '%s'", bad[i].sig,
          dvm_status_name(st), dvm_last_error());
  }
  /* still unregistered after all that; the good forms */
  CHECK(dvm_register_extern(ctx, "noargs", (dvm_extern_fn)plus1, "void <- void") == DVM_OK, "%s", dvm_last_error());
  CHECK(dvm_register_extern(ctx, "noargs2", (dvm_extern_fn)plus1, " i32<-") == DVM_OK, "%s", dvm_last_error());
  CHECK(dvm_register_extern(ctx, "saxpy", (dvm_extern_fn)plus1, "void <- f32*, f32*, i64") == DVM_ERR_USAGE &&
            msg_has("saxpy") && msg_has("already registered"),
        "second registration: %s", dvm_last_error());
  CHECK(dvm_register_extern(ctx, "9lives", (dvm_extern_fn)plus1, "void <- void") == DVM_ERR_USAGE, "bad name");
  CHECK(dvm_register_extern(ctx, "nofn", NULL, "void <- void") == DVM_ERR_USAGE, "NULL function");
  CHECK(dvm_register_extern(ctx, "nosig", (dvm_extern_fn)plus1, NULL) == DVM_ERR_USAGE, "NULL signature");
}

/* Compiling `text` fails in every tier with `want`, naming `says` (and the graph line). */
static void bad_graph(const char *text, dvm_status want, const char *says, const char *line) {
  dvm_graph *g = parse(text, "bad.dvm");
  if (!g) return;
  static const dvm_tier ts[] = {DVM_TIER_REF, DVM_TIER_VM, DVM_TIER_LLVM, DVM_TIER_AUTO};
  for (size_t t = 0; t < 4; t++) {
    dvm_compile_options opt = {.tier = ts[t], .threads = 1};
    dvm_model *m = NULL;
    dvm_status st = dvm_model_compile(ctx, g, &opt, &m);
    CHECK(st == want && !m && msg_has(says) && msg_has(line), "tier %d: want %s with '%s' at '%s', got %s '%s'",
          (int)ts[t], dvm_status_name(want), says, line, dvm_status_name(st), dvm_last_error());
    dvm_model_destroy(m);
  }
  dvm_graph_destroy(g);
}

static void bad_calls(void) {
  bad_graph("graph e\ninput x: f32[N]\ny = call(x, fn=nope, shape=[N], dtype=f32)\noutput y\n", DVM_ERR_GRAPH,
            "fn nope is not registered", "bad.dvm:3:");
  bad_graph("graph e\ninput x: f32[N]\ny = call(x, fn=saxpy, shape=[N], dtype=f32, dims=[N])\noutput y\n",
            DVM_ERR_GRAPH, "fn saxpy (void <- f32*, f32*, f32*, i64): the function takes 4 parameters but the call "
            "gives 3", "bad.dvm:3:");
  bad_graph("graph e\ninput x: f32[N]\ninput k: i32[N]\ny = call(x, k, fn=saxpy, shape=[N], dtype=f32, dims=[N])\n"
            "output y\n", DVM_ERR_DTYPE, "parameter 2 (f32*) does not take operand 2 ('k', i32[N])", "bad.dvm:4:");
  bad_graph("graph e\ninput x: f32[N]\ny = call(x, x, fn=saxpy, shape=[N], dtype=i32, dims=[N])\noutput y\n",
            DVM_ERR_DTYPE, "receives the output, a i32 tensor", "fn saxpy");
  bad_graph("graph e\ninput x: f32[N]\ny = call(x, x, fn=scale, shape=[N], dtype=f32, dims=[N])\noutput y\n",
            DVM_ERR_SHAPE, "takes operand 2 ('x', f32[N]) by value: it must hold one element", "fn scale");
  bad_graph("graph e\ninput x: f32[N]\ny = call(x, 2, fn=saxpy, shape=[N], dtype=f32, dims=[N])\noutput y\n",
            DVM_ERR_GRAPH, "is a literal", "fn saxpy");
  bad_graph("graph e\ninput x: f32[N]\ny = call(x, fn=sum_all, shape=[N], dtype=f32, dims=[N])\noutput y\n",
            DVM_ERR_SHAPE, "a scalar result is the output's one element", "fn sum_all");
  bad_graph("graph e\ninput x: f32[N]\ny = call(x, fn=sum_all, shape=[], dtype=i64, dims=[N])\noutput y\n",
            DVM_ERR_DTYPE, "a f64 result cannot be the call's i64 output", "fn sum_all");
  bad_graph("graph e\ninput x: f32[N]\ny = call(x, 1.5, fn=count_pos, shape=[N], dtype=i32)\noutput y\n",
            DVM_ERR_GRAPH, "takes 4 parameters but the call gives 3", "fn count_pos");
  /* a dims entry to a float parameter */
  CHECK(dvm_register_extern(ctx, "fdim", (dvm_extern_fn)plus1, "void <- f32*, f32*, f32") == DVM_OK, "%s",
        dvm_last_error());
  bad_graph("graph e\ninput x: f32[N]\ny = call(x, fn=fdim, shape=[N], dtype=f32, dims=[N])\noutput y\n",
            DVM_ERR_DTYPE, "parameter 3 (f32) receives dims[0]: it must be i32 or i64", "fn fdim");
}

/* `dvm dump`: the partition shows the call as its own kernel; bytecode and native stages
 * of a graph describe the call. */
static void dumps(void) {
  dvm_graph *g = parse(graph_text, "ext.dvm");
  if (!g) return;
  char *f = dvm_graph_dump(g, "fused");
  int externs = 0;
  for (const char *p = f; p && (p = strstr(p, "extern")); p++) externs++;
  CHECK(f && externs >= 7, "fused dump has %d extern kernels:\n%s", externs, f ? f : "(null)");
  free(f);
  char *b = dvm_graph_dump(g, "bytecode");
  CHECK(b && strstr(b, "call saxpy (void <- f32* x, f32* y, f32* out, i64 n) through libffi"), "bytecode dump:\n%s",
        b ? b : "(null)");
  free(b);
  dvm_graph_destroy(g);
}

int main(void) {
  CHECK(dvm_context_create(&ctx) == DVM_OK, "%s", dvm_last_error());
  if (!ctx) return CHECK_SUMMARY();
  register_all();
  tiers();
  conversions();
  two_contexts();
  concurrent();
  bad_signatures();
  bad_calls();
  dumps();
  dvm_context_destroy(ctx);
  return CHECK_SUMMARY();
}
