/* tests/unit/test_dim.c — interned dims, symbol deduction and binding.
 *
 * Dims: hash-consing makes equal expressions equal ids; printing parses back.
 * Deduction: broadcasting two symbols unifies them, a symbol against c != 1 binds it,
 * 1 broadcasts, matmul/concat/reshape record their equalities, contradictions are
 * errors naming the line. Binding: symbols solved from input shapes (incl. products and
 * a reshape's fresh symbol), every constraint re-checked, overflow is an error. */
#include <stdio.h>
#include <string.h>

#include "runtime/runtime.h"

#include "check.h"

static Graph *parse(const char *text, Err *err) {
  memset(err, 0, sizeof *err);
  return ir_parse(text, strlen(text), "t.dvm", err);
}

/* The canonical shape of value `name`, printed "[N*S, 64]". */
static const char *shape(Graph *g, const char *name) {
  static char buf[512];
  int64_t v = ir_find(g, name, strlen(name));
  if (v < 0) return "(no such value)";
  size_t k = 0;
  buf[k++] = '[';
  for (int i = 0; i < ir_node(g, (uint32_t)v)->rank; i++) {
    if (i) k += (size_t)snprintf(buf + k, sizeof buf - k, ", ");
    ir_dim_str(g, ir_shape(g, (uint32_t)v)[i], buf + k, sizeof buf - k);
    k += strlen(buf + k);
  }
  snprintf(buf + k, sizeof buf - k, "]");
  return buf;
}

static Dim pdim(Graph *g, const char *s) {
  Dim d = DIM_NONE;
  Err err;
  if (ir_parse_dim(g, s, true, 1, &d, &err)) printf("parse_dim(%s): %s\n", s, err.msg);
  return d;
}

static void test_interning(void) {
  Graph *g = ir_graph_new("t");
  CHECK(pdim(g, "3") == ir_dim_const(g, 3), "constants intern");
  CHECK(pdim(g, "N*S") == pdim(g, "S*N"), "products commute");
  CHECK(pdim(g, "N+N") == pdim(g, "2*N"), "like terms merge");
  CHECK(pdim(g, "(N+1)*(N-1)") == pdim(g, "N*N - 1"), "distribution");
  CHECK(pdim(g, "N-N") == ir_dim_const(g, 0), "cancellation gives 0");
  CHECK(pdim(g, "2*(N+S) - S") == pdim(g, "S + 2*N"), "sums");
  const char *exprs[] = {"N*S + 1", "-N + 4", "3*N*N*S - 2*S + 7", "0", "N*(S+1)*(S-1)"};
  for (size_t i = 0; i < sizeof exprs / sizeof *exprs; i++) {
    Dim d = pdim(g, exprs[i]);
    char buf[128];
    ir_dim_str(g, d, buf, sizeof buf);
    CHECK(pdim(g, buf) == d, "print/parse round trip of %s (printed %s)", exprs[i], buf);
  }
  Dim big = ir_dim_const(g, INT64_MAX);
  CHECK(ir_dim_add(g, big, ir_dim_const(g, 1)) == DIM_NONE, "coefficient overflow is DIM_NONE");
  CHECK(ir_dim_mul(g, big, ir_dim_const(g, 2)) == DIM_NONE, "product overflow is DIM_NONE");
  int64_t syms[4] = {0};
  int64_t n = ir_sym_find(g, "N", 1), s = ir_sym_find(g, "S", 1), x;
  syms[n] = 3;
  syms[s] = 5;
  CHECK(ir_dim_eval(g, pdim(g, "N*S + 2*N - 1"), syms, &x) && x == 20, "eval gives %lld", (long long)x);
  syms[n] = INT64_MAX / 2;
  CHECK(!ir_dim_eval(g, pdim(g, "N*S"), syms, &x), "eval overflow is reported");
  ir_graph_free(g);
}

static void test_deduction(void) {
  Err err;
  Graph *g = parse("graph t\ninput x: f32[N, 8]\ninput y: f32[M, 8]\nz = add(x, y)\noutput z\n", &err);
  CHECK(g && ir_sym_rep(g, 0) == ir_sym_rep(g, 1), "broadcast of N and M unifies them");
  CHECK(g && !strcmp(shape(g, "z"), "[N, 8]"), "z is [N, 8], got %s", g ? shape(g, "z") : "-");
  ir_graph_free(g);

  g = parse("graph t\ninput x: f32[N]\ninput y: f32[4]\nz = add(x, y)\noutput z\n", &err);
  CHECK(g && !strcmp(shape(g, "z"), "[4]") && !strcmp(shape(g, "x"), "[4]"),
        "N against 4 binds N = 4, got %s", g ? shape(g, "x") : err.msg);
  ir_graph_free(g);

  g = parse("graph t\ninput x: f32[N]\ninput y: f32[1]\nz = add(x, y)\noutput z\n", &err);
  CHECK(g && !strcmp(shape(g, "z"), "[N]") && g->syms.v[0].bound == DIM_NONE,
        "1 broadcasts; N stays free");
  ir_graph_free(g);

  g = parse("graph t\ninput a: f32[N, K]\ninput b: f32[J, 8]\nc = matmul(a, b)\noutput c\n", &err);
  CHECK(g && ir_sym_rep(g, 1) == ir_sym_rep(g, 2) && !strcmp(shape(g, "c"), "[N, 8]"),
        "matmul unifies the contracted dims");
  ir_graph_free(g);

  g = parse("graph t\ninput a: f32[N, 3]\ninput b: f32[M, 3]\nc = concat(a, b, axis=0)\n"
            "output c\n",
            &err);
  CHECK(g && !strcmp(shape(g, "c"), "[N + M, 3]"), "concat sums the axis: %s", g ? shape(g, "c") : err.msg);
  ir_graph_free(g);

  g = parse("graph t\ninput a: f32[N, 3]\ninput b: f32[N, M]\nc = concat(a, b, axis=0)\n"
            "output c\n",
            &err);
  CHECK(g && !strcmp(shape(g, "b"), "[N, 3]"), "concat binds other dims: %s", g ? shape(g, "b") : err.msg);
  ir_graph_free(g);

  g = parse("graph t\ninput x: f32[N, S, 64]\ny = reshape(x, shape=[-1, 64])\noutput y\n", &err);
  CHECK(g && !strcmp(shape(g, "y"), "[N*S, 64]"), "reshape -1 is N*S: %s", g ? shape(g, "y") : err.msg);
  ir_graph_free(g);

  g = parse("graph t\ninput x: f32[B, 64]\ninput n: f32[N]\ninput s: f32[S]\n"
            "y = reshape(x, shape=[N, S, 64])\noutput y\n",
            &err);
  CHECK(g && !strcmp(shape(g, "x"), "[N*S, 64]"), "reshape binds B = N*S: %s", g ? shape(g, "x") : err.msg);
  ir_graph_free(g);

  g = parse("graph t\ninput x: f32[3]\ninput y: f32[4]\nz = add(x, y)\noutput z\n", &err);
  CHECK(!g && err.code == DVM_ERR_SHAPE && strstr(err.msg, "t.dvm:4:") &&
            strstr(err.msg, "must be equal"),
        "3 vs 4 is an error at line 4: %s", err.msg);

  g = parse("graph t\ninput x: f32[N]\ninput y: f32[3]\ninput w: f32[4]\na = add(x, y)\n"
            "b = add(x, w)\noutput b\n",
            &err);
  CHECK(!g && err.code == DVM_ERR_SHAPE && strstr(err.msg, "t.dvm:6:"),
        "N = 3 then N vs 4 is an error at line 6: %s", err.msg);

  g = parse("graph t\ninput x: f32[N+1]\ninput y: f32[N+2]\nz = add(x, y)\noutput z\n", &err);
  CHECK(!g && err.code == DVM_ERR_SHAPE, "N+1 vs N+2 contradicts: %s", err.msg);

  g = parse("graph t\ninput x: f32[N, 4]\ny = squeeze(x, axes=[0])\noutput y\n", &err);
  CHECK(g && !strcmp(shape(g, "x"), "[1, 4]"), "squeeze binds N = 1: %s", g ? shape(g, "x") : err.msg);
  ir_graph_free(g);

  g = parse("graph t\ninput x: f32[N, 6]\ny = reshape(x, shape=[-1, 4])\noutput y\n", &err);
  CHECK(g != NULL, "reshape with a non-monomial quotient parses: %s", err.msg);
  ir_graph_free(g);
}

/* Bind g with inputs of the given shapes (by declaration order) and presets. */
static dvm_status bind(Graph *g, int n, const int64_t shapes[][4], const int *ranks,
                       Binding *b, Err *err) {
  Tensor *given_by_decl[8] = {0};
  Tensor **given = calloc(g->nodes.n, sizeof *given);
  dvm_status st = DVM_OK;
  for (int i = 0; i < n && !st; i++) {
    st = rt_tensor_new((DType)ir_node(g, g->decls.v[i])->dtype, ranks[i], shapes[i],
                       &given_by_decl[i], err);
    if (!st) given[g->decls.v[i]] = given_by_decl[i];
  }
  if (!st) st = rt_bind(g, given, NULL, b, err);
  for (int i = 0; i < n; i++) rt_tensor_free(given_by_decl[i]);
  free(given);
  return st;
}

static int64_t bound_dim(const Graph *g, const Binding *b, const char *name, int axis) {
  int64_t v = ir_find(g, name, strlen(name));
  return b->dims[b->off[v] + axis];
}

static void test_binding(void) {
  Err err;
  Binding b;
  Graph *g = parse("graph t\ninput x: f32[N*S, 4]\ninput s: f32[S]\ny = reshape(x, shape=[N, S, 4])\n"
                   "output y\n",
                   &err);
  CHECK(g != NULL, "parse: %s", err.msg);
  const int64_t sh[][4] = {{15, 4}, {5}};
  const int rk[] = {2, 1};
  CHECK(g && bind(g, 2, sh, rk, &b, &err) == DVM_OK && bound_dim(g, &b, "y", 0) == 3,
        "N solved from N*S = 15 with S = 5: %s", err.msg);
  if (g && !err.code) rt_binding_free(&b);
  ir_graph_free(g);

  g = parse("graph t\ninput x: f32[A, 6]\ny = reshape(x, shape=[-1, 4])\noutput y\n", &err);
  const int64_t sh2[][4] = {{10, 6}};
  const int rk2[] = {2};
  CHECK(g && bind(g, 1, sh2, rk2, &b, &err) == DVM_OK && bound_dim(g, &b, "y", 0) == 15,
        "reshape's fresh symbol solved at bind time: %s", err.msg);
  if (g && !err.code) rt_binding_free(&b);
  const int64_t sh3[][4] = {{3, 6}};
  memset(&err, 0, sizeof err);
  CHECK(g && bind(g, 1, sh3, rk2, &b, &err) == DVM_ERR_SHAPE && strstr(err.msg, "t.dvm:3:"),
        "18 elements cannot reshape to [-1, 4]: %s", err.msg);
  ir_graph_free(g);

  g = parse("graph t\ninput x: f32[N]\ninput y: f32[M]\nz = add(x, y)\noutput z\n", &err);
  const int64_t sh4[][4] = {{3}, {4}};
  const int rk4[] = {1, 1};
  memset(&err, 0, sizeof err);
  CHECK(g && bind(g, 2, sh4, rk4, &b, &err) == DVM_ERR_SHAPE && strstr(err.msg, "t.dvm:") &&
            strstr(err.msg, "3") && strstr(err.msg, "4"),
        "N = 3 and M = 4 contradict the unification: %s", err.msg);
  memset(&err, 0, sizeof err);
  CHECK(g && bind(g, 1, sh4, rk4, &b, &err) == DVM_OK, "one input binds the class: %s", err.msg);
  if (g && !err.code) rt_binding_free(&b);
  memset(&err, 0, sizeof err);
  CHECK(g && bind(g, 0, sh4, rk4, &b, &err) == DVM_ERR_SHAPE && strstr(err.msg, "symbol 'N'"),
        "an unbound symbol is named: %s", err.msg);
  ir_graph_free(g);

  g = parse("graph t\ninput x: f32[N, N, N, N]\ny = neg(x)\noutput y\n", &err);
  const int64_t sh5[][4] = {{1 << 20, 1 << 20, 1 << 20, 1 << 20}};
  const int rk5[] = {4};
  Tensor *t = NULL;
  CHECK(rt_tensor_new(DT_F32, 4, sh5[0], &t, &err) == DVM_ERR_OVERFLOW,
        "a 2^80-element tensor is refused: %s", err.msg);
  rt_tensor_free(t);
  (void)rk5;
  ir_graph_free(g);

  g = parse("graph t\ninput x: f32[N]\ny = slice(x, starts=[2], ends=[-1])\noutput y\n", &err);
  CHECK(g && !strcmp(shape(g, "y"), "[N - 3]"), "symbolic slice length: %s", g ? shape(g, "y") : err.msg);
  const int64_t sh6[][4] = {{10}}, sh7[][4] = {{2}};
  const int rk6[] = {1};
  memset(&err, 0, sizeof err);
  CHECK(g && bind(g, 1, sh6, rk6, &b, &err) == DVM_OK && bound_dim(g, &b, "y", 0) == 7,
        "slice of 10 has 7: %s", err.msg);
  if (g && !err.code) rt_binding_free(&b);
  memset(&err, 0, sizeof err);
  CHECK(g && bind(g, 1, sh7, rk6, &b, &err) == DVM_ERR_SHAPE && strstr(err.msg, "must be <="),
        "slice bounds out of range at bind time: %s", err.msg);
  ir_graph_free(g);

  g = parse("graph t\ninput x: f32[N, 3]\ny = reduce_sum(x, axes=[0])\noutput y\n", &err);
  const int64_t sh8[][4] = {{4, 5}};
  const int rk8[] = {2};
  memset(&err, 0, sizeof err);
  CHECK(g && bind(g, 1, sh8, rk8, &b, &err) == DVM_ERR_SHAPE && strstr(err.msg, "t.dvm:2:"),
        "a file contradicting a constant dim names the declaration: %s", err.msg);
  ir_graph_free(g);
}

int main(void) {
  test_interning();
  test_deduction();
  test_binding();
  return CHECK_SUMMARY();
}
