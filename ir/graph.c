/* ir/graph.c — the Graph: string pool, value names, nodes and their attributes.
 *
 * ir_add_node is the one way a node enters a graph (parser and builder alike): it
 * checks the name (SSA: defined once), the arity and the attributes against the op
 * table, appends the node, and runs inference on it. A node that fails is removed again,
 * so a graph is never left holding a half-checked node. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "ir.h"

Graph *ir_graph_new(const char *file) {
  Graph *g = calloc(1, sizeof *g);
  if (!g) return NULL;
  g->file = strdup(file ? file : "<graph>");
  if (!g->file) {
    free(g);
    return NULL;
  }
  vec_push(g->strs, '\0'); /* offset 0 is "" */
  return g;
}

void ir_graph_free(Graph *g) {
  if (!g) return;
  free(g->file);
  vec_free(g->strs);
  vec_free(g->nodes);
  vec_free(g->operands);
  vec_free(g->attrs);
  vec_free(g->lists);
  vec_free(g->clists);
  vec_free(g->shapes);
  vec_free(g->outputs);
  vec_free(g->decls);
  vec_free(g->dims.code);
  vec_free(g->dims.start);
  free(g->dims.hash);
  vec_free(g->syms);
  vec_free(g->cons);
  free(g->names);
  free(g->ext);
  free(g);
}

void ir_graph_reset(Graph *g, uint32_t keep_dims) {
  g->strs.n = 1;
  g->nodes.n = g->operands.n = g->attrs.n = g->lists.n = g->clists.n = 0;
  g->shapes.n = g->outputs.n = g->decls.n = g->syms.n = g->cons.n = 0;
  if (g->names) memset(g->names, 0, g->ncap * sizeof *g->names);
  if (g->dims.start.n > keep_dims) {
    g->dims.code.n = g->dims.start.n = 0;
    if (g->dims.hash) memset(g->dims.hash, 0, g->dims.hcap * sizeof *g->dims.hash);
  }
  g->literal_count = 0;
  g->finished = false;
  free(g->ext);
  g->ext = NULL;
}

uint32_t ir_str(Graph *g, const char *s, size_t n) {
  uint32_t off = g->strs.n;
  if (!vec_reserve(g->strs, (uint32_t)n + 1)) ir_oom();
  memcpy(g->strs.v + off, s, n);
  g->strs.v[off + n] = '\0';
  g->strs.n += (uint32_t)n + 1;
  return off;
}

/* ---- names ------------------------------------------------------------------------------ */

static uint32_t name_hash(const char *s, size_t n) { return (uint32_t)XXH3_64bits(s, n); }

static void names_insert(Graph *g, uint32_t v) {
  const char *s = ir_s(g, g->nodes.v[v].name);
  uint32_t i = name_hash(s, strlen(s)) & (g->ncap - 1);
  while (g->names[i]) i = (i + 1) & (g->ncap - 1);
  g->names[i] = v + 1;
}

static void names_grow(Graph *g) {
  uint32_t cap = g->ncap ? g->ncap * 2 : 64;
  free(g->names);
  g->names = calloc(cap, sizeof *g->names);
  if (!g->names) ir_oom();
  g->ncap = cap;
  for (uint32_t v = 0; v < g->nodes.n; v++)
    if (g->nodes.v[v].name) names_insert(g, v);
}

int64_t ir_find(const Graph *g, const char *name, size_t n) {
  if (!g->ncap) return -1;
  uint32_t i = name_hash(name, n) & (g->ncap - 1);
  for (; g->names[i]; i = (i + 1) & (g->ncap - 1)) {
    uint32_t v = g->names[i] - 1;
    const char *s = ir_s(g, g->nodes.v[v].name);
    if (strlen(s) == n && memcmp(s, name, n) == 0) return v;
  }
  return -1;
}

/* ---- attributes ------------------------------------------------------------------------- */

IrMark ir_mark(const Graph *g) {
  return (IrMark){g->nodes.n, g->strs.n, g->operands.n, g->attrs.n, g->lists.n, g->shapes.n, g->cons.n,
                  g->syms.n, g->decls.n};
}

void ir_undo(Graph *g, const IrMark *m) {
  g->nodes.n = m->nodes, g->strs.n = m->strs, g->operands.n = m->operands, g->attrs.n = m->attrs;
  g->lists.n = m->lists, g->shapes.n = m->shapes, g->cons.n = m->cons, g->syms.n = m->syms;
  g->decls.n = m->decls;
}

int64_t ir_add_source(Graph *g, Op op, DType dt, int rank, const Dim *shape) {
  Node nd = {.op = (uint16_t)op, .dtype = (uint8_t)dt, .rank = (uint8_t)rank, .in = g->operands.n,
             .attr = g->attrs.n, .decl = g->shapes.n};
  for (int pass = 0; pass < 2; pass++) /* as written, then the copy ir_finish canonicalizes */
    for (int i = 0; i < rank; i++) vec_push(g->shapes, shape[i]);
  nd.shape = nd.decl + (uint32_t)rank;
  uint32_t v = g->nodes.n;
  vec_push(g->nodes, nd);
  vec_push(g->decls, v);
  return v;
}

const Attr *ir_attr(const Graph *g, uint32_t v, AttrKey k) {
  const Node *nd = &g->nodes.v[v];
  for (uint32_t i = 0; i < nd->nattr; i++)
    if (g->attrs.v[nd->attr + i].key == k) return &g->attrs.v[nd->attr + i];
  return NULL;
}

int64_t ir_attr_int(const Graph *g, uint32_t v, AttrKey k, int64_t dflt) {
  const Attr *a = ir_attr(g, v, k);
  return a ? a->i : dflt;
}

double ir_attr_float(const Graph *g, uint32_t v, AttrKey k, double dflt) {
  const Attr *a = ir_attr(g, v, k);
  if (!a) return dflt;
  return a->isint ? (double)a->i : a->f;
}

int ir_axis(int64_t a, int r) {
  if (a < -(int64_t)r || a >= r) return -1;
  return (int)(a < 0 ? a + r : a);
}

/* ---- nodes ------------------------------------------------------------------------------ */

static const char *kind_word(AttrKind k) {
  switch (k) {
  case AV_INT: return "an integer";
  case AV_FLOAT: return "a number";
  case AV_DTYPE: return "a dtype";
  case AV_IDENT: return "an identifier";
  case AV_DIM: return "a dim expression";
  case AV_INTLIST: return "a list of integers";
  case AV_DIMLIST: return "a list of dims";
  }
  return "?";
}

/* Check arity and attributes of a draft against the op table. */
static dvm_status check_draft(Graph *g, const NodeDraft *d, Err *err) {
  const OpInfo *op = &ir_ops[d->op];
  if (op->arity >= 0 && d->nin != (uint32_t)op->arity)
    return ir_errl(err, DVM_ERR_GRAPH, g->file, d->line, "%s takes %d operand%s, got %u",
                   op->name, op->arity, op->arity == 1 ? "" : "s", d->nin);
  if (op->arity < 0 && d->nin == 0)
    return ir_errl(err, DVM_ERR_GRAPH, g->file, d->line, "%s takes at least 1 operand, got 0",
                   op->name);
  for (uint32_t i = 0; i < d->nattr; i++) {
    const Attr *a = &d->attr[i];
    if (!(op->attrs & (1u << a->key)))
      return ir_errl(err, DVM_ERR_GRAPH, g->file, d->line, "%s has no attribute '%s'", op->name,
                     ir_attrs[a->key].name);
    bool ok = a->kind == ir_attrs[a->key].kind ||
              (ir_attrs[a->key].kind == AV_FLOAT && a->kind == AV_INT);
    if (!ok)
      return ir_errl(err, DVM_ERR_GRAPH, g->file, d->line, "attribute '%s' expects %s",
                     ir_attrs[a->key].name, kind_word(ir_attrs[a->key].kind));
    for (uint32_t j = 0; j < i; j++)
      if (d->attr[j].key == a->key)
        return ir_errl(err, DVM_ERR_GRAPH, g->file, d->line, "attribute '%s' given twice",
                       ir_attrs[a->key].name);
  }
  return DVM_OK;
}

bool ir_valid_name(const char *s, size_t n) {
  if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_')) return false;
  for (size_t i = 1; i < n; i++)
    if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.')) return false;
  /* inf and nan read as numbers where an operand may be a literal */
  return !((n == 3 && (!memcmp(s, "inf", 3) || !memcmp(s, "nan", 3))));
}

int64_t ir_add_node(Graph *g, const NodeDraft *d, Err *err) {
  if (check_draft(g, d, err)) return -1;
  if (d->name && !ir_valid_name(d->name, d->name_len))
    return ir_errl(err, DVM_ERR_GRAPH, g->file, d->line,
                   "'%.*s' is not a valid name ([A-Za-z_][A-Za-z0-9_.]*, not inf or nan)",
                   (int)d->name_len, d->name),
           -1;
  if (d->name) {
    int64_t prev = ir_find(g, d->name, d->name_len);
    if (prev >= 0) {
      uint32_t pl = g->nodes.v[prev].line;
      if (pl)
        ir_errl(err, DVM_ERR_GRAPH, g->file, d->line, "'%.*s' is already defined at line %u",
                (int)d->name_len, d->name, pl);
      else
        ir_errl(err, DVM_ERR_GRAPH, g->file, d->line, "'%.*s' is already defined",
                (int)d->name_len, d->name);
      return -1;
    }
  }
  for (uint32_t i = 0; i < d->nin; i++)
    if (d->in[i] >= g->nodes.n)
      return ir_errl(err, DVM_ERR_GRAPH, g->file, d->line, "operand %u is not a value", i + 1),
             -1;
  /* remember sizes to roll back on failure */
  uint32_t n_str = g->strs.n, n_op = g->operands.n, n_at = g->attrs.n, n_sh = g->shapes.n;
  uint32_t n_con = g->cons.n;
  Node nd = {.op = (uint16_t)d->op, .dtype = (uint8_t)d->dtype, .rank = d->rank, .line = d->line};
  nd.name = d->name ? ir_str(g, d->name, d->name_len) : 0;
  nd.in = g->operands.n;
  nd.nin = d->nin;
  for (uint32_t i = 0; i < d->nin; i++) vec_push(g->operands, d->in[i]);
  nd.attr = g->attrs.n;
  nd.nattr = d->nattr;
  for (uint32_t i = 0; i < d->nattr; i++) vec_push(g->attrs, d->attr[i]);
  nd.shape = g->shapes.n;
  if (ir_ops[d->op].kind == OPK_SOURCE)
    for (uint32_t i = 0; i < d->rank; i++) vec_push(g->shapes, d->shape[i]);
  uint32_t v = g->nodes.n;
  vec_push(g->nodes, nd);
  /* snapshot the symbol table: inference may unify or bind symbols (none to keep in a
     graph without symbols: the lazy front end's traces) */
  uint32_t nsyms = g->syms.n;
  Symbol few[8], *saved = nsyms <= 8 ? few : malloc(nsyms * sizeof *saved);
  if (!saved) ir_oom();
  if (nsyms) memcpy(saved, g->syms.v, nsyms * sizeof *saved);
  dvm_status st = ir_infer(g, v, err);
  if (st) {
    g->nodes.n = v;
    g->strs.n = n_str;
    g->operands.n = n_op;
    g->attrs.n = n_at;
    g->shapes.n = n_sh;
    g->cons.n = n_con;
    if (nsyms) memcpy(g->syms.v, saved, nsyms * sizeof *saved);
    if (saved != few) free(saved);
    return -1;
  }
  if (saved != few) free(saved);
  if (nd.name) {
    if ((g->nodes.n + 1) * 2 > g->ncap) names_grow(g);
    else names_insert(g, v);
  }
  if (d->op == OP_INPUT || d->op == OP_PARAM) vec_push(g->decls, v);
  g->finished = false;
  return v;
}

/* Copy one growable array; false if out of memory. */
#define CLONE(dst, src)                                                                    \
  ((dst).n = (dst).cap = 0, (dst).v = NULL,                                                \
   vec_reserve(dst, (src).n ? (src).n : 1) &&                                              \
       ((src).n ? (memcpy((dst).v, (src).v, (src).n * sizeof *(src).v), (dst).n = (src).n, 1) : 1))

Graph *ir_graph_clone(const Graph *g) {
  Graph *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  *c = *g;
  c->file = strdup(g->file);
  c->names = NULL;
  c->ext = NULL; /* resolved per model */
  c->dims.hash = NULL;
  c->dims.hcap = 0;
  bool ok = c->file && CLONE(c->strs, g->strs) && CLONE(c->nodes, g->nodes) &&
            CLONE(c->operands, g->operands) && CLONE(c->attrs, g->attrs) &&
            CLONE(c->lists, g->lists) && CLONE(c->clists, g->clists) && CLONE(c->shapes, g->shapes) &&
            CLONE(c->outputs, g->outputs) && CLONE(c->decls, g->decls) &&
            CLONE(c->dims.code, g->dims.code) && CLONE(c->dims.start, g->dims.start) &&
            CLONE(c->syms, g->syms) && CLONE(c->cons, g->cons);
  if (ok && g->dims.hcap) {
    c->dims.hash = malloc(g->dims.hcap * sizeof *c->dims.hash);
    ok = c->dims.hash != NULL;
    if (ok) memcpy(c->dims.hash, g->dims.hash, g->dims.hcap * sizeof *c->dims.hash);
    c->dims.hcap = g->dims.hcap;
  }
  if (ok && g->ncap) {
    c->names = malloc(g->ncap * sizeof *c->names);
    ok = c->names != NULL;
    if (ok) memcpy(c->names, g->names, g->ncap * sizeof *c->names);
  }
  if (!ok) {
    ir_graph_free(c);
    return NULL;
  }
  return c;
}
