/* runtime/ref.c — the reference executor: runs a bound Graph op by op, unfused, in
 * double precision. It is the oracle of every differential test and `--tier ref`.
 * (Why this file is long: one kernel per op behind one switch; see the end of this
 * comment.)
 *
 * Input:  a Graph (ir.h), a Binding (every value's concrete shape and element count,
 *         already checked against every recorded constraint by rt_bind), and the
 *         tensors of the input and param nodes in vals[].
 * Output: a new Tensor in vals[o] for every graph output o (a copy if o is an input);
 *         on failure vals[] is untouched and err names the graph line and the op.
 * rt_ref_run_nodes evaluates any subset of nodes in graph order the same way, reading
 * values from outside the subset from vals[] (literals are computed): the kernel-level
 * reference path runs each fused kernel through it.
 *
 * Invariants:
 * - Every value lives in a private buffer of Cells, one per element: `f` (double) for
 *   float dtypes, `i` (int64) for integer and bool dtypes. Each op computes in double /
 *   int64 and rounds its result to the value's dtype as it stores it (docs/ops.md
 *   "Reference precision"): f32 through float, f16/bf16 through float then half, i32
 *   by keeping the low 32 bits, bool as x != 0. Reductions, matmul and the
 *   normalizations accumulate in double (int64 for integers).
 * - Integer arithmetic wraps in two's complement at the result dtype's width (docs/ops.md;
 *   NumPy, LLVM integer ops without nsw): add sub mul neg abs pow, reduce_sum/prod and
 *   matmul accumulation are computed in uint64_t (no C undefined behaviour) and then
 *   narrowed, so i64 wraps modulo 2^64 and i32 modulo 2^32 (wrapping mod 2^64 first
 *   loses nothing, as 2^32 divides 2^64). abs(INT_MIN) and INT_MIN / -1 are INT_MIN.
 *   There is no overflow error; integer division by zero is a DVM_ERR_RUNTIME error
 *   naming the line.
 * - cast: float -> integer truncates toward zero and saturates at the target range (NaN
 *   gives 0); integer -> narrower integer wraps (NumPy astype); any -> bool is x != 0;
 *   bool -> integer is 0/1. Attribute constants (literal, full, clip bounds) and arange
 *   values still saturate into an integer dtype, so a clip bound stays monotone.
 * - Buffers are freed after their last use (computed up front); outputs live to the end.
 * - Shapes come from the Binding and are trusted, but every op re-checks the few
 *   relations it indexes by (broadcast compatibility, element counts), so a broken
 *   invariant is an error, never an out-of-bounds access.
 *
 * Why one file of ~1000 lines (past ~800 lines): it is one switch over Op (run_node)
 * plus one short kernel per op kind, all sharing the private Cell/Walk types; splitting
 * it would only add a private header that exposes them. Sections follow the op kinds of
 * ops.def in order: sources, elementwise, reductions, normalizations, layout, matmul,
 * constants, then the driver. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

/* One element of a value: which member is live follows the value's dtype. */
typedef union Cell {
  double f;  /* f32, f16, bf16 */
  int64_t i; /* i32, i64, bool (0/1) */
} Cell;

/* One run: the graph, its binding, and a buffer per value (NULL when not live). */
typedef struct Run {
  const Graph *g;
  const Binding *b;
  Cell **buf;
  Err *err;
} Run;

/* A strided walk over a shape in C order, carrying the offsets of up to WALK_MAX
 * operands: operand j is at off[j], which moves by stride[j][d] along dim d (0 on a
 * broadcast dim, negative for a reversed slice). */
enum { WALK_MAX = 3 };
typedef struct Walk {
  int rank, n;
  int64_t shape[DVM_MAX_RANK];
  int64_t stride[WALK_MAX][DVM_MAX_RANK];
  int64_t idx[DVM_MAX_RANK];
  int64_t off[WALK_MAX];
} Walk;

static const double SQRT1_2 = 0.70710678118654752440;     /* 1/sqrt(2) */
static const double SQRT_2_PI = 0.79788456080286535588;   /* sqrt(2/pi) */
static const double TWO63 = 9223372036854775808.0;        /* 2^63 */

/* ---- small helpers ---------------------------------------------------------------------- */

/* Report an error at node v's graph line: "y = gather: message". */
__attribute__((format(printf, 4, 5))) static dvm_status fail(const Run *r, uint32_t v,
                                                             dvm_status code,
                                                             const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const Node *n = ir_node(r->g, v);
  const char *name = ir_s(r->g, n->name);
  if (name[0])
    return ir_errl(r->err, code, r->g->file, n->line, "%s = %s: %s", name, ir_ops[n->op].name,
                   msg);
  return ir_errl(r->err, code, r->g->file, n->line, "%s: %s", ir_ops[n->op].name, msg);
}

/* A broken invariant between binder and executor: reported, never followed. */
static dvm_status bug(const Run *r, uint32_t v, const char *what) {
  return fail(r, v, DVM_ERR_SHAPE, "internal: %s", what);
}

static int rank_of(const Run *r, uint32_t v) { return r->g->nodes.v[v].rank; }
static const int64_t *shape_of(const Run *r, uint32_t v) { return r->b->dims + r->b->off[v]; }
static int64_t numel_of(const Run *r, uint32_t v) { return r->b->numel[v]; }
static DType dtype_of(const Run *r, uint32_t v) { return (DType)r->g->nodes.v[v].dtype; }
static bool is_float(const Run *r, uint32_t v) { return ir_dtype_is_float(dtype_of(r, v)); }
static uint32_t arg(const Run *r, uint32_t v, uint32_t k) { return ir_operand(r->g, v, k); }
static const Cell *in(const Run *r, uint32_t v, uint32_t k) { return r->buf[arg(r, v, k)]; }
static Op op_of(const Run *r, uint32_t v) { return (Op)r->g->nodes.v[v].op; }

/* The entries of a list attribute: NULL when absent, non-NULL (maybe empty) when given. */
static const int64_t *list_of(const Run *r, uint32_t v, AttrKey k, uint32_t *n) {
  static const int64_t empty[1] = {0};
  const Attr *a = ir_attr(r->g, v, k);
  *n = a ? a->n : 0;
  if (!a) return NULL;
  return a->n ? r->g->lists.v + a->off : empty;
}

/* Product of shape[lo..hi). */
static int64_t prod(const int64_t *shape, int lo, int hi) {
  int64_t p = 1;
  for (int d = lo; d < hi; d++) p *= shape[d];
  return p;
}

/* C-order strides of a shape. */
static void contiguous(int rank, const int64_t *shape, int64_t *stride) {
  int64_t s = 1;
  for (int d = rank - 1; d >= 0; d--) {
    stride[d] = s;
    s *= shape[d];
  }
}

/* A buffer of n cells (at least one, so that empty values still have one). */
static Cell *cells_new(int64_t n) {
  if (n < 0 || (uint64_t)n > SIZE_MAX / sizeof(Cell)) return NULL;
  return malloc((size_t)(n > 0 ? n : 1) * sizeof(Cell));
}

/* ---- dtype rounding --------------------------------------------------------------------- */

/* Round a double to a float dtype's precision. */
static double round_f(DType dt, double x) {
  switch (dt) {
  case DT_F32: return (double)(float)x;
  case DT_F16: return rt_f16_to_f32(rt_f32_to_f16((float)x));
  case DT_BF16: return rt_bf16_to_f32(rt_f32_to_bf16((float)x));
  default: return x;
  }
}

/* Integer cells hold the value, sign- or zero-extended to 64 bits; a u64 cell holds the
 * value's bits (values from 2^63 up read as negative int64s). Signed comparisons are right
 * for every integer dtype but u64, whose cells compare after `ord` flips the top bit. */
static int64_t ord(DType dt, int64_t x) { return dt == DT_U64 ? (int64_t)((uint64_t)x ^ (1ull << 63)) : x; }

/* An integer cell as a double (u64 as unsigned). */
static double i2f(DType dt, int64_t x) { return dt == DT_U64 ? (double)(uint64_t)x : (double)x; }

/* A double to int64: truncate toward zero, saturate, NaN gives 0. */
static int64_t f2i(double x) {
  if (isnan(x)) return 0;
  if (x >= TWO63) return INT64_MAX;
  if (x < -TWO63) return INT64_MIN;
  return (int64_t)x;
}

/* A double to a cell of integer dtype dt: truncate toward zero, saturate to the dtype's
 * range, NaN gives 0. */
static int64_t f2cell(DType dt, double x) {
  if (dt != DT_U64 || isnan(x) || x < TWO63) return ir_dtype_saturate(dt, f2i(x));
  return x >= 2 * TWO63 ? -1 : (int64_t)(uint64_t)x; /* 2^64 - 1 saturated, else the bits */
}

/* Convert one element of dtype `from` to dtype `to` by the cast rules of docs/ops.md:
 * float -> integer truncates and saturates, integer -> integer wraps, anything -> bool is
 * x != 0. */
static Cell convert(DType from, Cell c, DType to) {
  Cell o;
  bool from_float = ir_dtype_is_float(from);
  if (to == DT_F32 && !from_float) /* one rounding (through a double, 64-bit ones round twice) */
    o.f = from == DT_U64 ? (float)(uint64_t)c.i : (float)c.i;
  else if (ir_dtype_is_float(to))
    o.f = round_f(to, from_float ? c.f : i2f(from, c.i));
  else if (to == DT_BOOL)
    o.i = from_float ? c.f != 0 : c.i != 0;
  else
    o.i = from_float ? f2cell(to, c.f) : ir_dtype_wrap(to, (uint64_t)c.i);
  return o;
}

/* An integer constant (attribute or arange value) as a cell of dtype dt: rounded to a
 * float dtype, saturated into an integer one (a clip bound past the range stays past it). */
static Cell int_cell(int64_t x, DType dt) {
  Cell o;
  if (ir_dtype_is_float(dt))
    o.f = round_f(dt, (double)x);
  else
    o.i = ir_dtype_saturate(dt, x);
  return o;
}

/* ---- the strided walk ------------------------------------------------------------------- */

/* Start a walk over `shape` with n operands, all at offset 0 with stride 0. */
static void walk_init(Walk *w, int rank, const int64_t *shape, int n) {
  memset(w, 0, sizeof *w);
  w->rank = rank;
  w->n = n;
  memcpy(w->shape, shape, (size_t)rank * sizeof *shape);
}

/* Advance to the next element in C order (past the last one it wraps to the first). */
static void walk_step(Walk *w) {
  for (int d = w->rank - 1; d >= 0; d--) {
    for (int j = 0; j < w->n; j++) w->off[j] += w->stride[j][d];
    if (++w->idx[d] < w->shape[d]) return;
    for (int j = 0; j < w->n; j++) w->off[j] -= w->stride[j][d] * w->shape[d];
    w->idx[d] = 0;
  }
}

/* Strides reading an operand (shape `is`, strides `istr`) along the walk's shape by
 * NumPy broadcasting (right-aligned; stride 0 on size-1 and missing dims). False if the
 * operand does not broadcast to the shape. */
static bool walk_bcast(Walk *w, int j, int irank, const int64_t *is, const int64_t *istr) {
  if (irank > w->rank) return false;
  for (int d = 0; d < w->rank; d++) {
    int k = d - (w->rank - irank);
    if (k < 0 || is[k] == 1)
      w->stride[j][d] = 0;
    else if (is[k] == w->shape[d])
      w->stride[j][d] = istr[k];
    else
      return false;
  }
  return true;
}

/* Operand j of the walk is value u, contiguous, broadcast to the walk's shape. */
static bool walk_value(const Run *r, Walk *w, int j, uint32_t u) {
  int64_t st[DVM_MAX_RANK];
  contiguous(rank_of(r, u), shape_of(r, u), st);
  return walk_bcast(w, j, rank_of(r, u), shape_of(r, u), st);
}

/* A walk over v's shape whose operands are v's first n operands, broadcast. */
static bool walk_operands(const Run *r, uint32_t v, Walk *w, int n) {
  walk_init(w, rank_of(r, v), shape_of(r, v), n);
  for (int j = 0; j < n; j++)
    if (!walk_value(r, w, j, arg(r, v, (uint32_t)j))) return false;
  return true;
}

/* out[i] = src[walk offset] for every element of v (layout ops read through views). */
static void gather_view(const Run *r, uint32_t v, Walk *w, const Cell *src, Cell *out) {
  int64_t n = numel_of(r, v);
  for (int64_t i = 0; i < n; i++, walk_step(w)) out[i] = src[w->off[0]];
}

/* ---- sources ---------------------------------------------------------------------------- */

/* Copy an input or param tensor into cells; it must match the node and the binding. */
static dvm_status run_source(const Run *r, uint32_t v, const Tensor *t, Cell *out) {
  if (!t) return fail(r, v, DVM_ERR_USAGE, "no tensor bound to this %s", ir_ops[op_of(r, v)].name);
  if (t->dtype != dtype_of(r, v) || t->rank != rank_of(r, v) || t->numel != numel_of(r, v) ||
      memcmp(t->shape, shape_of(r, v), (size_t)t->rank * sizeof(int64_t)) != 0)
    return fail(r, v, DVM_ERR_USAGE, "bound tensor does not match the binding");
  bool fl = is_float(r, v);
  for (int64_t i = 0; i < t->numel; i++) {
    if (fl)
      out[i].f = rt_get_f(t->data, t->dtype, i);
    else
      out[i].i = rt_get_i(t->data, t->dtype, i);
  }
  return DVM_OK;
}

/* An AV_FLOAT attribute (literal value, full value, clip bounds) as a cell of dtype dt. */
static Cell attr_cell(const Attr *a, DType dt) {
  Cell c;
  if (a->isint) return int_cell(a->i, dt);
  c.f = a->f;
  return convert(DT_F64, c, dt);
}

/* ---- elementwise: unary ----------------------------------------------------------------- */

/* A unary op on a double. */
static double unary_f(Op op, double x) {
  switch (op) {
  case OP_NEG: return -x;
  case OP_ABS: return fabs(x);
  case OP_EXP: return exp(x);
  case OP_LOG: return log(x);
  case OP_SQRT: return sqrt(x);
  case OP_RSQRT: return 1.0 / sqrt(x);
  case OP_RECIPROCAL: return 1.0 / x;
  case OP_TANH: return tanh(x);
  case OP_SIGMOID: return 1.0 / (1.0 + exp(-x));
  case OP_RELU: return isnan(x) || x > 0 ? x : 0.0;
  case OP_GELU: return 0.5 * x * (1.0 + erf(x * SQRT1_2));
  case OP_GELU_TANH: return 0.5 * x * (1.0 + tanh(SQRT_2_PI * (x + 0.044715 * x * x * x)));
  case OP_SILU: return x * (1.0 / (1.0 + exp(-x)));
  case OP_ERF: return erf(x);
  case OP_SIN: return sin(x);
  case OP_COS: return cos(x);
  case OP_FLOOR: return floor(x);
  case OP_CEIL: return ceil(x);
  case OP_ROUND: return nearbyint(x); /* default rounding mode: half to even */
  case OP_SIGN: return isnan(x) ? x : x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0;
  default: return NAN;
  }
}

/* A unary op on an int64 (integer or bool), wrapping (abs(INT_MIN) = INT_MIN); the
 * result is the low 64 bits, narrowed by ir_dtype_wrap. False on a float-only op. */
static bool unary_i(Op op, DType dt, int64_t x, uint64_t *out) {
  if (ir_dtype_is_unsigned(dt) && (op == OP_ABS || op == OP_RELU || op == OP_SIGN)) {
    *out = op == OP_SIGN ? x != 0 : (uint64_t)x;
    return true;
  }
  switch (op) {
  case OP_NEG: *out = 0u - (uint64_t)x; return true;
  case OP_ABS: *out = x < 0 ? 0u - (uint64_t)x : (uint64_t)x; return true;
  case OP_RELU: *out = (uint64_t)(x > 0 ? x : 0); return true;
  case OP_FLOOR:
  case OP_CEIL:
  case OP_ROUND: *out = (uint64_t)x; return true;
  case OP_SIGN: *out = (uint64_t)(int64_t)((x > 0) - (x < 0)); return true;
  case OP_NOT: *out = !x; return true;
  default: return false;
  }
}

/* Unary elementwise ops: same shape in and out. */
static dvm_status run_unary(const Run *r, uint32_t v, Cell *out) {
  const Cell *x = in(r, v, 0);
  Op op = op_of(r, v);
  DType dt = dtype_of(r, v);
  int64_t n = numel_of(r, v);
  if (numel_of(r, arg(r, v, 0)) != n) return bug(r, v, "operand and result sizes differ");
  if (is_float(r, v)) {
    for (int64_t i = 0; i < n; i++) out[i].f = round_f(dt, unary_f(op, x[i].f));
    return DVM_OK;
  }
  for (int64_t i = 0; i < n; i++) {
    uint64_t y;
    if (!unary_i(op, dt, x[i].i, &y)) return bug(r, v, "float-only op on an integer dtype");
    out[i].i = ir_dtype_wrap(dt, y);
  }
  return DVM_OK;
}

/* ---- elementwise: binary ---------------------------------------------------------------- */

/* A binary op on doubles; comparisons give 0 or 1. max/min propagate NaN (NumPy). */
static double binary_f(Op op, double a, double b) {
  switch (op) {
  case OP_ADD: return a + b;
  case OP_SUB: return a - b;
  case OP_MUL: return a * b;
  case OP_DIV: return a / b;
  case OP_POW: return pow(a, b);
  case OP_FMOD: return fmod(a, b);
  case OP_MAX: return isnan(a) ? a : isnan(b) ? b : a >= b ? a : b;
  case OP_MIN: return isnan(a) ? a : isnan(b) ? b : a <= b ? a : b;
  case OP_EQ: return a == b;
  case OP_NE: return a != b;
  case OP_LT: return a < b;
  case OP_LE: return a <= b;
  case OP_GT: return a > b;
  case OP_GE: return a >= b;
  case OP_AND: return a != 0 && b != 0;
  case OP_OR: return a != 0 || b != 0;
  default: return NAN;
  }
}

/* Integer pow by repeated multiplication, wrapping modulo 2^64 (square-and-multiply
 * gives the same low bits); a negative exponent gives 0 unless the base is 1 or -1. */
static uint64_t ipow(int64_t a, int64_t e) {
  if (e < 0) return (uint64_t)(a == 1 ? 1 : a == -1 ? ((e & 1) ? -1 : 1) : 0);
  uint64_t y = 1, b = (uint64_t)a;
  while (e) {
    if (e & 1) y *= b;
    e >>= 1;
    if (e) b *= b;
  }
  return y;
}

/* A binary op on int64s (integer or bool operands of dtype dt), giving the low 64 bits
 * of the result for ir_dtype_wrap to narrow: add sub mul pow wrap, division truncates toward
 * zero (INT64_MIN / -1 wraps to INT64_MIN). False on division by zero. u64 cells divide
 * and compare as unsigned; every narrower dtype's cells hold its values exactly. */
static bool binary_i(Op op, DType dt, int64_t a, int64_t b, uint64_t *out) {
  uint64_t ua = (uint64_t)a, ub = (uint64_t)b;
  if (dt == DT_U64 && op == OP_DIV) {
    if (!ub) return false;
    *out = ua / ub;
    return true;
  }
  if (dt == DT_U64 && op == OP_POW) {
    uint64_t y = 1, base = ua;
    for (; ub; ub >>= 1, base *= base) y *= ub & 1 ? base : 1;
    *out = y;
    return true;
  }
  a = ord(dt, a), b = ord(dt, b);
  switch (op) {
  case OP_ADD: *out = ua + ub; return true;
  case OP_SUB: *out = ua - ub; return true;
  case OP_MUL: *out = ua * ub; return true;
  case OP_DIV:
    if (b == 0) return false;
    *out = a == INT64_MIN && b == -1 ? ua : (uint64_t)(a / b);
    return true;
  case OP_POW: *out = ipow(a, b); return true;
  case OP_MAX: *out = a >= b ? ua : ub; return true;
  case OP_MIN: *out = a <= b ? ua : ub; return true;
  case OP_EQ: *out = a == b; return true;
  case OP_NE: *out = a != b; return true;
  case OP_LT: *out = a < b; return true;
  case OP_LE: *out = a <= b; return true;
  case OP_GT: *out = a > b; return true;
  case OP_GE: *out = a >= b; return true;
  case OP_AND: *out = a && b; return true;
  case OP_OR: *out = a || b; return true;
  default: *out = 0; return true;
  }
}

/* Binary elementwise ops with NumPy broadcasting; comparisons store bool. */
static dvm_status run_binary(const Run *r, uint32_t v, Cell *out) {
  Walk w;
  if (!walk_operands(r, v, &w, 2)) return bug(r, v, "operands do not broadcast to the result");
  const Cell *a = in(r, v, 0), *b = in(r, v, 1);
  Op op = op_of(r, v);
  DType dt = dtype_of(r, v);
  DType adt = dtype_of(r, arg(r, v, 0));
  bool fl = ir_dtype_is_float(adt), cmp = ir_ops[op].flags & F_CMP;
  int64_t n = numel_of(r, v);
  for (int64_t i = 0; i < n; i++, walk_step(&w)) {
    Cell x = a[w.off[0]], y = b[w.off[1]];
    if (fl) {
      double z = binary_f(op, x.f, y.f);
      if (cmp)
        out[i].i = z != 0;
      else
        out[i].f = round_f(dt, z);
      continue;
    }
    uint64_t z;
    if (!binary_i(op, adt, x.i, y.i, &z))
      return fail(r, v, DVM_ERR_RUNTIME, "integer division by zero (%lld / 0)", (long long)x.i);
    out[i].i = ir_dtype_wrap(dt, z);
  }
  return DVM_OK;
}

/* ---- elementwise: select, clip, cast ---------------------------------------------------- */

/* select(c, a, b): all three broadcast together; values are already of v's dtype. */
static dvm_status run_select(const Run *r, uint32_t v, Cell *out) {
  Walk w;
  if (!walk_operands(r, v, &w, 3)) return bug(r, v, "operands do not broadcast to the result");
  const Cell *c = in(r, v, 0), *a = in(r, v, 1), *b = in(r, v, 2);
  int64_t n = numel_of(r, v);
  for (int64_t i = 0; i < n; i++, walk_step(&w)) out[i] = c[w.off[0]].i ? a[w.off[1]] : b[w.off[2]];
  return DVM_OK;
}

/* clip(x, lo=, hi=) = min(max(x, lo), hi), NaN-propagating; a missing bound is none.
 * On integers the bounds are cast to x's dtype first: truncation is monotone, so this
 * equals clipping in the reals and then casting. */
static dvm_status run_clip(const Run *r, uint32_t v, Cell *out) {
  const Cell *x = in(r, v, 0);
  const Attr *lo = ir_attr(r->g, v, AK_LO), *hi = ir_attr(r->g, v, AK_HI);
  DType dt = dtype_of(r, v);
  Cell l = {0}, h = {0};
  if (lo) l = attr_cell(lo, dt);
  if (hi) h = attr_cell(hi, dt);
  int64_t n = numel_of(r, v);
  if (numel_of(r, arg(r, v, 0)) != n) return bug(r, v, "operand and result sizes differ");
  bool fl = is_float(r, v);
  for (int64_t i = 0; i < n; i++) {
    Cell y = x[i];
    if (fl) {
      if (lo) y.f = binary_f(OP_MAX, y.f, l.f);
      if (hi) y.f = binary_f(OP_MIN, y.f, h.f);
    } else {
      if (lo && ord(dt, y.i) < ord(dt, l.i)) y.i = l.i;
      if (hi && ord(dt, y.i) > ord(dt, h.i)) y.i = h.i;
    }
    out[i] = y;
  }
  return DVM_OK;
}

/* cast(x, to=): float -> integer truncates and saturates, integer -> integer wraps,
 * x != 0 to bool, round to floats. */
static dvm_status run_cast(const Run *r, uint32_t v, Cell *out) {
  const Cell *x = in(r, v, 0);
  DType from = dtype_of(r, arg(r, v, 0)), to = dtype_of(r, v);
  int64_t n = numel_of(r, v);
  if (numel_of(r, arg(r, v, 0)) != n) return bug(r, v, "operand and result sizes differ");
  for (int64_t i = 0; i < n; i++) out[i] = convert(from, x[i], to);
  return DVM_OK;
}

/* ---- reductions ------------------------------------------------------------------------- */

/* Fold one element into an accumulator; integer sum and product wrap modulo 2^64 (the
 * result is narrowed to the dtype afterwards, which wraps it at the dtype's width). */
static void fold(Op op, DType dt, Cell *acc, Cell x) {
  bool fl = ir_dtype_is_float(dt);
  if (fl) {
    switch (op) {
    case OP_REDUCE_PROD: acc->f *= x.f; break;
    case OP_REDUCE_MAX: acc->f = binary_f(OP_MAX, acc->f, x.f); break;
    case OP_REDUCE_MIN: acc->f = binary_f(OP_MIN, acc->f, x.f); break;
    default: acc->f += x.f; break;
    }
    return;
  }
  switch (op) {
  case OP_REDUCE_PROD: acc->i = (int64_t)((uint64_t)acc->i * (uint64_t)x.i); break;
  case OP_REDUCE_MAX: acc->i = ord(dt, x.i) > ord(dt, acc->i) ? x.i : acc->i; break;
  case OP_REDUCE_MIN: acc->i = ord(dt, x.i) < ord(dt, acc->i) ? x.i : acc->i; break;
  default: acc->i = (int64_t)((uint64_t)acc->i + (uint64_t)x.i); break;
  }
}

/* The identity of a reduction (max/min start at the far end of the range). */
static Cell identity(Op op, DType dt) {
  Cell c;
  bool fl = ir_dtype_is_float(dt);
  switch (op) {
  case OP_REDUCE_PROD: if (fl) c.f = 1; else c.i = 1; break;
  case OP_REDUCE_MAX: if (fl) c.f = -INFINITY; else c.i = ord(dt, INT64_MIN); break;
  case OP_REDUCE_MIN: if (fl) c.f = INFINITY; else c.i = ord(dt, INT64_MAX); break;
  default: if (fl) c.f = 0; else c.i = 0; break;
  }
  return c;
}

/* reduce_*(x, axes=, keepdims=): walk x in order, folding each element into the output
 * element it maps to (output strides are 0 along reduced axes). */
static dvm_status run_reduce(const Run *r, uint32_t v, Cell *out) {
  uint32_t xv = arg(r, v, 0), na;
  int rank = rank_of(r, xv);
  const int64_t *xs = shape_of(r, xv), *axes = list_of(r, v, AK_AXES, &na);
  bool red[DVM_MAX_RANK] = {false};
  for (int d = 0; d < rank; d++) red[d] = axes == NULL;
  for (uint32_t k = 0; k < na; k++) {
    int ax = ir_axis(axes[k], rank);
    if (ax < 0) return fail(r, v, DVM_ERR_GRAPH, "axis %lld out of range", (long long)axes[k]);
    red[ax] = true;
  }
  int64_t kshape[DVM_MAX_RANK], ostr[DVM_MAX_RANK], count = 1;
  for (int d = 0; d < rank; d++) {
    kshape[d] = red[d] ? 1 : xs[d];
    if (red[d]) count *= xs[d];
  }
  int64_t on = numel_of(r, v);
  if (prod(kshape, 0, rank) != on) return bug(r, v, "result size disagrees with the binding");
  contiguous(rank, kshape, ostr);
  Walk w;
  walk_init(&w, rank, xs, 1);
  for (int d = 0; d < rank; d++) w.stride[0][d] = red[d] ? 0 : ostr[d];

  Op op = op_of(r, v);
  bool fl = is_float(r, xv);
  if (count == 0 && on > 0 && (op == OP_REDUCE_MAX || op == OP_REDUCE_MIN))
    return fail(r, v, DVM_ERR_RUNTIME, "reduction over zero elements has no identity");
  if (!fl && op == OP_REDUCE_MEAN) return bug(r, v, "reduce_mean on an integer dtype");
  DType xdt = dtype_of(r, xv);
  for (int64_t i = 0; i < on; i++) out[i] = identity(op, xdt);
  const Cell *x = r->buf[xv];
  int64_t n = numel_of(r, xv);
  for (int64_t i = 0; i < n; i++, walk_step(&w)) fold(op, xdt, &out[w.off[0]], x[i]);
  DType dt = dtype_of(r, v);
  for (int64_t i = 0; i < on; i++) {
    if (!fl)
      out[i].i = ir_dtype_wrap(dt, (uint64_t)out[i].i);
    else if (op == OP_REDUCE_MEAN)
      out[i].f = round_f(dt, count ? out[i].f / (double)count : NAN);
    else
      out[i].f = round_f(dt, out[i].f);
  }
  return DVM_OK;
}

/* Split x's shape around `axis` into outer x len x inner; false on a bad axis. Rank 0
 * counts as one element along a one-element axis. */
static bool split_axis(const Run *r, uint32_t xv, int64_t axis, int64_t *outer, int64_t *len,
                       int64_t *inner) {
  int rank = rank_of(r, xv);
  const int64_t *xs = shape_of(r, xv);
  *outer = *len = *inner = 1;
  if (rank == 0) return true;
  int ax = ir_axis(axis, rank);
  if (ax < 0) return false;
  *outer = prod(xs, 0, ax);
  *len = xs[ax];
  *inner = prod(xs, ax + 1, rank);
  return true;
}

/* argmax(x, axis=0, keepdims=): i64; the first maximum wins, NaN counts as the maximum. */
static dvm_status run_argmax(const Run *r, uint32_t v, Cell *out) {
  uint32_t xv = arg(r, v, 0);
  int64_t axis = ir_attr_int(r->g, v, AK_AXIS, 0), outer, len, inner;
  if (!split_axis(r, xv, axis, &outer, &len, &inner))
    return fail(r, v, DVM_ERR_GRAPH, "axis %lld out of range", (long long)axis);
  if (outer * inner != numel_of(r, v)) return bug(r, v, "result size disagrees with the binding");
  if (len == 0 && outer * inner > 0)
    return fail(r, v, DVM_ERR_RUNTIME, "argmax over an empty axis");
  const Cell *x = r->buf[xv];
  DType xdt = dtype_of(r, xv);
  bool fl = ir_dtype_is_float(xdt);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j = 0; j < inner; j++) {
      const Cell *row = x + o * len * inner + j;
      int64_t best = 0;
      for (int64_t k = 1; k < len; k++) {
        Cell a = row[best * inner], c = row[k * inner];
        if (fl ? !isnan(a.f) && (isnan(c.f) || c.f > a.f) : ord(xdt, c.i) > ord(xdt, a.i)) best = k;
      }
      out[o * inner + j].i = best;
    }
  return DVM_OK;
}

/* ---- normalizations --------------------------------------------------------------------- */

/* softmax / log_softmax over `axis`, with the max subtracted first. */
static dvm_status run_softmax(const Run *r, uint32_t v, Cell *out) {
  uint32_t xv = arg(r, v, 0);
  int64_t axis = ir_attr_int(r->g, v, AK_AXIS, -1), outer, len, inner;
  if (!split_axis(r, xv, axis, &outer, &len, &inner))
    return fail(r, v, DVM_ERR_GRAPH, "axis %lld out of range", (long long)axis);
  if (numel_of(r, xv) != numel_of(r, v)) return bug(r, v, "operand and result sizes differ");
  const Cell *x = r->buf[xv];
  DType dt = dtype_of(r, v);
  bool logsm = op_of(r, v) == OP_LOG_SOFTMAX;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j = 0; j < inner; j++) {
      int64_t base = o * len * inner + j;
      double m = -INFINITY, s = 0;
      for (int64_t k = 0; k < len; k++) m = binary_f(OP_MAX, m, x[base + k * inner].f);
      for (int64_t k = 0; k < len; k++) s += exp(x[base + k * inner].f - m);
      for (int64_t k = 0; k < len; k++) {
        double d = x[base + k * inner].f - m;
        out[base + k * inner].f = round_f(dt, logsm ? d - log(s) : exp(d) / s);
      }
    }
  return DVM_OK;
}

/* layernorm (rows = axes axis..rank-1, gamma and beta broadcast against x) and rmsnorm
 * (rows = the last axis, gamma only): each row's statistics in double, two passes. */
static dvm_status run_norm(const Run *r, uint32_t v, Cell *out) {
  uint32_t xv = arg(r, v, 0);
  bool ln = op_of(r, v) == OP_LAYERNORM;
  int rank = rank_of(r, xv);
  const int64_t *xs = shape_of(r, xv);
  int64_t axis = ln ? ir_attr_int(r->g, v, AK_AXIS, -1) : -1;
  int ax = rank == 0 ? 0 : ir_axis(axis, rank);
  if (ax < 0) return fail(r, v, DVM_ERR_GRAPH, "axis %lld out of range", (long long)axis);
  double eps = ir_attr_float(r->g, v, AK_EPS, ln ? 1e-5 : 1e-6);
  int64_t len = prod(xs, ax, rank), n = numel_of(r, xv);
  if (n != numel_of(r, v)) return bug(r, v, "operand and result sizes differ");
  Walk w;
  walk_init(&w, rank, xs, ln ? 2 : 1);
  for (int j = 0; j < w.n; j++)
    if (!walk_value(r, &w, j, arg(r, v, (uint32_t)j + 1)))
      return bug(r, v, "gamma/beta do not broadcast against x");
  const Cell *x = r->buf[xv], *gamma = in(r, v, 1), *beta = ln ? in(r, v, 2) : NULL;
  DType dt = dtype_of(r, v);
  for (int64_t row = 0; len > 0 && row < n / len; row++) {
    const Cell *xr = x + row * len;
    double mean = 0, var = 0;
    if (ln) {
      for (int64_t k = 0; k < len; k++) mean += xr[k].f;
      mean /= (double)len;
    }
    for (int64_t k = 0; k < len; k++) var += (xr[k].f - mean) * (xr[k].f - mean);
    double scale = 1.0 / sqrt(var / (double)len + eps);
    for (int64_t k = 0; k < len; k++, walk_step(&w)) {
      double y = (xr[k].f - mean) * scale * gamma[w.off[0]].f;
      if (ln) y += beta[w.off[1]].f;
      out[row * len + k].f = round_f(dt, y);
    }
  }
  return DVM_OK;
}

/* ---- layout ----------------------------------------------------------------------------- */

/* reshape, squeeze, unsqueeze: the same elements in the same order. */
static dvm_status run_copy(const Run *r, uint32_t v, Cell *out) {
  int64_t n = numel_of(r, v);
  if (numel_of(r, arg(r, v, 0)) != n) return bug(r, v, "element counts differ");
  if (n > 0) memcpy(out, in(r, v, 0), (size_t)n * sizeof(Cell));
  return DVM_OK;
}

/* transpose(x, perm=): output dim k reads input dim perm[k] (default: reversed). */
static dvm_status run_transpose(const Run *r, uint32_t v, Cell *out) {
  uint32_t xv = arg(r, v, 0), np;
  int rank = rank_of(r, xv);
  const int64_t *perm = list_of(r, v, AK_PERM, &np), *xs = shape_of(r, xv);
  if (perm && np != (uint32_t)rank) return fail(r, v, DVM_ERR_GRAPH, "perm has %u entries", np);
  if (rank_of(r, v) != rank) return bug(r, v, "rank changed");
  int64_t istr[DVM_MAX_RANK];
  contiguous(rank, xs, istr);
  Walk w;
  walk_init(&w, rank, shape_of(r, v), 1);
  bool seen[DVM_MAX_RANK] = {false};
  for (int k = 0; k < rank; k++) {
    int p = perm ? ir_axis(perm[k], rank) : rank - 1 - k;
    if (p < 0 || seen[p]) return fail(r, v, DVM_ERR_GRAPH, "perm is not a permutation");
    seen[p] = true;
    if (xs[p] != w.shape[k]) return bug(r, v, "result shape disagrees with the binding");
    w.stride[0][k] = istr[p];
  }
  gather_view(r, v, &w, r->buf[xv], out);
  return DVM_OK;
}

/* broadcast_to(x, shape=): read x with broadcast strides. */
static dvm_status run_broadcast(const Run *r, uint32_t v, Cell *out) {
  Walk w;
  if (!walk_operands(r, v, &w, 1)) return bug(r, v, "operand does not broadcast to the result");
  gather_view(r, v, &w, in(r, v, 0), out);
  return DVM_OK;
}

/* Clamp a slice's start or end to dim d as Python's slice.indices does. */
static int64_t clamp_bound(int64_t x, int64_t d, int64_t step) {
  if (x < 0) x += d;
  int64_t lo = step > 0 ? 0 : -1, hi = step > 0 ? d : d - 1;
  return x < lo ? lo : x > hi ? hi : x;
}

/* Elements of a clamped slice. */
static int64_t slice_len(int64_t start, int64_t end, int64_t step) {
  if (step > 0) return start < end ? (end - start - 1) / step + 1 : 0;
  return start > end ? (start - end - 1) / -step + 1 : 0;
}

/* slice(x, axes=, starts=, ends=, steps=): NumPy slicing per listed axis, read through
 * a view (base offset + step-scaled strides). */
static dvm_status run_slice(const Run *r, uint32_t v, Cell *out) {
  uint32_t xv = arg(r, v, 0), na, ns, ne, nst;
  int rank = rank_of(r, xv);
  const int64_t *xs = shape_of(r, xv), *os = shape_of(r, v);
  const int64_t *axes = list_of(r, v, AK_AXES, &na), *starts = list_of(r, v, AK_STARTS, &ns),
                *ends = list_of(r, v, AK_ENDS, &ne), *steps = list_of(r, v, AK_STEPS, &nst);
  if (ne != ns || (axes && na != ns) || (steps && nst != ns) || rank_of(r, v) != rank)
    return fail(r, v, DVM_ERR_GRAPH, "starts, ends, axes and steps differ in length");
  int64_t start[DVM_MAX_RANK], step[DVM_MAX_RANK], istr[DVM_MAX_RANK];
  bool listed[DVM_MAX_RANK] = {false};
  for (int d = 0; d < rank; d++) start[d] = 0, step[d] = 1;
  contiguous(rank, xs, istr);
  Walk w;
  walk_init(&w, rank, os, 1);
  for (uint32_t k = 0; k < ns; k++) {
    int ax = ir_axis(axes ? axes[k] : (int64_t)k, rank);
    int64_t s, e, st = steps ? steps[k] : 1;
    if (ax < 0 || st == 0) return fail(r, v, DVM_ERR_GRAPH, "bad axis or zero step");
    if (!ir_dim_eval(r->g, (Dim)starts[k], r->b->sym, &s) ||
        !ir_dim_eval(r->g, (Dim)ends[k], r->b->sym, &e))
      return fail(r, v, DVM_ERR_OVERFLOW, "slice bound overflows int64");
    start[ax] = clamp_bound(s, xs[ax], st);
    step[ax] = st;
    listed[ax] = true;
    int64_t len = slice_len(start[ax], clamp_bound(e, xs[ax], st), st);
    if (len != os[ax])
      return fail(r, v, DVM_ERR_SHAPE, "internal: axis %d has %lld elements, binding says %lld",
                  ax, (long long)len, (long long)os[ax]);
  }
  for (int d = 0; d < rank; d++) {
    if (!listed[d] && os[d] != xs[d]) return bug(r, v, "result shape disagrees with the binding");
    if (os[d] > 0) w.off[0] += start[d] * istr[d];
    w.stride[0][d] = os[d] > 1 ? istr[d] * step[d] : 0;
  }
  if (numel_of(r, v) > 0) gather_view(r, v, &w, r->buf[xv], out);
  return DVM_OK;
}

/* concat(a, b, ..., axis=): per outer index, each operand's block in turn. */
static dvm_status run_concat(const Run *r, uint32_t v, Cell *out) {
  int rank = rank_of(r, v);
  const int64_t *os = shape_of(r, v);
  int64_t axis = ir_attr_int(r->g, v, AK_AXIS, 0);
  int ax = ir_axis(axis, rank);
  if (ax < 0) return fail(r, v, DVM_ERR_GRAPH, "axis %lld out of range", (long long)axis);
  int64_t outer = prod(os, 0, ax), inner = prod(os, ax + 1, rank), total = 0;
  uint32_t nin = ir_node(r->g, v)->nin;
  for (uint32_t k = 0; k < nin; k++) {
    uint32_t u = arg(r, v, k);
    if (rank_of(r, u) != rank) return bug(r, v, "operand ranks differ");
    for (int d = 0; d < rank; d++)
      if (d != ax && shape_of(r, u)[d] != os[d]) return bug(r, v, "operand dims differ");
    total += shape_of(r, u)[ax];
  }
  if (total != os[ax]) return bug(r, v, "axis sizes do not add up");
  Cell *o = out;
  for (int64_t i = 0; i < outer; i++)
    for (uint32_t k = 0; k < nin; k++) {
      int64_t block = shape_of(r, arg(r, v, k))[ax] * inner;
      if (block > 0) memcpy(o, in(r, v, k) + i * block, (size_t)block * sizeof(Cell));
      o += block;
    }
  return DVM_OK;
}

/* gather(x, idx, axis=0) = np.take: out[o, j, i] = x[o, idx[j], i]; negative indices
 * count from the end, out of range is a run-time error. */
static dvm_status run_gather(const Run *r, uint32_t v, Cell *out) {
  uint32_t xv = arg(r, v, 0), iv = arg(r, v, 1);
  int64_t axis = ir_attr_int(r->g, v, AK_AXIS, 0), outer, d, inner;
  if (rank_of(r, xv) == 0 || !split_axis(r, xv, axis, &outer, &d, &inner))
    return fail(r, v, DVM_ERR_GRAPH, "axis %lld out of range", (long long)axis);
  const Cell *x = r->buf[xv], *idx = r->buf[iv];
  int64_t ni = numel_of(r, iv);
  if (outer * ni * inner != numel_of(r, v))
    return bug(r, v, "result size disagrees with the binding");
  for (int64_t j = 0; j < ni; j++) {
    if (idx[j].i == INT64_MAX) /* the mark of an index out of range in an op the importer composed */
      return fail(r, v, DVM_ERR_RUNTIME, "an index is out of the range of its axis");
    if (idx[j].i < -d || idx[j].i >= d)
      return fail(r, v, DVM_ERR_RUNTIME, "index %lld is out of range for dim %lld (axis %lld)",
                  (long long)idx[j].i, (long long)d, (long long)axis);
  }
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j = 0; j < ni; j++) {
      int64_t k = idx[j].i < 0 ? idx[j].i + d : idx[j].i;
      if (inner > 0)
        memcpy(out + (o * ni + j) * inner, x + (o * d + k) * inner, (size_t)inner * sizeof(Cell));
    }
  return DVM_OK;
}

/* ---- matmul ----------------------------------------------------------------------------- */

/* One matmul operand as a strided matrix: rows x cols with row/col strides after the
 * optional transpose, plus its batch dims (all but the last two) and their strides. */
typedef struct Mat {
  int64_t rows, cols, rs, cs;
  int brank;
  const int64_t *bshape;
  int64_t bstride[DVM_MAX_RANK];
} Mat;

/* View value u as a matrix; a 1-D operand is a row (lhs) or a column (rhs). */
static Mat mat_view(const Run *r, uint32_t u, bool transpose, bool lhs) {
  Mat m = {0};
  int rank = rank_of(r, u);
  const int64_t *s = shape_of(r, u);
  if (rank == 1) {
    m.rows = lhs ? 1 : s[0];
    m.cols = lhs ? s[0] : 1;
    m.rs = lhs ? 0 : 1;
    m.cs = lhs ? 1 : 0;
    return m;
  }
  int64_t st[DVM_MAX_RANK];
  contiguous(rank, s, st);
  m.brank = rank - 2;
  m.bshape = s;
  memcpy(m.bstride, st, (size_t)m.brank * sizeof *st);
  m.rows = transpose ? s[rank - 1] : s[rank - 2];
  m.cols = transpose ? s[rank - 2] : s[rank - 1];
  m.rs = transpose ? 1 : s[rank - 1];
  m.cs = transpose ? s[rank - 1] : 1;
  return m;
}

/* One M x N block: out[m, n] = sum_k a[m, k] * b[k, n], accumulated in double (or in
 * int64 wrapping modulo 2^64, products and sums alike, then narrowed), k ascending. */
static void mat_block(const Cell *a, const Mat *A, const Cell *b, const Mat *B, bool fl, DType dt,
                      Cell *out) {
  int64_t M = A->rows, K = A->cols, N = B->cols;
  for (int64_t i = 0; i < M * N; i++) out[i] = identity(OP_REDUCE_SUM, dt);
  for (int64_t m = 0; m < M; m++) {
    Cell *row = out + m * N;
    for (int64_t k = 0; k < K; k++) {
      Cell x = a[m * A->rs + k * A->cs];
      const Cell *bk = b + k * B->rs;
      for (int64_t n = 0; n < N; n++) {
        if (fl)
          row[n].f += x.f * bk[n * B->cs].f;
        else
          row[n].i = (int64_t)((uint64_t)row[n].i + (uint64_t)x.i * (uint64_t)bk[n * B->cs].i);
      }
    }
    for (int64_t n = 0; n < N; n++) {
      if (fl)
        row[n].f = round_f(dt, row[n].f);
      else
        row[n].i = ir_dtype_wrap(dt, (uint64_t)row[n].i);
    }
  }
}

/* matmul(a, b, transpose_a=, transpose_b=): NumPy semantics; batch dims broadcast. */
static dvm_status run_matmul(const Run *r, uint32_t v, Cell *out) {
  uint32_t av = arg(r, v, 0), bv = arg(r, v, 1);
  if (rank_of(r, av) == 0 || rank_of(r, bv) == 0) return bug(r, v, "matmul of a scalar");
  Mat A = mat_view(r, av, ir_attr_int(r->g, v, AK_TRANSPOSE_A, 0) != 0, true);
  Mat B = mat_view(r, bv, ir_attr_int(r->g, v, AK_TRANSPOSE_B, 0) != 0, false);
  if (A.cols != B.rows)
    return fail(r, v, DVM_ERR_SHAPE, "contracted dims differ: %lld vs %lld", (long long)A.cols,
                (long long)B.rows);
  int orank = rank_of(r, v);
  int brank = orank - (rank_of(r, av) > 1) - (rank_of(r, bv) > 1);
  const int64_t *os = shape_of(r, v);
  if (brank < 0 || (rank_of(r, av) > 1 && os[brank] != A.rows) ||
      (rank_of(r, bv) > 1 && os[orank - 1] != B.cols))
    return bug(r, v, "result shape disagrees with the binding");
  Walk w;
  walk_init(&w, brank, os, 2);
  if (!walk_bcast(&w, 0, A.brank, A.bshape, A.bstride) ||
      !walk_bcast(&w, 1, B.brank, B.bshape, B.bstride))
    return bug(r, v, "batch dims do not broadcast");
  const Cell *a = r->buf[av], *b = r->buf[bv];
  bool fl = is_float(r, v);
  int64_t nb = prod(os, 0, brank), block, total;
  if (__builtin_mul_overflow(A.rows, B.cols, &block) || __builtin_mul_overflow(nb, block, &total) ||
      total != numel_of(r, v))
    return bug(r, v, "result size disagrees with the binding");
  for (int64_t i = 0; i < nb; i++, walk_step(&w))
    mat_block(a + w.off[0], &A, b + w.off[1], &B, fl, dtype_of(r, v), out + i * block);
  return DVM_OK;
}

/* ---- constants -------------------------------------------------------------------------- */

/* literal (a scalar) and full(shape=, value=, dtype=): every element is `value`. */
static dvm_status run_fill(const Run *r, uint32_t v, Cell *out) {
  const Attr *a = ir_attr(r->g, v, AK_VALUE);
  Cell c = {0};
  if (a) c = attr_cell(a, dtype_of(r, v));
  int64_t n = numel_of(r, v);
  for (int64_t i = 0; i < n; i++) out[i] = c;
  return DVM_OK;
}

/* arange(n=, dtype=): 0, 1, ..., n-1 rounded to the dtype. */
static dvm_status run_arange(const Run *r, uint32_t v, Cell *out) {
  const Attr *a = ir_attr(r->g, v, AK_N);
  int64_t n;
  if (!a || !ir_dim_eval(r->g, (Dim)a->i, r->b->sym, &n))
    return fail(r, v, DVM_ERR_OVERFLOW, "n does not evaluate to an int64");
  if (n != numel_of(r, v)) return bug(r, v, "n disagrees with the binding");
  DType dt = dtype_of(r, v); /* integers wrap at the dtype's width (NumPy's arange) */
  for (int64_t i = 0; i < n; i++)
    if (ir_dtype_is_float(dt)) out[i] = int_cell(i, dt);
    else out[i].i = ir_dtype_wrap(dt, (uint64_t)i);
  return DVM_OK;
}

/* ---- extern calls ----------------------------------------------------------------------- */

/* Call node v's registered function (docs/extern.md) through libffi (Extern.invoke): each
 * tensor operand converted from its cells to a buffer of its dtype, scalars by value, the
 * output read back into cells. */
static dvm_status run_call(const Run *r, uint32_t v, Cell *out) {
  const Graph *g = r->g;
  const Extern *e = g->ext ? g->ext[v] : NULL;
  if (!e) return fail(r, v, DVM_ERR_GRAPH, "fn %s is not registered", ir_s(g, ir_attr(g, v, AK_FN)->off));
  ExtArg a[EXT_MAX_PARAMS];
  if (ir_extern_args(g, v, e, a, r->err)) return r->err->code;
  void *args[EXT_MAX_PARAMS], *ptr[EXT_MAX_PARAMS] = {0}, *outbuf = NULL;
  int64_t val[EXT_MAX_PARAMS];
  const Attr *dims = ir_attr(g, v, AK_DIMS);
  DType odt = dtype_of(r, v);
  dvm_status st = DVM_OK;
  for (int i = 0; i < e->nparams && !st; i++) {
    ExtType t = (ExtType)e->param[i].type;
    args[i] = t == ET_PTR ? (void *)&ptr[i] : (void *)&val[i];
    if (a[i].src == ES_OPERAND) {
      uint32_t u = arg(r, v, a[i].index);
      const Cell *c = r->buf[u];
      if (t != ET_PTR) {
        ir_extern_scalar(t, is_float(r, u), c[0].f, c[0].i, &val[i]);
        continue;
      }
      DType dt = dtype_of(r, u);
      int64_t n = numel_of(r, u);
      if (!(ptr[i] = malloc((size_t)(n > 0 ? n : 1) * ir_dtype_size(dt)))) {
        st = fail(r, v, DVM_ERR_NOMEM, "out of memory for operand %u", a[i].index + 1);
        break;
      }
      for (int64_t k = 0; k < n; k++) {
        if (ir_dtype_is_float(dt)) rt_set_f(ptr[i], dt, k, c[k].f);
        else rt_set_i(ptr[i], dt, k, c[k].i);
      }
    } else if (a[i].src == ES_OUTPUT) {
      int64_t n = numel_of(r, v);
      if (!(outbuf = ptr[i] = calloc((size_t)(n > 0 ? n : 1), ir_dtype_size(odt))))
        st = fail(r, v, DVM_ERR_NOMEM, "out of memory for the output");
    } else {
      int64_t x;
      if (!ir_dim_eval(g, (Dim)g->clists.v[dims->off + a[i].index], r->b->sym, &x))
        st = fail(r, v, DVM_ERR_OVERFLOW, "dims[%u] overflows int64", a[i].index);
      else if (t == ET_I32 && (x < INT32_MIN || x > INT32_MAX))
        st = fail(r, v, DVM_ERR_OVERFLOW, "dims[%u] = %lld does not fit parameter %d (i32) of fn %s", a[i].index,
                  (long long)x, i + 1, e->name);
      else
        ir_extern_scalar(t, false, 0, x, &val[i]);
    }
  }
  if (!st) {
    int64_t ret = 0;
    e->invoke(e, args, &ret);
    if (outbuf) {
      for (int64_t k = 0; k < numel_of(r, v); k++) {
        if (ir_dtype_is_float(odt)) out[k].f = rt_get_f(outbuf, odt, k);
        else out[k].i = odt == DT_BOOL ? rt_get_i(outbuf, odt, k) != 0 : rt_get_i(outbuf, odt, k);
      }
    } else {
      float f;
      double d;
      int32_t i32;
      switch (e->ret) {
      case ET_F32: memcpy(&f, &ret, 4), out[0].f = f; break;
      case ET_F64: memcpy(&d, &ret, 8), out[0].f = round_f(DT_F32, d); break;
      case ET_I32: memcpy(&i32, &ret, 4), out[0].i = i32; break;
      default: out[0].i = ret; break;
      }
    }
  }
  for (int i = 0; i < e->nparams; i++) free(ptr[i]);
  return st;
}

/* ---- the driver ------------------------------------------------------------------------- */

/* Compute node v into out (numel_of(r, v) cells); vals holds the bound sources. */
static dvm_status run_node(const Run *r, uint32_t v, Tensor *const *vals, Cell *out) {
  Op op = op_of(r, v);
  switch (op) {
  case OP_INPUT:
  case OP_PARAM: return run_source(r, v, vals[v], out);
  case OP_LITERAL: return run_fill(r, v, out);
  case OP_NEG: case OP_ABS: case OP_EXP: case OP_LOG: case OP_SQRT: case OP_RSQRT:
  case OP_RECIPROCAL: case OP_TANH: case OP_SIGMOID: case OP_RELU: case OP_GELU:
  case OP_GELU_TANH: case OP_SILU: case OP_ERF: case OP_SIN: case OP_COS: case OP_FLOOR:
  case OP_CEIL: case OP_ROUND: case OP_SIGN: case OP_NOT: return run_unary(r, v, out);
  case OP_ADD: case OP_SUB: case OP_MUL: case OP_DIV: case OP_POW: case OP_FMOD: case OP_MAX: case OP_MIN:
  case OP_EQ: case OP_NE: case OP_LT: case OP_LE: case OP_GT: case OP_GE: case OP_AND:
  case OP_OR: return run_binary(r, v, out);
  case OP_SELECT: return run_select(r, v, out);
  case OP_CLIP: return run_clip(r, v, out);
  case OP_CAST: return run_cast(r, v, out);
  case OP_REDUCE_SUM: case OP_REDUCE_MEAN: case OP_REDUCE_MAX: case OP_REDUCE_MIN:
  case OP_REDUCE_PROD: return run_reduce(r, v, out);
  case OP_ARGMAX: return run_argmax(r, v, out);
  case OP_SOFTMAX: case OP_LOG_SOFTMAX: return run_softmax(r, v, out);
  case OP_LAYERNORM: case OP_RMSNORM: return run_norm(r, v, out);
  case OP_RESHAPE: case OP_SQUEEZE: case OP_UNSQUEEZE: return run_copy(r, v, out);
  case OP_TRANSPOSE: return run_transpose(r, v, out);
  case OP_BROADCAST_TO: return run_broadcast(r, v, out);
  case OP_SLICE: return run_slice(r, v, out);
  case OP_CONCAT: return run_concat(r, v, out);
  case OP_GATHER: return run_gather(r, v, out);
  case OP_MATMUL: return run_matmul(r, v, out);
  case OP_FULL: return run_fill(r, v, out);
  case OP_ARANGE: return run_arange(r, v, out);
  case OP_CALL: return run_call(r, v, out);
  case OP_COUNT: break;
  }
  return fail(r, v, DVM_ERR_GRAPH, "unknown op %d", (int)op);
}

/* Check what run_node indexes by: rank bound, operands defined earlier and live. */
static dvm_status check_node(const Run *r, uint32_t v) {
  const Node *nd = ir_node(r->g, v);
  if (nd->op >= OP_COUNT || nd->rank > DVM_MAX_RANK || nd->dtype >= DT_COUNT)
    return bug(r, v, "malformed node");
  for (uint32_t k = 0; k < nd->nin; k++) {
    uint32_t u = arg(r, v, k);
    if (u >= v || !r->buf[u] || rank_of(r, u) > DVM_MAX_RANK)
      return bug(r, v, "operand not computed before its use");
  }
  return DVM_OK;
}

/* A new tensor holding the cells of value v. */
static dvm_status make_tensor(const Run *r, uint32_t v, Tensor **out) {
  DType dt = dtype_of(r, v);
  dvm_status st = rt_tensor_new(dt, rank_of(r, v), shape_of(r, v), out, r->err);
  if (st != DVM_OK) return st;
  const Cell *c = r->buf[v];
  bool fl = ir_dtype_is_float(dt);
  for (int64_t i = 0; i < (*out)->numel; i++) {
    if (fl)
      rt_set_f((*out)->data, dt, i, c[i].f);
    else
      rt_set_i((*out)->data, dt, i, c[i].i);
  }
  return DVM_OK;
}

/* Make the tensors of values outs[0..n), then store them all into vals (all or nothing).
 * A value listed twice gets one tensor. */
static dvm_status make_outputs(const Run *r, Tensor **vals, const uint32_t *outs, uint32_t no) {
  Tensor **t = calloc(no + 1, sizeof *t);
  if (!t) return ir_err(r->err, DVM_ERR_NOMEM, "out of memory for the outputs");
  dvm_status st = DVM_OK;
  for (uint32_t j = 0; j < no && st == DVM_OK; j++) {
    bool dup = false;
    for (uint32_t k = 0; k < j; k++) dup |= outs[k] == outs[j];
    if (!dup) st = make_tensor(r, outs[j], &t[j]);
  }
  for (uint32_t j = 0; j < no; j++) {
    if (st == DVM_OK && t[j])
      vals[outs[j]] = t[j];
    else if (t[j])
      rt_tensor_free(t[j]);
  }
  free(t);
  return st;
}

/* Per value: the last of `nodes` that reads it; UINT32_MAX for values in outs (kept). */
static uint32_t *last_uses(const Graph *g, const uint32_t *nodes, uint32_t n,
                           const uint32_t *outs, uint32_t no) {
  uint32_t *last = malloc(((size_t)g->nodes.n + 1) * sizeof *last);
  if (!last) return NULL;
  for (uint32_t v = 0; v < g->nodes.n; v++) last[v] = v;
  for (uint32_t i = 0; i < n; i++)
    for (uint32_t k = 0; k < g->nodes.v[nodes[i]].nin; k++) {
      uint32_t u = ir_operand(g, nodes[i], k);
      if (u < nodes[i]) last[u] = nodes[i];
    }
  for (uint32_t j = 0; j < no; j++)
    if (outs[j] < g->nodes.n) last[outs[j]] = UINT32_MAX;
  return last;
}

/* Free the buffers whose last use is node v (its operands, or v itself if unused). */
static void release(Run *r, uint32_t v, const uint32_t *last) {
  const Node *nd = ir_node(r->g, v);
  for (uint32_t k = 0; k < nd->nin; k++) {
    uint32_t u = arg(r, v, k);
    if (last[u] == v) free(r->buf[u]), r->buf[u] = NULL;
  }
  if (last[v] == v) free(r->buf[v]), r->buf[v] = NULL;
}

/* Load value u from outside the evaluated set: a literal is computed, anything else is
 * read from its tensor in vals[u]. */
static dvm_status load(Run *r, uint32_t u, Tensor *const *vals) {
  if (r->buf[u]) return DVM_OK;
  Cell *c = cells_new(numel_of(r, u));
  if (!c) return fail(r, u, DVM_ERR_NOMEM, "out of memory for %lld elements", (long long)numel_of(r, u));
  r->buf[u] = c;
  if (op_of(r, u) == OP_LITERAL) return run_fill(r, u, c);
  return run_source(r, u, vals[u], c);
}

/* Evaluate nodes[0..n) in order; see runtime.h. */
dvm_status rt_ref_run_nodes(const Graph *g, const Binding *b, Tensor **vals, const uint32_t *nodes,
                            uint32_t n, const uint32_t *outs, uint32_t no, Err *err) {
  uint32_t nn = g->nodes.n;
  Run r = {g, b, calloc((size_t)nn + 1, sizeof(Cell *)), err};
  uint8_t *member = calloc((size_t)nn + 1, 1);
  uint32_t *last = last_uses(g, nodes, n, outs, no);
  dvm_status st = DVM_OK;
  if (!r.buf || !member || !last)
    st = ir_err(err, DVM_ERR_NOMEM, "out of memory in the reference executor");
  for (uint32_t i = 0; i < n && st == DVM_OK; i++) {
    if (nodes[i] >= nn || (i && nodes[i] <= nodes[i - 1]))
      st = ir_err(err, DVM_ERR_RUNTIME, "internal: nodes not in graph order");
    else
      member[nodes[i]] = 1;
  }
  for (uint32_t j = 0; j < no && st == DVM_OK; j++)
    if (outs[j] >= nn) st = ir_err(err, DVM_ERR_GRAPH, "output is not a value");
  for (uint32_t i = 0; i < n && st == DVM_OK; i++) {
    uint32_t v = nodes[i];
    for (uint32_t k = 0; k < ir_node(g, v)->nin && st == DVM_OK; k++)
      if (!member[arg(&r, v, k)]) st = load(&r, arg(&r, v, k), vals);
    if (st == DVM_OK) st = check_node(&r, v);
    if (st != DVM_OK) break;
    Cell *out = cells_new(numel_of(&r, v));
    if (!out) {
      st = fail(&r, v, DVM_ERR_NOMEM, "out of memory for %lld elements", (long long)numel_of(&r, v));
      break;
    }
    r.buf[v] = out;
    st = run_node(&r, v, vals, out);
    release(&r, v, last);
  }
  for (uint32_t j = 0; j < no && st == DVM_OK; j++) /* an output may come from outside */
    if (!member[outs[j]]) st = load(&r, outs[j], vals);
  if (st == DVM_OK) st = make_outputs(&r, vals, outs, no);
  for (uint32_t v = 0; r.buf && v < nn; v++) free(r.buf[v]);
  free(r.buf);
  free(member);
  free(last);
  return st;
}

/* Run g under binding b; see runtime.h. */
dvm_status rt_ref_run(const Graph *g, const Binding *b, Tensor **vals, Err *err) {
  uint32_t n = g->nodes.n;
  uint32_t *all = malloc(((size_t)n + 1) * sizeof *all);
  if (!all) return ir_err(err, DVM_ERR_NOMEM, "out of memory in the reference executor");
  for (uint32_t v = 0; v < n; v++) all[v] = v;
  dvm_status st = rt_ref_run_nodes(g, b, vals, all, n, g->outputs.v, g->outputs.n, err);
  free(all);
  return st;
}
