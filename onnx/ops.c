/* onnx/ops.c — one translation per ONNX op type (opsets 13-17): onnx_node reads the node
 * I->node's inputs (as Vals, onnx.h) and attributes and defines its outputs.
 *
 * Shape computations stay symbolic: an op whose operands are all V_SYM (the dims of a
 * Shape, constants, their arithmetic, Gather, Concat, Unsqueeze, ...) is evaluated here,
 * element by element, as dim expressions; Reshape, Expand, Slice, Split, ConstantOfShape
 * and Range read their shape operands from such values into dim attributes. An operand
 * that is data computed at run time where a shape is needed is an error naming the node.
 * Everything else becomes dvm ops (docs/onnx.md has the table). This file is long because
 * it is one table of about fifty small translations; each is a function named after its
 * op type. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "onnx.h"

#define R DVM_MAX_RANK

/* ---- operands, outputs and attributes --------------------------------------------------- */

/* Input i of the node as a Val index: -1 if absent (optional), -2 on error. */
int64_t onnx_arg(Imp *I, size_t i, bool required) {
  const Onnx__NodeProto *n = I->node;
  const char *name = i < n->n_input ? n->input[i] : NULL;
  uint32_t k;
  if (!name || !*name) {
    if (!required) return -1;
    onnx_fail(I, DVM_ERR_GRAPH, "input %zu is missing", i + 1);
    return -2;
  }
  if (!onnx_map_get(&I->names, name, &k)) {
    onnx_fail(I, DVM_ERR_GRAPH, "input %zu '%s' is not defined (not a graph input, an "
              "initializer or an earlier node's output)", i + 1, name);
    return -2;
  }
  return k;
}

/* Value v has a constant shape of at most SYM_MAX elements. */
static bool small(const Graph *g, uint32_t v) {
  int64_t numel = 1, c;
  for (int i = 0; i < ir_node(g, v)->rank; i++) {
    if (!ir_dim_is_const(g, ir_shape(g, v)[i], &c) || c > SYM_MAX) return false;
    if ((numel *= c) > SYM_MAX) return false;
  }
  return true;
}

/* A graph input that small value v is computed from (a Cast of it, its difference with a
 * constant, a Concat of it with another), when every value on the way is small and every
 * source a literal, a param or a small input (fixing those, one per import, makes v
 * known): its id; -2 if v has no input among its sources; -1 if it depends on more. */
static int64_t source_input(const Graph *g, uint32_t v, int depth) {
  const Node *n = ir_node(g, v);
  if (n->op == OP_INPUT) return small(g, v) ? (int64_t)v : -1;
  if (n->op == OP_LITERAL || n->op == OP_PARAM) return -2;
  if (!depth || !small(g, v)) return -1;
  int64_t found = -2;
  for (uint32_t i = 0; i < n->nin; i++) {
    int64_t r = source_input(g, ir_operand(g, v, i), depth - 1);
    if (r == -1) return -1;
    if (found == -2) found = r;
  }
  return found;
}

void onnx_need(Imp *I, int64_t k) {
  if (k < 0) return;
  Val *x = onnx_val(I, (uint32_t)k);
  if (x->kind == V_SYM && x->v >= 0 && ir_node(I->g, (uint32_t)x->v)->op == OP_INPUT) {
    I->need = x->v; /* its values bind symbols: it is needed as constants instead */
    return;
  }
  for (int64_t i = 0; x->kind == V_SYM && i < x->numel; i++) { /* computed from such values */
    int64_t s = onnx_value_sym_in(I, x->d[i]);
    if (s >= 0) {
      I->need = I->vnodes.v[s];
      return;
    }
  }
  if (x->kind != V_DYN) return;
  int64_t in = source_input(I->g, (uint32_t)x->v, 8);
  if (in >= 0) I->need = in;
}

bool onnx_value_dim(Imp *I, Dim d, int64_t min) {
  DimTerm t[DIM_MAX_TERMS];
  uint32_t n = ir_dim_terms(I->g, ir_dim_subst(I->g, d), t);
  int64_t any = -1, lo = 0; /* lo: the least d can be, over values of at least 2 */
  bool sure = true;
  for (uint32_t i = 0; i < n; i++) {
    int64_t p = t[i].coef;
    for (int j = 0; j < t[i].deg; j++) {
      int64_t k = onnx_value_sym(I, t[i].sym[j]);
      if (k < 0) return false; /* a symbol from shapes: d is an ordinary dim */
      any = k;
      if (p > 0 && p < ((int64_t)1 << 40)) p *= 2;
    }
    sure &= t[i].deg == 0 || t[i].coef > 0;
    if (!__builtin_add_overflow(lo, p, &lo)) continue;
    sure = false;
  }
  if (any < 0 || (sure && lo >= min)) return false;
  I->need = I->vnodes.v[any];
  return true;
}

const char *onnx_out(Imp *I, size_t k) {
  return k < I->node->n_output && I->node->output[k] && *I->node->output[k] ? I->node->output[k] : NULL;
}

/* Define output k as Val x. */
dvm_status onnx_def(Imp *I, size_t k, uint32_t x) {
  const char *name = onnx_out(I, k);
  uint32_t prev;
  if (!name) return DVM_OK;
  if (onnx_map_get(&I->names, name, &prev))
    return onnx_fail(I, DVM_ERR_GRAPH, "output '%s' is already defined", name);
  onnx_map_put(&I->names, name, x);
  return DVM_OK;
}

dvm_status onnx_def_dyn(Imp *I, size_t k, int64_t v) {
  return v < 0 ? I->err->code : onnx_def(I, k, onnx_val_dyn(I, (uint32_t)v));
}

const Onnx__AttributeProto *onnx_attr(Imp *I, const char *name) {
  for (size_t i = 0; i < I->node->n_attribute; i++) {
    const Onnx__AttributeProto *a = I->node->attribute[i];
    if (a && a->name && !strcmp(a->name, name)) return a;
  }
  return NULL;
}

int64_t onnx_attr_i(Imp *I, const char *name, int64_t dflt) {
  const Onnx__AttributeProto *a = onnx_attr(I, name);
  return a ? a->i : dflt;
}

double onnx_attr_f(Imp *I, const char *name, double dflt) {
  const Onnx__AttributeProto *a = onnx_attr(I, name);
  return a ? a->f : dflt;
}

/* A string attribute that must be one of `choices` (NULL-terminated): its index, `dflt` if
 * absent, -1 with the error set (naming the attribute and the choices) otherwise. */
int onnx_attr_choice(Imp *I, const char *name, const char *const *choices, int dflt) {
  const Onnx__AttributeProto *a = onnx_attr(I, name);
  if (!a) return dflt;
  char list[128] = "";
  for (int i = 0; choices[i]; i++) {
    size_t n = strlen(choices[i]);
    if (a->s.len == n && (n == 0 || !memcmp(a->s.data, choices[i], n))) return i;
    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "", choices[i]);
  }
  return onnx_fail(I, DVM_ERR_GRAPH, "attribute '%s' must be one of %s", name, list), -1;
}

/* An int-list attribute: its length, -1 if absent, -2 (error set) if too long. */
int onnx_attr_ints(Imp *I, const char *name, int64_t *out, int max) {
  const Onnx__AttributeProto *a = onnx_attr(I, name);
  if (!a) return -1;
  if (a->n_ints > (size_t)max)
    return onnx_fail(I, DVM_ERR_GRAPH, "attribute '%s' has %zu entries, more than %d", name,
                     a->n_ints, max), -2;
  for (size_t i = 0; i < a->n_ints; i++) out[i] = a->ints[i];
  return (int)a->n_ints;
}

/* Input i as constant integers (axes, split sizes, ...): count, -1 if absent, -2 on error. */
static int const_ints(Imp *I, size_t i, const char *what, int64_t *out, int max) {
  int64_t k = onnx_arg(I, i, false);
  int n;
  if (k < 0) return (int)k;
  if (!onnx_sym_ints(I, (uint32_t)k, out, max, &n))
    return onnx_need(I, k), onnx_fail(I, DVM_ERR_UNSUPPORTED, "%s (input %zu) must be a constant integer tensor "
                     "of at most %d elements", what, i + 1, max), -2;
  return n;
}

/* Axes from the input (opset 13+) or, for older forms, the attribute. */
int onnx_axes(Imp *I, size_t i, int64_t *out) {
  int n = const_ints(I, i, "axes", out, R);
  return n == -1 ? onnx_attr_ints(I, "axes", out, R) : n;
}

/* Input i as the dims of a shape (a V_SYM of rank <= 1); count, or -2 on error. A dim made
 * of symbols from an input's values must be certain to be at least `min` (onnx_value_dim). */
static int shape_arg(Imp *I, size_t i, const char *what, Dim *out, int max, int64_t min) {
  int64_t k = onnx_arg(I, i, true);
  if (k < 0) return -2;
  Val *x = onnx_val(I, (uint32_t)k);
  if (x->kind != V_SYM || x->rank > 1)
    return onnx_need(I, k), onnx_fail(I, DVM_ERR_UNSUPPORTED, "%s (input %zu) is computed from run-time data, "
                     "not from shapes: dvm needs it when the model is loaded", what, i + 1), -2;
  if (x->numel > max)
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "%s has %lld entries, more than %d", what,
                     (long long)x->numel, max), -2;
  for (int64_t j = 0; j < x->numel; j++) {
    out[j] = ir_dim_subst(I->g, x->d[j]);
    if (onnx_value_dim(I, out[j], min))
      return onnx_fail(I, DVM_ERR_UNSUPPORTED, "%s (input %zu) computed from a graph input is needed when the "
                       "model is loaded", what, i + 1), -2;
  }
  return (int)x->numel;
}

/* The dvm value of input i (required). */
int64_t onnx_in(Imp *I, size_t i) {
  int64_t k = onnx_arg(I, i, true);
  uint32_t v;
  if (k < 0 || onnx_use(I, (uint32_t)k, &v)) return -1;
  return v;
}

int64_t onnx_in_opt(Imp *I, size_t i) {
  int64_t k = onnx_arg(I, i, false);
  uint32_t v;
  if (k == -1) return -1;
  return k < 0 || onnx_use(I, (uint32_t)k, &v) ? -2 : (int64_t)v;
}

int64_t onnx_unary(Imp *I, Op op, uint32_t x, const char *name) {
  NodeDraft d = {.op = op, .nin = 1, .in = {x}};
  return onnx_add(I, &d, name);
}

int64_t onnx_binary(Imp *I, Op op, uint32_t a, uint32_t b, const char *name) {
  NodeDraft d = {.op = op, .nin = 2, .in = {a, b}};
  return onnx_add(I, &d, name);
}

/* Is d a constant (false for DIM_NONE, an overflowed expression)? */
bool onnx_dim_const(Imp *I, Dim d, int64_t *c) {
  d = ir_dim_subst(I->g, d);
  return d != DIM_NONE && ir_dim_is_const(I->g, d, c);
}

/* ---- symbolic elementwise arithmetic ------------------------------------------------------ */

/* Element-wise op on two V_SYM values of rank <= 1 (broadcasting a single element). Returns
 * the new Val, or -1 if it cannot be evaluated at load time (the caller emits dvm ops). */
static int64_t sym_binary(Imp *I, Op op, uint32_t ia, uint32_t ib) {
  Val *a = onnx_val(I, ia), *b = onnx_val(I, ib);
  if (a->kind != V_SYM || b->kind != V_SYM || a->rank > 1 || b->rank > 1) return -1;
  int64_t na = a->numel, nb = b->numel, n = na > nb ? na : nb;
  if (na != nb && na != 1 && nb != 1) return -1;
  Graph *g = I->g;
  Dim out[SYM_MAX];
  bool cmp = op == OP_EQ || op == OP_LT || op == OP_GT || op == OP_LE || op == OP_GE;
  for (int64_t i = 0; i < n; i++) {
    Dim x = ir_dim_subst(g, a->d[na == 1 ? 0 : i]), y = ir_dim_subst(g, b->d[nb == 1 ? 0 : i]);
    int64_t cx, cy, c;
    bool kx = ir_dim_is_const(g, x, &cx), ky = ir_dim_is_const(g, y, &cy);
    Dim r = DIM_NONE;
    if (cmp) {
      if (!onnx_dim_const(I, ir_dim_sub(g, x, y), &c)) return -1;
      bool t = op == OP_EQ ? c == 0 : op == OP_LT ? c < 0 : op == OP_GT ? c > 0 : op == OP_LE ? c <= 0 : c >= 0;
      r = ir_dim_const(g, t);
    } else if (op == OP_ADD) r = ir_dim_add(g, x, y);
    else if (op == OP_SUB) r = ir_dim_sub(g, x, y);
    else if (op == OP_MUL) r = ir_dim_mul(g, x, y);
    else if (op == OP_DIV) {
      if (ir_dtype_is_float((DType)a->dtype) && !(kx && ky && cy && cx % cy == 0))
        return -1; /* float division: only where the quotient is an integer */
      if (kx && ky) {
        if (cy == 0) return onnx_fail(I, DVM_ERR_DATA, "integer division by zero in a shape computation"), -2;
        if (cx == INT64_MIN && cy == -1) return -1;
        r = ir_dim_const(g, cx / cy);
      } else {
        r = onnx_dim_div(g, x, y);
      }
    } else if ((op == OP_MAX || op == OP_MIN) && kx && ky) {
      r = ir_dim_const(g, op == OP_MAX ? (cx > cy ? cx : cy) : (cx < cy ? cx : cy));
    }
    if (r == DIM_NONE) return -1;
    out[i] = r;
  }
  int64_t shape[1] = {n};
  int rank = a->rank > b->rank ? a->rank : b->rank;
  return onnx_val_sym(I, cmp ? DT_BOOL : (DType)a->dtype, rank, shape, out);
}

/* ---- elementwise ----------------------------------------------------------------------------- */

static dvm_status op_unary(Imp *I, Op op) {
  int64_t k = onnx_arg(I, 0, true);
  if (k < 0) return I->err->code;
  Val *x = onnx_val(I, (uint32_t)k);
  if (x->kind == V_SYM && (op == OP_NEG || op == OP_NOT || op == OP_ABS)) {
    Dim out[SYM_MAX];
    bool ok = true;
    for (int64_t i = 0; i < x->numel && ok; i++) {
      int64_t c;
      Dim d = ir_dim_subst(I->g, x->d[i]);
      if (op == OP_NEG) out[i] = ir_dim_sub(I->g, ir_dim_const(I->g, 0), d), ok = out[i] != DIM_NONE;
      else if ((ok = ir_dim_is_const(I->g, d, &c) && c != INT64_MIN))
        out[i] = ir_dim_const(I->g, op == OP_NOT ? !c : c < 0 ? -c : c);
    }
    x = onnx_val(I, (uint32_t)k);
    if (ok) return onnx_def(I, 0, onnx_val_sym(I, (DType)x->dtype, x->rank, x->shape, out));
  }
  uint32_t v;
  if (onnx_use(I, (uint32_t)k, &v)) return I->err->code;
  return onnx_def_dyn(I, 0, onnx_unary(I, op, v, onnx_out(I, 0)));
}

/* pow with a constant exponent: x*x for 2, sqrt for 0.5, x for 1; else the general op. */
static dvm_status op_pow(Imp *I, uint32_t a, uint32_t kb) {
  double e;
  DType dt = (DType)ir_node(I->g, a)->dtype;
  if (onnx_scalar(I, kb, &e) && ir_dtype_is_float(dt)) {
    if (e == 2) return onnx_def_dyn(I, 0, onnx_binary(I, OP_MUL, a, a, onnx_out(I, 0)));
    if (e == 0.5) return onnx_def_dyn(I, 0, onnx_unary(I, OP_SQRT, a, onnx_out(I, 0)));
    if (e == 1) return onnx_def(I, 0, onnx_val_dyn(I, a));
    int64_t lit = onnx_literal(I, e, dt);
    return lit < 0 ? I->err->code : onnx_def_dyn(I, 0, onnx_binary(I, OP_POW, a, (uint32_t)lit, onnx_out(I, 0)));
  }
  uint32_t b;
  if (onnx_use(I, kb, &b)) return I->err->code;
  int64_t c = onnx_cast(I, b, dt); /* ONNX lets the exponent's type differ */
  if (c < 0) return I->err->code;
  b = (uint32_t)c;
  return onnx_def_dyn(I, 0, onnx_binary(I, OP_POW, a, b, onnx_out(I, 0)));
}

static dvm_status op_binary(Imp *I, Op op) {
  int64_t ka = onnx_arg(I, 0, true), kb = ka >= 0 ? onnx_arg(I, 1, true) : -2;
  if (kb < 0) return I->err->code;
  int64_t s = sym_binary(I, op, (uint32_t)ka, (uint32_t)kb);
  if (s == -2) return I->err->code;
  if (s >= 0) return onnx_def(I, 0, (uint32_t)s);
  uint32_t a, b;
  if (onnx_use(I, (uint32_t)ka, &a)) return I->err->code;
  if (op == OP_POW) return op_pow(I, a, (uint32_t)kb);
  if (onnx_use(I, (uint32_t)kb, &b)) return I->err->code;
  return onnx_def_dyn(I, 0, onnx_binary(I, op, a, b, onnx_out(I, 0)));
}

/* Max and Min take one or more operands. */
static dvm_status op_variadic(Imp *I, Op op) {
  if (I->node->n_input == 2) return op_binary(I, op);
  int64_t acc = onnx_in(I, 0);
  for (size_t i = 1; acc >= 0 && i < I->node->n_input; i++) {
    int64_t b = onnx_in(I, i);
    acc = b < 0 ? -1 : onnx_binary(I, op, (uint32_t)acc, (uint32_t)b, i + 1 == I->node->n_input ? onnx_out(I, 0) : NULL);
  }
  return onnx_def_dyn(I, 0, acc);
}

static dvm_status op_where(Imp *I) {
  int64_t kc = onnx_arg(I, 0, true), ka = kc >= 0 ? onnx_arg(I, 1, true) : -2, kb = ka >= 0 ? onnx_arg(I, 2, true) : -2;
  if (kb < 0) return I->err->code;
  Val *c = onnx_val(I, (uint32_t)kc), *a = onnx_val(I, (uint32_t)ka), *b = onnx_val(I, (uint32_t)kb);
  int64_t cc[SYM_MAX];
  int nc;
  if (a->kind == V_SYM && b->kind == V_SYM && a->rank <= 1 && b->rank <= 1 && c->rank <= 1 &&
      onnx_sym_ints(I, (uint32_t)kc, cc, SYM_MAX, &nc)) {
    int64_t n = nc;
    n = a->numel > n ? a->numel : n;
    n = b->numel > n ? b->numel : n;
    if ((nc == n || nc == 1) && (a->numel == n || a->numel == 1) && (b->numel == n || b->numel == 1)) {
      Dim out[SYM_MAX];
      for (int64_t i = 0; i < n; i++)
        out[i] = cc[nc == 1 ? 0 : i] ? a->d[a->numel == 1 ? 0 : i] : b->d[b->numel == 1 ? 0 : i];
      int64_t shape[1] = {n};
      int rank = c->rank > a->rank ? c->rank : a->rank;
      rank = b->rank > rank ? b->rank : rank;
      return onnx_def(I, 0, onnx_val_sym(I, (DType)a->dtype, rank, shape, out));
    }
  }
  uint32_t vc, va, vb;
  if (onnx_use(I, (uint32_t)kc, &vc) || onnx_use(I, (uint32_t)ka, &va) || onnx_use(I, (uint32_t)kb, &vb))
    return I->err->code;
  NodeDraft d = {.op = OP_SELECT, .nin = 3, .in = {vc, va, vb}};
  return onnx_def_dyn(I, 0, onnx_add(I, &d, onnx_out(I, 0)));
}

static dvm_status op_cast(Imp *I) {
  int64_t k = onnx_arg(I, 0, true);
  if (k < 0) return I->err->code;
  int64_t to = onnx_attr_i(I, "to", 0);
  int dt = onnx_dtype(to);
  if (dt < 0)
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "Cast to %s is not supported (dvm's dtypes: float, "
                     "double, float16, bfloat16, the 8- to 64-bit integers, bool)", onnx_dtype_name(to));
  Val *x = onnx_val(I, (uint32_t)k);
  if (x->dtype == dt) return onnx_def(I, 0, (uint32_t)k);
  /* dims stay dims in the shapes' types (read.c constant_val) and floats, where they are
     integer values; a symbol stays one in i32 (dims are far below 2^31) */
  if (x->kind == V_SYM && (dt == DT_I64 || dt == DT_I32 || dt == DT_BOOL || ir_dtype_is_float((DType)dt))) {
    Dim out[SYM_MAX];
    bool ok = true, from_float = ir_dtype_is_float((DType)x->dtype);
    for (int64_t i = 0; i < x->numel && ok; i++) {
      int64_t c;
      out[i] = x->d[i];
      if (dt == DT_BOOL) ok = onnx_dim_const(I, x->d[i], &c), out[i] = ir_dim_const(I->g, c != 0);
      else if (dt == DT_I32 && onnx_dim_const(I, x->d[i], &c)) /* a float saturates, an integer wraps */
        out[i] = ir_dim_const(I->g, from_float ? (c > INT32_MAX ? INT32_MAX : c < INT32_MIN ? INT32_MIN : c)
                                               : (int32_t)(uint32_t)c);
    }
    x = onnx_val(I, (uint32_t)k);
    if (ok) return onnx_def(I, 0, onnx_val_sym(I, (DType)dt, x->rank, x->shape, out));
  }
  uint32_t v;
  if (onnx_use(I, (uint32_t)k, &v)) return I->err->code;
  NodeDraft d = {.op = OP_CAST, .nin = 1, .in = {v}};
  onnx_at_dtype(&d, AK_TO, (DType)dt);
  return onnx_def_dyn(I, 0, onnx_add(I, &d, onnx_out(I, 0)));
}

/* ---- reductions, normalizations, matmul ----------------------------------------------------- */

static dvm_status op_reduce(Imp *I, Op op) {
  int64_t axes[R];
  int n = onnx_axes(I, 1, axes);
  if (n == -2) return I->err->code;
  int64_t x = onnx_in(I, 0);
  if (x < 0) return I->err->code;
  if (n == 0 && onnx_attr_i(I, "noop_with_empty_axes", 0)) return onnx_def(I, 0, onnx_val_dyn(I, (uint32_t)x));
  NodeDraft d = {.op = op, .nin = 1, .in = {(uint32_t)x}};
  if (n > 0) onnx_at_ints(I, &d, AK_AXES, axes, (uint32_t)n);
  onnx_at_int(&d, AK_KEEPDIMS, onnx_attr_i(I, "keepdims", 1) != 0);
  return onnx_def_dyn(I, 0, onnx_add(I, &d, onnx_out(I, 0)));
}

static dvm_status op_softmax(Imp *I, Op op) {
  int64_t x = onnx_in(I, 0);
  if (x < 0) return I->err->code;
  NodeDraft d = {.op = op, .nin = 1, .in = {(uint32_t)x}};
  onnx_at_int(&d, AK_AXIS, onnx_attr_i(I, "axis", -1));
  return onnx_def_dyn(I, 0, onnx_add(I, &d, onnx_out(I, 0)));
}

static dvm_status op_layernorm(Imp *I) {
  int64_t x = onnx_in(I, 0), s = x >= 0 ? onnx_in(I, 1) : -1, kb = s >= 0 ? onnx_arg(I, 2, false) : -2;
  uint32_t b;
  if (kb == -2) return I->err->code;
  if (kb >= 0) {
    if (onnx_use(I, (uint32_t)kb, &b)) return I->err->code;
  } else { /* no bias: a literal 0 */
    int64_t l = onnx_literal(I, 0, (DType)ir_node(I->g, (uint32_t)x)->dtype);
    if (l < 0) return I->err->code;
    b = (uint32_t)l;
  }
  NodeDraft d = {.op = OP_LAYERNORM, .nin = 3, .in = {(uint32_t)x, (uint32_t)s, b}};
  int64_t axis = onnx_attr_i(I, "axis", -1);
  double eps = (double)(float)onnx_attr_f(I, "epsilon", 1e-5);
  onnx_at_int(&d, AK_AXIS, axis);
  onnx_at_float(&d, AK_EPS, eps, false);
  if (onnx_def_dyn(I, 0, onnx_add(I, &d, onnx_out(I, 0)))) return I->err->code;
  if (!onnx_out(I, 1) && !onnx_out(I, 2)) return DVM_OK;
  /* Mean and InvStdDev = 1 / sqrt(Var + epsilon), over the normalized axes, kept, in f32
   * (stash_type 1, the only one ONNX defines) */
  int r = ir_node(I->g, (uint32_t)x)->rank, ax = ir_axis(axis, r);
  if (onnx_attr_i(I, "stash_type", 1) != 1)
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "stash_type %lld (1, float, is supported)", (long long)onnx_attr_i(I, "stash_type", 1));
  if ((x = onnx_cast(I, x, DT_F32)) < 0) return I->err->code;
  int64_t axes[R], m, var;
  if (ax < 0) return onnx_fail(I, DVM_ERR_GRAPH, "axis %lld out of range for rank %d", (long long)axis, r);
  for (int i = ax; i < r; i++) axes[i - ax] = i;
  NodeDraft mean = {.op = OP_REDUCE_MEAN, .nin = 1, .in = {(uint32_t)x}};
  onnx_at_ints(I, &mean, AK_AXES, axes, (uint32_t)(r - ax));
  onnx_at_int(&mean, AK_KEEPDIMS, 1);
  NodeDraft sq = mean;
  if ((m = onnx_add(I, &mean, onnx_out(I, 1))) < 0 || onnx_def_dyn(I, 1, m)) return I->err->code;
  if (!onnx_out(I, 2)) return DVM_OK;
  int64_t c = onnx_binary(I, OP_SUB, (uint32_t)x, (uint32_t)m, NULL);
  if (c < 0 || (c = onnx_binary(I, OP_MUL, (uint32_t)c, (uint32_t)c, NULL)) < 0) return I->err->code;
  sq.in[0] = (uint32_t)c;
  int64_t l = onnx_literal(I, eps, (DType)ir_node(I->g, (uint32_t)x)->dtype);
  if ((var = onnx_add(I, &sq, NULL)) < 0 || l < 0 || (var = onnx_binary(I, OP_ADD, (uint32_t)var, (uint32_t)l, NULL)) < 0)
    return I->err->code;
  return onnx_def_dyn(I, 2, onnx_unary(I, OP_RSQRT, (uint32_t)var, onnx_out(I, 2)));
}

static dvm_status op_matmul(Imp *I) {
  int64_t a = onnx_in(I, 0), b = a >= 0 ? onnx_in(I, 1) : -1;
  if (b < 0) return I->err->code;
  return onnx_def_dyn(I, 0, onnx_binary(I, OP_MATMUL, (uint32_t)a, (uint32_t)b, onnx_out(I, 0)));
}

/* Gemm: alpha · A' B' + beta · C. */
static dvm_status op_gemm(Imp *I) {
  int64_t a = onnx_in(I, 0), b = a >= 0 ? onnx_in(I, 1) : -1, kc = b >= 0 ? onnx_arg(I, 2, false) : -2;
  if (kc == -2) return I->err->code;
  double alpha = onnx_attr_f(I, "alpha", 1), beta = onnx_attr_f(I, "beta", 1);
  bool more = (kc >= 0 && beta != 0) || alpha != 1;
  NodeDraft d = {.op = OP_MATMUL, .nin = 2, .in = {(uint32_t)a, (uint32_t)b}};
  if (onnx_attr_i(I, "transA", 0)) onnx_at_int(&d, AK_TRANSPOSE_A, 1);
  if (onnx_attr_i(I, "transB", 0)) onnx_at_int(&d, AK_TRANSPOSE_B, 1);
  int64_t y = onnx_add(I, &d, more ? NULL : onnx_out(I, 0));
  if (y < 0) return I->err->code;
  DType dt = (DType)ir_node(I->g, (uint32_t)y)->dtype;
  bool addc = kc >= 0 && beta != 0;
  if (alpha != 1) {
    int64_t l = onnx_literal(I, alpha, dt);
    if (l < 0 || (y = onnx_binary(I, OP_MUL, (uint32_t)y, (uint32_t)l, addc ? NULL : onnx_out(I, 0))) < 0)
      return I->err->code;
  }
  if (addc) {
    uint32_t c;
    if (onnx_use(I, (uint32_t)kc, &c)) return I->err->code;
    if (beta != 1) {
      int64_t l = onnx_literal(I, beta, dt), m = l < 0 ? -1 : onnx_binary(I, OP_MUL, c, (uint32_t)l, NULL);
      if (m < 0) return I->err->code;
      c = (uint32_t)m;
    }
    y = onnx_binary(I, OP_ADD, (uint32_t)y, c, onnx_out(I, 0));
  }
  return onnx_def_dyn(I, 0, y);
}

/* ---- shapes ---------------------------------------------------------------------------------- */

static dvm_status op_shape(Imp *I) {
  int64_t k = onnx_arg(I, 0, true);
  if (k < 0) return I->err->code;
  Dim s[R];
  int r = onnx_dims(I, (uint32_t)k, s);
  int64_t st = onnx_attr_i(I, "start", 0), en = onnx_attr_i(I, "end", r);
  st = st < 0 ? st + r : st, en = en < 0 ? en + r : en;
  st = st < 0 ? 0 : st > r ? r : st, en = en < 0 ? 0 : en > r ? r : en;
  if (en < st) en = st;
  int64_t shape[1] = {en - st};
  return onnx_def(I, 0, onnx_val_sym(I, DT_I64, 1, shape, s + st));
}

/* reshape, or nothing when the shape does not change. */
static int64_t reshape(Imp *I, uint32_t x, const Dim *s, int n, const char *name) {
  const Node *nd = ir_node(I->g, x);
  bool same = nd->rank == n;
  for (int i = 0; same && i < n; i++) same = ir_dim_subst(I->g, ir_shape(I->g, x)[i]) == s[i];
  if (same) return x;
  NodeDraft d = {.op = OP_RESHAPE, .nin = 1, .in = {x}};
  onnx_at_dims(I, &d, AK_SHAPE, s, (uint32_t)n);
  return onnx_add(I, &d, name);
}

/* A V_SYM with a new shape (same elements in the same order). */
static uint32_t sym_reshape(Imp *I, uint32_t k, int rank, const int64_t *shape) {
  Val *x = onnx_val(I, k);
  Dim d[SYM_MAX];
  memcpy(d, x->d, (size_t)x->numel * sizeof *d);
  return onnx_val_sym(I, (DType)x->dtype, rank, shape, d);
}

static dvm_status op_reshape(Imp *I) {
  Dim s[R];
  int n = shape_arg(I, 1, "the shape", s, R, 2); /* 0 and -1 mean something else */
  int64_t k = n < 0 ? -2 : onnx_arg(I, 0, true);
  if (k < 0) return I->err->code;
  bool allowzero = onnx_attr_i(I, "allowzero", 0) != 0;
  Dim in[R];
  int r = onnx_dims(I, (uint32_t)k, in), hole = -1;
  int64_t c, known = 1;
  for (int i = 0; i < n; i++) {
    if (onnx_dim_const(I, s[i], &c) && c == 0 && !allowzero) {
      if (i >= r) return onnx_fail(I, DVM_ERR_SHAPE, "shape entry %d is 0 (copy) but the input has rank %d", i, r);
      s[i] = in[i];
    }
    if (onnx_dim_const(I, s[i], &c) && c == -1) hole = i;
    else if (onnx_dim_const(I, s[i], &c) && known >= 0 && !__builtin_mul_overflow(known, c, &known)) continue;
    else known = -1;
  }
  if (hole >= 0) { /* -1: the quotient of the element counts, when it is exact */
    Dim total = ir_dim_const(I->g, 1), rest = ir_dim_const(I->g, 1), q;
    for (int i = 0; i < r; i++) total = ir_dim_mul(I->g, total, in[i]);
    for (int i = 0; i < n; i++)
      if (i != hole) rest = ir_dim_mul(I->g, rest, s[i]);
    if (!(onnx_dim_const(I, rest, &c) && c == 0) && (q = onnx_dim_div(I->g, total, rest)) != DIM_NONE) {
      s[hole] = q;
      if (known >= 0 && onnx_dim_const(I, q, &c)) {
        hole = -1;
        if (__builtin_mul_overflow(known, c, &known)) known = -1;
      }
    }
  }
  Val *x = onnx_val(I, (uint32_t)k);
  if (x->kind == V_SYM && known >= 0) { /* a shape value reshaped: at load time */
    int64_t shape[R];
    for (int i = 0; i < n; i++) onnx_dim_const(I, s[i], &shape[i]);
    if (hole >= 0 && known > 0) shape[hole] = x->numel / known;
    int64_t m = 1;
    for (int i = 0; i < n && m >= 0; i++)
      if (__builtin_mul_overflow(m, shape[i], &m)) m = -1;
    if (m == x->numel) return onnx_def(I, 0, sym_reshape(I, (uint32_t)k, n, shape));
  }
  uint32_t v;
  if (onnx_use(I, (uint32_t)k, &v)) return I->err->code;
  return onnx_def_dyn(I, 0, reshape(I, v, s, n, onnx_out(I, 0)));
}

static dvm_status op_flatten(Imp *I) {
  int64_t k = onnx_arg(I, 0, true);
  if (k < 0) return I->err->code;
  Dim in[R], s[2] = {ir_dim_const(I->g, 1), ir_dim_const(I->g, 1)};
  int r = onnx_dims(I, (uint32_t)k, in);
  int64_t a = onnx_attr_i(I, "axis", 1), ax = a < 0 ? a + r : a; /* [-r, r]: a negative counts from r */
  if (ax < 0 || ax > r) return onnx_fail(I, DVM_ERR_GRAPH, "axis %lld out of range for rank %d", (long long)a, r);
  for (int i = 0; i < r; i++) s[i >= ax] = ir_dim_mul(I->g, s[i >= ax], in[i]);
  uint32_t v;
  if (onnx_use(I, (uint32_t)k, &v)) return I->err->code;
  return onnx_def_dyn(I, 0, reshape(I, v, s, 2, onnx_out(I, 0)));
}

static dvm_status op_unsqueeze(Imp *I, bool squeeze) {
  int64_t axes[R];
  int n = onnx_axes(I, 1, axes);
  int64_t k = n == -2 ? -2 : onnx_arg(I, 0, true);
  if (k < 0) return I->err->code;
  Val *x = onnx_val(I, (uint32_t)k);
  if (x->kind == V_SYM) { /* the new shape of a shape value */
    int r = x->rank, ro = squeeze ? (n < 0 ? 0 : r - n) : r + (n < 0 ? 0 : n);
    bool mark[2 * R] = {0}, ok = n >= 0 || squeeze;
    for (int i = 0; i < n && ok; i++) {
      int a = ir_axis(axes[i], squeeze ? r : ro);
      ok = a >= 0 && !mark[a] && (!squeeze || x->shape[a] == 1);
      if (ok) mark[a] = true;
    }
    if (ok && squeeze && n < 0)
      for (int i = 0; i < r; i++) mark[i] = x->shape[i] == 1, ro -= mark[i];
    if (ok && ro <= R) {
      int64_t shape[R];
      for (int i = 0, j = 0, o = 0; i < (squeeze ? r : ro); i++) {
        if (squeeze) {
          if (!mark[i]) shape[o++] = x->shape[i];
        } else {
          shape[i] = mark[i] ? 1 : x->shape[j++];
        }
      }
      return onnx_def(I, 0, sym_reshape(I, (uint32_t)k, ro, shape));
    }
  }
  uint32_t v;
  if (onnx_use(I, (uint32_t)k, &v)) return I->err->code;
  if (!squeeze && n < 0) return onnx_fail(I, DVM_ERR_GRAPH, "Unsqueeze needs axes");
  NodeDraft d = {.op = squeeze ? OP_SQUEEZE : OP_UNSQUEEZE, .nin = 1, .in = {v}};
  if (n >= 0) onnx_at_ints(I, &d, AK_AXES, axes, (uint32_t)n);
  return onnx_def_dyn(I, 0, onnx_add(I, &d, onnx_out(I, 0)));
}

static dvm_status op_transpose(Imp *I) {
  int64_t perm[R];
  int n = onnx_attr_ints(I, "perm", perm, R);
  int64_t k = n == -2 ? -2 : onnx_arg(I, 0, true);
  if (k < 0) return I->err->code;
  if (onnx_val(I, (uint32_t)k)->kind == V_SYM && onnx_val(I, (uint32_t)k)->rank <= 1)
    return onnx_def(I, 0, (uint32_t)k);
  uint32_t v;
  if (onnx_use(I, (uint32_t)k, &v)) return I->err->code;
  NodeDraft d = {.op = OP_TRANSPOSE, .nin = 1, .in = {v}};
  if (n >= 0) onnx_at_ints(I, &d, AK_PERM, perm, (uint32_t)n);
  return onnx_def_dyn(I, 0, onnx_add(I, &d, onnx_out(I, 0)));
}

static dvm_status op_concat(Imp *I) {
  size_t n = I->node->n_input;
  const Onnx__AttributeProto *ax = onnx_attr(I, "axis");
  if (!ax) return onnx_fail(I, DVM_ERR_GRAPH, "Concat needs attribute 'axis'");
  if (!n || n > 64) return onnx_fail(I, DVM_ERR_GRAPH, "Concat of %zu inputs", n);
  int64_t ks[64];
  bool sym = ax->i == 0 || ax->i == -1;
  int64_t total = 0;
  for (size_t i = 0; i < n; i++) {
    if ((ks[i] = onnx_arg(I, i, true)) < 0) return I->err->code;
    Val *x = onnx_val(I, (uint32_t)ks[i]);
    sym = sym && x->kind == V_SYM && x->rank == 1;
    total += x->kind == V_SYM ? x->numel : 0;
  }
  if (sym && total <= SYM_MAX) { /* shape values concatenated at load time */
    Dim out[SYM_MAX];
    int64_t m = 0;
    for (size_t i = 0; i < n; i++) {
      Val *x = onnx_val(I, (uint32_t)ks[i]);
      for (int64_t j = 0; j < x->numel; j++) out[m++] = x->d[j];
    }
    int64_t shape[1] = {m};
    return onnx_def(I, 0, onnx_val_sym(I, onnx_val_dtype(I, (uint32_t)ks[0]), 1, shape, out));
  }
  NodeDraft d = {.op = OP_CONCAT, .nin = (uint32_t)n};
  for (size_t i = 0; i < n; i++)
    if (onnx_use(I, (uint32_t)ks[i], &d.in[i])) return I->err->code;
  onnx_at_int(&d, AK_AXIS, ax->i);
  return onnx_def_dyn(I, 0, onnx_add(I, &d, onnx_out(I, 0)));
}

/* slice(x, axes=[ax], starts=[s], ends=[e]) */
static int64_t slice1(Imp *I, uint32_t x, int64_t ax, Dim s, Dim e, const char *name) {
  NodeDraft d = {.op = OP_SLICE, .nin = 1, .in = {x}};
  onnx_at_ints(I, &d, AK_AXES, &ax, 1);
  onnx_at_dims(I, &d, AK_STARTS, &s, 1);
  onnx_at_dims(I, &d, AK_ENDS, &e, 1);
  return onnx_add(I, &d, name);
}

static dvm_status op_gather(Imp *I) {
  int64_t kx = onnx_arg(I, 0, true), ki = kx >= 0 ? onnx_arg(I, 1, true) : -2;
  if (ki < 0) return I->err->code;
  Val *x = onnx_val(I, (uint32_t)kx), *idx = onnx_val(I, (uint32_t)ki);
  int64_t axis = onnx_attr_i(I, "axis", 0), iv[SYM_MAX];
  int ni;
  bool cidx = onnx_sym_ints(I, (uint32_t)ki, iv, SYM_MAX, &ni);
  if (x->kind == V_SYM && x->rank == 1 && (axis == 0 || axis == -1) && cidx && idx->rank <= 1) {
    Dim out[SYM_MAX];
    for (int i = 0; i < ni; i++) {
      int64_t j = iv[i] < 0 ? iv[i] + x->numel : iv[i];
      if (j < 0 || j >= x->numel)
        return onnx_fail(I, DVM_ERR_SHAPE, "index %lld out of range for %lld elements",
                         (long long)iv[i], (long long)x->numel);
      out[i] = x->d[j];
    }
    return onnx_def(I, 0, onnx_val_sym(I, (DType)x->dtype, idx->rank, idx->shape, out));
  }
  uint32_t v;
  if (onnx_use(I, (uint32_t)kx, &v)) return I->err->code;
  const Node *nd = ir_node(I->g, v);
  int ax = ir_axis(axis, nd->rank);
  if (ax < 0) return onnx_fail(I, DVM_ERR_GRAPH, "axis %lld out of range for rank %d", (long long)axis, nd->rank);
  if (cidx && onnx_val(I, (uint32_t)ki)->rank == 0) { /* one index: a slice, then squeeze */
    Dim dim = ir_dim_subst(I->g, ir_shape(I->g, v)[ax]), s;
    int64_t c, j = iv[0];
    if (onnx_dim_const(I, dim, &c) && (j < -c || j >= c))
      return onnx_fail(I, DVM_ERR_SHAPE, "index %lld out of range for dim %lld", (long long)j, (long long)c);
    s = j < 0 ? ir_dim_add(I->g, dim, ir_dim_const(I->g, j)) : ir_dim_const(I->g, j);
    int64_t sl = slice1(I, v, ax, s, ir_dim_add(I->g, s, ir_dim_const(I->g, 1)), NULL);
    if (sl < 0) return I->err->code;
    int64_t a64 = ax;
    NodeDraft d = {.op = OP_SQUEEZE, .nin = 1, .in = {(uint32_t)sl}};
    onnx_at_ints(I, &d, AK_AXES, &a64, 1);
    return onnx_def_dyn(I, 0, onnx_add(I, &d, onnx_out(I, 0)));
  }
  uint32_t vi;
  if (onnx_use(I, (uint32_t)ki, &vi)) return I->err->code;
  return onnx_def_dyn(I, 0, onnx_gather(I, v, vi, ax, onnx_out(I, 0)));
}

static dvm_status op_slice(Imp *I) {
  Dim st[R], en[R];
  int64_t axes[R], steps[R];
  /* ONNX clamps starts and ends to the dim, where dvm's symbolic bounds must be in range */
  int n = shape_arg(I, 1, "starts", st, R, INT64_MAX), ne = n < 0 ? -2 : shape_arg(I, 2, "ends", en, R, INT64_MAX);
  int na = ne < 0 ? -2 : const_ints(I, 3, "axes", axes, R);
  int ns = na == -2 ? -2 : const_ints(I, 4, "steps", steps, R);
  int64_t k = ns == -2 ? -2 : onnx_arg(I, 0, true);
  if (k < 0) return I->err->code;
  if (ne != n || (na >= 0 && na != n) || (ns >= 0 && ns != n))
    return onnx_fail(I, DVM_ERR_GRAPH, "starts, ends, axes and steps must have one length");
  if (na < 0)
    for (int i = 0; i < n; i++) axes[i] = i;
  if (ns < 0)
    for (int i = 0; i < n; i++) steps[i] = 1;
  Val *x = onnx_val(I, (uint32_t)k);
  if (x->kind == V_SYM && x->rank == 1 && n == 1 && (axes[0] == 0 || axes[0] == -1) && steps[0]) {
    int64_t s, e, d = x->numel, step = steps[0];
    step = step > d + 1 ? d + 1 : step < -d - 1 ? -d - 1 : step; /* the same slice */
    if (onnx_dim_const(I, st[0], &s) && onnx_dim_const(I, en[0], &e)) { /* Python slicing of a shape value */
      Dim out[SYM_MAX];
      int64_t m = 0;
      if (s < 0) s += d;
      if (e < 0) e += d;
      if (step > 0) {
        s = s < 0 ? 0 : s > d ? d : s, e = e < 0 ? 0 : e > d ? d : e;
        for (int64_t i = s; i < e; i += step) out[m++] = x->d[i];
      } else {
        s = s < -1 ? -1 : s > d - 1 ? d - 1 : s, e = e < -1 ? -1 : e > d - 1 ? d - 1 : e;
        for (int64_t i = s; i > e; i += step) out[m++] = x->d[i];
      }
      int64_t shape[1] = {m};
      return onnx_def(I, 0, onnx_val_sym(I, (DType)x->dtype, 1, shape, out));
    }
  }
  uint32_t v;
  if (onnx_use(I, (uint32_t)k, &v)) return I->err->code;
  for (int i = 0; i < n; i++) { /* ONNX clamps out-of-range ends: "to the end" for dvm */
    int64_t c;
    if (steps[i] > 0 && onnx_dim_const(I, en[i], &c) && c >= INT32_MAX) en[i] = ir_dim_const(I->g, INT64_MAX);
  }
  NodeDraft d = {.op = OP_SLICE, .nin = 1, .in = {v}};
  onnx_at_ints(I, &d, AK_AXES, axes, (uint32_t)n);
  onnx_at_dims(I, &d, AK_STARTS, st, (uint32_t)n);
  onnx_at_dims(I, &d, AK_ENDS, en, (uint32_t)n);
  bool unit = true;
  for (int i = 0; i < n; i++) unit &= steps[i] == 1;
  if (!unit) onnx_at_ints(I, &d, AK_STEPS, steps, (uint32_t)n);
  return onnx_def_dyn(I, 0, onnx_add(I, &d, onnx_out(I, 0)));
}

static dvm_status op_split(Imp *I) {
  size_t no = I->node->n_output;
  int64_t sizes[R * 8];
  if (!no || no > R * 8) return onnx_fail(I, DVM_ERR_GRAPH, "Split into %zu outputs", no);
  int n = const_ints(I, 1, "split", sizes, R * 8);
  if (n == -1) n = onnx_attr_ints(I, "split", sizes, R * 8);
  int64_t x = n == -2 ? -1 : onnx_in(I, 0);
  if (x < 0) return I->err->code;
  const Node *nd = ir_node(I->g, (uint32_t)x);
  int ax = ir_axis(onnx_attr_i(I, "axis", 0), nd->rank);
  if (ax < 0) return onnx_fail(I, DVM_ERR_GRAPH, "axis out of range for rank %d", nd->rank);
  Dim dim = ir_dim_subst(I->g, ir_shape(I->g, (uint32_t)x)[ax]), part = DIM_NONE;
  if (n >= 0 && (size_t)n != no)
    return onnx_fail(I, DVM_ERR_GRAPH, "split has %d sizes for %zu outputs", n, no);
  if (n < 0 && (part = onnx_dim_div(I->g, dim, ir_dim_const(I->g, (int64_t)no))) == DIM_NONE)
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "Split of a dim into %zu equal parts: the dim must be "
                     "a multiple of %zu", no, no);
  Dim off = ir_dim_const(I->g, 0);
  for (size_t k = 0; k < no; k++) {
    Dim end = ir_dim_add(I->g, off, n >= 0 ? ir_dim_const(I->g, sizes[k]) : part);
    if (end == DIM_NONE) return onnx_fail(I, DVM_ERR_OVERFLOW, "split sizes overflow");
    if (onnx_out(I, k) && onnx_def_dyn(I, k, slice1(I, (uint32_t)x, ax, off, end, onnx_out(I, k))))
      return I->err->code;
    off = end;
  }
  return DVM_OK;
}

/* ONNX's bidirectional broadcast of shape a (rank ra) with target t (rank rt). */
static int expand_shape(Imp *I, const Dim *a, int ra, const Dim *t, int rt, Dim *out) {
  int r = ra > rt ? ra : rt;
  for (int i = 0; i < r; i++) {
    int ia = i - (r - ra), it = i - (r - rt);
    Dim da = ia >= 0 ? a[ia] : DIM_NONE, dt = it >= 0 ? t[it] : DIM_NONE;
    int64_t c;
    if (dt == DIM_NONE) out[i] = da;
    else if (da == DIM_NONE) out[i] = dt;
    else if (onnx_dim_const(I, dt, &c) && c == 1) out[i] = da;
    else out[i] = dt;
  }
  return r;
}

static dvm_status op_expand(Imp *I) {
  Dim t[R], a[R], s[R];
  int rt = shape_arg(I, 1, "the shape", t, R, 2); /* 1 means "keep" */
  int64_t k = rt < 0 ? -2 : onnx_arg(I, 0, true);
  if (k < 0) return I->err->code;
  int ra = onnx_dims(I, (uint32_t)k, a), r = expand_shape(I, a, ra, t, rt, s);
  double c;
  Val *x = onnx_val(I, (uint32_t)k);
  if (x->kind != V_DYN && x->numel == 1 && onnx_scalar(I, (uint32_t)k, &c)) { /* a splat */
    return onnx_def_dyn(I, 0, onnx_full(I, s, r, c, (DType)x->dtype, onnx_out(I, 0)));
  }
  uint32_t v;
  if (onnx_use(I, (uint32_t)k, &v)) return I->err->code;
  bool same = r == ra;
  for (int i = 0; same && i < r; i++) same = s[i] == a[i];
  if (same) return onnx_def(I, 0, onnx_val_dyn(I, v));
  NodeDraft d = {.op = OP_BROADCAST_TO, .nin = 1, .in = {v}};
  onnx_at_dims(I, &d, AK_SHAPE, s, (uint32_t)r);
  return onnx_def_dyn(I, 0, onnx_add(I, &d, onnx_out(I, 0)));
}

/* ---- constants ----------------------------------------------------------------------------- */

static dvm_status op_constant(Imp *I) {
  const Onnx__AttributeProto *a;
  uint32_t k;
  if ((a = onnx_attr(I, "value")) && a->t) {
    if (onnx_tensor(I, a->t, "the value", &k)) return I->err->code;
    onnx_val(I, k)->name = onnx_out(I, 0);
    return onnx_def(I, 0, k);
  }
  dvm_tensor *t = NULL;
  int64_t one = 1;
  if ((a = onnx_attr(I, "value_float"))) {
    if (!(t = onnx_tensor_new(I, DT_F32, 0, NULL, NULL))) return I->err->code;
    ((float *)dvm_tensor_data(t))[0] = a->f;
  } else if ((a = onnx_attr(I, "value_floats"))) {
    one = (int64_t)a->n_floats;
    if (!(t = onnx_tensor_new(I, DT_F32, 1, &one, NULL))) return I->err->code;
    float *p = dvm_tensor_data(t);
    for (size_t i = 0; i < a->n_floats; i++) p[i] = a->floats[i];
  } else if ((a = onnx_attr(I, "value_int"))) {
    Dim d = ir_dim_const(I->g, a->i);
    return onnx_def(I, 0, onnx_val_sym(I, DT_I64, 0, NULL, &d));
  } else if ((a = onnx_attr(I, "value_ints"))) {
    if (a->n_ints <= SYM_MAX) {
      Dim d[SYM_MAX];
      for (size_t i = 0; i < a->n_ints; i++) d[i] = ir_dim_const(I->g, a->ints[i]);
      int64_t shape[1] = {(int64_t)a->n_ints};
      return onnx_def(I, 0, onnx_val_sym(I, DT_I64, 1, shape, d));
    }
    one = (int64_t)a->n_ints;
    if (!(t = onnx_tensor_new(I, DT_I64, 1, &one, NULL))) return I->err->code;
    memcpy(dvm_tensor_data(t), a->ints, a->n_ints * sizeof *a->ints);
  } else {
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "a Constant without a tensor, float(s) or int(s) "
                     "value (sparse and string constants are not supported)");
  }
  return onnx_def(I, 0, onnx_val_const(I, t, onnx_out(I, 0)));
}

static dvm_status op_constant_of_shape(Imp *I) {
  Dim s[R];
  int n = shape_arg(I, 0, "the shape", s, R, 0);
  if (n < 0) return I->err->code;
  DType dt = DT_F32;
  double c = 0;
  const Onnx__AttributeProto *a = onnx_attr(I, "value");
  if (a && a->t) {
    uint32_t k;
    if (onnx_tensor(I, a->t, "the value", &k)) return I->err->code;
    dt = onnx_val_dtype(I, k);
    if (!onnx_scalar(I, k, &c)) return onnx_fail(I, DVM_ERR_GRAPH, "the value must have one element");
  }
  int64_t shape[R], m = 1;
  bool known = true;
  for (int i = 0; i < n && known; i++) /* known: constant, and the count fits */
    known = onnx_dim_const(I, s[i], &shape[i]) && shape[i] >= 0 && !__builtin_mul_overflow(m, shape[i], &m);
  if (known && !ir_dtype_is_float(dt) && m <= SYM_MAX) {
    Dim d[SYM_MAX];
    for (int64_t i = 0; i < m; i++) d[i] = ir_dim_const(I->g, onnx_to_i64(c));
    return onnx_def(I, 0, onnx_val_sym(I, dt, n, shape, d));
  }
  return onnx_def_dyn(I, 0, onnx_full(I, s, n, c, dt, onnx_out(I, 0)));
}

/* A one-element V_SYM's dim (a symbolic or constant scalar), or DIM_NONE. */
static Dim sym_scalar(Imp *I, uint32_t k) {
  Val *x = onnx_val(I, k);
  return x->kind == V_SYM && x->numel == 1 ? ir_dim_subst(I->g, x->d[0]) : DIM_NONE;
}

/* Range(start, limit, delta) = start + delta · arange(n), n = ceil((limit - start) / delta).
 * delta must be a constant; start and limit may be symbolic integers (positions from a past
 * length P: Range(P, P + 1)) when the count is an exact quotient. */
static dvm_status op_range(Imp *I) {
  int64_t ks = onnx_arg(I, 0, true), kl = ks >= 0 ? onnx_arg(I, 1, true) : -2, kd = kl >= 0 ? onnx_arg(I, 2, true) : -2;
  if (kd < 0) return I->err->code;
  DType dt = onnx_val_dtype(I, (uint32_t)ks);
  double s, l, dl;
  Dim n = DIM_NONE, sd = DIM_NONE;
  bool cs = onnx_scalar(I, (uint32_t)ks, &s), cl = onnx_scalar(I, (uint32_t)kl, &l),
       cd = onnx_scalar(I, (uint32_t)kd, &dl);
  const double big = 9007199254740992.0; /* 2^53: exact in a double */
  if (!cd) onnx_need(I, kd);
  if (!cd || dl == 0 || !(fabs(dl) < big) || (cs && !(fabs(s) < big)))
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "Range needs a constant, nonzero delta (and a start within 2^53)");
  /* bounds from an input's values: the count's sign must be known (ONNX makes a negative
     count empty), so they stay symbolic where limit - start is certain not to be negative
     and delta is positive */
  Dim vs = cs ? DIM_NONE : sym_scalar(I, (uint32_t)ks), vl = cl ? DIM_NONE : sym_scalar(I, (uint32_t)kl);
  if (vl != DIM_NONE && !cs && vs == DIM_NONE) /* judged once the start is known */
    return onnx_need(I, ks), onnx_fail(I, DVM_ERR_UNSUPPORTED, "Range: the start must follow from shapes");
  if (vs != DIM_NONE || vl != DIM_NONE) {
    Dim sd0 = cs ? ir_dim_const(I->g, onnx_to_i64(s)) : vs, ld0 = cl ? ir_dim_const(I->g, onnx_to_i64(l)) : vl;
    Dim span = ir_dim_sub(I->g, ld0, sd0);
    if ((span != DIM_NONE && onnx_value_dim(I, span, dl > 0 ? 0 : INT64_MAX)) ||
        (dl <= 0 && (onnx_value_dim(I, ld0, INT64_MAX) || onnx_value_dim(I, sd0, INT64_MAX))))
      return onnx_fail(I, DVM_ERR_UNSUPPORTED, "Range: bounds given as a graph input are needed when the "
                       "model is loaded");
  }
  if (cs && cl) {
    double c = ceil((l - s) / dl);
    if (!(c < big)) return onnx_fail(I, DVM_ERR_OVERFLOW, "Range of %g elements", c);
    n = ir_dim_const(I->g, c > 0 ? (int64_t)c : 0);
    sd = s == trunc(s) ? ir_dim_const(I->g, (int64_t)s) : DIM_NONE;
  } else if (!ir_dtype_is_float(dt) && dl == trunc(dl)) { /* symbolic integers: an exact count */
    sd = cs ? ir_dim_const(I->g, (int64_t)s) : sym_scalar(I, (uint32_t)ks);
    Dim ld = cl ? ir_dim_const(I->g, onnx_to_i64(l)) : sym_scalar(I, (uint32_t)kl);
    int64_t c;
    Dim span = sd != DIM_NONE && ld != DIM_NONE ? ir_dim_sub(I->g, ld, sd) : DIM_NONE;
    if (span != DIM_NONE && onnx_dim_const(I, span, &c)) { /* a constant count: ceil, at least 0 */
      double q = ceil((double)c / dl);
      n = ir_dim_const(I->g, q > 0 ? (int64_t)q : 0);
    } else if (span != DIM_NONE) {
      n = onnx_dim_div(I->g, span, ir_dim_const(I->g, (int64_t)dl));
    }
  } else if (cs && onnx_val(I, (uint32_t)kl)->kind == V_SYM && onnx_val(I, (uint32_t)kl)->numel == 1 &&
             s == trunc(s) && dl == trunc(dl)) { /* a float sequence up to a symbolic length */
    Dim span = ir_dim_sub(I->g, sym_scalar(I, (uint32_t)kl), ir_dim_const(I->g, (int64_t)s));
    n = onnx_dim_div(I->g, span, ir_dim_const(I->g, (int64_t)dl));
  }
  if (n == DIM_NONE) {
    if (!cs) onnx_need(I, ks);
    if (!cl) onnx_need(I, kl);
  }
  if (n == DIM_NONE)
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "Range: the element count must follow from shapes "
                     "(an exact multiple of delta)");
  int64_t cn;
  if (onnx_dim_const(I, n, &cn) && !ir_dtype_is_float(dt) && cn <= SYM_MAX && sd != DIM_NONE) { /* small: dims */
    Dim d[SYM_MAX];
    for (int64_t i = 0; i < cn; i++) d[i] = ir_dim_add(I->g, sd, ir_dim_const(I->g, i * (int64_t)dl));
    return onnx_def(I, 0, onnx_val_sym(I, dt, 1, &cn, d));
  }
  NodeDraft d = {.op = OP_ARANGE};
  onnx_at_dim(&d, AK_N, n);
  onnx_at_dtype(&d, AK_DTYPE, dt);
  bool scale = dl != 1, shift = !cs || s != 0;
  int64_t y = onnx_add(I, &d, scale || shift ? NULL : onnx_out(I, 0));
  if (y >= 0 && scale) {
    int64_t lit = onnx_literal(I, dl, dt);
    y = lit < 0 ? -1 : onnx_binary(I, OP_MUL, (uint32_t)y, (uint32_t)lit, shift ? NULL : onnx_out(I, 0));
  }
  if (y >= 0 && shift) { /* start: a literal, or the symbolic start's value */
    uint32_t sv;
    int64_t st = cs ? onnx_literal(I, s, dt) : onnx_use(I, (uint32_t)ks, &sv) ? -1 : (int64_t)sv;
    y = st < 0 ? -1 : onnx_binary(I, OP_ADD, (uint32_t)y, (uint32_t)st, onnx_out(I, 0));
  }
  return onnx_def_dyn(I, 0, y);
}

static dvm_status op_identity(Imp *I, bool dropout) {
  int64_t k = onnx_arg(I, 0, true);
  if (k < 0) return I->err->code;
  if (dropout) {
    int64_t t = onnx_arg(I, 2, false);
    double on;
    if (t == -2) return I->err->code;
    if (t >= 0 && (!onnx_scalar(I, (uint32_t)t, &on) || on != 0))
      return onnx_fail(I, DVM_ERR_UNSUPPORTED, "Dropout in training mode (dvm runs inference)");
    if (onnx_out(I, 1)) { /* the mask: all true in inference */
      Dim s[R];
      int r = onnx_dims(I, (uint32_t)k, s);
      if (onnx_def_dyn(I, 1, onnx_full(I, s, r, 1, DT_BOOL, onnx_out(I, 1)))) return I->err->code;
    }
  }
  return onnx_def(I, 0, (uint32_t)k);
}

/* The root of a recognized pattern (read.c): one dvm op on the pattern's input. */
static dvm_status op_fused(Imp *I) {
  uint32_t k, v;
  if (!onnx_map_get(&I->names, I->fuse_x, &k))
    return onnx_fail(I, DVM_ERR_GRAPH, "input '%s' is not defined", I->fuse_x);
  if (onnx_use(I, k, &v)) return I->err->code;
  return onnx_def_dyn(I, 0, onnx_unary(I, I->fuse == FUSE_GELU ? OP_GELU : OP_SILU, v, onnx_out(I, 0)));
}

/* ---- the table ------------------------------------------------------------------------------ */

static const struct {
  const char *name;
  Op op;
} unary_ops[] = {{"Sqrt", OP_SQRT},       {"Reciprocal", OP_RECIPROCAL}, {"Neg", OP_NEG},
                 {"Abs", OP_ABS},         {"Exp", OP_EXP},               {"Log", OP_LOG},
                 {"Tanh", OP_TANH},       {"Sigmoid", OP_SIGMOID},       {"Relu", OP_RELU},
                 {"Erf", OP_ERF},         {"Not", OP_NOT},               {"Sin", OP_SIN},
                 {"Cos", OP_COS},         {"Floor", OP_FLOOR},           {"Ceil", OP_CEIL},
                 {"Round", OP_ROUND},     {"Sign", OP_SIGN}},
  binary_ops[] = {{"Add", OP_ADD},     {"Sub", OP_SUB},          {"Mul", OP_MUL},
                  {"Div", OP_DIV},     {"Pow", OP_POW},          {"Equal", OP_EQ},
                  {"Less", OP_LT},     {"Greater", OP_GT},       {"LessOrEqual", OP_LE},
                  {"GreaterOrEqual", OP_GE}, {"And", OP_AND},    {"Or", OP_OR}},
  reduce_ops[] = {{"ReduceMean", OP_REDUCE_MEAN}, {"ReduceSum", OP_REDUCE_SUM},
                  {"ReduceMax", OP_REDUCE_MAX},   {"ReduceMin", OP_REDUCE_MIN},
                  {"ReduceProd", OP_REDUCE_PROD}};

#define FIND(table, t)                                                                     \
  for (size_t i = 0; i < sizeof table / sizeof *table; i++)                                \
    if (!strcmp(table[i].name, t))

dvm_status onnx_node(Imp *I) {
  const char *t = I->node->op_type;
  if (I->fuse) return op_fused(I);
  FIND(unary_ops, t) return op_unary(I, unary_ops[i].op);
  FIND(binary_ops, t) return op_binary(I, binary_ops[i].op);
  FIND(reduce_ops, t) return op_reduce(I, reduce_ops[i].op);
  if (!strcmp(t, "Max")) return op_variadic(I, OP_MAX);
  if (!strcmp(t, "Min")) return op_variadic(I, OP_MIN);
  if (!strcmp(t, "Where")) return op_where(I);
  if (!strcmp(t, "Cast")) return op_cast(I);
  if (!strcmp(t, "Softmax")) return op_softmax(I, OP_SOFTMAX);
  if (!strcmp(t, "LogSoftmax")) return op_softmax(I, OP_LOG_SOFTMAX);
  if (!strcmp(t, "LayerNormalization")) return op_layernorm(I);
  if (!strcmp(t, "MatMul")) return op_matmul(I);
  if (!strcmp(t, "Gemm")) return op_gemm(I);
  if (!strcmp(t, "Shape")) return op_shape(I);
  if (!strcmp(t, "Reshape")) return op_reshape(I);
  if (!strcmp(t, "Flatten")) return op_flatten(I);
  if (!strcmp(t, "Transpose")) return op_transpose(I);
  if (!strcmp(t, "Gather")) return op_gather(I);
  if (!strcmp(t, "Concat")) return op_concat(I);
  if (!strcmp(t, "Slice")) return op_slice(I);
  if (!strcmp(t, "Split")) return op_split(I);
  if (!strcmp(t, "Squeeze")) return op_unsqueeze(I, true);
  if (!strcmp(t, "Unsqueeze")) return op_unsqueeze(I, false);
  if (!strcmp(t, "Expand")) return op_expand(I);
  if (!strcmp(t, "Constant")) return op_constant(I);
  if (!strcmp(t, "ConstantOfShape")) return op_constant_of_shape(I);
  if (!strcmp(t, "Range")) return op_range(I);
  if (!strcmp(t, "Resize")) return onnx_resize(I);
  if (!strcmp(t, "Identity")) return op_identity(I, false);
  if (!strcmp(t, "Dropout")) return op_identity(I, true);
  dvm_status st;
  if (onnx_composed(I, t, &st) || onnx_windowed(I, t, &st) || onnx_quantized(I, t, &st) ||
      onnx_signal(I, t, &st) || onnx_einsum(I, t, &st))
    return st;
  return onnx_fail(I, DVM_ERR_UNSUPPORTED, "op %s is not supported (docs/onnx.md lists the ops "
                   "dvm imports)", t);
}
