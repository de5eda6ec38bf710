/* tests/unit/test_api.c — the public C API of include/dvm.h, used as an embedder would.
 *
 * Builds docs/format.md's mlp example (plus one output that uses a literal) with the builder,
 * compiles it for the reference tier, and checks that it agrees bitwise with the same
 * graph parsed from text and, within 1e-5 relative / 1e-6 absolute, with a hand-written
 * double-precision matmul + bias + gelu, for N = 1 and N = 5. Then the error paths: bad
 * builder calls, bad graph text (messages start "FILE:LINE:"), tiers not built yet,
 * missing/mistyped/misshaped inputs, dvm_model_shape, per-thread last errors, one model
 * run from four threads at once, a model outliving its graph, and the dump stages.
 * Only dvm.h is included (and the C library, pthreads). The last line printed is
 * "N passed, M failed"; the exit status is nonzero on failure. */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dvm.h"

#include "check.h"

/* What compiling for each tier gives today. When a tier lands, change its status to
 * DVM_OK: the test then runs that tier's model and compares it to the reference. */
static const struct {
  dvm_tier tier;
  const char *name;
  dvm_status expect;
} tiers[] = {
    {DVM_TIER_AUTO, "auto", DVM_OK}, /* bytecode at once, native code when ready */
    {DVM_TIER_VM, "vm", DVM_OK},     /* bytecode kernels; the rest on the reference path */
    {DVM_TIER_LLVM, "llvm", DVM_OK}, /* native kernels; the rest on the reference path */
};
/* Whether `dvm dump --stage fused` exists yet (change to 1 when fusion lands). */
#define FUSED_STAGE_BUILT 1

/* ---- the graph ----------------------------------------------------------------------- */

#define D_IN 16  /* docs/format.md's 1024, kept small */
#define D_OUT 32 /* docs/format.md's 4096 */
#define STR_(x) #x
#define STR(x) STR_(x)

static const char mlp_text[] =
    "# docs/format.md's example, plus a literal\n"
    "graph mlp\n"
    "input  x:  f32[N, " STR(D_IN) "]\n"
                                   "param  w1: f32[" STR(D_IN) ", " STR(
                                       D_OUT) "]\n"
                                              "param  b1: f32[" STR(D_OUT) "]\n"
                                                                           "h = matmul(x, w1)\n"
                                                                           "a = add(h, b1)\n"
                                                                           "y = gelu(a)\n"
                                                                           "z = mul(h, 0.5)\n"
                                                                           "output y, z\n";

static dvm_context *ctx;
static dvm_tensor *w1, *b1; /* the params, shared by every model below */

static bool msg_has(const char *s) { return strstr(dvm_last_error(), s) != NULL; }

/* The builder's version of mlp_text; bad calls along the way must leave it intact. */
static dvm_graph *build_mlp(void) {
  dvm_graph *g = NULL;
  CHECK(dvm_graph_create(ctx, "mlp", &g) == DVM_OK, "%s", dvm_last_error());
  if (!g) return NULL;
  const char *xd[] = {"N", STR(D_IN)}, *wd[] = {STR(D_IN), STR(D_OUT)}, *bd[] = {STR(D_OUT)};
  int32_t x = dvm_graph_input(g, "x", DVM_F32, 2, xd);
  int32_t w = dvm_graph_param(g, "w1", DVM_F32, 2, wd);
  int32_t b = dvm_graph_param(g, "b1", DVM_F32, 1, bd);
  CHECK(x >= 0 && w >= 0 && b >= 0, "declarations: %s", dvm_last_error());
  int32_t h = dvm_graph_op(g, "h", "matmul", 2, (const int32_t[]){x, w}, NULL);
  CHECK(h >= 0, "matmul: %s", dvm_last_error());

  /* failures: each returns a negative id with a message, and adds nothing */
  int32_t r = dvm_graph_op(g, "bad", "add", 2, (const int32_t[]){h, 999}, NULL);
  CHECK(r < 0 && dvm_last_error()[0], "undefined operand id: %d '%s'", r, dvm_last_error());
  r = dvm_graph_op(g, "bad", "add", 2, (const int32_t[]){-3, h}, NULL);
  CHECK(r < 0 && dvm_last_error()[0], "negative operand id: %d '%s'", r, dvm_last_error());
  r = dvm_graph_op(g, "bad", "frobnicate", 1, (const int32_t[]){h}, NULL);
  CHECK(r < 0 && msg_has("frobnicate"), "unknown op: %d '%s'", r, dvm_last_error());
  r = dvm_graph_op(g, "bad", "input", 0, NULL, NULL);
  CHECK(r < 0 && dvm_last_error()[0], "a source is not an op: %d '%s'", r, dvm_last_error());
  r = dvm_graph_op(g, "bad", "add", 1, (const int32_t[]){h}, NULL);
  CHECK(r < 0 && msg_has("takes 2 operands"), "arity: %d '%s'", r, dvm_last_error());
  r = dvm_graph_op(g, "bad", "add", 3, (const int32_t[]){h, h, h}, NULL);
  CHECK(r < 0 && msg_has("takes 2 operands"), "arity: %d '%s'", r, dvm_last_error());
  r = dvm_graph_op(g, "h", "neg", 1, (const int32_t[]){x}, NULL);
  CHECK(r < 0 && msg_has("already defined"), "redefinition: %d '%s'", r, dvm_last_error());
  r = dvm_graph_op(g, "bad", "softmax", 1, (const int32_t[]){h}, "axis=");
  CHECK(r < 0 && dvm_last_error()[0], "bad attrs: %d '%s'", r, dvm_last_error());
  r = dvm_graph_op(g, "bad", "softmax", 1, (const int32_t[]){h}, "axis=5");
  CHECK(r < 0 && msg_has("axis"), "axis out of range: %d '%s'", r, dvm_last_error());
  r = dvm_graph_op(g, "bad", "add", 2, (const int32_t[]){h, x}, NULL);
  CHECK(r < 0 && dvm_last_error()[0], "contradicting dims 32 and 16: %d '%s'", r, dvm_last_error());
  const char *bad_dims[] = {"N+", "4"};
  r = dvm_graph_input(g, "q", DVM_F32, 2, bad_dims);
  CHECK(r < 0 && dvm_last_error()[0], "bad dim text: %d '%s'", r, dvm_last_error());
  r = dvm_graph_literal(g, 0.5, DVM_I32);
  CHECK(r < 0 && dvm_last_error()[0], "fractional integer literal: %d '%s'", r, dvm_last_error());
  CHECK(dvm_graph_output(g, 999) != DVM_OK && dvm_last_error()[0], "output of a bad id");
  CHECK(dvm_graph_find(g, "bad") == -1 && dvm_graph_find(g, "q") == -1, "a failed call added");

  int32_t a = dvm_graph_op(g, "a", "add", 2, (const int32_t[]){h, b}, NULL);
  int32_t y = dvm_graph_op(g, "y", "gelu", 1, &a, "");
  int32_t half = dvm_graph_literal(g, 0.5, DVM_F32);
  int32_t z = dvm_graph_op(g, "z", "mul", 2, (const int32_t[]){h, half}, NULL);
  CHECK(a >= 0 && y >= 0 && half >= 0 && z >= 0, "%s", dvm_last_error());
  CHECK(dvm_graph_output(g, y) == DVM_OK && dvm_graph_output(g, z) == DVM_OK, "%s",
        dvm_last_error());
  CHECK(dvm_graph_find(g, "h") == h && dvm_graph_find(g, "z") == z &&
            dvm_graph_find(g, "nope") == -1,
        "find");
  return g;
}

static dvm_graph *parse_mlp(void) {
  dvm_graph *g = NULL;
  CHECK(dvm_graph_parse(ctx, mlp_text, strlen(mlp_text), "mlp.dvm", &g) == DVM_OK, "%s",
        dvm_last_error());
  return g;
}

static dvm_model *compile(const dvm_graph *g) {
  dvm_compile_options opt = {.tier = DVM_TIER_REF, .threads = 1};
  dvm_model *m = NULL;
  CHECK(dvm_model_compile(ctx, g, &opt, &m) == DVM_OK, "%s", dvm_last_error());
  if (!m) return NULL;
  CHECK(dvm_model_set_param(m, "w1", w1) == DVM_OK && dvm_model_set_param(m, "b1", b1) == DVM_OK,
        "%s", dvm_last_error());
  return m;
}

/* ---- running and comparing ------------------------------------------------------------ */

static dvm_tensor *make_x(int64_t n, uint64_t seed) {
  dvm_tensor *t = NULL;
  int64_t shape[2] = {n, D_IN};
  CHECK(dvm_tensor_create(DVM_F32, 2, shape, &t) == DVM_OK, "%s", dvm_last_error());
  dvm_tensor_fill_random(t, seed);
  return t;
}

/* Run m on x; out[0..1] get y and z. */
static dvm_status run(dvm_model *m, dvm_tensor *x, dvm_tensor **out) {
  const char *names[] = {"x"};
  out[0] = out[1] = NULL;
  return dvm_model_run(m, 1, names, &x, out);
}

static bool bitwise_equal(dvm_tensor *a, dvm_tensor *b) {
  if (!a || !b || dvm_tensor_dtype(a) != dvm_tensor_dtype(b) ||
      dvm_tensor_rank(a) != dvm_tensor_rank(b))
    return false;
  for (int i = 0; i < dvm_tensor_rank(a); i++)
    if (dvm_tensor_shape(a)[i] != dvm_tensor_shape(b)[i]) return false;
  size_t bytes = (size_t)dvm_tensor_numel(a) * dvm_dtype_size(dvm_tensor_dtype(a));
  return memcmp(dvm_tensor_data(a), dvm_tensor_data(b), bytes) == 0;
}

static bool close_to(double got, double want) {
  return fabs(got - want) <= 1e-6 + 1e-5 * fabs(want);
}

/* y and z for x, in double, straight from the definitions. */
static void oracle(dvm_tensor *x, dvm_tensor **out) {
  int64_t n = dvm_tensor_shape(x)[0];
  int bad = 0;
  for (int64_t i = 0; i < n; i++)
    for (int j = 0; j < D_OUT; j++) {
      double h = 0;
      for (int k = 0; k < D_IN; k++)
        h += dvm_tensor_get_f64(x, i * D_IN + k) * dvm_tensor_get_f64(w1, k * D_OUT + j);
      double a = h + dvm_tensor_get_f64(b1, j);
      double y = 0.5 * a * (1.0 + erf(a / sqrt(2.0))), z = 0.5 * h;
      double gy = dvm_tensor_get_f64(out[0], i * D_OUT + j);
      double gz = dvm_tensor_get_f64(out[1], i * D_OUT + j);
      if (!close_to(gy, y) || !close_to(gz, z)) {
        if (bad++ < 5)
          printf("  [%lld, %d]: y %.9g want %.9g, z %.9g want %.9g\n", (long long)i, j, gy, y, gz,
                 z);
      }
    }
  CHECK(bad == 0, "N=%lld: %d elements differ from the double-precision oracle", (long long)n, bad);
}

static void check_shape(dvm_tensor *t, int64_t n) {
  CHECK(t && dvm_tensor_dtype(t) == DVM_F32 && dvm_tensor_rank(t) == 2 &&
            dvm_tensor_shape(t)[0] == n && dvm_tensor_shape(t)[1] == D_OUT,
        "output shape for N=%lld", (long long)n);
}

static void free_out(dvm_tensor **out) {
  dvm_tensor_destroy(out[0]);
  dvm_tensor_destroy(out[1]);
  out[0] = out[1] = NULL;
}

/* Builder vs parser vs oracle, N = 1 and 5. */
static void mlp(void) {
  dvm_graph *gb = build_mlp(), *gp = parse_mlp();
  if (!gb || !gp) goto out;
  char *tb = dvm_graph_print(gb), *tp = dvm_graph_print(gp);
  CHECK(tb && tp && strcmp(tb, tp) == 0, "built and parsed graphs print differently:\n%s---\n%s",
        tb, tp);
  free(tb);
  free(tp);
  dvm_model *mb = compile(gb), *mp = compile(gp);
  if (!mb || !mp) goto models;
  CHECK(dvm_model_num_inputs(mb) == 1 && dvm_model_num_params(mb) == 2 &&
            dvm_model_num_outputs(mb) == 2,
        "counts %d %d %d", dvm_model_num_inputs(mb), dvm_model_num_params(mb),
        dvm_model_num_outputs(mb));
  CHECK(!strcmp(dvm_model_input_name(mb, 0), "x") && !strcmp(dvm_model_param_name(mb, 0), "w1") &&
            !strcmp(dvm_model_param_name(mb, 1), "b1") &&
            !strcmp(dvm_model_output_name(mb, 0), "y") &&
            !strcmp(dvm_model_output_name(mb, 1), "z"),
        "names");
  CHECK(dvm_model_input_name(mb, 1) == NULL && dvm_model_output_name(mb, -1) == NULL, "range");
  CHECK(dvm_model_value_dtype(mb, "y") == DVM_F32 && dvm_model_value_dtype(mb, "nope") == -1,
        "value dtype");
  int runs = 0;
  for (int64_t n = 1; n <= 5; n += 4) {
    dvm_tensor *x = make_x(n, 100 + (uint64_t)n), *ob[2], *op[2];
    CHECK(run(mb, x, ob) == DVM_OK, "built, N=%lld: %s", (long long)n, dvm_last_error());
    CHECK(run(mp, x, op) == DVM_OK, "parsed, N=%lld: %s", (long long)n, dvm_last_error());
    runs++;
    check_shape(ob[0], n);
    check_shape(ob[1], n);
    CHECK(bitwise_equal(ob[0], op[0]) && bitwise_equal(ob[1], op[1]),
          "N=%lld: built and parsed models differ", (long long)n);
    if (ob[0] && ob[1]) oracle(x, ob);
    free_out(ob);
    free_out(op);
    dvm_tensor_destroy(x);
  }
  dvm_stats st;
  dvm_model_stats(mb, &st);
  CHECK(st.runs == runs && st.kernels == 4, "stats: runs %lld kernels %lld", (long long)st.runs,
        (long long)st.kernels);
models:
  dvm_model_destroy(mb);
  dvm_model_destroy(mp);
out:
  dvm_graph_destroy(gb);
  dvm_graph_destroy(gp);
}

/* ---- errors ------------------------------------------------------------------------ */

static int sentinel;

/* Parse text expecting status want with a message starting "bad.dvm:LINE:". */
static void bad_text(const char *text, dvm_status want, int line) {
  dvm_graph *g = (dvm_graph *)&sentinel; /* must be reset to NULL */
  char prefix[32];
  snprintf(prefix, sizeof prefix, "bad.dvm:%d:", line);
  dvm_status st = dvm_graph_parse(ctx, text, strlen(text), "bad.dvm", &g);
  CHECK(st == want && g == NULL, "got %s, want %s: %s", dvm_status_name(st), dvm_status_name(want),
        dvm_last_error());
  CHECK(strncmp(dvm_last_error(), prefix, strlen(prefix)) == 0, "message '%s' should start '%s'",
        dvm_last_error(), prefix);
  if (st == DVM_OK) dvm_graph_destroy(g);
}

static void parse_errors(void) {
  bad_text("graph g\ninput x: f32[N]\ny = neg(x\noutput y\n", DVM_ERR_SYNTAX, 3);
  bad_text("graph g\ninput x: f32[N]\ny = neg(x)\nz = add(y, w)\noutput z\n", DVM_ERR_GRAPH, 4);
  bad_text("graph g\ninput x: f32[N]\n\n# c\ny = frob(x)\noutput y\n", DVM_ERR_GRAPH, 5);
  bad_text("graph g\ninput x: f32[N]\ny = add(x)\noutput y\n", DVM_ERR_GRAPH, 3);
  bad_text("graph g\r\ninput x: f32[N]\r\ny = neg(x)\r\ny = neg(x)\r\noutput y\r\n", DVM_ERR_GRAPH,
           4);
  bad_text("graph g\ninput x: f32[N\noutput x\n", DVM_ERR_SYNTAX, 2);
  bad_text("input x: f32[N]\n", DVM_ERR_SYNTAX, 1);
  CHECK(dvm_graph_load(ctx, "/nonexistent/dir/g.dvm", &(dvm_graph *){NULL}) == DVM_ERR_IO, "%s",
        dvm_last_error());
  CHECK(!strcmp(dvm_status_name(DVM_ERR_SHAPE), "DVM_ERR_SHAPE") &&
            !strcmp(dvm_status_name(DVM_OK), "DVM_OK"),
        "status names");
  CHECK(!strcmp(dvm_dtype_name(DVM_BF16), "bf16") && dvm_dtype_size(DVM_I64) == 8 &&
            dvm_dtype_size(DVM_BOOL) == 1,
        "dtype names and sizes");
}

/* Tiers that are not the reference one: each compiles and agrees with the reference. */
static void other_tiers(void) {
  dvm_graph *g = parse_mlp();
  if (!g) return;
  dvm_model *ref = compile(g);
  for (size_t i = 0; i < sizeof tiers / sizeof tiers[0]; i++) {
    dvm_compile_options opt = {.tier = tiers[i].tier};
    dvm_model *m = (dvm_model *)&sentinel;
    dvm_status st = dvm_model_compile(ctx, g, &opt, &m);
    CHECK(st == tiers[i].expect, "tier %s: got %s, want %s: %s", tiers[i].name, dvm_status_name(st),
          dvm_status_name(tiers[i].expect), dvm_last_error());
    if (st != DVM_OK) {
      CHECK(m == NULL && dvm_last_error()[0], "tier %s: failure leaves no model", tiers[i].name);
      continue;
    }
    /* a tier that compiles must agree with the reference */
    CHECK(dvm_model_set_param(m, "w1", w1) == DVM_OK && dvm_model_set_param(m, "b1", b1) == DVM_OK,
          "%s", dvm_last_error());
    for (int64_t n = 1; n <= 5; n += 4) {
      dvm_tensor *x = make_x(n, 7 + (uint64_t)n), *o[2];
      CHECK(run(m, x, o) == DVM_OK, "tier %s: %s", tiers[i].name, dvm_last_error());
      if (o[0] && o[1]) oracle(x, o);
      free_out(o);
      dvm_tensor_destroy(x);
    }
    dvm_model_destroy(m);
  }
  /* no options means auto */
  dvm_model *m = NULL;
  dvm_status st = dvm_model_compile(ctx, g, NULL, &m);
  CHECK(st == tiers[0].expect, "default options: %s", dvm_status_name(st));
  dvm_model_destroy(m);
  dvm_model_destroy(ref);
  dvm_graph_destroy(g);
}

static void run_errors(void) {
  dvm_graph *g = parse_mlp();
  dvm_model *m = g ? compile(g) : NULL;
  if (!m) goto out;
  dvm_tensor *o[2] = {NULL, NULL};
  const char *names[] = {"x"};

  /* a missing input */
  dvm_status st = dvm_model_run(m, 0, NULL, NULL, o);
  CHECK(st != DVM_OK && msg_has("'x'"), "missing input: %s: %s", dvm_status_name(st),
        dvm_last_error());
  free_out(o);

  /* an input that is not one */
  dvm_tensor *x = make_x(2, 1);
  const char *wrong[] = {"nope"};
  st = dvm_model_run(m, 1, wrong, &x, o);
  CHECK(st != DVM_OK && msg_has("nope"), "unknown input: %s: %s", dvm_status_name(st),
        dvm_last_error());
  free_out(o);

  /* the wrong dtype */
  dvm_tensor *xi = NULL;
  CHECK(dvm_tensor_create(DVM_I32, 2, (const int64_t[]){2, D_IN}, &xi) == DVM_OK, "create");
  st = dvm_model_run(m, 1, names, &xi, o);
  CHECK(st == DVM_ERR_DTYPE, "dtype: %s: %s", dvm_status_name(st), dvm_last_error());
  CHECK(msg_has("mlp.dvm:3:"), "the message names the declaration: %s", dvm_last_error());
  free_out(o);
  dvm_tensor_destroy(xi);

  /* contradicting shapes: x's second dim is the constant 16 */
  dvm_tensor *xs = NULL;
  CHECK(dvm_tensor_create(DVM_F32, 2, (const int64_t[]){2, D_IN / 2}, &xs) == DVM_OK, "create");
  st = dvm_model_run(m, 1, names, &xs, o);
  CHECK(st == DVM_ERR_SHAPE, "shape: %s: %s", dvm_status_name(st), dvm_last_error());
  free_out(o);
  dvm_tensor_destroy(xs);

  /* the wrong rank */
  dvm_tensor *xr = NULL;
  CHECK(dvm_tensor_create(DVM_F32, 1, (const int64_t[]){D_IN}, &xr) == DVM_OK, "create");
  st = dvm_model_run(m, 1, names, &xr, o);
  CHECK(st == DVM_ERR_SHAPE, "rank: %s: %s", dvm_status_name(st), dvm_last_error());
  free_out(o);
  dvm_tensor_destroy(xr);

  /* a param that is not set, and one whose shape contradicts the graph */
  dvm_model *m2 = NULL;
  dvm_compile_options opt = {.tier = DVM_TIER_REF};
  CHECK(dvm_model_compile(ctx, g, &opt, &m2) == DVM_OK, "%s", dvm_last_error());
  if (m2) {
    st = run(m2, x, o);
    CHECK(st != DVM_OK && msg_has("w1"), "unset param: %s: %s", dvm_status_name(st),
          dvm_last_error());
    free_out(o);
    dvm_tensor *wbad = NULL;
    CHECK(dvm_tensor_create(DVM_F32, 2, (const int64_t[]){D_IN, D_OUT - 1}, &wbad) == DVM_OK,
          "create");
    CHECK(dvm_model_set_param(m2, "w1", wbad) == DVM_OK, "%s", dvm_last_error());
    CHECK(dvm_model_set_param(m2, "b1", b1) == DVM_OK, "%s", dvm_last_error());
    CHECK(dvm_model_set_param(m2, "x", b1) != DVM_OK, "x is not a param");
    CHECK(dvm_model_set_param(m2, "nope", b1) != DVM_OK, "nope is not a param");
    st = run(m2, x, o);
    CHECK(st == DVM_ERR_SHAPE, "param shape: %s: %s", dvm_status_name(st), dvm_last_error());
    free_out(o);
    dvm_model_destroy(m2);
    dvm_tensor_destroy(wbad);
  }

  /* a symbol two inputs disagree on */
  static const char pair[] = "graph pair\ninput a: f32[N, 4]\ninput b: f32[N, 4]\n"
                             "c = add(a, b)\noutput c\n";
  dvm_graph *gp = NULL;
  CHECK(dvm_graph_parse(ctx, pair, strlen(pair), "pair.dvm", &gp) == DVM_OK, "%s",
        dvm_last_error());
  dvm_model *mp = NULL;
  if (gp) CHECK(dvm_model_compile(ctx, gp, &opt, &mp) == DVM_OK, "%s", dvm_last_error());
  if (mp) {
    dvm_tensor *ab[2] = {NULL, NULL};
    dvm_tensor_create(DVM_F32, 2, (const int64_t[]){2, 4}, &ab[0]);
    dvm_tensor_create(DVM_F32, 2, (const int64_t[]){3, 4}, &ab[1]);
    const char *abn[] = {"a", "b"};
    dvm_tensor *oc = NULL;
    st = dvm_model_run(mp, 2, abn, ab, &oc);
    CHECK(st == DVM_ERR_SHAPE && msg_has("pair.dvm:"), "N = 2 and 3: %s: %s", dvm_status_name(st),
          dvm_last_error());
    dvm_tensor_destroy(oc);
    oc = NULL;
    /* and agreeing ones run */
    dvm_tensor_destroy(ab[1]);
    dvm_tensor_create(DVM_F32, 2, (const int64_t[]){2, 4}, &ab[1]);
    CHECK(dvm_model_run(mp, 2, abn, ab, &oc) == DVM_OK, "%s", dvm_last_error());
    dvm_tensor_destroy(oc);
    dvm_tensor_destroy(ab[0]);
    dvm_tensor_destroy(ab[1]);
    dvm_model_destroy(mp);
  }
  dvm_graph_destroy(gp);
  dvm_tensor_destroy(x);
out:
  dvm_model_destroy(m);
  dvm_graph_destroy(g);
}

/* dvm_model_shape: from symbol values, from inputs, and the failures. */
static void shapes(void) {
  dvm_graph *g = parse_mlp();
  dvm_model *m = g ? compile(g) : NULL;
  if (!m) goto out;
  int rank = -1;
  int64_t shape[DVM_MAX_RANK] = {0};
  const char *sym[] = {"N"};
  const int64_t seven[] = {7};
  dvm_status st = dvm_model_shape(m, "y", 0, NULL, NULL, 1, sym, seven, &rank, shape);
  CHECK(st == DVM_OK && rank == 2 && shape[0] == 7 && shape[1] == D_OUT,
        "y for N=7: %s %d [%lld, %lld]", dvm_last_error(), rank, (long long)shape[0],
        (long long)shape[1]);
  st = dvm_model_shape(m, "b1", 0, NULL, NULL, 1, sym, seven, &rank, shape);
  CHECK(st == DVM_OK && rank == 1 && shape[0] == D_OUT, "b1: %s", dvm_last_error());

  dvm_tensor *x = make_x(3, 5);
  const char *names[] = {"x"};
  st = dvm_model_shape(m, "h", 1, names, &x, 0, NULL, NULL, &rank, shape);
  CHECK(st == DVM_OK && rank == 2 && shape[0] == 3 && shape[1] == D_OUT, "h from x: %s",
        dvm_last_error());
  st = dvm_model_shape(m, "y", 1, names, &x, 1, sym, seven, &rank, shape);
  CHECK(st == DVM_ERR_SHAPE, "x says N=3, the symbol 7: %s: %s", dvm_status_name(st),
        dvm_last_error());
  st = dvm_model_shape(m, "y", 0, NULL, NULL, 0, NULL, NULL, &rank, shape);
  CHECK(st != DVM_OK && msg_has("N"), "N unknown: %s: %s", dvm_status_name(st), dvm_last_error());
  st = dvm_model_shape(m, "nope", 0, NULL, NULL, 1, sym, seven, &rank, shape);
  CHECK(st != DVM_OK, "no such value: %s", dvm_last_error());
  const char *nosym[] = {"Q"};
  st = dvm_model_shape(m, "y", 0, NULL, NULL, 1, nosym, seven, &rank, shape);
  CHECK(st != DVM_OK && msg_has("Q"), "no such symbol: %s", dvm_last_error());
  dvm_tensor_destroy(x);
out:
  dvm_model_destroy(m);
  dvm_graph_destroy(g);
}

/* ---- threads ------------------------------------------------------------------------- */

typedef struct ErrThread {
  char before[64]; /* the thread's message before any call */
  char after[1024];
} ErrThread;

static void *error_thread(void *p) {
  ErrThread *t = p;
  snprintf(t->before, sizeof t->before, "%s", dvm_last_error());
  dvm_graph *g = NULL;
  const char *text = "graph t\nnonsense on the second thread\n";
  dvm_graph_parse(ctx, text, strlen(text), "thread.dvm", &g);
  snprintf(t->after, sizeof t->after, "%s", dvm_last_error());
  dvm_graph_destroy(g);
  return NULL;
}

/* A failure on another thread leaves this thread's message alone. */
static void last_error_per_thread(void) {
  dvm_graph *g = NULL;
  const char *text = "graph m\ny = frob()\n";
  CHECK(dvm_graph_parse(ctx, text, strlen(text), "main.dvm", &g) != DVM_OK, "parse");
  char mine[1024];
  snprintf(mine, sizeof mine, "%s", dvm_last_error());
  CHECK(strncmp(mine, "main.dvm:2:", 11) == 0, "%s", mine);
  ErrThread t = {{0}, {0}};
  pthread_t th;
  CHECK(pthread_create(&th, NULL, error_thread, &t) == 0, "pthread_create");
  pthread_join(th, NULL);
  CHECK(t.before[0] == 0, "a new thread starts with '%s'", t.before);
  CHECK(strncmp(t.after, "thread.dvm:2:", 13) == 0, "the thread's own message: %s", t.after);
  CHECK(strcmp(dvm_last_error(), mine) == 0, "main's message became '%s'", dvm_last_error());
}

typedef struct RunThread {
  dvm_model *m;
  dvm_tensor *x, *want[2];
  int iters, mismatches, errors;
} RunThread;

static void *run_thread(void *p) {
  RunThread *t = p;
  for (int i = 0; i < t->iters; i++) {
    dvm_tensor *o[2];
    if (run(t->m, t->x, o) != DVM_OK)
      t->errors++;
    else if (!bitwise_equal(o[0], t->want[0]) || !bitwise_equal(o[1], t->want[1]))
      t->mismatches++;
    free_out(o);
  }
  return NULL;
}

/* One model, four threads, four values of N, each compared with a single-threaded run;
 * then the graph is destroyed and the model runs on. */
static void concurrent_runs(void) {
  dvm_graph *g = build_mlp();
  dvm_model *m = g ? compile(g) : NULL;
  dvm_graph_destroy(g); /* the model must not need it */
  if (!m) return;
  enum { T = 4 };
  static const int64_t ns[T] = {1, 2, 3, 5};
  RunThread rt[T];
  pthread_t th[T];
  for (int i = 0; i < T; i++) {
    rt[i] = (RunThread){.m = m, .x = make_x(ns[i], 40 + (uint64_t)i), .iters = 25};
    CHECK(run(m, rt[i].x, rt[i].want) == DVM_OK, "N=%lld: %s", (long long)ns[i], dvm_last_error());
    check_shape(rt[i].want[0], ns[i]);
    if (rt[i].want[0] && rt[i].want[1]) oracle(rt[i].x, rt[i].want);
  }
  int started = 0;
  for (int i = 0; i < T; i++) started += pthread_create(&th[i], NULL, run_thread, &rt[i]) == 0;
  CHECK(started == T, "%d threads started", started);
  for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < T; i++) {
    CHECK(rt[i].errors == 0 && rt[i].mismatches == 0,
          "thread %d (N=%lld): %d errors, %d mismatches", i, (long long)ns[i], rt[i].errors,
          rt[i].mismatches);
    free_out(rt[i].want);
    dvm_tensor_destroy(rt[i].x);
  }
  dvm_stats st;
  dvm_model_stats(m, &st);
  CHECK(st.runs == T + T * 25, "runs %lld", (long long)st.runs);
  dvm_model_destroy(m);
}

/* ---- dumps --------------------------------------------------------------------------- */

static void dumps(void) {
  dvm_graph *g = parse_mlp();
  if (!g) return;
  char *ir = dvm_graph_dump(g, "ir");
  CHECK(ir && strstr(ir, "h = matmul(x, w1)") && strstr(ir, "f32[N, " STR(D_OUT) "]"),
        "ir dump:\n%s", ir ? ir : "(null)");
  free(ir);
  char *de = dvm_graph_dump(g, "deduce");
  CHECK(de && strstr(de, "N"), "deduce dump:\n%s", de ? de : "(null)");
  free(de);
  char *fu = dvm_graph_dump(g, "fused");
  if (FUSED_STAGE_BUILT)
    CHECK(fu != NULL, "fused: %s", dvm_last_error());
  else
    CHECK(fu == NULL && msg_has("fused"), "fused: %s", fu ? fu : dvm_last_error());
  free(fu);
  char *no = dvm_graph_dump(g, "no_such_stage");
  CHECK(no == NULL && dvm_last_error()[0], "unknown stage");
  free(no);
  dvm_graph_destroy(g);
}

/* An input whose values bind symbols (dvm_graph_input_values): built, printed, and run
 * with several values in the bytecode tier, which encodes once. */
static void input_values(void) {
  dvm_graph *g = NULL;
  CHECK(dvm_graph_create(ctx, "vals", &g) == DVM_OK, "%s", dvm_last_error());
  if (!g) return;
  const char *xd[] = {"N"}, *sd[] = {"2"}, *sv[] = {"A", "B"}, *bad[] = {"A", "B", "C"};
  int32_t x = dvm_graph_input(g, "x", DVM_F32, 1, xd);
  int32_t r = dvm_graph_input_values(g, "q", DVM_I64, 1, sd, 3, bad);
  CHECK(r < 0 && msg_has("2 elements but 3 values"), "values count: %d '%s'", r, dvm_last_error());
  r = dvm_graph_input_values(g, "q", DVM_F32, 1, sd, 2, sv);
  CHECK(r < 0 && msg_has("integer dtype"), "float values: %d '%s'", r, dvm_last_error());
  int32_t sh = dvm_graph_input_values(g, "s", DVM_I64, 1, sd, 2, sv);
  int32_t y = dvm_graph_op(g, "y", "reshape", 1, &x, "shape=[A, B]");
  CHECK(x >= 0 && sh >= 0 && y >= 0 && dvm_graph_output(g, y) == DVM_OK, "%s", dvm_last_error());
  char *text = dvm_graph_print(g);
  CHECK(text && strstr(text, "input  s: i64[2] values=[A, B]"), "printed: %s", text ? text : "(null)");
  free(text);
  dvm_compile_options opt = {.tier = DVM_TIER_VM, .threads = 1};
  dvm_model *m = NULL;
  CHECK(dvm_model_compile(ctx, g, &opt, &m) == DVM_OK, "%s", dvm_last_error());
  dvm_graph_destroy(g);
  if (!m) return;
  const int64_t sets[][2] = {{3, 4}, {2, 6}, {12, 1}, {4, 3}};
  int64_t encodes = -1;
  for (int k = 0; k < 4; k++) {
    int64_t n = 12, two = 2;
    dvm_tensor *in[2] = {NULL, NULL}, *out = NULL;
    dvm_tensor_create(DVM_F32, 1, &n, &in[0]);
    dvm_tensor_create(DVM_I64, 1, &two, &in[1]);
    if (!in[0] || !in[1]) return;
    for (int i = 0; i < 12; i++) ((float *)dvm_tensor_data(in[0]))[i] = (float)i;
    memcpy(dvm_tensor_data(in[1]), sets[k], sizeof sets[k]);
    const char *names[] = {"x", "s"};
    dvm_status st = dvm_model_run(m, 2, names, in, &out);
    CHECK(st == DVM_OK, "run with s = [%lld, %lld]: %s", (long long)sets[k][0], (long long)sets[k][1],
          dvm_last_error());
    if (!st) {
      const int64_t *shape = dvm_tensor_shape(out);
      bool same = dvm_tensor_rank(out) == 2 && shape[0] == sets[k][0] && shape[1] == sets[k][1];
      for (int i = 0; same && i < 12; i++) same = ((float *)dvm_tensor_data(out))[i] == (float)i;
      CHECK(same, "reshape to [%lld, %lld]", (long long)sets[k][0], (long long)sets[k][1]);
      dvm_tensor_destroy(out);
    }
    dvm_stats stats;
    dvm_model_stats(m, &stats);
    CHECK(encodes < 0 || stats.vm_encodes == encodes, "new values encode nothing: %lld then %lld",
          (long long)encodes, (long long)stats.vm_encodes);
    encodes = stats.vm_encodes;
    if (k == 3) { /* values whose product is not the element count */
      ((int64_t *)dvm_tensor_data(in[1]))[0] = 5;
      st = dvm_model_run(m, 2, names, in, &out);
      CHECK(st == DVM_ERR_SHAPE && msg_has("must be equal"), "s = [5, 3] for 12 elements: %d '%s'", st,
            dvm_last_error());
    }
    dvm_tensor_destroy(in[0]);
    dvm_tensor_destroy(in[1]);
  }
  dvm_model_destroy(m);
}

int main(void) {
  CHECK(dvm_context_create(&ctx) == DVM_OK, "%s", dvm_last_error());
  CHECK(dvm_tensor_create(DVM_F32, 2, (const int64_t[]){D_IN, D_OUT}, &w1) == DVM_OK, "w1");
  CHECK(dvm_tensor_create(DVM_F32, 1, (const int64_t[]){D_OUT}, &b1) == DVM_OK, "b1");
  if (!ctx || !w1 || !b1) return 1;
  dvm_tensor_fill_random(w1, 1);
  dvm_tensor_fill_random(b1, 2);

  mlp();
  parse_errors();
  other_tiers();
  run_errors();
  shapes();
  last_error_per_thread();
  concurrent_runs();
  dumps();
  input_values();

  dvm_tensor_destroy(w1);
  dvm_tensor_destroy(b1);
  dvm_context_destroy(ctx);
  return CHECK_SUMMARY();
}
