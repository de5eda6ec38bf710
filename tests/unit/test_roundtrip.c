/* tests/unit/test_roundtrip.c — the graph text format round trip, on every op.
 *
 * For each op of ir/ops.def (sources excepted: they appear as `input`/`param` lines and
 * inline literals) a small graph text below uses it, with symbolic dims and the op's
 * attributes. Each text goes ir_parse -> ir_print -> ir_parse -> ir_print; the two
 * printed texts must be identical and the two graphs structurally equal (nodes, ops,
 * dtypes, ranks, names, operands, attributes, declared and inferred shapes as printed by
 * ir_dim_str, outputs). An op without a case is a failure, so a new op in ops.def makes
 * this test fail until it gets one. Also: every op name is found by ir_op_lookup, every
 * op has an inference rule, and the lexical liberties of docs/format.md (comments, blank
 * lines, extra spaces, CRLF, `output a, b`) parse to the same graph as the plain text.
 * The last line printed is "N passed, M failed"; the exit status is nonzero on failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

#include "check.h"

/* ---- one case per op ------------------------------------------------------------------ */

typedef struct Case {
  const char *op;   /* the op this case is for (ops.def spelling) */
  const char *text; /* a whole graph that uses it */
} Case;

/* Common declarations: symbolic batch N, an expression dim, each dtype class. */
#define HEAD(name)                                                                                 \
  "graph " name "\n"                                                                               \
  "input x: f32[N, 2*M + 1]\n"
#define UNARY(op)                                                                                  \
  { op, HEAD("u_" op) "y = " op "(x)\noutput y\n" }

static const Case cases[] = {
    /* unary elementwise */
    UNARY("neg"),
    UNARY("abs"),
    UNARY("exp"),
    UNARY("log"),
    UNARY("sqrt"),
    UNARY("rsqrt"),
    UNARY("reciprocal"),
    UNARY("tanh"),
    UNARY("sigmoid"),
    UNARY("relu"),
    UNARY("gelu"),
    UNARY("gelu_tanh"),
    UNARY("silu"),
    UNARY("erf"),
    UNARY("sin"),
    UNARY("cos"),
    UNARY("floor"),
    UNARY("ceil"),
    UNARY("round"),
    {"sign", "graph s\ninput k: i32[N, S]\ny = sign(k)\nz = neg(y)\noutput y, z\n"},
    {"not", "graph n\ninput b: bool[N]\ny = not(b)\noutput y\n"},

    /* binary, with broadcasting and literals of each flavour */
    {"add", HEAD("b_add") "input w: f32[K]\ny = add(x, w)\noutput y\n"}, /* K = 2*M + 1 */
    {"sub", HEAD("b_sub") "y = sub(x, 1)\nz = sub(2, y)\noutput z\n"},
    {"mul", HEAD("b_mul") "y = mul(x, 0.5)\noutput y\n"},
    {"div", HEAD("b_div") "input w: f32[1, 2*M + 1]\ny = div(x, w)\nz = div(y, -1.25e-3)\n"
                          "output z\n"},
    {"pow", HEAD("b_pow") "y = pow(x, 2.0)\noutput y\n"},
    {"fmod", HEAD("b_fmod") "y = fmod(x, 1.5)\noutput y\n"},
    {"max", HEAD("b_max") "y = max(x, 0)\noutput y\n"},
    {"min", "graph b_min\ninput k: i64[N, 3]\ninput j: i64[1, 3]\ny = min(k, j)\n"
            "z = min(-7, y)\noutput z\n"},
    {"eq", "graph b_eq\ninput k: i32[N]\ny = eq(k, 3)\noutput y\n"},
    {"ne", "graph b_ne\ninput a: bool[N, K]\ninput b: bool[N, K]\ny = ne(a, b)\noutput y\n"},
    {"lt", HEAD("b_lt") "y = lt(x, 0.1)\noutput y\n"},
    {"le", HEAD("b_le") "input w: f32[P, Q]\ny = le(x, w)\noutput y\n"}, /* P = N */
    {"gt", "graph b_gt\ninput a: f16[N, 4]\ninput b: f16[4]\ny = gt(a, b)\noutput y\n"},
    {"ge", "graph b_ge\ninput a: bf16[N]\ny = ge(a, 1e10)\noutput y\n"},
    {"and", "graph b_and\ninput a: bool[N, 1]\ninput b: bool[1, M]\ny = and(a, b)\n"
            "output y\n"},
    {"or", "graph b_or\ninput a: bool[N]\ninput b: bool[N]\ny = or(a, b)\noutput y\n"},

    /* other elementwise */
    {"select", HEAD("e_select") "c = gt(x, 0)\ny = select(c, x, 0)\nz = select(c, 1.5, y)\n"
                                "output z\n"},
    {"clip", HEAD("e_clip") "y = clip(x, lo=-1, hi=1.5)\nz = clip(y, hi=3)\n"
                            "w = clip(z, lo=-0.25)\noutput w\n"},
    {"cast", HEAD("e_cast") "y = cast(x, to=i32)\nz = cast(y, to=bool)\noutput z\n"},

    /* reductions */
    {"reduce_sum", HEAD("r_sum") "y = reduce_sum(x, axes=[-1], keepdims=1)\noutput y\n"},
    {"reduce_mean", HEAD("r_mean") "y = reduce_mean(x, axes=[0, 1])\noutput y\n"},
    {"reduce_max", HEAD("r_max") "y = reduce_max(x)\noutput y\n"},
    {"reduce_min", "graph r_min\ninput k: i32[N, S, 2]\ny = reduce_min(k, axes=[2, 0], "
                   "keepdims=0)\noutput y\n"},
    {"reduce_prod", HEAD("r_prod") "y = reduce_prod(x, axes=[1], keepdims=0)\noutput y\n"},
    {"argmax", HEAD("r_argmax") "y = argmax(x, axis=1, keepdims=1)\nz = argmax(x)\n"
                                "output y, z\n"},

    /* normalizations */
    {"softmax", HEAD("n_softmax") "y = softmax(x, axis=-1)\nz = softmax(y)\noutput z\n"},
    {"log_softmax", HEAD("n_logsoftmax") "y = log_softmax(x, axis=0)\noutput y\n"},
    {"layernorm", "graph n_ln\ninput x: f32[N, S, D]\nparam g: f32[D]\nparam b: f32[1, D]\n"
                  "y = layernorm(x, g, b, axis=-1, eps=1e-5)\nz = layernorm(y, g, b)\n"
                  "output z\n"},
    {"rmsnorm", "graph n_rms\ninput x: f32[N, 64]\nparam g: f32[64]\n"
                "y = rmsnorm(x, g, eps=1e-6)\noutput y\n"},

    /* layout */
    {"reshape", "graph l_reshape\ninput x: f32[N, S, 2]\ny = reshape(x, shape=[-1, N*2])\n"
                "z = reshape(y, shape=[S*N*2])\noutput z\n"},
    {"transpose", "graph l_tr\ninput x: f32[N, S, 3]\ny = transpose(x, perm=[1, 0, 2])\n"
                  "z = transpose(y)\noutput z\n"},
    {"broadcast_to",
     "graph l_bc\ninput x: f32[N, 1]\ninput m: f32[M]\ny = broadcast_to(x, shape=[M, N, 4])\n"
     "output y\n"},
    {"slice", "graph l_slice\ninput x: f32[N, S, 10]\n"
              "y = slice(x, axes=[1], starts=[1], ends=[-1], steps=[1])\n"
              "z = slice(y, axes=[-1, 0], starts=[8, 0], ends=[0, N - 1], steps=[-2, 1])\n"
              "w = slice(z, starts=[1], ends=[N])\noutput w\n"},
    {"concat", "graph l_concat\ninput a: f32[N, 4]\ninput b: f32[M, 4]\ninput c: f32[2, 4]\n"
               "y = concat(a, b, c, axis=0)\nz = concat(y, axis=-1)\noutput z\n"},
    {"squeeze", "graph l_sq\ninput x: f32[N, 1, 4, K]\ny = squeeze(x, axes=[1])\n"
                "z = squeeze(y, axes=[-1])\nw = squeeze(x)\noutput z, w\n"},
    {"unsqueeze", "graph l_unsq\ninput x: f32[N, 4]\ny = unsqueeze(x, axes=[0, -1])\n"
                  "output y\n"},
    {"gather", "graph l_gather\ninput x: f32[V, D]\ninput idx: i64[N, S]\n"
               "input j: i32[K]\ny = gather(x, idx, axis=0)\nz = gather(y, j, axis=-1)\n"
               "output z\n"},

    /* linear algebra */
    {"matmul", "graph m_mm\ninput x: f32[B, N, K]\nparam w: f32[M, K]\nparam v: f32[M]\n"
               "y = matmul(x, w, transpose_b=1)\nz = matmul(y, v)\n"
               "t = matmul(v, w, transpose_a=0)\noutput z, t\n"},

    /* constants */
    {"full", "graph c_full\ninput x: f32[N]\ny = full(shape=[N, 3], value=0.5, dtype=f32)\n"
             "z = full(shape=[], value=2, dtype=i64)\nw = full(shape=[N + 1], value=-3)\n"
             "output y, z, w\n"},
    {"arange", "graph c_arange\ninput x: f32[N]\ny = arange(n=N+1, dtype=i32)\n"
               "z = arange(n=4)\nw = arange(n=2*N - 1, dtype=f32)\noutput y, z, w\n"},

    /* extern */
    {"call", "graph x_call\ninput x: f32[N, 4]\ninput k: i32[N]\n"
             "y = call(x, fn=myfn, shape=[N, 4], dtype=f32)\n"
             "z = call(y, k, fn=other.fn_2, shape=[N*4], dims=[N*4, 4, N+1])\noutput y, z\n"},
};
#define NCASES (sizeof cases / sizeof cases[0])

/* ---- structural equality -------------------------------------------------------------- */

/* Two dims print the same. */
static bool dim_eq(const Graph *a, Dim da, const Graph *b, Dim db) {
  char x[256], y[256];
  return strcmp(ir_dim_str(a, da, x, sizeof x), ir_dim_str(b, db, y, sizeof y)) == 0;
}

static bool attr_eq(const Graph *a, const Attr *x, const Graph *b, const Attr *y) {
  if (x->key != y->key || x->kind != y->kind || x->isint != y->isint) return false;
  switch ((AttrKind)x->kind) {
  case AV_INT:
  case AV_DTYPE: return x->i == y->i;
  case AV_FLOAT:
    if (x->isint) return x->i == y->i;
    return x->f == y->f || (isnan(x->f) && isnan(y->f));
  case AV_IDENT: return strcmp(ir_s(a, x->off), ir_s(b, y->off)) == 0;
  case AV_DIM: return dim_eq(a, (Dim)x->i, b, (Dim)y->i);
  case AV_INTLIST:
  case AV_DIMLIST:
    if (x->n != y->n) return false;
    for (uint32_t i = 0; i < x->n; i++) {
      int64_t p = a->lists.v[x->off + i], q = b->lists.v[y->off + i];
      if (x->kind == AV_INTLIST ? p != q : !dim_eq(a, (Dim)p, b, (Dim)q)) return false;
    }
    return true;
  }
  return false;
}

/* Compare graphs a and b; reports the first difference under `what`. */
static void same_graph(const char *what, const Graph *a, const Graph *b) {
  CHECK(strcmp(ir_s(a, a->name), ir_s(b, b->name)) == 0, "%s: graph names %s / %s", what,
        ir_s(a, a->name), ir_s(b, b->name));
  CHECK(a->nodes.n == b->nodes.n, "%s: %u nodes vs %u", what, a->nodes.n, b->nodes.n);
  if (a->nodes.n != b->nodes.n) return;
  for (uint32_t v = 0; v < a->nodes.n; v++) {
    const Node *x = ir_node(a, v), *y = ir_node(b, v);
    const char *nm = ir_s(a, x->name);
    bool ok = x->op == y->op && x->dtype == y->dtype && x->rank == y->rank && x->nin == y->nin &&
              x->nattr == y->nattr && strcmp(nm, ir_s(b, y->name)) == 0;
    CHECK(ok, "%s: node %u (%s): op %s/%s dtype %d/%d rank %d/%d nin %u/%u nattr %u/%u", what, v,
          nm, ir_ops[x->op].name, ir_ops[y->op].name, x->dtype, y->dtype, x->rank, y->rank, x->nin,
          y->nin, x->nattr, y->nattr);
    if (!ok) continue;
    for (uint32_t i = 0; i < x->nin; i++)
      CHECK(ir_operand(a, v, i) == ir_operand(b, v, i), "%s: node %u (%s) operand %u: %u/%u", what,
            v, nm, i, ir_operand(a, v, i), ir_operand(b, v, i));
    for (uint32_t i = 0; i < x->nattr; i++)
      CHECK(attr_eq(a, &a->attrs.v[x->attr + i], b, &b->attrs.v[y->attr + i]),
            "%s: node %u (%s) attribute %s", what, v, nm,
            ir_attrs[a->attrs.v[x->attr + i].key].name);
    for (int i = 0; i < x->rank; i++) {
      char s1[256], s2[256];
      CHECK(dim_eq(a, ir_shape(a, v)[i], b, ir_shape(b, v)[i]), "%s: node %u (%s) dim %d: %s / %s",
            what, v, nm, i, ir_dim_str(a, ir_shape(a, v)[i], s1, sizeof s1),
            ir_dim_str(b, ir_shape(b, v)[i], s2, sizeof s2));
      if (x->op == OP_INPUT || x->op == OP_PARAM)
        CHECK(dim_eq(a, a->shapes.v[x->decl + i], b, b->shapes.v[y->decl + i]),
              "%s: node %u (%s) declared dim %d", what, v, nm, i);
    }
  }
  CHECK(a->outputs.n == b->outputs.n, "%s: %u outputs vs %u", what, a->outputs.n, b->outputs.n);
  for (uint32_t i = 0; i < a->outputs.n && i < b->outputs.n; i++)
    CHECK(a->outputs.v[i] == b->outputs.v[i], "%s: output %u: %u/%u", what, i, a->outputs.v[i],
          b->outputs.v[i]);
  CHECK(a->decls.n == b->decls.n, "%s: %u declarations vs %u", what, a->decls.n, b->decls.n);
  CHECK(a->syms.n == b->syms.n, "%s: %u symbols vs %u", what, a->syms.n, b->syms.n);
  CHECK(a->cons.n == b->cons.n, "%s: %u constraints vs %u", what, a->cons.n, b->cons.n);
}

/* ---- the round trip ------------------------------------------------------------------- */

/* Parse text; on failure report the message (and whether inference lacked a rule). */
static Graph *parse(const char *what, const char *text) {
  Err err = {0};
  Graph *g = ir_parse(text, strlen(text), what, &err);
  CHECK(g != NULL, "%s: %s\n--- text ---\n%s", what, err.msg, text);
  if (!g)
    CHECK(strstr(err.msg, "no inference rule") == NULL, "%s: ir_infer lacks a rule: %s", what,
          err.msg);
  return g;
}

static bool verbose; /* -v: print each case's printed text */

static void roundtrip(const Case *c) {
  Graph *g1 = parse(c->op, c->text);
  if (!g1) return;
  /* the case really uses its op */
  int op = ir_op_lookup(c->op, strlen(c->op)), uses = 0;
  for (uint32_t v = 0; v < g1->nodes.n; v++) uses += ir_node(g1, v)->op == op;
  CHECK(op >= 0 && uses > 0, "case '%s' does not use its op", c->op);

  char *t1 = ir_print(g1);
  if (verbose) printf("%s", t1);
  Graph *g2 = parse(c->op, t1);
  if (g2) {
    char *t2 = ir_print(g2);
    CHECK(strcmp(t1, t2) == 0, "%s: printed texts differ:\n--- first ---\n%s--- second ---\n%s",
          c->op, t1, t2);
    same_graph(c->op, g1, g2);
    /* the dumps are a function of the graph too */
    char *d1 = ir_dump_deduce(g1), *d2 = ir_dump_deduce(g2);
    CHECK(strcmp(d1, d2) == 0, "%s: deduce dumps differ:\n%s---\n%s", c->op, d1, d2);
    free(d1);
    free(d2);
    free(t2);
    ir_graph_free(g2);
  }
  free(t1);
  ir_graph_free(g1);
}

/* Every op (sources aside) has exactly one case, and every case names an op. */
static void coverage(void) {
  for (int op = 0; op < OP_COUNT; op++) {
    const char *name = ir_ops[op].name;
    CHECK(ir_op_lookup(name, strlen(name)) == op, "ir_op_lookup(\"%s\") = %d, want %d", name,
          ir_op_lookup(name, strlen(name)), op);
    if (op == OP_INPUT || op == OP_PARAM || op == OP_LITERAL) continue;
    int n = 0;
    for (size_t i = 0; i < NCASES; i++) n += strcmp(cases[i].op, name) == 0;
    CHECK(n == 1, "op '%s' has %d round-trip cases (add one to tests/unit/test_roundtrip.c)", name,
          n);
  }
  for (size_t i = 0; i < NCASES; i++) {
    int op = ir_op_lookup(cases[i].op, strlen(cases[i].op));
    CHECK(op >= 0 && ir_ops[op].kind != OPK_SOURCE, "case for unknown op '%s'", cases[i].op);
  }
  CHECK(ir_op_lookup("nosuchop", 8) < 0, "unknown name found");
  CHECK(ir_op_lookup("add", 2) < 0, "prefix 'ad' found");
}

/* Literal operands: dtype and printed spelling. */
static void literals(void) {
  const char *text = "graph lit\ninput x: f32[N]\ninput k: i64[N]\ninput c: bool[N]\n"
                     "a = mul(x, 0.5)\nb = add(k, -3)\nd = select(c, x, 0)\ne = sub(x, 2)\n"
                     "f = select(c, 7, k)\noutput a, b, d, e, f\n";
  Graph *g = parse("literals", text);
  if (!g) return;
  int lits = 0;
  for (uint32_t v = 0; v < g->nodes.n; v++) {
    const Node *n = ir_node(g, v);
    if (n->op != OP_LITERAL) continue;
    lits++;
    CHECK(n->rank == 0, "literal %u has rank %d", v, n->rank);
  }
  CHECK(lits == 5, "%d literal nodes", lits);
  static const struct {
    const char *name;
    int operand;
    DType dt;
  } want[] = {
      {"a", 1, DT_F32}, {"b", 1, DT_I64}, {"d", 2, DT_F32}, {"e", 1, DT_F32}, {"f", 1, DT_I64}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    int64_t v = ir_find(g, want[i].name, strlen(want[i].name));
    CHECK(v >= 0, "%s not found", want[i].name);
    if (v < 0) continue;
    uint32_t u = ir_operand(g, (uint32_t)v, (uint32_t)want[i].operand);
    CHECK(ir_node(g, u)->op == OP_LITERAL && ir_node(g, u)->dtype == want[i].dt,
          "%s: literal dtype %s", want[i].name, ir_dtype_name((DType)ir_node(g, u)->dtype));
  }
  char *t = ir_print(g);
  CHECK(strstr(t, "a = mul(x, 0.5)\n") && strstr(t, "b = add(k, -3)\n") &&
            strstr(t, "d = select(c, x, 0)\n") && strstr(t, "e = sub(x, 2)\n") &&
            strstr(t, "f = select(c, 7, k)\n"),
        "literals printed as written:\n%s", t);
  free(t);
  ir_graph_free(g);
}

/* Comments, blank lines, extra spaces, CRLF and a two-value output line. */
static void lexical(void) {
  const char *plain = "graph lex\n"
                      "input x: f32[N, 4]\n"
                      "param w: f32[4, 4]\n"
                      "h = matmul(x, w)\n"
                      "y = reduce_sum(h, axes=[-1], keepdims=1)\n"
                      "output h, y\n";
  const char *messy = "# a leading comment\r\n"
                      "\r\n"
                      "   graph   lex   # trailing comment\r\n"
                      "\t\r\n"
                      "input\tx :f32[ N ,4 ]   # spaces inside\r\n"
                      "  # indented comment\r\n"
                      "param w:   f32[4,4]\r\n"
                      "\r\n"
                      "h=matmul( x ,w )\r\n"
                      "y   =   reduce_sum(h,axes=[ -1 ],keepdims = 1)#comment\r\n"
                      "output h ,  y   \r\n"
                      "# trailing comment without newline";
  Graph *a = parse("plain", plain), *b = parse("messy", messy);
  if (a && b) {
    same_graph("messy vs plain", a, b);
    CHECK(b->outputs.n == 2, "%u outputs", b->outputs.n);
    char *ta = ir_print(a), *tb = ir_print(b);
    CHECK(strcmp(ta, tb) == 0, "\n%s---\n%s", ta, tb);
    free(ta);
    free(tb);
  }
  ir_graph_free(a);
  ir_graph_free(b);

  /* no trailing newline at all; a line that is only a comment after the output */
  const char *bare = "graph bare\ninput x: f32[N]\ny = neg(x)\noutput y";
  Graph *c = parse("bare", bare);
  if (c) {
    char *t = ir_print(c);
    CHECK(strcmp(t, "graph bare\ninput  x: f32[N]\ny = neg(x)\noutput y\n") == 0, "%s", t);
    free(t);
  }
  ir_graph_free(c);
}

int main(int argc, char **argv) {
  verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
  coverage();
  for (size_t i = 0; i < NCASES; i++) roundtrip(&cases[i]);
  literals();
  lexical();
  return CHECK_SUMMARY();
}
