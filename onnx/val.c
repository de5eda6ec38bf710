/* onnx/val.c — the Vals of an ONNX import (onnx.h) and the dvm nodes they become:
 * constructors, materializing a constant or shape value where a run-time op needs it
 * (scalar -> literal, splat -> full, other constants -> a param whose value the graph
 * holds, symbolic shape values -> full/reduce_sum/concat over their dims), attribute
 * helpers, naming, and adding a node with the ONNX node's context on failure. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "onnx.h"

uint32_t onnx_val_new(Imp *I, const Val *x) {
  vec_push(I->vals, *x);
  return I->vals.n - 1;
}

uint32_t onnx_val_dyn(Imp *I, uint32_t v) {
  Val x = {.kind = V_DYN, .dtype = ir_node(I->g, v)->dtype, .rank = ir_node(I->g, v)->rank,
           .v = v};
  return onnx_val_new(I, &x);
}

uint32_t onnx_val_sym(Imp *I, DType dt, int rank, const int64_t *shape, const Dim *d) {
  Val x = {.kind = V_SYM, .dtype = (uint8_t)dt, .rank = (uint8_t)rank, .numel = 1, .v = -1};
  for (int i = 0; i < rank; i++) x.shape[i] = shape[i], x.numel *= shape[i];
  x.d = malloc((size_t)(x.numel ? x.numel : 1) * sizeof *x.d);
  if (!x.d) ir_oom();
  memcpy(x.d, d, (size_t)x.numel * sizeof *d);
  return onnx_val_new(I, &x);
}

uint32_t onnx_val_const(Imp *I, dvm_tensor *t, const char *name) {
  Val x = {.kind = V_CONST, .dtype = (uint8_t)dvm_tensor_dtype(t),
           .rank = (uint8_t)dvm_tensor_rank(t), .numel = dvm_tensor_numel(t), .v = -1, .t = t,
           .name = name};
  memcpy(x.shape, dvm_tensor_shape(t), (size_t)x.rank * sizeof *x.shape);
  return onnx_val_new(I, &x);
}

dvm_tensor *onnx_tensor_new(Imp *I, DType dt, int rank, const int64_t *shape, const char *what) {
  dvm_tensor *t;
  dvm_status st = dvm_tensor_create(dt, rank, shape, &t);
  if (!st) return t;
  if (what) onnx_fail(I, st, "%s: %s", what, dvm_last_error());
  else onnx_fail(I, st, "%s", dvm_last_error());
  return NULL;
}

DType onnx_val_dtype(Imp *I, uint32_t i) { return (DType)onnx_val(I, i)->dtype; }

int onnx_dims(Imp *I, uint32_t i, Dim *out) {
  Val *x = onnx_val(I, i);
  if (x->kind == V_DYN) {
    const Node *n = ir_node(I->g, (uint32_t)x->v);
    for (int k = 0; k < n->rank; k++) out[k] = ir_dim_subst(I->g, ir_shape(I->g, (uint32_t)x->v)[k]);
    return n->rank;
  }
  for (int k = 0; k < x->rank; k++) out[k] = ir_dim_const(I->g, x->shape[k]);
  return x->rank;
}

bool onnx_sym_ints(Imp *I, uint32_t i, int64_t *out, int max, int *n) {
  Val *x = onnx_val(I, i);
  if (x->kind != V_SYM || x->numel > max) return false;
  for (int64_t k = 0; k < x->numel; k++)
    if (!ir_dim_is_const(I->g, ir_dim_subst(I->g, x->d[k]), &out[k])) return false;
  *n = (int)x->numel;
  return true;
}

int onnx_numbers(Imp *I, uint32_t i, double *out, int max) {
  Val *x = onnx_val(I, i);
  int64_t c;
  if (x->kind == V_DYN || x->numel > max) return -1;
  for (int64_t j = 0; j < x->numel; j++) {
    if (x->kind == V_CONST) out[j] = dvm_tensor_get_f64(x->t, j);
    else if (ir_dim_is_const(I->g, ir_dim_subst(I->g, x->d[j]), &c)) out[j] = (double)c;
    else return -1;
  }
  return (int)x->numel;
}

bool onnx_scalar(Imp *I, uint32_t i, double *out) {
  return onnx_val(I, i)->numel == 1 && onnx_numbers(I, i, out, 1) == 1;
}

/* ---- names and nodes ----------------------------------------------------------------- */

void onnx_base_name(const char *s, char *buf, size_t n) {
  size_t k = 0;
  if (s[0] >= '0' && s[0] <= '9' && n > 1) buf[k++] = '_'; /* other characters become '_' */
  for (; *s && k + 1 < n; s++) {
    char c = *s;
    bool ok = c == '_' || c == '.' || (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
              (c >= 'a' && c <= 'z');
    buf[k++] = ok ? c : '_';
  }
  buf[k] = 0;
  if (!k && n > 1) buf[k++] = '_', buf[k] = 0;
  if ((!strcmp(buf, "inf") || !strcmp(buf, "nan")) && n > 4) memmove(buf + 1, buf, 4), buf[0] = '_';
}

void onnx_name(Imp *I, const char *s, char *buf, size_t n) {
  char base[200];
  if (!s || !*s) snprintf(base, sizeof base, "_o%u", I->fresh++);
  else onnx_base_name(s, base, sizeof base);
  snprintf(buf, n, "%s", base);
  for (uint32_t i = 2; ir_find(I->g, buf, strlen(buf)) >= 0 || ir_sym_find(I->g, buf, strlen(buf)) >= 0; i++)
    snprintf(buf, n, "%s_%u", base, i);
}

void onnx_at_int(NodeDraft *d, AttrKey k, int64_t x) {
  d->attr[d->nattr++] = (Attr){.key = (uint8_t)k, .kind = AV_INT, .i = x};
}

int64_t onnx_to_i64(double x) {
  if (x != x) return 0;
  if (x >= 9223372036854775807.0) return INT64_MAX;
  if (x <= -9223372036854775808.0) return INT64_MIN;
  return (int64_t)x;
}

void onnx_at_float(NodeDraft *d, AttrKey k, double x, bool isint) {
  d->attr[d->nattr++] = (Attr){.key = (uint8_t)k, .kind = AV_FLOAT, .isint = isint,
                               .i = isint ? onnx_to_i64(x) : 0, .f = x};
}

void onnx_at_dtype(NodeDraft *d, AttrKey k, DType dt) {
  d->attr[d->nattr++] = (Attr){.key = (uint8_t)k, .kind = AV_DTYPE, .i = dt};
}

void onnx_at_dim(NodeDraft *d, AttrKey k, Dim x) {
  d->attr[d->nattr++] = (Attr){.key = (uint8_t)k, .kind = AV_DIM, .i = x};
}

void onnx_at_ints(Imp *I, NodeDraft *d, AttrKey k, const int64_t *x, uint32_t n) {
  Attr a = {.key = (uint8_t)k, .kind = AV_INTLIST, .off = I->g->lists.n, .n = n};
  for (uint32_t i = 0; i < n; i++) vec_push(I->g->lists, x[i]);
  d->attr[d->nattr++] = a;
}

void onnx_at_dims(Imp *I, NodeDraft *d, AttrKey k, const Dim *x, uint32_t n) {
  Attr a = {.key = (uint8_t)k, .kind = AV_DIMLIST, .off = I->g->lists.n, .n = n};
  for (uint32_t i = 0; i < n; i++) vec_push(I->g->lists, (int64_t)x[i]);
  d->attr[d->nattr++] = a;
}

int64_t onnx_add(Imp *I, NodeDraft *d, const char *oname) {
  char name[256];
  Err e = {0};
  if (d->op != OP_LITERAL) {
    onnx_name(I, oname, name, sizeof name);
    d->name = name;
    d->name_len = strlen(name);
  }
  d->line = I->nodeno;
  for (uint32_t i = 0; i < d->nattr; i++) { /* dim arithmetic that overflowed */
    const Attr *a = &d->attr[i];
    bool none = a->kind == AV_DIM && (Dim)a->i == DIM_NONE;
    for (uint32_t j = 0; a->kind == AV_DIMLIST && j < a->n; j++)
      none |= (Dim)I->g->lists.v[a->off + j] == DIM_NONE;
    if (none)
      return onnx_fail(I, DVM_ERR_OVERFLOW, "%s: a dim expression overflows int64",
                       ir_attrs[a->key].name), -1;
  }
  int64_t v = ir_add_node(I->g, d, &e);
  if (v < 0) {
    onnx_fail(I, e.code, "%s", e.msg);
    return -1;
  }
  if (!vec_reserve(I->values, I->g->nodes.n - I->values.n)) ir_oom();
  while (I->values.n < I->g->nodes.n) I->values.v[I->values.n++] = NULL;
  return v;
}

int64_t onnx_literal(Imp *I, double x, DType dt) {
  NodeDraft d = {.op = OP_LITERAL, .dtype = dt};
  bool isint = !ir_dtype_is_float(dt);
  if (isint) x = dt == DT_BOOL ? (x != 0) : x != x ? 0 : trunc(x);
  onnx_at_float(&d, AK_VALUE, x, isint);
  return onnx_add(I, &d, NULL);
}

Dim onnx_dim_div(Graph *g, Dim a, Dim b) {
  DimTerm t[DIM_MAX_TERMS], m[DIM_MAX_TERMS];
  if (a == DIM_NONE || b == DIM_NONE) return DIM_NONE;
  a = ir_dim_subst(g, a), b = ir_dim_subst(g, b);
  uint32_t k = ir_dim_terms(g, a, t);
  if (ir_dim_terms(g, b, m) != 1 || m[0].coef == 0) return DIM_NONE;
  for (uint32_t i = 0; i < k; i++) {
    if (t[i].coef % m[0].coef) return DIM_NONE;
    t[i].coef /= m[0].coef;
    for (int j = 0; j < m[0].deg; j++) { /* remove one occurrence of each symbol */
      int at = -1;
      for (int q = 0; q < t[i].deg && at < 0; q++)
        if (t[i].sym[q] == m[0].sym[j]) at = q;
      if (at < 0) return DIM_NONE;
      memmove(&t[i].sym[at], &t[i].sym[at + 1], (size_t)(t[i].deg - at - 1) * sizeof(uint32_t));
      t[i].deg--;
    }
  }
  return ir_dim_from_terms(g, t, k);
}

/* ---- materializing -------------------------------------------------------------------- */

/* `full(shape, value, dtype)` */
int64_t onnx_full(Imp *I, const Dim *shape, int rank, double x, DType dt, const char *name) {
  NodeDraft d = {.op = OP_FULL};
  onnx_at_dims(I, &d, AK_SHAPE, shape, (uint32_t)rank);
  onnx_at_float(&d, AK_VALUE, x, !ir_dtype_is_float(dt));
  onnx_at_dtype(&d, AK_DTYPE, dt);
  return onnx_add(I, &d, name);
}

/* A param holding tensor t (the graph takes it). */
static int64_t param(Imp *I, dvm_tensor *t, const char *name) {
  NodeDraft d = {.op = OP_PARAM, .dtype = dvm_tensor_dtype(t), .rank = (uint8_t)dvm_tensor_rank(t)};
  for (int i = 0; i < d.rank; i++) d.shape[i] = ir_dim_const(I->g, dvm_tensor_shape(t)[i]);
  int64_t v = onnx_add(I, &d, name);
  if (v >= 0) I->values.v[v] = t;
  return v;
}

/* The index in I->vsyms of the symbol bound from an input's values (OnnxFixed.bind) whose
 * class holds sym, or -1. */
int64_t onnx_value_sym(Imp *I, uint32_t sym) {
  for (uint32_t k = 0; k < I->vsyms.n; k++)
    if (ir_sym_rep(I->g, I->vsyms.v[k]) == ir_sym_rep(I->g, sym)) return k;
  return -1;
}

int64_t onnx_value_sym_in(Imp *I, Dim d) {
  DimTerm t[DIM_MAX_TERMS];
  uint32_t n = ir_dim_terms(I->g, ir_dim_subst(I->g, d), t);
  for (uint32_t i = 0; i < n; i++)
    for (int j = 0; j < t[i].deg; j++) {
      int64_t k = onnx_value_sym(I, t[i].sym[j]);
      if (k >= 0) return k;
    }
  return -1;
}

/* A symbol bound from an input's values as a rank-0 value of dtype dt: its element of that
 * input; -2 if sym is none of those. */
static int64_t value_of_sym(Imp *I, uint32_t sym, DType dt) {
  int64_t k = onnx_value_sym(I, sym);
  if (k >= 0) {
    uint32_t in = I->vnodes.v[k];
    Dim flat = ir_dim_const(I->g, 1), st = ir_dim_const(I->g, I->velems.v[k]);
    Dim en = ir_dim_const(I->g, I->velems.v[k] + 1);
    for (int i = 0; i < ir_node(I->g, in)->rank; i++) flat = ir_dim_mul(I->g, flat, ir_shape(I->g, in)[i]);
    int64_t v = onnx_reshape(I, in, &flat, 1), zero = 0;
    NodeDraft d = {.op = OP_SLICE, .nin = 1, .in = {(uint32_t)v}};
    onnx_at_ints(I, &d, AK_AXES, &zero, 1);
    onnx_at_dims(I, &d, AK_STARTS, &st, 1);
    onnx_at_dims(I, &d, AK_ENDS, &en, 1);
    if (v < 0 || (v = onnx_add(I, &d, NULL)) < 0) return -1;
    return onnx_cast(I, onnx_reshape(I, v, NULL, 0), dt);
  }
  return -2;
}

static int64_t dim_value(Imp *I, Dim x, DType dt);

/* A dim with symbols bound from inputs' values: its polynomial over their elements (the
 * arange below would cost the value's size), in int64 then cast to dt as ONNX computes
 * it; -2 if it has none. */
static int64_t value_dim(Imp *I, Dim x, DType to) {
  if (onnx_value_sym_in(I, x) < 0) return -2;
  DimTerm t[DIM_MAX_TERMS];
  uint32_t n = ir_dim_terms(I->g, x, t);
  const DType dt = DT_I64;
  int64_t sum = -2;
  for (uint32_t i = 0; i < n; i++) {
    int64_t term = t[i].deg && t[i].coef == 1 ? -2 : onnx_literal(I, (double)t[i].coef, dt);
    for (int j = 0; j < t[i].deg && term != -1; j++) {
      int64_t f = value_of_sym(I, t[i].sym[j], dt);
      if (f == -2) f = dim_value(I, ir_dim_sym(I->g, t[i].sym[j]), dt);
      term = f < 0 ? -1 : term == -2 ? f : onnx_binary(I, OP_MUL, (uint32_t)term, (uint32_t)f, NULL);
    }
    if (term < 0) return -1;
    sum = sum == -2 ? term : onnx_binary(I, OP_ADD, (uint32_t)sum, (uint32_t)term, NULL);
    if (sum < 0) return -1;
  }
  return onnx_cast(I, sum, to);
}

/* One symbolic dim as a rank-0 value. */
static int64_t dim_value(Imp *I, Dim x, DType dt) {
  int64_t c;
  if (ir_dim_is_const(I->g, ir_dim_subst(I->g, x), &c)) return onnx_literal(I, (double)c, dt);
  if ((c = value_dim(I, ir_dim_subst(I->g, x), dt)) != -2) return c;
  /* element x of arange(x + 1): views only, so a kernel reads the value at one position
   * instead of summing x ones */
  NodeDraft a = {.op = OP_ARANGE}, s = {.op = OP_SLICE, .nin = 1}, r = {.op = OP_RESHAPE, .nin = 1};
  Dim end = ir_dim_add(I->g, x, ir_dim_const(I->g, 1));
  int64_t zero = 0, v;
  onnx_at_dim(&a, AK_N, end);
  onnx_at_dtype(&a, AK_DTYPE, dt);
  if ((v = onnx_add(I, &a, NULL)) < 0) return -1;
  s.in[0] = (uint32_t)v;
  onnx_at_ints(I, &s, AK_AXES, &zero, 1);
  onnx_at_dims(I, &s, AK_STARTS, &x, 1);
  onnx_at_dims(I, &s, AK_ENDS, &end, 1);
  if ((v = onnx_add(I, &s, NULL)) < 0) return -1;
  r.in[0] = (uint32_t)v;
  onnx_at_dims(I, &r, AK_SHAPE, NULL, 0);
  return onnx_add(I, &r, NULL);
}

static int64_t materialize_sym(Imp *I, Val *x) {
  DType dt = (DType)x->dtype;
  int64_t n = x->numel, c0 = 0, ci;
  bool allconst = true, splat = true;
  for (int64_t k = 0; k < n; k++) {
    if (!ir_dim_is_const(I->g, ir_dim_subst(I->g, x->d[k]), &ci)) allconst = false;
    else if (!k) c0 = ci;
    else if (ci != c0) splat = false;
  }
  if (allconst) {
    if (x->rank == 0) return onnx_literal(I, (double)c0, dt);
    Dim shape[DVM_MAX_RANK];
    for (int i = 0; i < x->rank; i++) shape[i] = ir_dim_const(I->g, x->shape[i]);
    if (splat) return onnx_full(I, shape, x->rank, n ? (double)c0 : 0, dt, x->name);
    dvm_tensor *t = onnx_tensor_new(I, dt, x->rank, x->shape, NULL);
    if (!t) return -1;
    for (int64_t k = 0; k < n; k++) {
      ir_dim_is_const(I->g, ir_dim_subst(I->g, x->d[k]), &ci);
      dvm_tensor_set_i64(t, k, ci);
    }
    int64_t v = param(I, t, x->name);
    if (v < 0) dvm_tensor_destroy(t);
    return v;
  }
  /* symbolic elements: each as a scalar, then unsqueezed and concatenated (and reshaped
   * to x's shape when that is not a vector) */
  if (x->rank == 0) return dim_value(I, x->d[0], dt);
  int rank = x->rank;
  const char *name = x->name;
  Dim shape[DVM_MAX_RANK];
  for (int i = 0; i < rank; i++) shape[i] = ir_dim_const(I->g, x->shape[i]);
  uint32_t parts[SYM_MAX];
  for (int64_t k = 0; k < n; k++) {
    int64_t s = dim_value(I, x->d[k], dt);
    if (s < 0) return -1;
    NodeDraft d = {.op = OP_UNSQUEEZE, .nin = 1, .in = {(uint32_t)s}};
    int64_t zero = 0;
    onnx_at_ints(I, &d, AK_AXES, &zero, 1);
    if ((s = onnx_add(I, &d, NULL)) < 0) return -1;
    parts[k] = (uint32_t)s;
  }
  int64_t v = parts[0];
  if (n > 1) {
    NodeDraft d = {.op = OP_CONCAT, .nin = (uint32_t)n};
    memcpy(d.in, parts, (size_t)n * sizeof *parts);
    onnx_at_int(&d, AK_AXIS, 0);
    v = onnx_add(I, &d, rank == 1 ? name : NULL);
  }
  if (v < 0 || rank == 1) return v;
  NodeDraft r = {.op = OP_RESHAPE, .nin = 1, .in = {(uint32_t)v}};
  onnx_at_dims(I, &r, AK_SHAPE, shape, (uint32_t)rank);
  return onnx_add(I, &r, name);
}

/* Element k of t as a double, false if the double is not exactly it (an integer past
 * 2^53, a u64 from 2^63 up): such a value is never made a literal. */
static bool exact_element(dvm_tensor *t, DType dt, int64_t k, double *c) {
  if (ir_dtype_is_float(dt) || dt == DT_BOOL) return *c = dvm_tensor_get_f64(t, k), true;
  int64_t i = dvm_tensor_get_i64(t, k); /* a u64's bits */
  *c = (double)i;
  return i >= (dt == DT_U64 ? 0 : -((int64_t)1 << 53)) && i <= (int64_t)1 << 53;
}

static int64_t materialize_const(Imp *I, Val *x) {
  dvm_tensor *t = x->t;
  int64_t n = x->numel;
  DType dt = (DType)x->dtype;
  double c0 = 0, c;
  bool splat = !n || exact_element(t, dt, 0, &c0);
  for (int64_t k = 1; k < n && splat; k++) splat = exact_element(t, dt, k, &c) && (c == c0 || (isnan(c) && isnan(c0)));
  if (x->rank == 0 && splat) return onnx_literal(I, c0, dt);
  if (splat && !isnan(c0) && x->rank > 0) {
    Dim shape[DVM_MAX_RANK];
    for (int i = 0; i < x->rank; i++) shape[i] = ir_dim_const(I->g, x->shape[i]);
    return onnx_full(I, shape, x->rank, c0, dt, x->name);
  }
  int64_t v = param(I, t, x->name);
  if (v >= 0) x->t = NULL; /* the graph holds it now */
  return v;
}

dvm_status onnx_use(Imp *I, uint32_t i, uint32_t *out) {
  Val *x = onnx_val(I, i);
  if (x->v < 0) {
    int64_t v = x->kind == V_SYM ? materialize_sym(I, x) : materialize_const(I, x);
    if (v < 0) return I->err->code;
    onnx_val(I, i)->v = v; /* x may have moved */
  }
  *out = (uint32_t)onnx_val(I, i)->v;
  return DVM_OK;
}
