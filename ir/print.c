/* ir/print.c — the Graph back to text: the format of docs/format.md (exact round trip:
 * parsing the printed text gives the same graph), and the `dvm dump` stages `ir` (the
 * text with each value's inferred dtype and shape) and `deduce` (symbol classes,
 * bindings, recorded constraints and canonical shapes). All return malloc'd strings. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"

void ir_put(Buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || !vec_reserve(*b, (uint32_t)n + 1)) ir_oom();
  va_start(ap, fmt);
  vsnprintf(b->v + b->n, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->n += (uint32_t)n;
}

char *ir_buf_done(Buf *b) {
  vec_push(*b, '\0');
  return b->v;
}

#define put ir_put
#define done ir_buf_done

/* The shortest text that reads back as the same double, always looking like a float. */
static void put_float(Buf *b, double f) {
  char s[40];
  if (isnan(f)) {
    put(b, "nan");
    return;
  }
  if (isinf(f)) {
    put(b, "%sinf", f < 0 ? "-" : "");
    return;
  }
  for (int prec = 6; prec <= 17; prec++) {
    snprintf(s, sizeof s, "%.*g", prec, f);
    if (strtod(s, NULL) == f) break;
  }
  put(b, "%s%s", s, strpbrk(s, ".e") ? "" : ".0");
}

static void put_dim(Buf *b, const Graph *g, Dim d) {
  char s[256];
  put(b, "%s", ir_dim_str(g, d, s, sizeof s));
}

static void put_shape(Buf *b, const Graph *g, DType dt, const Dim *s, int rank) {
  put(b, "%s[", ir_dtype_name(dt));
  for (int i = 0; i < rank; i++) {
    if (i) put(b, ", ");
    put_dim(b, g, s[i]);
  }
  put(b, "]");
}

static void put_attr(Buf *b, const Graph *g, const Attr *a) {
  put(b, "%s=", ir_attrs[a->key].name);
  switch ((AttrKind)a->kind) {
  case AV_INT: put(b, "%lld", (long long)a->i); break;
  case AV_FLOAT:
    if (a->isint) put(b, "%lld", (long long)a->i);
    else put_float(b, a->f);
    break;
  case AV_DTYPE: put(b, "%s", ir_dtype_name((DType)a->i)); break;
  case AV_IDENT: put(b, "%s", ir_s(g, a->off)); break;
  case AV_DIM: put_dim(b, g, (Dim)a->i); break;
  case AV_INTLIST:
  case AV_DIMLIST:
    put(b, "[");
    for (uint32_t i = 0; i < a->n; i++) {
      if (i) put(b, ", ");
      if (a->kind == AV_INTLIST) put(b, "%lld", (long long)g->lists.v[a->off + i]);
      else put_dim(b, g, (Dim)g->lists.v[a->off + i]);
    }
    put(b, "]");
    break;
  }
}

/* One line for node v (no newline); literals are printed inline at their uses. */
static void put_node(Buf *b, const Graph *g, uint32_t v) {
  const Node *n = ir_node(g, v);
  if (n->op == OP_INPUT || n->op == OP_PARAM) {
    put(b, "%-6s %s: ", ir_ops[n->op].name, ir_s(g, n->name));
    put_shape(b, g, (DType)n->dtype, n->rank ? g->shapes.v + n->decl : NULL, n->rank); /* shapes.v: NULL while empty */
    for (uint32_t i = 0; i < n->nattr; i++) put(b, " "), put_attr(b, g, &g->attrs.v[n->attr + i]);
    return;
  }
  put(b, "%s = %s(", ir_s(g, n->name), ir_ops[n->op].name);
  for (uint32_t i = 0; i < n->nin; i++) {
    uint32_t u = ir_operand(g, v, i);
    if (i) put(b, ", ");
    if (ir_node(g, u)->op == OP_LITERAL) {
      const Attr *a = ir_attr(g, u, AK_VALUE);
      if (a->isint) put(b, "%lld", (long long)a->i);
      else put_float(b, a->f);
    } else {
      put(b, "%s", ir_s(g, ir_node(g, u)->name));
    }
  }
  for (uint32_t i = 0; i < n->nattr; i++) {
    if (i || n->nin) put(b, ", ");
    put_attr(b, g, &g->attrs.v[n->attr + i]);
  }
  put(b, ")");
}

static void put_graph(Buf *b, const Graph *g, bool shapes) {
  put(b, "graph %s\n", ir_s(g, g->name));
  for (uint32_t v = 0; v < g->nodes.n; v++) {
    const Node *n = ir_node(g, v);
    if (n->op == OP_LITERAL) continue;
    uint32_t start = b->n;
    put_node(b, g, v);
    if (shapes && n->op != OP_INPUT && n->op != OP_PARAM) {
      int w = (int)(b->n - start);
      put(b, "%*s# ", w < 40 ? 40 - w : 1, "");
      put_shape(b, g, (DType)n->dtype, ir_shape(g, v), n->rank);
    }
    put(b, "\n");
  }
  put(b, "output ");
  for (uint32_t i = 0; i < g->outputs.n; i++)
    put(b, "%s%s", i ? ", " : "", ir_s(g, ir_node(g, g->outputs.v[i])->name));
  put(b, "\n");
}

char *ir_print(const Graph *g) {
  Buf b = {0};
  put_graph(&b, g, false);
  return done(&b);
}

char *ir_dump_ir(const Graph *g) {
  Buf b = {0};
  put_graph(&b, g, true);
  return done(&b);
}

static const char *sym_name(const Graph *g, uint32_t s) { return ir_s(g, g->syms.v[s].name); }

char *ir_dump_deduce(const Graph *g) {
  Buf b = {0};
  put(&b, "# symbols (class representative, or what the class is bound to)\n");
  for (uint32_t s = 0; s < g->syms.n; s++) {
    uint32_t r = ir_sym_rep(g, s);
    put(&b, "%-12s", sym_name(g, s));
    if (r != s) put(&b, " = %s", sym_name(g, r));
    if (g->syms.v[r].bound != DIM_NONE) {
      put(&b, " = ");
      put_dim(&b, g, g->syms.v[r].bound);
    }
    if (r == s && g->syms.v[r].bound == DIM_NONE) put(&b, " free");
    if (g->syms.v[s].line) put(&b, "    # line %u", g->syms.v[s].line);
    put(&b, "\n");
  }
  put(&b, "# constraints checked at bind time\n");
  for (uint32_t i = 0; i < g->cons.n; i++) {
    const Constraint *c = &g->cons.v[i];
    put(&b, "line %-4u %-12s ", c->line, ir_ops[ir_node(g, c->node)->op].name);
    put_dim(&b, g, c->a);
    put(&b, c->kind == CON_EQ ? " == " : " <= ");
    put_dim(&b, g, c->b);
    put(&b, "\n");
  }
  put(&b, "# values\n");
  for (uint32_t v = 0; v < g->nodes.n; v++) {
    const Node *n = ir_node(g, v);
    if (n->op == OP_LITERAL) continue;
    put(&b, "%s: ", ir_s(g, n->name));
    put_shape(&b, g, (DType)n->dtype, ir_shape(g, v), n->rank);
    put(&b, "\n");
  }
  return done(&b);
}
