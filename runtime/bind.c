/* runtime/bind.c — concrete values for one run: symbols from shapes, constraint checks,
 * and every value's concrete shape.
 *
 * Inputs: a finished Graph, the tensors given for input/param nodes, and preset symbol
 * values (`-s N=7`). Each given dim, each element of an input declared with `values`
 * and each preset is an equation "canonical dim == value" over the free representatives
 * of the symbol classes (ir/dim.c). Equations are
 * solved by repeated substitution: one with a single unknown that occurs linearly gives
 * its value (N*S == 96 with S known gives N); recorded equality constraints take part
 * too (a reshape's fresh symbol). Then every symbol's value follows from its canonical
 * form, every recorded constraint is checked, and every value's shape is evaluated.
 * Nothing wraps: overflow and negative dims are errors naming the graph line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

typedef struct Eq {
  Dim d;        /* canonical: over free representatives */
  int64_t x;    /* the value it must have */
  uint32_t v;   /* the input node (or UINT32_MAX for a preset) */
  int axis;     /* which dim of v, or -1 - i for element i of its values */
  uint32_t sym; /* presets: the symbol given */
  bool solve_only; /* a recorded constraint: checked later, with its own message */
} Eq;

/* Describe where an equation came from, for messages. */
static void eq_where(const Graph *g, const Eq *e, char *buf, size_t n) {
  if (e->v == UINT32_MAX)
    snprintf(buf, n, "-s %s=%lld", ir_s(g, g->syms.v[e->sym].name), (long long)e->x);
  else if (e->axis < 0)
    snprintf(buf, n, "input '%s' element %d = %lld", ir_s(g, ir_node(g, e->v)->name), -1 - e->axis,
             (long long)e->x);
  else
    snprintf(buf, n, "%s '%s' dim %d = %lld", ir_ops[ir_node(g, e->v)->op].name,
             ir_s(g, ir_node(g, e->v)->name), e->axis, (long long)e->x);
}

/* Try to solve d == x given known values; 1 solved, 0 no progress, -1 error. */
static int solve_eq(const Graph *g, Dim d, int64_t x, int64_t *val, uint32_t *unknown,
                    int64_t *solved) {
  DimTerm t[DIM_MAX_TERMS];
  uint32_t n = ir_dim_terms(g, d, t);
  int64_t known = 0, coef = 0;
  uint32_t u = UINT32_MAX;
  for (uint32_t i = 0; i < n; i++) {
    int64_t p = t[i].coef;
    int unk = 0;
    for (int j = 0; j < t[i].deg; j++) {
      uint32_t s = t[i].sym[j];
      if (val[s] == SYM_UNKNOWN) {
        if (u != UINT32_MAX && u != s) return 0; /* two unknowns */
        u = s;
        unk++;
      } else if (__builtin_mul_overflow(p, val[s], &p)) {
        return -1;
      }
    }
    if (unk > 1) return 0; /* not linear */
    if (unk == 1) {
      if (__builtin_add_overflow(coef, p, &coef)) return -1;
    } else if (__builtin_add_overflow(known, p, &known)) {
      return -1;
    }
  }
  *unknown = u;
  if (u == UINT32_MAX) return *solved = known, 2; /* fully known: a check */
  int64_t rest;
  if (coef == 0 || __builtin_sub_overflow(x, known, &rest)) return 0;
  if (rest % coef) return 0;
  *solved = rest / coef;
  return 1;
}

static dvm_status solve_all(const Graph *g, const Eq *eq, uint32_t neq, int64_t *val, Err *err) {
  char w[160], ds[160];
  bool progress = true;
  while (progress) {
    progress = false;
    for (uint32_t i = 0; i < neq; i++) {
      uint32_t u;
      int64_t s;
      int r = solve_eq(g, eq[i].d, eq[i].x, val, &u, &s);
      uint32_t line = eq[i].v == UINT32_MAX ? 0 : ir_node(g, eq[i].v)->line;
      if (r < 0) {
        eq_where(g, &eq[i], w, sizeof w);
        return ir_errl(err, DVM_ERR_OVERFLOW, g->file, line, "%s: %s overflows int64", w,
                       ir_dim_str(g, eq[i].d, ds, sizeof ds));
      }
      if (r == 2 && s != eq[i].x && !eq[i].solve_only) {
        eq_where(g, &eq[i], w, sizeof w);
        int64_t cst;
        if (ir_dim_is_const(g, eq[i].d, &cst)) /* a constant dim: say what was declared */
          return ir_errl(err, DVM_ERR_SHAPE, g->file, line,
                         "%s, but it is declared %lld: dims %lld and %lld must be equal", w,
                         (long long)cst, (long long)eq[i].x, (long long)cst);
        return ir_errl(err, DVM_ERR_SHAPE, g->file, line,
                       "%s, but the graph needs %s = %lld: dims %lld and %lld must be equal", w,
                       ir_dim_str(g, eq[i].d, ds, sizeof ds), (long long)s, (long long)eq[i].x,
                       (long long)s);
      }
      if (r == 1 && !(s < 0 && eq[i].solve_only)) {
        if (s < 0) {
          eq_where(g, &eq[i], w, sizeof w);
          return ir_errl(err, DVM_ERR_SHAPE, g->file, line, "%s gives symbol '%s' = %lld < 0", w,
                         ir_s(g, g->syms.v[u].name), (long long)s);
        }
        val[u] = s;
        progress = true;
      }
    }
  }
  return DVM_OK;
}

static dvm_status check_given(const Graph *g, uint32_t v, const Tensor *t, Err *err) {
  const Node *n = ir_node(g, v);
  char s[256];
  if (t->dtype != (DType)n->dtype)
    return ir_errl(err, DVM_ERR_DTYPE, g->file, n->line,
                   "%s '%s': got dtype %s, declared %s", ir_ops[n->op].name, ir_s(g, n->name),
                   ir_dtype_name(t->dtype), ir_dtype_name((DType)n->dtype));
  if (t->rank != n->rank) {
    size_t k = 0;
    s[0] = 0;
    for (int i = 0; i < n->rank && k + 70 < sizeof s; i++) {
      if (i) k += (size_t)snprintf(s + k, sizeof s - k, ", ");
      ir_dim_str(g, g->shapes.v[n->decl + i], s + k, 64);
      k += strlen(s + k);
    }
    return ir_errl(err, DVM_ERR_SHAPE, g->file, n->line,
                   "%s '%s': got rank %d, declared rank %d [%s]", ir_ops[n->op].name,
                   ir_s(g, n->name), t->rank, n->rank, s);
  }
  return DVM_OK;
}

static dvm_status check_constraints(const Graph *g, const int64_t *val, Err *err) {
  char a[160], b[160];
  for (uint32_t i = 0; i < g->cons.n; i++) {
    const Constraint *c = &g->cons.v[i];
    int64_t x, y;
    const char *op = ir_ops[ir_node(g, c->node)->op].name;
    if (!ir_dim_eval(g, c->a, val, &x) || !ir_dim_eval(g, c->b, val, &y))
      return ir_errl(err, DVM_ERR_OVERFLOW, g->file, c->line, "%s: dims %s and %s overflow int64",
                     op, ir_dim_str(g, c->a, a, sizeof a), ir_dim_str(g, c->b, b, sizeof b));
    if (c->kind == CON_EQ && x != y)
      return ir_errl(err, DVM_ERR_SHAPE, g->file, c->line,
                     "%s: dims %s (= %lld) and %s (= %lld) must be equal", op,
                     ir_dim_str(g, c->a, a, sizeof a), (long long)x,
                     ir_dim_str(g, c->b, b, sizeof b), (long long)y);
    if (c->kind == CON_LE && x > y)
      return ir_errl(err, DVM_ERR_SHAPE, g->file, c->line, "%s: %s (= %lld) must be <= %s (= %lld)",
                     op, ir_dim_str(g, c->a, a, sizeof a), (long long)x,
                     ir_dim_str(g, c->b, b, sizeof b), (long long)y);
  }
  return DVM_OK;
}

static dvm_status shapes(const Graph *g, Binding *b, Err *err) {
  uint32_t total = 0;
  for (uint32_t v = 0; v < g->nodes.n; v++) total += ir_node(g, v)->rank;
  b->dims = malloc((total ? total : 1) * sizeof *b->dims);
  b->off = malloc(g->nodes.n * sizeof *b->off);
  b->numel = malloc(g->nodes.n * sizeof *b->numel);
  if (!b->dims || !b->off || !b->numel) return ir_err(err, DVM_ERR_NOMEM, "out of memory");
  uint32_t k = 0;
  char s[160];
  for (uint32_t v = 0; v < g->nodes.n; v++) {
    const Node *n = ir_node(g, v);
    b->off[v] = k;
    int64_t count = 1;
    for (int i = 0; i < n->rank; i++) {
      Dim d = ir_shape(g, v)[i];
      int64_t x;
      if (!ir_dim_eval(g, d, b->sym, &x))
        return ir_errl(err, DVM_ERR_OVERFLOW, g->file, n->line, "%s: dim %s overflows int64",
                       ir_ops[n->op].name, ir_dim_str(g, d, s, sizeof s));
      if (x < 0)
        return ir_errl(err, DVM_ERR_SHAPE, g->file, n->line, "%s: dim %s is %lld, negative",
                       ir_ops[n->op].name, ir_dim_str(g, d, s, sizeof s), (long long)x);
      int64_t bytes;
      if (__builtin_mul_overflow(count, x, &count) ||
          __builtin_mul_overflow(count, (int64_t)ir_dtype_size((DType)n->dtype), &bytes))
        return ir_errl(err, DVM_ERR_OVERFLOW, g->file, n->line,
                       "%s: the size of '%s' overflows int64 (dim %d = %lld)", ir_ops[n->op].name,
                       n->name ? ir_s(g, n->name) : "literal", i, (long long)x);
      b->dims[k++] = x;
    }
    b->numel[v] = count;
  }
  return DVM_OK;
}

/* The equality constraint that was to give symbol s its value, or NULL. */
static const Constraint *solving(const Graph *g, uint32_t s) {
  for (uint32_t i = 0; i < g->cons.n; i++)
    if (g->cons.v[i].kind == CON_EQ && ir_dim_has_sym(g, g->cons.v[i].diff, s)) return &g->cons.v[i];
  return NULL;
}

/* The equations "value dim i == element i" of input v, whose values attribute is a. */
static dvm_status values_eqs(const Graph *g, uint32_t v, const Attr *a, const Tensor *t, Eq *eq,
                             uint32_t *neq, Err *err) {
  const Node *n = ir_node(g, v);
  if (t->numel != (int64_t)a->n) return DVM_OK; /* its constant dims' equations fail with the message */
  if (a->n && !t->data)
    return ir_errl(err, DVM_ERR_USAGE, g->file, n->line,
                   "input '%s' has no data: its values are dims of the graph", ir_s(g, n->name));
  for (uint32_t i = 0; i < a->n; i++) {
    int64_t x = rt_get_i(t->data, t->dtype, i);
    if (t->dtype == DT_U64 && x < 0) /* its bits: 2^63 and above */
      return ir_errl(err, DVM_ERR_SHAPE, g->file, n->line, "input '%s' element %u = %llu is no dim (above 2^63 - 1)",
                     ir_s(g, n->name), i, (unsigned long long)x);
    eq[(*neq)++] = (Eq){.d = (Dim)g->clists.v[a->off + i], .x = x, .v = v, .axis = -1 - (int)i};
  }
  return DVM_OK;
}

dvm_status rt_bind(const Graph *g, Tensor *const *given, const int64_t *preset, Binding *out,
                   Err *err) {
  memset(out, 0, sizeof *out);
  uint32_t ns = g->syms.n, neq = 0, cap = ns;
  for (uint32_t i = 0; i < g->decls.n; i++) {
    const Attr *a = ir_attr(g, g->decls.v[i], AK_VALUES);
    cap += ir_node(g, g->decls.v[i])->rank + (a ? a->n : 0);
  }
  Eq *eq = malloc((cap + g->cons.n + 1) * sizeof *eq);
  int64_t *val = malloc((ns ? ns : 1) * sizeof *val);
  if (!eq || !val) {
    free(eq);
    free(val);
    return ir_err(err, DVM_ERR_NOMEM, "out of memory");
  }
  out->sym = val;
  for (uint32_t s = 0; s < ns; s++) val[s] = SYM_UNKNOWN;
  dvm_status st = DVM_OK;
  for (uint32_t s = 0; preset && s < ns; s++)
    if (preset[s] != SYM_UNKNOWN)
      eq[neq++] = (Eq){.d = g->syms.v[s].canon, .x = preset[s], .v = UINT32_MAX, .sym = s};
  for (uint32_t i = 0; i < g->decls.n; i++) {
    uint32_t v = g->decls.v[i];
    const Tensor *t = given ? given[v] : NULL;
    if (!t) continue;
    if ((st = check_given(g, v, t, err))) goto done;
    for (int k = 0; k < t->rank; k++)
      eq[neq++] = (Eq){.d = ir_shape(g, v)[k], .x = t->shape[k], .v = v, .axis = k};
    const Attr *a = ir_attr(g, v, AK_VALUES); /* its elements are dims too */
    if (a && (st = values_eqs(g, v, a, t, eq, &neq, err))) goto done;
  }
  /* equality constraints between expressions can fix what the inputs leave open (a
     reshape's fresh symbol); they are checked with their own message below */
  for (uint32_t i = 0; i < g->cons.n; i++)
    if (g->cons.v[i].kind == CON_EQ)
      eq[neq++] = (Eq){.d = g->cons.v[i].diff, .x = 0, .v = UINT32_MAX, .solve_only = true};
  if ((st = solve_all(g, eq, neq, val, err))) goto done;
  for (uint32_t s = 0; s < ns; s++) {
    uint32_t r = ir_sym_rep(g, s);
    if (r == s && g->syms.v[s].bound == DIM_NONE && val[s] == SYM_UNKNOWN) {
      const char *name = ir_s(g, g->syms.v[s].name);
      const Constraint *c = solving(g, s);
      char a[160], b[160];
      for (uint32_t i = 0; i < neq; i++) /* a given dim or value that no whole value matches */
        if (!eq[i].solve_only && ir_dim_has_sym(g, eq[i].d, s)) {
          eq_where(g, &eq[i], a, sizeof a);
          uint32_t line = eq[i].v == UINT32_MAX ? 0 : ir_node(g, eq[i].v)->line;
          st = ir_errl(err, DVM_ERR_SHAPE, g->file, line, "%s, but the graph needs %s: no whole value of %s "
                       "makes them equal", a, ir_dim_str(g, eq[i].d, b, sizeof b), name);
          goto done;
        }
      if (c) { /* a symbol of the graph's own (a reshape's -1) that its equation leaves open */
        st = ir_errl(err, DVM_ERR_SHAPE, g->file, c->line, "%s: dims %s and %s must be equal, and no whole "
                     "value of %s makes them so", ir_ops[ir_node(g, c->node)->op].name,
                     ir_dim_str(g, c->a, a, sizeof a), ir_dim_str(g, c->b, b, sizeof b), name);
        goto done;
      }
      if (preset) /* sizing what to give: -s helps */
        st = ir_errl(err, DVM_ERR_SHAPE, g->file, g->syms.v[s].line,
                     "symbol '%s' is not bound: give it with -s %s=VALUE or an input whose shape "
                     "has it", name, name);
      else /* a run binds from its inputs alone */
        st = ir_errl(err, DVM_ERR_SHAPE, g->file, g->syms.v[s].line,
                     "symbol '%s' is not bound: no input's shape or values has it (a run binds "
                     "symbols from its inputs; an input declared with values=[%s] can carry it)", name, name);
      goto done;
    }
  }
  /* every symbol from its canonical form over the free representatives */
  for (uint32_t s = 0; s < ns; s++) {
    int64_t x;
    char d[160];
    if (!ir_dim_eval(g, g->syms.v[s].canon, val, &x)) {
      st = ir_errl(err, DVM_ERR_OVERFLOW, g->file, g->syms.v[s].line, "symbol '%s' = %s overflows int64",
                   ir_s(g, g->syms.v[s].name), ir_dim_str(g, g->syms.v[s].canon, d, sizeof d));
      goto done;
    }
    if (ir_sym_rep(g, s) != s || g->syms.v[s].bound != DIM_NONE) val[s] = x;
  }
  if ((st = check_constraints(g, val, err))) goto done;
  st = shapes(g, out, err);
done:
  free(eq);
  if (st) rt_binding_free(out);
  return st;
}

void rt_binding_free(Binding *b) {
  free(b->sym);
  free(b->dims);
  free(b->off);
  free(b->numel);
  memset(b, 0, sizeof *b);
}
