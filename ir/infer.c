/* ir/infer.c — dtype and shape inference with symbol deduction, one node at a time.
 *
 * ir_infer(g, v) reads node v's operands (already inferred) and attributes, checks the
 * dtypes the op accepts (docs/ops.md), and appends v's output shape to g->shapes. Every
 * dim equality the op needs goes through ir_unify, which records it as a Constraint with
 * the node's line and deduces what it can (dim.c); every ordering it needs (slice bounds)
 * through ir_require_le. Attribute values are validated here (axes in range, perm a
 * permutation, at most one -1 in a reshape), so executors can trust them.
 *
 * Invariant after ir_infer: node v has its dtype and rank set and `rank` dims at
 * g->shapes[v.shape]; constant dims are >= 0. */
#include <stdio.h>
#include <string.h>

#include "ir.h"

#define R DVM_MAX_RANK

typedef struct Ctx {
  Graph *g;
  uint32_t v;
  const char *op; /* op name, for messages */
  uint32_t line;
  Err *err;
} Ctx;

#define FAIL(c, code, ...) ir_errl((c)->err, code, (c)->g->file, (c)->line, __VA_ARGS__)

/* Copy operand i's shape; returns its rank. */
static int shape_of(Ctx *c, uint32_t i, Dim *out) {
  uint32_t u = ir_operand(c->g, c->v, i);
  const Node *n = ir_node(c->g, u);
  for (int k = 0; k < n->rank; k++) out[k] = ir_dim_subst(c->g, ir_shape(c->g, u)[k]);
  return n->rank;
}

static DType dtype_of(Ctx *c, uint32_t i) { return ir_node(c->g, ir_operand(c->g, c->v, i))->dtype; }

static bool is_const(Ctx *c, Dim d, int64_t want) {
  int64_t x;
  return ir_dim_is_const(c->g, ir_dim_subst(c->g, d), &x) && x == want;
}

static char *dstr(Ctx *c, Dim d, char *buf) { return ir_dim_str(c->g, d, buf, 96); }

/* Set node v's result. */
static dvm_status emit(Ctx *c, DType dt, int rank, const Dim *shape) {
  Graph *g = c->g;
  if (rank > R) return FAIL(c, DVM_ERR_SHAPE, "%s: result rank %d exceeds %d", c->op, rank, R);
  int64_t count = 1;
  bool known = true;
  for (int i = 0; i < rank; i++) {
    int64_t x;
    if (shape[i] == DIM_NONE)
      return FAIL(c, DVM_ERR_OVERFLOW, "%s: dim expression overflow", c->op);
    if (ir_dim_is_const(g, ir_dim_subst(g, shape[i]), &x)) {
      if (x < 0) return FAIL(c, DVM_ERR_SHAPE, "%s: negative dim %lld", c->op, (long long)x);
      if (known && __builtin_mul_overflow(count, x, &count))
        return FAIL(c, DVM_ERR_OVERFLOW, "%s: element count overflows int64", c->op);
    } else {
      known = false;
    }
  }
  Node *n = &g->nodes.v[c->v];
  n->dtype = (uint8_t)dt;
  n->rank = (uint8_t)rank;
  n->shape = g->shapes.n;
  for (int i = 0; i < rank; i++) vec_push(g->shapes, shape[i]);
  return DVM_OK;
}

/* ---- dtype rules ------------------------------------------------------------------------ */

static dvm_status check_class(Ctx *c, DType dt) {
  unsigned f = ir_ops[c->g->nodes.v[c->v].op].flags;
  if (dt == DT_BOOL && !(f & F_BOOLOK))
    return FAIL(c, DVM_ERR_DTYPE, "%s needs a numeric operand, got bool", c->op);
  if (ir_dtype_is_int(dt) && !(f & F_INT))
    return FAIL(c, DVM_ERR_DTYPE, "%s needs a float operand, got %s", c->op, ir_dtype_name(dt));
  if (ir_dtype_is_float(dt) && !(f & F_FLOAT))
    return FAIL(c, DVM_ERR_DTYPE, "%s needs bool operands, got %s", c->op, ir_dtype_name(dt));
  return DVM_OK;
}

static dvm_status same_dtype(Ctx *c, DType a, DType b) {
  if (a != b)
    return FAIL(c, DVM_ERR_DTYPE, "%s: dtype mismatch: %s and %s", c->op, ir_dtype_name(a),
                ir_dtype_name(b));
  return DVM_OK;
}

/* ---- shape rules ------------------------------------------------------------------------ */

/* NumPy broadcasting of a and b into out; a symbol is never assumed to be 1. */
static dvm_status broadcast(Ctx *c, const Dim *a, int ra, const Dim *b, int rb, Dim *out,
                            int *rout) {
  int r = ra > rb ? ra : rb;
  for (int i = 0; i < r; i++) {
    int ia = i - (r - ra), ib = i - (r - rb);
    Dim da = ia >= 0 ? a[ia] : DIM_NONE, db = ib >= 0 ? b[ib] : DIM_NONE;
    if (da == DIM_NONE) out[i] = db;
    else if (db == DIM_NONE) out[i] = da;
    else if (is_const(c, da, 1)) out[i] = db;
    else if (is_const(c, db, 1)) out[i] = da;
    else {
      if (ir_unify(c->g, da, db, c->v, c->line, c->err)) return c->err->code;
      out[i] = da;
    }
  }
  *rout = r;
  return DVM_OK;
}

/* Element count of a shape as a dim. */
static Dim count(Ctx *c, const Dim *s, int r) {
  Dim n = ir_dim_const(c->g, 1);
  for (int i = 0; i < r; i++) n = ir_dim_mul(c->g, n, s[i]);
  return n;
}

static dvm_status axis_arg(Ctx *c, int64_t a, int rank, int *out) {
  *out = ir_axis(a, rank);
  if (*out < 0)
    return FAIL(c, DVM_ERR_GRAPH, "%s: axis %lld out of range for rank %d", c->op, (long long)a,
                rank);
  return DVM_OK;
}

/* Read an int-list attribute as normalized, distinct axes; returns the count. */
static dvm_status axes_arg(Ctx *c, const Attr *a, int rank, int *axes, int *n) {
  *n = 0;
  if (a->n > R) return FAIL(c, DVM_ERR_GRAPH, "%s: too many axes", c->op);
  for (uint32_t i = 0; i < a->n; i++) {
    int x;
    if (axis_arg(c, c->g->lists.v[a->off + i], rank, &x)) return c->err->code;
    for (int j = 0; j < *n; j++)
      if (axes[j] == x) return FAIL(c, DVM_ERR_GRAPH, "%s: axis %d listed twice", c->op, x);
    axes[(*n)++] = x;
  }
  return DVM_OK;
}

static const Attr *need(Ctx *c, AttrKey k) {
  const Attr *a = ir_attr(c->g, c->v, k);
  if (!a) FAIL(c, DVM_ERR_GRAPH, "%s needs attribute '%s'", c->op, ir_attrs[k].name);
  return a;
}

/* A dims list attribute; constant entries must be >= 0 unless allow_neg1 and == -1. */
static dvm_status dims_arg(Ctx *c, const Attr *a, Dim *out, int *n, bool allow_neg1) {
  if (a->n > R) return FAIL(c, DVM_ERR_SHAPE, "%s: rank %u exceeds %d", c->op, a->n, R);
  for (uint32_t i = 0; i < a->n; i++) {
    int64_t x;
    out[i] = (Dim)c->g->lists.v[a->off + i];
    if (ir_dim_is_const(c->g, out[i], &x) && x < 0 && !(allow_neg1 && x == -1))
      return FAIL(c, DVM_ERR_SHAPE, "%s: negative dim %lld in shape", c->op, (long long)x);
  }
  *n = (int)a->n;
  return DVM_OK;
}

/* ---- per kind --------------------------------------------------------------------------- */

/* An input's `values`: one dim per element of an integer tensor of constant shape, each
 * the value that element has at run time (the runtime binds them, runtime/bind.c). */
static dvm_status check_values(Ctx *c, const Attr *a) {
  const Node *n = ir_node(c->g, c->v);
  if (!ir_dtype_is_int((DType)n->dtype))
    return FAIL(c, DVM_ERR_DTYPE, "input '%s': values need an integer dtype, not %s", ir_s(c->g, n->name),
                ir_dtype_name((DType)n->dtype));
  int64_t numel = 1, x;
  for (int i = 0; i < n->rank; i++) {
    if (!ir_dim_is_const(c->g, ir_shape(c->g, c->v)[i], &x))
      return FAIL(c, DVM_ERR_SHAPE, "input '%s': values need a constant shape", ir_s(c->g, n->name));
    if (x > IR_VALUES_MAX || (numel *= x) > IR_VALUES_MAX) /* both at most 64: no overflow */
      return FAIL(c, DVM_ERR_SHAPE, "input '%s': values of more than %d elements", ir_s(c->g, n->name),
                  IR_VALUES_MAX);
  }
  if (numel != (int64_t)a->n)
    return FAIL(c, DVM_ERR_SHAPE, "input '%s' has %lld elements but %u values", ir_s(c->g, n->name),
                (long long)numel, a->n);
  return DVM_OK;
}

static dvm_status infer_source(Ctx *c) {
  Node *n = &c->g->nodes.v[c->v];
  Dim s[R];
  const Attr *vals = ir_attr(c->g, c->v, AK_VALUES);
  if (vals && check_values(c, vals)) return c->err->code;
  for (int i = 0; i < n->rank; i++) s[i] = ir_shape(c->g, c->v)[i];
  n->decl = n->shape; /* kept as written; emit appends the copy that gets canonical */
  return emit(c, n->dtype, n->rank, s);
}

static dvm_status infer_elementwise(Ctx *c, Op op) {
  Dim a[R], b[R], t[R], out[R];
  int ra = shape_of(c, 0, a), rout = ra;
  DType dt = dtype_of(c, 0);
  if (op == OP_SELECT) {
    DType d1 = dtype_of(c, 1), d2 = dtype_of(c, 2);
    if (dt != DT_BOOL)
      return FAIL(c, DVM_ERR_DTYPE, "select: condition must be bool, got %s", ir_dtype_name(dt));
    if (same_dtype(c, d1, d2)) return c->err->code;
    int rb = shape_of(c, 1, b), rt;
    if (broadcast(c, a, ra, b, rb, t, &rt)) return c->err->code;
    int r2 = shape_of(c, 2, b);
    if (broadcast(c, t, rt, b, r2, out, &rout)) return c->err->code;
    return emit(c, d1, rout, out);
  }
  if (op == OP_CAST) {
    const Attr *to = need(c, AK_TO);
    if (!to) return c->err->code;
    return emit(c, (DType)to->i, ra, a);
  }
  if (ir_ops[op].kind == OPK_BINARY) {
    if (same_dtype(c, dt, dtype_of(c, 1))) return c->err->code;
    if (check_class(c, dt)) return c->err->code;
    int rb = shape_of(c, 1, b);
    if (broadcast(c, a, ra, b, rb, out, &rout)) return c->err->code;
    return emit(c, (ir_ops[op].flags & F_CMP) ? DT_BOOL : dt, rout, out);
  }
  if (check_class(c, dt)) return c->err->code;
  return emit(c, dt, ra, a); /* unary, clip */
}

static dvm_status infer_reduce(Ctx *c, Op op) {
  Dim a[R], out[R];
  int r = shape_of(c, 0, a), axes[R], n = 0;
  DType dt = dtype_of(c, 0);
  if (check_class(c, dt)) return c->err->code;
  bool red[R] = {0};
  if (op == OP_ARGMAX) {
    int ax;
    if (r == 0) return FAIL(c, DVM_ERR_SHAPE, "argmax needs an operand of rank >= 1");
    if (axis_arg(c, ir_attr_int(c->g, c->v, AK_AXIS, 0), r, &ax)) return c->err->code;
    red[ax] = true;
    dt = DT_I64;
  } else {
    const Attr *at = ir_attr(c->g, c->v, AK_AXES);
    if (at) {
      if (axes_arg(c, at, r, axes, &n)) return c->err->code;
      for (int i = 0; i < n; i++) red[axes[i]] = true;
    } else {
      for (int i = 0; i < r; i++) red[i] = true;
    }
  }
  int64_t keep = ir_attr_int(c->g, c->v, AK_KEEPDIMS, 0);
  if (keep != 0 && keep != 1)
    return FAIL(c, DVM_ERR_GRAPH, "%s: keepdims must be 0 or 1, got %lld", c->op, (long long)keep);
  int k = 0;
  for (int i = 0; i < r; i++) {
    if (!red[i]) out[k++] = a[i];
    else if (keep) out[k++] = ir_dim_const(c->g, 1);
  }
  return emit(c, dt, k, out);
}

/* gamma (operand i) must broadcast against x without changing x's shape. */
static dvm_status scale_operand(Ctx *c, uint32_t i, const Dim *x, int r) {
  Dim s[R];
  int rs = shape_of(c, i, s);
  if (same_dtype(c, dtype_of(c, 0), dtype_of(c, i))) return c->err->code;
  if (rs > r)
    return FAIL(c, DVM_ERR_SHAPE, "%s: operand %u has rank %d, more than x's %d", c->op, i + 1,
                rs, r);
  for (int k = 0; k < rs; k++) {
    Dim xd = x[r - rs + k];
    if (is_const(c, s[k], 1)) continue;
    if (ir_unify(c->g, s[k], xd, c->v, c->line, c->err)) return c->err->code;
  }
  return DVM_OK;
}

static dvm_status infer_norm(Ctx *c, Op op) {
  Dim a[R];
  int r = shape_of(c, 0, a), ax;
  DType dt = dtype_of(c, 0);
  if (check_class(c, dt)) return c->err->code;
  if (r == 0) return FAIL(c, DVM_ERR_SHAPE, "%s needs an operand of rank >= 1", c->op);
  if (op != OP_RMSNORM && axis_arg(c, ir_attr_int(c->g, c->v, AK_AXIS, -1), r, &ax))
    return c->err->code;
  if (op == OP_LAYERNORM && (scale_operand(c, 1, a, r) || scale_operand(c, 2, a, r)))
    return c->err->code;
  if (op == OP_RMSNORM && scale_operand(c, 1, a, r)) return c->err->code;
  return emit(c, dt, r, a);
}

/* Exact division of dim n by monomial d; DIM_NONE if it does not divide. */
static Dim div_mono(Graph *g, Dim n, Dim d) {
  DimTerm t[DIM_MAX_TERMS], m[DIM_MAX_TERMS];
  uint32_t k = ir_dim_terms(g, n, t);
  if (ir_dim_terms(g, d, m) != 1 || m[0].coef == 0) return DIM_NONE;
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

static dvm_status infer_reshape(Ctx *c) {
  Dim a[R], s[R];
  int r = shape_of(c, 0, a), n, hole = -1;
  const Attr *at = need(c, AK_SHAPE);
  if (!at || dims_arg(c, at, s, &n, true)) return c->err->code;
  for (int i = 0; i < n; i++)
    if (is_const(c, s[i], -1)) {
      if (hole >= 0) return FAIL(c, DVM_ERR_GRAPH, "reshape: at most one -1 in shape");
      hole = i;
    }
  Dim total = count(c, a, r);
  if (hole >= 0) {
    Dim rest = ir_dim_const(c->g, 1);
    for (int i = 0; i < n; i++)
      if (i != hole) rest = ir_dim_mul(c->g, rest, ir_dim_subst(c->g, s[i]));
    if (is_const(c, rest, 0))
      return FAIL(c, DVM_ERR_SHAPE, "reshape: cannot infer -1 next to a zero-sized dim");
    Dim q = div_mono(c->g, ir_dim_subst(c->g, total), rest);
    if (q == DIM_NONE) { /* not a monomial quotient: a fresh symbol, solved at run time;
                            its '@' keeps it apart from every name a graph can declare */
      char name[32];
      int w = snprintf(name, sizeof name, "reshape@%u", c->v);
      q = ir_dim_sym(c->g, ir_sym_get(c->g, name, (size_t)w, c->line));
    }
    s[hole] = q;
  }
  Dim out = count(c, s, n);
  if (total == DIM_NONE || out == DIM_NONE)
    return FAIL(c, DVM_ERR_OVERFLOW, "reshape: element count overflows");
  char x[96], y[96];
  int64_t ct, co;
  if (ir_dim_is_const(c->g, ir_dim_subst(c->g, total), &ct) &&
      ir_dim_is_const(c->g, ir_dim_subst(c->g, out), &co) && ct != co)
    return FAIL(c, DVM_ERR_SHAPE, "reshape: element counts %s and %s must be equal",
                dstr(c, total, x), dstr(c, out, y));
  if (ir_unify(c->g, total, out, c->v, c->line, c->err)) return c->err->code;
  return emit(c, dtype_of(c, 0), n, s);
}

static dvm_status infer_transpose(Ctx *c) {
  Dim a[R], out[R];
  int r = shape_of(c, 0, a), perm[R];
  const Attr *at = ir_attr(c->g, c->v, AK_PERM);
  if (at) {
    bool seen[R] = {0};
    if ((int)at->n != r)
      return FAIL(c, DVM_ERR_GRAPH, "transpose: perm has %u entries for rank %d", at->n, r);
    for (int i = 0; i < r; i++) {
      int64_t p = c->g->lists.v[at->off + i];
      int x = ir_axis(p, r);
      if (x < 0 || seen[x])
        return FAIL(c, DVM_ERR_GRAPH, "transpose: perm is not a permutation of 0..%d", r - 1);
      seen[x] = true;
      perm[i] = x;
    }
  } else {
    for (int i = 0; i < r; i++) perm[i] = r - 1 - i;
  }
  for (int i = 0; i < r; i++) out[i] = a[perm[i]];
  return emit(c, dtype_of(c, 0), r, out);
}

static dvm_status infer_broadcast_to(Ctx *c) {
  Dim a[R], s[R];
  int r = shape_of(c, 0, a), n;
  const Attr *at = need(c, AK_SHAPE);
  if (!at || dims_arg(c, at, s, &n, false)) return c->err->code;
  if (n < r)
    return FAIL(c, DVM_ERR_SHAPE, "broadcast_to: target rank %d is less than rank %d", n, r);
  for (int i = 0; i < r; i++) {
    Dim d = a[i], t = s[n - r + i];
    if (is_const(c, d, 1)) continue;
    if (ir_unify(c->g, d, t, c->v, c->line, c->err)) return c->err->code;
  }
  return emit(c, dtype_of(c, 0), n, s);
}

/* End values at least this large mean "to the end" (ONNX exporters write INT64_MAX). */
#define SLICE_TO_END ((int64_t)1 << 31)

static int64_t clamp(int64_t x, int64_t lo, int64_t hi) { return x < lo ? lo : x > hi ? hi : x; }

/* NumPy slice length of a constant dim. */
static int64_t slice_len(int64_t dim, int64_t start, int64_t end, int64_t step) {
  if (step > 0) {
    start = start < 0 ? clamp(start + dim, 0, dim) : clamp(start, 0, dim);
    end = end < 0 ? clamp(end + dim, 0, dim) : clamp(end, 0, dim);
    return end > start ? (end - start + step - 1) / step : 0;
  }
  start = start < 0 ? clamp(start + dim, -1, dim - 1) : clamp(start, -1, dim - 1);
  end = end < 0 ? clamp(end + dim, -1, dim - 1) : clamp(end, -1, dim - 1);
  return start > end ? (start - end + (-step) - 1) / (-step) : 0;
}

static dvm_status infer_slice(Ctx *c) {
  Graph *g = c->g;
  Dim a[R];
  int r = shape_of(c, 0, a);
  const Attr *st = need(c, AK_STARTS), *en = st ? need(c, AK_ENDS) : NULL;
  if (!st || !en) return c->err->code;
  const Attr *ax = ir_attr(g, c->v, AK_AXES), *sp = ir_attr(g, c->v, AK_STEPS);
  uint32_t k = st->n;
  if (en->n != k || (ax && ax->n != k) || (sp && sp->n != k))
    return FAIL(c, DVM_ERR_GRAPH, "slice: starts, ends, axes and steps must have one length");
  int axes[R], n = 0;
  if (k > (uint32_t)r) return FAIL(c, DVM_ERR_GRAPH, "slice: %u axes for rank %d", k, r);
  if (ax) {
    if (axes_arg(c, ax, r, axes, &n)) return c->err->code;
  } else {
    for (uint32_t i = 0; i < k; i++) axes[i] = (int)i;
  }
  Dim out[R];
  memcpy(out, a, sizeof(Dim) * (size_t)r);
  Dim zero = ir_dim_const(g, 0);
  for (uint32_t i = 0; i < k; i++) {
    int x = axes[i];
    int64_t step = sp ? g->lists.v[sp->off + i] : 1, d, s0, e0;
    Dim ds = (Dim)g->lists.v[st->off + i], de = (Dim)g->lists.v[en->off + i];
    if (step == 0) return FAIL(c, DVM_ERR_GRAPH, "slice: step must not be 0");
    bool cd = ir_dim_is_const(g, a[x], &d), cs = ir_dim_is_const(g, ir_dim_subst(g, ds), &s0),
         ce = ir_dim_is_const(g, ir_dim_subst(g, de), &e0);
    if (cd && cs && ce) {
      out[x] = ir_dim_const(g, slice_len(d, s0, e0, step));
      continue;
    }
    char b1[96];
    if (step != 1)
      return FAIL(c, DVM_ERR_UNSUPPORTED, "slice: step %lld over symbolic dim %s needs a constant dim",
                  (long long)step, dstr(c, a[x], b1));
    /* symbolic: bounds normalized without clamping; their order is a run-time constraint */
    if (cs && s0 < 0) ds = ir_dim_add(g, a[x], ds);
    if (ce && e0 < 0) de = ir_dim_add(g, a[x], de);
    if (ce && e0 >= SLICE_TO_END) de = a[x];
    if (ds == DIM_NONE || de == DIM_NONE) return FAIL(c, DVM_ERR_OVERFLOW, "slice: bound overflow");
    if (ir_require_le(g, zero, ds, c->v, c->line, c->err) ||
        ir_require_le(g, ds, de, c->v, c->line, c->err) ||
        ir_require_le(g, de, a[x], c->v, c->line, c->err))
      return c->err->code;
    out[x] = ir_dim_sub(g, de, ds);
  }
  return emit(c, dtype_of(c, 0), r, out);
}

static dvm_status infer_concat(Ctx *c) {
  Node *nd = &c->g->nodes.v[c->v];
  Dim a[R], b[R];
  int r = shape_of(c, 0, a), ax;
  DType dt = dtype_of(c, 0);
  const Attr *at = need(c, AK_AXIS);
  if (!at || axis_arg(c, at->i, r, &ax)) return c->err->code;
  for (uint32_t i = 1; i < nd->nin; i++) {
    int rb = shape_of(c, i, b);
    if (same_dtype(c, dt, dtype_of(c, i))) return c->err->code;
    if (rb != r)
      return FAIL(c, DVM_ERR_SHAPE, "concat: operand %u has rank %d, operand 1 rank %d", i + 1, rb,
                  r);
    for (int k = 0; k < r; k++) {
      if (k == ax) a[k] = ir_dim_add(c->g, a[k], b[k]);
      else if (ir_unify(c->g, a[k], b[k], c->v, c->line, c->err)) return c->err->code;
    }
  }
  return emit(c, dt, r, a);
}

static dvm_status infer_squeeze(Ctx *c, Op op) {
  Dim a[R], out[R];
  int r = shape_of(c, 0, a), axes[R], n = 0, k = 0;
  bool mark[R + 8] = {0};
  const Attr *at = ir_attr(c->g, c->v, AK_AXES);
  if (op == OP_UNSQUEEZE) {
    if (!at && !need(c, AK_AXES)) return c->err->code;
    int ro = r + (int)at->n;
    if (ro > R) return FAIL(c, DVM_ERR_SHAPE, "unsqueeze: result rank %d exceeds %d", ro, R);
    if (axes_arg(c, at, ro, axes, &n)) return c->err->code;
    for (int i = 0; i < n; i++) mark[axes[i]] = true;
    for (int i = 0, j = 0; i < ro; i++) out[i] = mark[i] ? ir_dim_const(c->g, 1) : a[j++];
    return emit(c, dtype_of(c, 0), ro, out);
  }
  if (at) {
    if (axes_arg(c, at, r, axes, &n)) return c->err->code;
    for (int i = 0; i < n; i++) {
      char b1[96];
      uint32_t s;
      if (ir_dim_is_sym(c->g, a[axes[i]], &s)) {
        if (ir_unify(c->g, a[axes[i]], ir_dim_const(c->g, 1), c->v, c->line, c->err))
          return c->err->code;
      } else if (!is_const(c, a[axes[i]], 1)) {
        return FAIL(c, DVM_ERR_SHAPE, "squeeze: dim %s at axis %d is not 1",
                    dstr(c, a[axes[i]], b1), axes[i]);
      }
      mark[axes[i]] = true;
    }
  } else {
    for (int i = 0; i < r; i++) mark[i] = is_const(c, a[i], 1);
  }
  for (int i = 0; i < r; i++)
    if (!mark[i]) out[k++] = a[i];
  return emit(c, dtype_of(c, 0), k, out);
}

static dvm_status infer_gather(Ctx *c) {
  Dim a[R], idx[R], out[R];
  int r = shape_of(c, 0, a), ri = shape_of(c, 1, idx), ax, k = 0;
  DType it = dtype_of(c, 1);
  if (it != DT_I32 && it != DT_I64)
    return FAIL(c, DVM_ERR_DTYPE, "gather: indices must be i32 or i64, got %s", ir_dtype_name(it));
  if (r == 0) return FAIL(c, DVM_ERR_SHAPE, "gather needs an operand of rank >= 1");
  if (axis_arg(c, ir_attr_int(c->g, c->v, AK_AXIS, 0), r, &ax)) return c->err->code;
  if (r - 1 + ri > R) return FAIL(c, DVM_ERR_SHAPE, "gather: result rank exceeds %d", R);
  for (int i = 0; i < ax; i++) out[k++] = a[i];
  for (int i = 0; i < ri; i++) out[k++] = idx[i];
  for (int i = ax + 1; i < r; i++) out[k++] = a[i];
  return emit(c, dtype_of(c, 0), k, out);
}

static dvm_status infer_matmul(Ctx *c) {
  Dim a[R], b[R], bat[R], out[R];
  int ra = shape_of(c, 0, a), rb = shape_of(c, 1, b), rbat;
  DType dt = dtype_of(c, 0);
  if (same_dtype(c, dt, dtype_of(c, 1)) || check_class(c, dt)) return c->err->code;
  if (ra == 0 || rb == 0) return FAIL(c, DVM_ERR_SHAPE, "matmul: operands must have rank >= 1");
  Dim t;
  if (ra >= 2 && ir_attr_int(c->g, c->v, AK_TRANSPOSE_A, 0)) t = a[ra - 1], a[ra - 1] = a[ra - 2], a[ra - 2] = t;
  if (rb >= 2 && ir_attr_int(c->g, c->v, AK_TRANSPOSE_B, 0)) t = b[rb - 1], b[rb - 1] = b[rb - 2], b[rb - 2] = t;
  Dim one = ir_dim_const(c->g, 1);
  bool va = ra == 1, vb = rb == 1;
  if (va) a[1] = a[0], a[0] = one, ra = 2;
  if (vb) b[1] = one, rb = 2;
  if (ir_unify(c->g, a[ra - 1], b[rb - 2], c->v, c->line, c->err)) return c->err->code;
  if (broadcast(c, a, ra - 2, b, rb - 2, bat, &rbat)) return c->err->code;
  int k = 0;
  for (int i = 0; i < rbat; i++) out[k++] = bat[i];
  if (!va) out[k++] = a[ra - 2];
  if (!vb) out[k++] = b[rb - 1];
  return emit(c, dt, k, out);
}

static dvm_status infer_const(Ctx *c, Op op) {
  DType dt = (DType)ir_attr_int(c->g, c->v, AK_DTYPE, op == OP_ARANGE ? DT_I64 : DT_F32);
  if (op == OP_FULL || op == OP_CALL) {
    Dim s[R];
    int n;
    const Attr *at = need(c, AK_SHAPE);
    if (!at || dims_arg(c, at, s, &n, false)) return c->err->code;
    if (op == OP_CALL && !need(c, AK_FN)) return c->err->code;
    return emit(c, dt, n, s);
  }
  const Attr *at = need(c, AK_N);
  if (!at) return c->err->code;
  if (dt == DT_BOOL) return FAIL(c, DVM_ERR_DTYPE, "arange needs a numeric dtype, got bool");
  Dim n = (Dim)at->i;
  if (ir_require_le(c->g, ir_dim_const(c->g, 0), n, c->v, c->line, c->err)) return c->err->code;
  return emit(c, dt, 1, &n);
}

dvm_status ir_infer(Graph *g, uint32_t v, Err *err) {
  Op op = (Op)g->nodes.v[v].op;
  Ctx c = {.g = g, .v = v, .op = ir_ops[op].name, .line = g->nodes.v[v].line, .err = err};
  switch (ir_ops[op].kind) {
  case OPK_SOURCE: return infer_source(&c);
  case OPK_UNARY:
  case OPK_BINARY:
  case OPK_ELEMENT: return infer_elementwise(&c, op);
  case OPK_REDUCE: return infer_reduce(&c, op);
  case OPK_NORM: return infer_norm(&c, op);
  case OPK_LAYOUT:
    switch (op) {
    case OP_RESHAPE: return infer_reshape(&c);
    case OP_TRANSPOSE: return infer_transpose(&c);
    case OP_BROADCAST_TO: return infer_broadcast_to(&c);
    case OP_SLICE: return infer_slice(&c);
    case OP_CONCAT: return infer_concat(&c);
    case OP_SQUEEZE:
    case OP_UNSQUEEZE: return infer_squeeze(&c, op);
    case OP_GATHER: return infer_gather(&c);
    default: break;
    }
    break;
  case OPK_MATMUL: return infer_matmul(&c);
  case OPK_CONST:
  case OPK_EXTERN: return infer_const(&c, op);
  }
  return ir_errl(err, DVM_ERR_GRAPH, g->file, c.line, "no inference rule for %s", c.op);
}

dvm_status ir_finish(Graph *g, Err *err) {
  if (g->outputs.n == 0) return ir_errl(err, DVM_ERR_GRAPH, g->file, 0, "graph has no output");
  for (uint32_t v = 0; v < g->nodes.n; v++) { /* canonical shapes; declarations stay as written */
    const Node *n = ir_node(g, v);
    for (uint32_t i = n->shape; i < n->shape + n->rank; i++)
      g->shapes.v[i] = ir_dim_subst(g, g->shapes.v[i]);
  }
  vec_free(g->clists);
  if (!vec_reserve(g->clists, g->lists.n + 1)) ir_oom();
  if (g->lists.n) memcpy(g->clists.v, g->lists.v, g->lists.n * sizeof *g->lists.v);
  g->clists.n = g->lists.n;
  for (uint32_t i = 0; i < g->attrs.n; i++) {
    Attr *a = &g->attrs.v[i];
    if (a->kind == AV_DIM) a->canon = ir_dim_subst(g, (Dim)a->i);
    if (a->kind == AV_DIMLIST)
      for (uint32_t k = a->off; k < a->off + a->n; k++)
        g->clists.v[k] = ir_dim_subst(g, (Dim)g->lists.v[k]);
  }
  for (uint32_t s = 0; s < g->syms.n; s++)
    g->syms.v[s].canon = ir_dim_subst(g, ir_dim_sym(g, s));
  for (uint32_t i = 0; i < g->cons.n; i++) {
    Constraint *c = &g->cons.v[i];
    c->diff = ir_dim_sub(g, ir_dim_subst(g, c->a), ir_dim_subst(g, c->b));
    if (c->diff == DIM_NONE)
      return ir_errl(err, DVM_ERR_OVERFLOW, g->file, c->line, "dim expression overflows int64");
  }
  g->finished = true;
  return ir_verify(g, err);
}
