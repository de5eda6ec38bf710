/* onnx/compose.c — ONNX ops that are compositions of dvm ops. It is one file, longer than
 * most, because every translation here is written in the same small builder (onnx.h: un,
 * bin, lit, sel, reduce, each propagating a failed operand, so a formula reads as one
 * expression) and the table at the end; the op families are independent of each other, and
 * a new family that does not share the builder belongs in a file of its own, as window.c
 * and resize.c do.
 *
 * The ops: activations, the trigonometric and hyperbolic functions dvm has no op for, the
 * reductions ONNX names separately (L1, L2, log-sum-exp, ...), masks made from indices
 * (Trilu, EyeLike, Hardmax, OneHot, ArgMax's select_last_index), GatherElements, the NLL
 * and softmax cross-entropy losses, layout ops (Pad, Tile, DepthToSpace, SpaceToDepth), the
 * normalizations (InstanceNormalization, MeanVarianceNormalization, LRN) and ops whose
 * result is a shape (Size). Each becomes a few elementwise, reduction, gather or layout
 * nodes that fusion puts back into one kernel, so none needs a lowering, a bytecode or an
 * LLVM implementation of its own (docs/onnx.md lists them with the ops of ops.c). The
 * building blocks other files need (onnx_reshape, onnx_iota, onnx_cast, onnx_gather,
 * onnx_pad_axis, ...) are exported through onnx.h.
 *
 * Formulas are chosen for float accuracy where the textbook form loses it: asinh, atanh
 * and sinh near 0 use a short series, log-sum-exp subtracts the maximum first, and ArgMin
 * of integers is ArgMax of the bitwise complement (which, unlike negation, never
 * overflows). */
#include <math.h>
#include <string.h>

#include "onnx.h"

#define R DVM_MAX_RANK

int64_t onnx_cast(Imp *I, int64_t x, DType dt) {
  if (x < 0 || DT(x) == dt) return x;
  NodeDraft d = {.op = OP_CAST, .nin = 1, .in = {(uint32_t)x}};
  onnx_at_dtype(&d, AK_TO, dt);
  return onnx_add(I, &d, NULL);
}

int64_t onnx_reshape(Imp *I, int64_t x, const Dim *s, int n) {
  if (x < 0) return -1;
  NodeDraft d = {.op = OP_RESHAPE, .nin = 1, .in = {(uint32_t)x}};
  onnx_at_dims(I, &d, AK_SHAPE, s, (uint32_t)n);
  return onnx_add(I, &d, NULL);
}

/* 0, 1, ..., n-1 (int64) laid along axis `axis` of a rank-`rank` value of 1s elsewhere. */
int64_t onnx_iota(Imp *I, Dim n, int axis, int rank) {
  NodeDraft d = {.op = OP_ARANGE};
  onnx_at_dim(&d, AK_N, n);
  onnx_at_dtype(&d, AK_DTYPE, DT_I64);
  int64_t a = onnx_add(I, &d, NULL);
  Dim s[R];
  if (rank > R) return onnx_fail(I, DVM_ERR_SHAPE, "rank %d exceeds %d", rank, R), -1;
  for (int i = 0; i < rank; i++) s[i] = i == axis ? n : ir_dim_const(I->g, 1);
  return rank == 1 || a < 0 ? a : onnx_reshape(I, a, s, rank);
}

static dvm_status out(Imp *I, size_t k, int64_t v) { return onnx_def_dyn(I, k, v); }

static bool is_one(Imp *I, Dim n) {
  int64_t c;
  return onnx_dim_const(I, n, &c) && c == 1;
}

/* The dims of dvm value v (substituted); its rank. */
int onnx_vdims(Imp *I, int64_t v, Dim *d) {
  const Node *n = ir_node(I->g, (uint32_t)v);
  for (int i = 0; i < n->rank; i++) d[i] = ir_dim_subst(I->g, ir_shape(I->g, (uint32_t)v)[i]);
  return n->rank;
}

/* Input 0, which must be a float value for the formulas below. */
static int64_t float_in(Imp *I) {
  int64_t x = onnx_in(I, 0);
  if (x >= 0 && !ir_dtype_is_float(DT(x)))
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "%s of %s is not supported (floats only)", I->node->op_type,
                     ir_dtype_name(DT(x))), -1;
  return x;
}

/* The formulas below run in f32 for f16 and bf16 (their range ends at 65504 and their
 * precision at 3 digits): x widened here, the result narrowed by narrow(). */
static int64_t wide_in(Imp *I) {
  int64_t x = float_in(I);
  return x >= 0 && DT(x) != DT_F32 ? onnx_cast(I, x, DT_F32) : x;
}

static dvm_status narrow(Imp *I, int64_t y) {
  int64_t x = onnx_in(I, 0);
  return out(I, 0, x < 0 || y < 0 ? -1 : onnx_cast(I, y, DT(x)));
}

/* ---- activations ------------------------------------------------------------------------ */

/* x < 0 ? f : x */
static int64_t neg_part(Imp *I, int64_t x, int64_t f) { return sel(I, binc(I, OP_LT, x, 0), f, x); }

/* max(0, min(1, alpha x + beta)) */
static int64_t hard_sigmoid(Imp *I, int64_t x, double alpha, double beta) {
  return binc(I, OP_MAX, binc(I, OP_MIN, binc(I, OP_ADD, binc(I, OP_MUL, x, alpha), beta), 1), 0);
}

/* exp(x) - 1 as 2t / (1 - t), t = tanh(x/2): no cancellation near 0, -1 at -inf. */
static int64_t expm1_(Imp *I, int64_t x) {
  int64_t t = un(I, OP_TANH, binc(I, OP_MUL, x, 0.5));
  return bin(I, OP_DIV, binc(I, OP_MUL, t, 2), bin(I, OP_SUB, lit(I, 1, t), t));
}

static dvm_status activation(Imp *I, const char *t) {
  int64_t x = wide_in(I), y;
  double a = onnx_attr_f(I, "alpha", 1), b;
  if (x < 0) return I->err->code;
  if (!strcmp(t, "LeakyRelu")) {
    y = neg_part(I, x, binc(I, OP_MUL, x, onnx_attr_f(I, "alpha", 0.01)));
  } else if (!strcmp(t, "PRelu")) {
    y = neg_part(I, x, bin(I, OP_MUL, x, onnx_in(I, 1)));
  } else if (!strcmp(t, "Elu")) {
    y = neg_part(I, x, binc(I, OP_MUL, expm1_(I, x), a));
  } else if (!strcmp(t, "Selu")) { /* gamma (x > 0 ? x : alpha e^x - alpha) */
    a = onnx_attr_f(I, "alpha", 1.67326319217681884765625);
    double g = onnx_attr_f(I, "gamma", 1.05070102214813232421875);
    y = binc(I, OP_MUL, sel(I, binc(I, OP_GT, x, 0), x, binc(I, OP_MUL, expm1_(I, x), a)), g);
  } else if (!strcmp(t, "Celu")) { /* max(0, x) + min(0, alpha (e^(x/alpha) - 1)) */
    y = bin(I, OP_ADD, binc(I, OP_MAX, x, 0), binc(I, OP_MIN, binc(I, OP_MUL, expm1_(I, binc(I, OP_DIV, x, a)), a), 0));
  } else if (!strcmp(t, "HardSigmoid")) {
    y = hard_sigmoid(I, x, onnx_attr_f(I, "alpha", 0.2), onnx_attr_f(I, "beta", 0.5));
  } else if (!strcmp(t, "HardSwish")) {
    y = bin(I, OP_MUL, x, hard_sigmoid(I, x, 1.0 / 6, 0.5));
  } else if (!strcmp(t, "Softplus")) { /* max(x, 0) + log(1 + exp(-|x|)); exp(x) far below 0 */
    int64_t l = un(I, OP_LOG, binc(I, OP_ADD, un(I, OP_EXP, un(I, OP_NEG, un(I, OP_ABS, x))), 1));
    y = sel(I, binc(I, OP_LT, x, -15), un(I, OP_EXP, x), bin(I, OP_ADD, binc(I, OP_MAX, x, 0), l));
  } else if (!strcmp(t, "Softsign")) {
    y = sel(I, binc(I, OP_EQ, un(I, OP_ABS, x), INFINITY), un(I, OP_SIGN, x),
            bin(I, OP_DIV, x, binc(I, OP_ADD, un(I, OP_ABS, x), 1)));
  } else if (!strcmp(t, "ThresholdedRelu")) {
    y = sel(I, bin(I, OP_OR, binc(I, OP_GT, x, a), bin(I, OP_NE, x, x)), x, lit(I, 0, x)); /* NaN stays */
  } else { /* Shrink: x < -l ? x + bias : x > l ? x - bias : 0 */
    double l = onnx_attr_f(I, "lambd", 0.5);
    b = onnx_attr_f(I, "bias", 0);
    y = sel(I, binc(I, OP_LT, x, -l), binc(I, OP_ADD, x, b),
            sel(I, binc(I, OP_GT, x, l), binc(I, OP_SUB, x, b), lit(I, 0, x)));
  }
  return narrow(I, y);
}

/* ---- trigonometric and hyperbolic --------------------------------------------------------- */

/* Where |x| < 1/64 the odd series x + c3 x^3 + c5 x^5, else f. */
static int64_t near0(Imp *I, int64_t x, double c3, double c5, int64_t f) {
  int64_t x2 = bin(I, OP_MUL, x, x);
  int64_t s = bin(I, OP_MUL, x, binc(I, OP_ADD, bin(I, OP_MUL, x2, binc(I, OP_ADD, binc(I, OP_MUL, x2, c5), c3)), 1));
  return sel(I, binc(I, OP_LT, un(I, OP_ABS, x), 1.0 / 64), s, f);
}

/* log(2 a) where a is too large to square (a > 1e18): log(a) + log 2. */
static int64_t log2a(Imp *I, int64_t a, int64_t f) {
  return sel(I, binc(I, OP_GT, a, 1e18), binc(I, OP_ADD, un(I, OP_LOG, a), log(2.0)), f);
}

/* atan(x): |x| > 1 through pi/2 - atan(1/|x|), above tan(pi/8) through pi/4 + atan((t-1)/(t+1)),
 * then the odd series to u^15 (|u| <= 0.4143: its first omitted term is below 2e-8). */
static int64_t atan_(Imp *I, int64_t x) {
  int64_t a = un(I, OP_ABS, x), big = binc(I, OP_GT, a, 1);
  int64_t t = sel(I, big, bin(I, OP_DIV, lit(I, 1, a), a), a), mid = binc(I, OP_GT, t, 0.41421356237309503);
  int64_t u = sel(I, mid, bin(I, OP_DIV, binc(I, OP_SUB, t, 1), binc(I, OP_ADD, t, 1)), t);
  int64_t u2 = bin(I, OP_MUL, u, u), p = lit(I, -1.0 / 15, u);
  for (int k = 13; k >= 1; k -= 2) p = binc(I, OP_ADD, bin(I, OP_MUL, p, u2), (k % 4 == 1 ? 1.0 : -1.0) / k);
  int64_t r = bin(I, OP_MUL, p, u);
  r = sel(I, mid, binc(I, OP_ADD, r, M_PI / 4), r);
  r = sel(I, big, bin(I, OP_SUB, lit(I, M_PI / 2, r), r), r);
  return sel(I, binc(I, OP_LT, x, 0), un(I, OP_NEG, r), r);
}

static dvm_status hyperbolic(Imp *I, const char *t) {
  int64_t x = wide_in(I), y;
  if (x < 0) return I->err->code;
  if (!strcmp(t, "Tan")) {
    y = bin(I, OP_DIV, un(I, OP_SIN, x), un(I, OP_COS, x));
  } else if (!strcmp(t, "Cosh")) { /* e^(|x| - ln 2) + e^(-|x| - ln 2): finite as long as cosh is */
    int64_t a = un(I, OP_ABS, x);
    y = bin(I, OP_ADD, un(I, OP_EXP, binc(I, OP_SUB, a, log(2.0))), un(I, OP_EXP, binc(I, OP_SUB, un(I, OP_NEG, a), log(2.0))));
  } else if (!strcmp(t, "Sinh")) { /* |x| < 1: 2 t / (1 - t^2), t = tanh(x/2): no cancellation */
    int64_t th = un(I, OP_TANH, binc(I, OP_MUL, x, 0.5)), a = un(I, OP_ABS, x);
    int64_t small = bin(I, OP_DIV, binc(I, OP_MUL, th, 2), bin(I, OP_SUB, lit(I, 1, x), bin(I, OP_MUL, th, th)));
    int64_t big = bin(I, OP_SUB, un(I, OP_EXP, binc(I, OP_SUB, a, log(2.0))), un(I, OP_EXP, binc(I, OP_SUB, un(I, OP_NEG, a), log(2.0))));
    y = sel(I, binc(I, OP_LT, a, 1), small, bin(I, OP_MUL, un(I, OP_SIGN, x), big));
  } else if (!strcmp(t, "Asinh")) { /* sign(x) log(|x| + sqrt(x^2 + 1)) */
    int64_t a = un(I, OP_ABS, x);
    int64_t r = un(I, OP_LOG, bin(I, OP_ADD, a, un(I, OP_SQRT, binc(I, OP_ADD, bin(I, OP_MUL, a, a), 1))));
    y = near0(I, x, -1.0 / 6, 3.0 / 40, bin(I, OP_MUL, un(I, OP_SIGN, x), log2a(I, a, r)));
  } else if (!strcmp(t, "Acosh")) { /* log(x + sqrt((x - 1)(x + 1))) */
    int64_t r = un(I, OP_LOG, bin(I, OP_ADD, x, un(I, OP_SQRT, bin(I, OP_MUL, binc(I, OP_SUB, x, 1), binc(I, OP_ADD, x, 1)))));
    y = log2a(I, x, r);
  } else if (!strcmp(t, "Atan")) {
    y = atan_(I, x);
  } else if (!strcmp(t, "Asin")) { /* atan(x / sqrt((1 - x)(1 + x))): +-pi/2 at +-1 */
    int64_t c = un(I, OP_SQRT, bin(I, OP_MUL, bin(I, OP_SUB, lit(I, 1, x), x), binc(I, OP_ADD, x, 1)));
    y = atan_(I, bin(I, OP_DIV, x, c));
  } else if (!strcmp(t, "Acos")) { /* 2 atan(sqrt((1 - x) / (1 + x))): accurate near 1, pi at -1 */
    y = binc(I, OP_MUL, atan_(I, un(I, OP_SQRT, bin(I, OP_DIV, bin(I, OP_SUB, lit(I, 1, x), x), binc(I, OP_ADD, x, 1)))), 2);
  } else { /* Atanh: log((1 + x) / (1 - x)) / 2 */
    int64_t r = binc(I, OP_MUL, un(I, OP_LOG, bin(I, OP_DIV, binc(I, OP_ADD, x, 1), bin(I, OP_SUB, lit(I, 1, x), x))), 0.5);
    y = near0(I, x, 1.0 / 3, 1.0 / 5, r);
  }
  return narrow(I, y);
}

/* ---- elementwise on several operands, predicates ------------------------------------------- */

/* Sum and Mean of one or more operands (broadcast). */
static dvm_status sum_mean(Imp *I, bool mean) {
  size_t n = I->node->n_input;
  int64_t acc = onnx_in(I, 0);
  for (size_t i = 1; acc >= 0 && i < n; i++) acc = bin(I, OP_ADD, acc, onnx_in(I, i));
  if (mean && n > 1) {
    if (acc >= 0 && !ir_dtype_is_float(DT(acc)))
      return onnx_fail(I, DVM_ERR_UNSUPPORTED, "Mean of %s is not supported", ir_dtype_name(DT(acc)));
    acc = binc(I, OP_DIV, acc, (double)n);
  }
  return out(I, 0, acc);
}

/* Clip(x, min?, max?) = min(max(x, min), max), as NumPy's clip. */
static dvm_status clip(Imp *I) {
  int64_t y = onnx_in(I, 0), lo = onnx_arg(I, 1, false), hi = lo == -2 ? -2 : onnx_arg(I, 2, false);
  if (hi == -2) return I->err->code;
  if (lo >= 0) y = bin(I, OP_MAX, y, onnx_in(I, 1));
  if (hi >= 0) y = bin(I, OP_MIN, y, onnx_in(I, 2));
  return out(I, 0, y);
}

static dvm_status predicate(Imp *I, const char *t) {
  int64_t x = onnx_in(I, 0), y;
  if (!strcmp(t, "Xor")) {
    y = bin(I, OP_NE, x, onnx_in(I, 1));
  } else if (!strcmp(t, "IsNaN")) {
    y = bin(I, OP_NE, x, x);
  } else { /* IsInf (floats only) */
    if (x >= 0 && !ir_dtype_is_float(DT(x)))
      return onnx_fail(I, DVM_ERR_UNSUPPORTED, "IsInf of %s: the input must be a float", ir_dtype_name(DT(x)));
    bool pos = onnx_attr_i(I, "detect_positive", 1), neg = onnx_attr_i(I, "detect_negative", 1);
    int64_t p = binc(I, OP_EQ, x, INFINITY), m = binc(I, OP_EQ, x, -INFINITY);
    y = pos && neg ? bin(I, OP_OR, p, m) : pos ? p : neg ? m : bin(I, OP_AND, p, m);
  }
  return out(I, 0, y);
}

/* Mod of integers: fmod = 0 takes the divisor's sign (Python's %), fmod = 1 the dividend's
 * (C's %); of floats (fmod = 1, as the spec requires): C's fmod, the dvm op. */
static dvm_status mod(Imp *I) {
  int64_t a = onnx_in(I, 0), b = a < 0 ? -1 : onnx_in(I, 1);
  if (b < 0) return I->err->code;
  if (ir_dtype_is_float(DT(a))) {
    if (!onnx_attr_i(I, "fmod", 0))
      return onnx_fail(I, DVM_ERR_GRAPH, "Mod of %s needs fmod = 1 (the spec's rule for floats)", ir_dtype_name(DT(a)));
    return out(I, 0, bin(I, OP_FMOD, a, b));
  }
  int64_t r = bin(I, OP_SUB, a, bin(I, OP_MUL, bin(I, OP_DIV, a, b), b));
  if (!onnx_attr_i(I, "fmod", 0)) { /* r != 0 and sign(r) != sign(b): r + b */
    int64_t fix = bin(I, OP_AND, binc(I, OP_NE, r, 0), bin(I, OP_NE, binc(I, OP_LT, r, 0), binc(I, OP_LT, b, 0)));
    r = sel(I, fix, bin(I, OP_ADD, r, b), r);
  }
  return out(I, 0, r);
}

/* BitShift of unsigned integers: x · 2^s or x / 2^s, 0 for a shift of the width or more
 * (2^s then wraps to 0 in the dtype: the product is 0, the quotient is chosen). */
static dvm_status bit_shift(Imp *I) {
  static const char *const dirs[] = {"LEFT", "RIGHT", NULL};
  int64_t x = onnx_in(I, 0), s = x < 0 ? -1 : onnx_in(I, 1);
  int dir = s < 0 ? -1 : onnx_attr_choice(I, "direction", dirs, -2);
  if (dir == -2) return onnx_fail(I, DVM_ERR_GRAPH, "attribute 'direction' is required");
  if (dir < 0) return I->err->code;
  if (!ir_dtype_is_unsigned(DT(x)))
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "BitShift of %s is not supported (unsigned integers only)",
                     ir_dtype_name(DT(x)));
  int64_t p = bin(I, OP_POW, lit(I, 2, x), s);
  if (dir == 0) return out(I, 0, bin(I, OP_MUL, x, p));
  int64_t wide = binc(I, OP_GE, s, ir_dtype_bits(DT(x)));
  return out(I, 0, sel(I, wide, lit(I, 0, x), bin(I, OP_DIV, x, sel(I, wide, lit(I, 1, x), p))));
}

/* ---- reductions ------------------------------------------------------------------------------ */

static dvm_status reduction(Imp *I, const char *t) {
  int64_t axes[R];
  int n = onnx_axes(I, 1, axes);
  if (n == -2) return I->err->code;
  int64_t x = onnx_in(I, 0);
  if (x < 0) return I->err->code;
  bool keep = onnx_attr_i(I, "keepdims", 1) != 0;
  if (n == 0 && onnx_attr_i(I, "noop_with_empty_axes", 0)) n = -2; /* no axes: elementwise */
  if (n == 0) n = -1;
  int64_t y;
#define RED(op, v) (n == -2 ? (v) : reduce(I, op, v, axes, n, keep))
  if (!strcmp(t, "ReduceL1")) y = RED(OP_REDUCE_SUM, un(I, OP_ABS, x));
  else if (!strcmp(t, "ReduceSumSquare")) y = RED(OP_REDUCE_SUM, bin(I, OP_MUL, x, x));
  else if (!ir_dtype_is_float(DT(x)))
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "%s of %s is not supported (floats only)", t, ir_dtype_name(DT(x)));
  else if (!strcmp(t, "ReduceL2")) y = un(I, OP_SQRT, RED(OP_REDUCE_SUM, bin(I, OP_MUL, x, x)));
  else if (!strcmp(t, "ReduceLogSum")) y = un(I, OP_LOG, RED(OP_REDUCE_SUM, x));
  else if (n == -2) y = x; /* ReduceLogSumExp over nothing */
  else { /* ReduceLogSumExp: m + log(sum(exp(x - m))), m the maximum (kept finite) */
    int64_t m = reduce(I, OP_REDUCE_MAX, x, axes, n, true);
    m = sel(I, bin(I, OP_EQ, un(I, OP_ABS, m), lit(I, INFINITY, m)), lit(I, 0, m), m);
    int64_t s = reduce(I, OP_REDUCE_SUM, un(I, OP_EXP, bin(I, OP_SUB, x, m)), axes, n, keep);
    int64_t mk = keep ? m : reduce(I, OP_REDUCE_MAX, m, axes, n, false);
    y = bin(I, OP_ADD, un(I, OP_LOG, s), mk);
  }
#undef RED
  return out(I, 0, y);
}

/* GlobalAveragePool, GlobalMaxPool: over every axis after N and C, kept. */
static dvm_status global_pool(Imp *I, Op op) {
  int64_t x = onnx_in(I, 0), axes[R];
  if (x < 0) return I->err->code;
  int r = ir_node(I->g, (uint32_t)x)->rank;
  if (r < 3) return onnx_fail(I, DVM_ERR_SHAPE, "the input has rank %d, at least 3 expected (N, C, ...)", r);
  for (int i = 2; i < r; i++) axes[i - 2] = i;
  return out(I, 0, reduce(I, op, x, axes, r - 2, true));
}

/* ArgMax, ArgMin: the first index of the extreme, or with select_last_index the last one
 * (the largest index where x equals the extreme). */
static dvm_status arg_extreme(Imp *I, bool min) {
  int64_t x = onnx_in(I, 0);
  if (x < 0) return I->err->code;
  int64_t axis = onnx_attr_i(I, "axis", 0);
  bool keep = onnx_attr_i(I, "keepdims", 1) != 0;
  if (onnx_attr_i(I, "select_last_index", 0)) {
    Dim d[R];
    int r = onnx_vdims(I, x, d), ax = ir_axis(axis, r);
    if (ax < 0) return onnx_fail(I, DVM_ERR_GRAPH, "axis %lld out of range for rank %d", (long long)axis, r);
    int64_t axes[1] = {ax}, m = reduce(I, min ? OP_REDUCE_MIN : OP_REDUCE_MAX, x, axes, 1, true);
    int64_t at = onnx_iota(I, d[ax], ax, r);
    return out(I, 0, reduce(I, OP_REDUCE_MAX, sel(I, bin(I, OP_EQ, x, m), at, lit(I, -1, at)), axes, 1, keep));
  }
  if (min) x = ir_dtype_is_float(DT(x)) ? un(I, OP_NEG, x) : binc(I, OP_SUB, un(I, OP_NEG, x), 1); /* -x - 1 = ~x */
  if (x < 0) return I->err->code;
  NodeDraft d = {.op = OP_ARGMAX, .nin = 1, .in = {(uint32_t)x}};
  onnx_at_int(&d, AK_AXIS, axis);
  onnx_at_int(&d, AK_KEEPDIMS, keep);
  return out(I, 0, onnx_add(I, &d, onnx_out(I, 0)));
}

/* ---- masks from indices ------------------------------------------------------------------- */

/* The column index minus the row index over the last two axes of a rank-r value with dims d. */
static int64_t diagonal(Imp *I, const Dim *d, int r) {
  return bin(I, OP_SUB, onnx_iota(I, d[r - 1], r - 1, r), onnx_iota(I, d[r - 2], r - 2, r));
}

/* Trilu(x, k = 0): k a one-element tensor, known at load time or not. */
static dvm_status trilu(Imp *I) {
  int64_t x = onnx_in(I, 0), ka = x < 0 ? -2 : onnx_arg(I, 1, false), kk;
  if (ka == -2) return I->err->code;
  Dim d[R];
  int r = onnx_vdims(I, x, d);
  if (r < 2) return onnx_fail(I, DVM_ERR_SHAPE, "the input has rank %d, at least 2 expected", r);
  int64_t j = diagonal(I, d, r);
  if (ka == -1) {
    kk = lit(I, 0, j);
  } else {
    if ((kk = onnx_in(I, 1)) < 0) return I->err->code;
    if (ir_node(I->g, (uint32_t)kk)->rank) { /* [1]: a scalar */
      NodeDraft sq = {.op = OP_RESHAPE, .nin = 1, .in = {(uint32_t)kk}};
      onnx_at_dims(I, &sq, AK_SHAPE, NULL, 0);
      kk = onnx_add(I, &sq, NULL);
    }
    kk = onnx_cast(I, kk, DT_I64);
  }
  int64_t keep = bin(I, onnx_attr_i(I, "upper", 1) ? OP_GE : OP_LE, j, kk);
  return out(I, 0, sel(I, keep, x, lit(I, 0, x)));
}

static dvm_status eye_like(Imp *I) {
  int64_t x = onnx_in(I, 0);
  if (x < 0) return I->err->code;
  Dim d[R];
  int r = onnx_vdims(I, x, d);
  if (r != 2) return onnx_fail(I, DVM_ERR_SHAPE, "the input has rank %d, 2 expected", r);
  int dt = onnx_attr(I, "dtype") ? onnx_dtype(onnx_attr_i(I, "dtype", 1)) : (int)DT(x);
  if (dt < 0) return onnx_fail(I, DVM_ERR_UNSUPPORTED, "dtype %s is not supported", onnx_dtype_name(onnx_attr_i(I, "dtype", 1)));
  int64_t j = diagonal(I, d, r);
  return out(I, 0, onnx_cast(I, binc(I, OP_EQ, j, (double)onnx_attr_i(I, "k", 0)), (DType)dt));
}

/* Hardmax: 1 at the first maximum along axis, 0 elsewhere. */
static dvm_status hardmax(Imp *I) {
  int64_t x = onnx_in(I, 0);
  if (x < 0) return I->err->code;
  Dim d[R];
  int r = onnx_vdims(I, x, d), ax = ir_axis(onnx_attr_i(I, "axis", -1), r);
  if (ax < 0) return onnx_fail(I, DVM_ERR_GRAPH, "axis out of range for rank %d", r);
  NodeDraft a = {.op = OP_ARGMAX, .nin = 1, .in = {(uint32_t)x}};
  onnx_at_int(&a, AK_AXIS, ax);
  onnx_at_int(&a, AK_KEEPDIMS, 1);
  int64_t m = onnx_add(I, &a, NULL);
  return out(I, 0, onnx_cast(I, bin(I, OP_EQ, onnx_iota(I, d[ax], ax, r), m), DT(x)));
}

/* OneHot(indices, depth, values): values[1] where the index (negative: from depth) is the
 * position along the new axis, values[0] elsewhere. */
static dvm_status one_hot(Imp *I) {
  int64_t ki = onnx_arg(I, 1, true), kv = ki < 0 ? -2 : onnx_arg(I, 2, true);
  double depth;
  if (kv < 0) return I->err->code;
  if (!onnx_scalar(I, (uint32_t)ki, &depth) || !(depth >= 1 && depth < 1e15))
    return onnx_need(I, ki), onnx_fail(I, DVM_ERR_UNSUPPORTED, "depth (input 2) must be a constant of at least 1");
  int64_t idx = onnx_in(I, 0), vals = idx < 0 ? -1 : onnx_in(I, 2);
  if (vals < 0) return I->err->code;
  int r = ir_node(I->g, (uint32_t)idx)->rank, ax = ir_axis(onnx_attr_i(I, "axis", -1), r + 1);
  if (r + 1 > R) return onnx_fail(I, DVM_ERR_SHAPE, "indices of rank %d: the result's rank exceeds %d", r, R);
  if (ax < 0) return onnx_fail(I, DVM_ERR_GRAPH, "axis out of range for rank %d", r + 1);
  Dim vd[R];
  int64_t nv;
  if (onnx_vdims(I, vals, vd) != 1 || !ir_dim_is_const(I->g, vd[0], &nv) || nv != 2)
    return onnx_fail(I, DVM_ERR_SHAPE, "values (input 3) must hold two elements: [off, on]");
  idx = onnx_cast(I, idx, DT_I64); /* a float index truncates, as ONNX casts it */
  idx = sel(I, binc(I, OP_LT, idx, 0), binc(I, OP_ADD, idx, depth), idx);
  int64_t ui = -1, v0 = -1, v1 = -1;
  if (idx >= 0) {
    NodeDraft u = {.op = OP_UNSQUEEZE, .nin = 1, .in = {(uint32_t)idx}};
    onnx_at_ints(I, &u, AK_AXES, (const int64_t[]){ax}, 1);
    ui = onnx_add(I, &u, NULL);
  }
  int64_t hot = bin(I, OP_EQ, ui, onnx_iota(I, ir_dim_const(I->g, (int64_t)depth), ax, r + 1));
  for (int k = 0; k < 2 && hot >= 0; k++) { /* values[k], a one-element slice */
    NodeDraft s = {.op = OP_SLICE, .nin = 1, .in = {(uint32_t)vals}};
    Dim st = ir_dim_const(I->g, k), en = ir_dim_const(I->g, k + 1);
    onnx_at_ints(I, &s, AK_AXES, (const int64_t[]){0}, 1);
    onnx_at_dims(I, &s, AK_STARTS, &st, 1);
    onnx_at_dims(I, &s, AK_ENDS, &en, 1);
    *(k ? &v1 : &v0) = onnx_add(I, &s, NULL);
  }
  return out(I, 0, sel(I, hot, v1, v0));
}

/* ---- element-wise gather ------------------------------------------------------------------- */

/* Dim n as an int64 scalar value (a literal when constant). */
int64_t onnx_dim_value(Imp *I, Dim n) {
  uint32_t v;
  return onnx_use(I, onnx_val_sym(I, DT_I64, 0, NULL, &n), &v) ? -1 : (int64_t)v;
}

/* GatherElements(data, indices, axis): out[..i..] = data[..indices[..i..]..] along axis, as
 * a gather from the flattened data at the flat offsets sum(coord_k · stride_k), where the
 * coordinate along axis is the index (negative: from the end) and the others are the
 * output position's. An index out of range becomes an offset past the end, which the
 * gather refuses at run time. */
static int64_t elements(Imp *I, int64_t x, int64_t idx, int64_t axis, const char *name) {
  if (x < 0 || idx < 0) return -1;
  Dim d[R], e[R];
  int r = onnx_vdims(I, x, d), ri = onnx_vdims(I, idx, e), ax = ir_axis(axis, r);
  if (r != ri) return onnx_fail(I, DVM_ERR_SHAPE, "data has rank %d, indices rank %d: they must be equal", r, ri), -1;
  if (ax < 0) return onnx_fail(I, DVM_ERR_GRAPH, "axis out of range for rank %d", r), -1;
  if (DT(idx) != DT_I32 && DT(idx) != DT_I64) return onnx_fail(I, DVM_ERR_DTYPE, "the indices must be int32 or int64"), -1;
  idx = onnx_cast(I, idx, DT_I64);
  int64_t n = onnx_dim_value(I, d[ax]);
  idx = sel(I, binc(I, OP_LT, idx, 0), bin(I, OP_ADD, idx, n), idx);
  int64_t bad = bin(I, OP_OR, binc(I, OP_LT, idx, 0), bin(I, OP_GE, idx, n));
  int64_t flat = -1;
  Dim stride = ir_dim_const(I->g, 1), total;
  for (int k = r - 1; k >= 0; k--) {
    int64_t c = k == ax ? idx : onnx_iota(I, e[k], k, r), sc;
    int64_t term = is_one(I, stride) ? c : bin(I, OP_MUL, c, (sc = onnx_dim_value(I, stride)) < 0 ? -1 : sc);
    flat = flat == -1 ? term : bin(I, OP_ADD, flat, term);
    stride = ir_dim_mul(I->g, stride, d[k]);
    if (stride == DIM_NONE) return onnx_fail(I, DVM_ERR_OVERFLOW, "the element count of data overflows"), -1;
  }
  total = stride;
  flat = sel(I, bad, lit(I, (double)INT64_MAX, flat), flat);
  return onnx_gather(I, onnx_reshape(I, x, &total, 1), flat, 0, name);
}

static dvm_status gather_elements(Imp *I) {
  int64_t x = onnx_in(I, 0), idx = x < 0 ? -1 : onnx_in(I, 1);
  return out(I, 0, elements(I, x, idx, onnx_attr_i(I, "axis", 0), onnx_out(I, 0)));
}

#define TOPK_MAX 64 /* k at most: each pick is two reductions over the axis, and one concat joins them */

/* TopK(x, K) with a constant K: k picks, each the extreme of the entries not taken yet
 * (a reduce_max of a key where taken entries hold a value below every other), its first
 * position among the untaken entries equal to it (an argmax of that mask: the lower index
 * first, as the spec says), its value gathered from x. The key is x (largest) or its
 * opposite (-x, and ~x for integers, which never overflows). NaN is placed as +inf would
 * be: first among the largest (reduce_max lets it win), last among the smallest (its key
 * -inf), as torch.topk does. Over a symbolic axis shorter than K a pick finds nothing:
 * its index is the out-of-range mark, so the run fails saying so. O(k·n) along the axis:
 * for the small k of classifiers and beams. */
static dvm_status top_k(Imp *I) {
  int64_t x = onnx_in(I, 0), kk = x < 0 ? -2 : onnx_arg(I, 1, true);
  double kd;
  if (kk < 0) return I->err->code;
  if (!onnx_scalar(I, (uint32_t)kk, &kd) || kd != floor(kd) || kd < 0)
    return onnx_need(I, kk), onnx_fail(I, DVM_ERR_UNSUPPORTED, "K (input 2) must be a constant, non-negative integer");
  if (kd > TOPK_MAX || kd < 1) return onnx_fail(I, DVM_ERR_UNSUPPORTED, "K = %g: 1 to %d are supported", kd, TOPK_MAX);
  if (DT(x) == DT_BOOL) return onnx_fail(I, DVM_ERR_DTYPE, "TopK of bool: a numeric input expected");
  Dim d[R];
  int r = onnx_vdims(I, x, d), k = (int)kd, ax = ir_axis(onnx_attr_i(I, "axis", -1), r);
  int64_t n;
  if (r < 1 || ax < 0) return onnx_fail(I, DVM_ERR_GRAPH, "axis out of range for rank %d", r);
  if (onnx_dim_const(I, d[ax], &n) && k > n)
    return onnx_fail(I, DVM_ERR_SHAPE, "K = %d is more than the %lld elements along axis %d", k, (long long)n, ax);
  bool largest = onnx_attr_i(I, "largest", 1) != 0, fl = ir_dtype_is_float(DT(x));
  int64_t key = largest ? x : fl ? sel(I, bin(I, OP_NE, x, x), lit(I, -INFINITY, x), un(I, OP_NEG, x))
                              : binc(I, OP_SUB, un(I, OP_NEG, x), 1);
  int bits = ir_dtype_bits(DT(x));
  /* at or below every key: a taken entry ties at most with untaken ones, which the mask keeps */
  double low = fl ? -INFINITY : ir_dtype_is_unsigned(DT(x)) ? 0 : -ldexp(1, bits - 1);
  int64_t axes[1] = {ax}, pos = onnx_iota(I, d[ax], ax, r), taken = -1, vals[TOPK_MAX], idxs[TOPK_MAX];
  for (int j = 0; j < k && key >= 0; j++) {
    int64_t kt = taken < 0 ? key : sel(I, taken, lit(I, low, key), key);
    int64_t m = reduce(I, OP_REDUCE_MAX, kt, axes, 1, true), hit = bin(I, OP_EQ, kt, m);
    if (fl) hit = bin(I, OP_OR, hit, bin(I, OP_AND, bin(I, OP_NE, kt, kt), bin(I, OP_NE, m, m)));
    if (taken >= 0) hit = bin(I, OP_AND, hit, un(I, OP_NOT, taken));
    NodeDraft am = {.op = OP_ARGMAX, .nin = 1};
    int64_t hf = onnx_cast(I, hit, DT_F32); /* f32: the argmax kernels emit */
    if (hf < 0) return I->err->code;
    am.in[0] = (uint32_t)hf;
    onnx_at_int(&am, AK_AXIS, ax);
    onnx_at_int(&am, AK_KEEPDIMS, 1);
    idxs[j] = onnx_add(I, &am, NULL);
    if (!onnx_dim_const(I, d[ax], &n)) /* nothing left to take: the mark */
      idxs[j] = sel(I, binc(I, OP_EQ, reduce(I, OP_REDUCE_MAX, hf, axes, 1, true), 0),
                    lit(I, (double)INT64_MAX, idxs[j]), idxs[j]);
    int64_t now = bin(I, OP_EQ, pos, idxs[j]);
    taken = taken < 0 ? now : bin(I, OP_OR, taken, now);
    vals[j] = elements(I, x, idxs[j], ax, NULL);
    if (vals[j] < 0 || taken < 0) return I->err->code;
  }
  if (key < 0) return I->err->code;
  int64_t outs[2];
  for (int o = 0; o < 2; o++) {
    int64_t *parts = o ? idxs : vals;
    if (k == 1) {
      outs[o] = parts[0];
      continue;
    }
    NodeDraft c = {.op = OP_CONCAT, .nin = (uint32_t)k};
    for (int j = 0; j < k; j++) c.in[j] = (uint32_t)parts[j];
    onnx_at_int(&c, AK_AXIS, ax);
    outs[o] = onnx_add(I, &c, NULL);
  }
  if (out(I, 0, outs[0])) return I->err->code;
  return onnx_out(I, 1) ? out(I, 1, outs[1]) : DVM_OK;
}

/* ReverseSequence(x, lens, batch_axis, time_axis): along the time axis, the first lens[b]
 * elements of batch b reversed, the rest kept: GatherElements at t < L ? L - 1 - t : t
 * (a length past the axis makes an index out of range, refused at run time). */
static dvm_status reverse_sequence(Imp *I) {
  int64_t x = onnx_in(I, 0), lens = x < 0 ? -1 : onnx_in(I, 1);
  if (lens < 0) return I->err->code;
  Dim d[R], s[R];
  int r = onnx_vdims(I, x, d);
  int bx = ir_axis(onnx_attr_i(I, "batch_axis", 1), r), tx = ir_axis(onnx_attr_i(I, "time_axis", 0), r);
  if (r < 2 || bx < 0 || tx < 0 || bx == tx)
    return onnx_fail(I, DVM_ERR_GRAPH, "batch_axis and time_axis must be two different axes of the input (rank %d)", r);
  if (ir_dtype_is_float(DT(lens))) return onnx_fail(I, DVM_ERR_DTYPE, "sequence_lens must be integers");
  for (int i = 0; i < r; i++) s[i] = i == bx ? d[bx] : ir_dim_const(I->g, 1);
  int64_t L = onnx_reshape(I, onnx_cast(I, lens, DT_I64), s, r), t = onnx_iota(I, d[tx], tx, r);
  int64_t src = sel(I, bin(I, OP_LT, t, L), bin(I, OP_SUB, binc(I, OP_SUB, L, 1), t), t);
  if (src < 0) return I->err->code;
  NodeDraft b = {.op = OP_BROADCAST_TO, .nin = 1, .in = {(uint32_t)src}};
  onnx_at_dims(I, &b, AK_SHAPE, d, (uint32_t)r);
  return out(I, 0, elements(I, x, onnx_add(I, &b, NULL), tx, onnx_out(I, 0)));
}

/* GatherND(data, indices, batch_dims = b): indices [..., k] address data's axes b .. b+k-1
 * under the b batch axes data and indices share; the result is indices.shape[:-1] +
 * data.shape[b+k:]. A gather from data reshaped to [B·P, rest...] (B, P the products of
 * the batch and the addressed axes) at the offset batch·P + Σ idx_j·stride_j; an index
 * out of its axis's range becomes an offset past the end, refused at run time. */
static dvm_status gather_nd(Imp *I) {
  int64_t x = onnx_in(I, 0), idx = x < 0 ? -1 : onnx_in(I, 1), k;
  if (idx < 0) return I->err->code;
  Dim d[R], e[R];
  int r = onnx_vdims(I, x, d), ri = onnx_vdims(I, idx, e);
  int64_t b = onnx_attr_i(I, "batch_dims", 0);
  if (ri < 1 || !onnx_dim_const(I, e[ri - 1], &k))
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "the indices' last dim must be a constant");
  if (b < 0 || b >= ri || k < 1 || k > r - b)
    return onnx_fail(I, DVM_ERR_GRAPH, "batch_dims %lld and %lld-element indices do not fit data of rank %d",
                     (long long)b, (long long)k, r);
  if (ri - 1 + r - b - k > R) return onnx_fail(I, DVM_ERR_SHAPE, "the result's rank exceeds %d", R);
  if (DT(idx) != DT_I32 && DT(idx) != DT_I64) return onnx_fail(I, DVM_ERR_DTYPE, "the indices must be int32 or int64");
  for (int i = 0; i < b; i++)
    if (ir_dim_subst(I->g, d[i]) != ir_dim_subst(I->g, e[i]))
      return onnx_fail(I, DVM_ERR_SHAPE, "batch axis %d differs between data and indices", i);
  idx = onnx_cast(I, idx, DT_I64);
  int64_t flat = -1, bad = -1;
  Dim shape[R], whole = ir_dim_const(I->g, 1);
  for (int j = 0; j < b + k && idx >= 0; j++) { /* Horner over the batch, then the addressed axes */
    int64_t n = onnx_dim_value(I, d[j]), c;
    if (j < b) {
      c = onnx_iota(I, e[j], j, ri - 1);
    } else {
      NodeDraft s = {.op = OP_SLICE, .nin = 1, .in = {(uint32_t)idx}};
      Dim st = ir_dim_const(I->g, j - b), en = ir_dim_const(I->g, j - b + 1);
      onnx_at_ints(I, &s, AK_AXES, (const int64_t[]){ri - 1}, 1);
      onnx_at_dims(I, &s, AK_STARTS, &st, 1);
      onnx_at_dims(I, &s, AK_ENDS, &en, 1);
      c = onnx_reshape(I, onnx_add(I, &s, NULL), e, ri - 1);
      c = sel(I, binc(I, OP_LT, c, 0), bin(I, OP_ADD, c, n), c);
      int64_t out_of = bin(I, OP_OR, binc(I, OP_LT, c, 0), bin(I, OP_GE, c, n));
      bad = bad == -1 ? out_of : bin(I, OP_OR, bad, out_of);
    }
    flat = flat == -1 ? c : bin(I, OP_ADD, bin(I, OP_MUL, flat, n), c);
    if ((whole = ir_dim_mul(I->g, whole, d[j])) == DIM_NONE)
      return onnx_fail(I, DVM_ERR_OVERFLOW, "the element count of data overflows");
  }
  flat = sel(I, bad, lit(I, (double)INT64_MAX, flat), flat);
  shape[0] = whole;
  for (int i = (int)(b + k); i < r; i++) shape[i - b - k + 1] = d[i];
  return out(I, 0, onnx_gather(I, onnx_reshape(I, x, shape, (int)(r - b - k + 1)), flat, 0, onnx_out(I, 0)));
}

/* ---- losses ---------------------------------------------------------------------------------- */

/* NegativeLogLikelihoodLoss over logp (N, C, d...) with target (N, d...) and weight (C) or
 * -1: per element -logp[n][t][d] · w[t], with w = 0 where t is the ignore_index; reduced
 * by "none", "sum" or "mean" (the sum over the sum of the weights). Input k0 is logp's. */
static int64_t nll(Imp *I, int64_t logp, size_t kt, size_t kw) {
  int64_t t = onnx_in(I, kt), w8 = onnx_arg(I, kw, false), wt = w8 >= 0 ? onnx_in(I, kw) : -1;
  if (logp < 0 || t < 0 || w8 == -2 || (w8 >= 0 && wt < 0)) return -1;
  static const char *const reductions[] = {"none", "sum", "mean", NULL};
  int how = onnx_attr_choice(I, "reduction", reductions, 2);
  if (how < 0) return -1;
  Dim d[R];
  int r = onnx_vdims(I, logp, d);
  if (r < 2) return onnx_fail(I, DVM_ERR_SHAPE, "the input has rank %d, at least 2 expected (N, C, ...)", r), -1;
  if (ir_dtype_is_float(DT(t)))
    return onnx_fail(I, DVM_ERR_DTYPE, "the target must be integers, not %s", ir_dtype_name(DT(t))), -1;
  t = onnx_cast(I, t, DT_I64);
  int64_t one = 1, tu = -1;
  if (t >= 0) {
    NodeDraft u = {.op = OP_UNSQUEEZE, .nin = 1, .in = {(uint32_t)t}};
    onnx_at_ints(I, &u, AK_AXES, &one, 1);
    tu = onnx_add(I, &u, NULL);
  }
  int64_t hot = bin(I, OP_EQ, tu, onnx_iota(I, d[1], 1, r)), zero = lit(I, 0, logp);
  int64_t picked = reduce(I, OP_REDUCE_SUM, sel(I, hot, logp, zero), &one, 1, false);
  if (wt >= 0) { /* (C) laid along axis 1 */
    Dim s[R];
    for (int i = 0; i < r; i++) s[i] = i == 1 ? d[1] : ir_dim_const(I->g, 1);
    wt = onnx_reshape(I, wt, s, r);
  }
  int64_t w = reduce(I, OP_REDUCE_SUM, sel(I, hot, wt >= 0 ? wt : lit(I, 1, logp), zero), &one, 1, false);
  if (onnx_attr(I, "ignore_index"))
    w = sel(I, binc(I, OP_EQ, t, (double)onnx_attr_i(I, "ignore_index", 0)), zero, w);
  int64_t loss = un(I, OP_NEG, bin(I, OP_MUL, picked, w));
  if (how == 0) return loss;
  loss = reduce(I, OP_REDUCE_SUM, loss, NULL, -1, false);
  return how == 1 ? loss : bin(I, OP_DIV, loss, reduce(I, OP_REDUCE_SUM, w, NULL, -1, false));
}

static dvm_status nll_loss(Imp *I) { return out(I, 0, nll(I, float_in(I), 1, 2)); }

/* SoftmaxCrossEntropyLoss: the NLL of log_softmax over axis 1; output 2 is that log_softmax. */
static dvm_status softmax_ce(Imp *I) {
  int64_t x = float_in(I), lp = -1;
  if (x >= 0) {
    NodeDraft d = {.op = OP_LOG_SOFTMAX, .nin = 1, .in = {(uint32_t)x}};
    onnx_at_int(&d, AK_AXIS, 1);
    lp = onnx_add(I, &d, NULL);
  }
  if (out(I, 0, nll(I, lp, 1, 2))) return I->err->code;
  return onnx_out(I, 1) ? out(I, 1, lp) : DVM_OK;
}

/* ---- shapes ------------------------------------------------------------------------------- */

/* Size: the element count, a scalar shape value. */
static dvm_status size(Imp *I) {
  int64_t k = onnx_arg(I, 0, true);
  if (k < 0) return I->err->code;
  Dim d[R], n = ir_dim_const(I->g, 1);
  int r = onnx_dims(I, (uint32_t)k, d);
  for (int i = 0; i < r; i++) n = ir_dim_mul(I->g, n, d[i]);
  if (n == DIM_NONE) return onnx_fail(I, DVM_ERR_OVERFLOW, "the element count overflows");
  return onnx_def(I, 0, onnx_val_sym(I, DT_I64, 0, NULL, &n));
}

static dvm_status cast_like(Imp *I) {
  int64_t kl = onnx_arg(I, 1, true), x = kl < 0 ? -1 : onnx_in(I, 0);
  if (x < 0) return I->err->code;
  return out(I, 0, onnx_cast(I, x, onnx_val_dtype(I, (uint32_t)kl)));
}

/* ---- layout -------------------------------------------------------------------------------- */

static int64_t transpose(Imp *I, int64_t x, const int64_t *perm, int n) {
  if (x < 0) return -1;
  NodeDraft d = {.op = OP_TRANSPOSE, .nin = 1, .in = {(uint32_t)x}};
  onnx_at_ints(I, &d, AK_PERM, perm, (uint32_t)n);
  return onnx_add(I, &d, NULL);
}

/* onnx_pad_axis with sizes that may be symbolic (at least 0). */
static int64_t pad_axis(Imp *I, int64_t x, int axis, Dim b, Dim e, double c, int64_t val) {
  if (x < 0) return -1;
  Dim d[R];
  int r = onnx_vdims(I, x, d);
  NodeDraft cat = {.op = OP_CONCAT};
  for (int part = 0; part < 3; part++) {
    Dim len = part == 0 ? b : e;
    int64_t blk, z;
    if (part == 1) {
      cat.in[cat.nin++] = (uint32_t)x;
      continue;
    }
    if (onnx_dim_const(I, len, &z) && !z) continue;
    Dim s[R];
    memcpy(s, d, (size_t)r * sizeof *s);
    s[axis] = len;
    if (val < 0) {
      blk = onnx_full(I, s, r, c, DT(x), NULL);
    } else {
      NodeDraft bt = {.op = OP_BROADCAST_TO, .nin = 1, .in = {(uint32_t)val}};
      onnx_at_dims(I, &bt, AK_SHAPE, s, (uint32_t)r);
      blk = onnx_add(I, &bt, NULL);
    }
    if (blk < 0) return -1;
    cat.in[cat.nin++] = (uint32_t)blk;
  }
  if (cat.nin == 1) return x;
  onnx_at_int(&cat, AK_AXIS, axis);
  return onnx_add(I, &cat, NULL);
}

int64_t onnx_pad_axis(Imp *I, int64_t x, int axis, int64_t b, int64_t e, double c, int64_t val) {
  return pad_axis(I, x, axis, ir_dim_const(I->g, b), ir_dim_const(I->g, e), c, val);
}

int64_t onnx_gather(Imp *I, int64_t x, int64_t idx, int axis, const char *name) {
  if (x < 0 || idx < 0) return -1;
  NodeDraft g = {.op = OP_GATHER, .nin = 2, .in = {(uint32_t)x, (uint32_t)idx}};
  onnx_at_int(&g, AK_AXIS, axis);
  return onnx_add(I, &g, name);
}

/* Pad(data, pads, constant_value) (opset 13): per axis, a negative pad crops (a slice),
 * then `constant` concatenates blocks of the value (a run-time scalar broadcast), while
 * `edge` and `reflect` gather along the axis at position o - pb clamped into [0, n) or
 * reflected about its ends (index tables computed from arange, so the dims may be
 * symbolic; reflect needs pads below the dim, checked when the model runs). */
static dvm_status pad_op(Imp *I) {
  static const char *const modes[] = {"constant", "reflect", "edge", NULL};
  int mode = onnx_attr_choice(I, "mode", modes, 0);
  int64_t x = mode < 0 ? -1 : onnx_in(I, 0), kp = x < 0 ? -2 : onnx_arg(I, 1, true), kv = kp < 0 ? -2 : onnx_arg(I, 2, false);
  int64_t pads[2 * R], val = -1;
  Dim pd[2 * R]; /* pads from an input's values (constant mode): symbolic, at least 0 */
  int n;
  if (kv == -2) return I->err->code;
  Dim d[R];
  int r = onnx_vdims(I, x, d);
  Val *pv = onnx_val(I, (uint32_t)kp);
  if (pv->kind != V_SYM || pv->rank > 1 || pv->numel > 2 * R)
    return onnx_need(I, kp), onnx_fail(I, DVM_ERR_UNSUPPORTED, "pads (input 2) must be constant integers");
  n = (int)pv->numel;
  for (int i = 0; i < n; i++) {
    pd[i] = ir_dim_subst(I->g, onnx_val(I, (uint32_t)kp)->d[i]);
    if (onnx_dim_const(I, pd[i], &pads[i])) continue;
    pads[i] = 0;
    if (mode != 0 || !onnx_value_dim(I, pd[i], INT64_MAX) || onnx_value_dim(I, pd[i], 0))
      return onnx_need(I, kp), onnx_fail(I, DVM_ERR_UNSUPPORTED, "pads (input 2) must be constant integers");
  }
  if (n != 2 * r) return onnx_fail(I, DVM_ERR_SHAPE, "pads has %d entries for an input of rank %d", n, r);
  if (kv >= 0 && mode == 0) {
    if ((val = onnx_in(I, 2)) < 0) return I->err->code;
    if (DT(val) != DT(x)) return onnx_fail(I, DVM_ERR_DTYPE, "constant_value is %s, the data %s", ir_dtype_name(DT(val)),
                                           ir_dtype_name(DT(x)));
    Dim vd[R];
    int64_t c = 1, e1;
    for (int i = 0, vr = onnx_vdims(I, val, vd); i < vr; i++) c = onnx_dim_const(I, vd[i], &e1) ? c * e1 : -1;
    if (c != 1) return onnx_fail(I, DVM_ERR_SHAPE, "constant_value must have one element");
    if ((val = onnx_reshape(I, val, NULL, 0)) < 0) return I->err->code;
  }
  const int64_t big = (int64_t)1 << 31;
  for (int i = 0; i < r && x >= 0; i++) {
    int64_t b = pads[i], e = pads[r + i], cz;
    if (!onnx_dim_const(I, pd[i], &cz) || !onnx_dim_const(I, pd[r + i], &cz)) { /* blocks of symbolic size */
      if (b < 0 || e < 0) /* and a crop on the other side */
        return onnx_need(I, kp), onnx_fail(I, DVM_ERR_UNSUPPORTED, "pads (input 2) must be constant integers");
      x = pad_axis(I, x, i, pd[i], pd[r + i], 0, val);
      d[i] = ir_dim_add(I->g, ir_dim_add(I->g, d[i], pd[i]), pd[r + i]);
      continue;
    }
    if (b < -big || b > big || e < -big || e > big)
      return onnx_fail(I, DVM_ERR_GRAPH, "pads of axis %d: %lld and %lld", i, (long long)b, (long long)e);
    if (b < 0 || e < 0) { /* crop first: the axis must hold what is cut */
      Dim st = ir_dim_const(I->g, b < 0 ? -b : 0), en = ir_dim_sub(I->g, d[i], ir_dim_const(I->g, e < 0 ? -e : 0));
      int64_t c;
      bool known = onnx_dim_const(I, ir_dim_sub(I->g, en, st), &c);
      if (known && c < 0)
        return onnx_fail(I, DVM_ERR_SHAPE, "pads of axis %d (%lld, %lld) crop more than it holds", i, (long long)b,
                         (long long)e);
      if (!known && ir_require_le(I->g, st, en, (uint32_t)I->g->nodes.n - 1, I->nodeno, I->err)) return I->err->code;
      int64_t ax = i;
      NodeDraft sl = {.op = OP_SLICE, .nin = 1, .in = {(uint32_t)x}};
      onnx_at_ints(I, &sl, AK_AXES, &ax, 1);
      onnx_at_dims(I, &sl, AK_STARTS, &st, 1);
      onnx_at_dims(I, &sl, AK_ENDS, &en, 1);
      x = onnx_add(I, &sl, NULL);
      d[i] = ir_dim_sub(I->g, en, st);
      b = b < 0 ? 0 : b, e = e < 0 ? 0 : e;
    }
    if (!b && !e) continue;
    if (mode == 0) { /* blocks of the value */
      x = onnx_pad_axis(I, x, i, b, e, 0, val);
      d[i] = ir_dim_add(I->g, d[i], ir_dim_const(I->g, b + e));
      continue;
    }
    /* t = arange(n + b + e) - b, then clamped (edge) or reflected about 0 and n - 1: edge
     * needs an element, reflect pb and pe past the ends (the axis must hold more) */
    {
      int64_t c, most = mode == 2 ? 0 : b > e ? b : e;
      Dim need = ir_dim_const(I->g, most + 1);
      if (onnx_dim_const(I, d[i], &c) ? c <= most : 0)
        return onnx_fail(I, DVM_ERR_SHAPE, "%s pads of %lld on axis %d of %lld elements", modes[mode],
                         (long long)(mode == 2 ? b + e : most), i, (long long)c);
      if (!onnx_dim_const(I, d[i], &c) && ir_require_le(I->g, need, d[i], (uint32_t)I->g->nodes.n - 1, I->nodeno, I->err))
        return I->err->code;
    }
    Dim total = ir_dim_add(I->g, d[i], ir_dim_const(I->g, b + e));
    int64_t last = onnx_dim_value(I, ir_dim_sub(I->g, d[i], ir_dim_const(I->g, 1)));
    int64_t t = binc(I, OP_SUB, onnx_iota(I, total, 0, 1), (double)b);
    if (mode == 2) t = bin(I, OP_MIN, bin(I, OP_MAX, t, lit(I, 0, t)), last);
    else t = bin(I, OP_SUB, last, un(I, OP_ABS, bin(I, OP_SUB, last, un(I, OP_ABS, t))));
    if (t < 0) return I->err->code;
    x = onnx_gather(I, x, t, i, NULL);
    d[i] = total;
  }
  return out(I, 0, x);
}

/* LRN: x / (bias + alpha/size · sum of x² over the channels c - floor((size-1)/2) ..
 * c + ceil((size-1)/2))^beta; the sum is `size` slices along axis 1 of x² padded with
 * zeros, added (fusion makes it one kernel). */
static dvm_status lrn(Imp *I) {
  int64_t x = float_in(I), size = onnx_attr_i(I, "size", 0);
  if (x < 0) return I->err->code;
  if (size < 1 || size > 1024) return onnx_fail(I, DVM_ERR_GRAPH, "size is %lld (1 to 1024 supported)", (long long)size);
  Dim d[R];
  int r = onnx_vdims(I, x, d);
  if (r < 3) return onnx_fail(I, DVM_ERR_SHAPE, "the input has rank %d, at least 3 expected (N, C, ...)", r);
  int64_t lo = (size - 1) / 2, sum = -1, one = 1;
  int64_t padded = onnx_pad_axis(I, bin(I, OP_MUL, x, x), 1, lo, size - 1 - lo, 0, -1);
  for (int64_t j = 0; j < size && padded >= 0; j++) {
    Dim st = ir_dim_const(I->g, j), en = ir_dim_add(I->g, d[1], st);
    NodeDraft sl = {.op = OP_SLICE, .nin = 1, .in = {(uint32_t)padded}};
    onnx_at_ints(I, &sl, AK_AXES, &one, 1);
    onnx_at_dims(I, &sl, AK_STARTS, &st, 1);
    onnx_at_dims(I, &sl, AK_ENDS, &en, 1);
    int64_t t = onnx_add(I, &sl, NULL);
    sum = sum < 0 ? t : bin(I, OP_ADD, sum, t);
    if (sum < 0) return I->err->code;
  }
  double alpha = onnx_attr_f(I, "alpha", 1e-4), beta = onnx_attr_f(I, "beta", 0.75), bias = onnx_attr_f(I, "bias", 1);
  int64_t den = binc(I, OP_ADD, binc(I, OP_MUL, sum, (double)(float)alpha / (double)size), (double)(float)bias);
  return out(I, 0, bin(I, OP_MUL, x, bin(I, OP_POW, den, lit(I, -(double)(float)beta, x))));
}

/* Tile(x, repeats): x as [1, d0, 1, d1, ...] broadcast to [r0, d0, r1, d1, ...], merged. */
static dvm_status tile(Imp *I) {
  int64_t x = onnx_in(I, 0), kr = x < 0 ? -2 : onnx_arg(I, 1, true), rep;
  if (kr < 0) return I->err->code;
  Dim d[R], s[R], b[R], o[R];
  int r = onnx_vdims(I, x, d);
  Val *rv = onnx_val(I, (uint32_t)kr);
  if (rv->kind != V_SYM || rv->rank != 1 || rv->numel != r) /* repeats: constants or dims */
    return onnx_need(I, kr), onnx_fail(I, DVM_ERR_UNSUPPORTED, "repeats (input 2) must be %d integers known "
                                       "when the model is loaded", r);
  if (2 * r > R) return onnx_fail(I, DVM_ERR_UNSUPPORTED, "Tile of rank %d (at most %d)", r, R / 2);
  for (int i = 0; i < r; i++) {
    Dim ri = ir_dim_subst(I->g, onnx_val(I, (uint32_t)kr)->d[i]);
    if (ir_dim_is_const(I->g, ri, &rep) && rep < 0)
      return onnx_fail(I, DVM_ERR_GRAPH, "repeats[%d] is %lld, negative", i, (long long)rep);
    if (onnx_value_dim(I, ri, 0))
      return onnx_fail(I, DVM_ERR_UNSUPPORTED, "repeats[%d] computed from a graph input is needed when the "
                       "model is loaded", i);
    s[2 * i] = ir_dim_const(I->g, 1), s[2 * i + 1] = d[i];
    b[2 * i] = ri, b[2 * i + 1] = d[i];
    o[i] = ir_dim_mul(I->g, d[i], b[2 * i]);
  }
  int64_t y = onnx_reshape(I, x, s, 2 * r);
  if (y >= 0) {
    NodeDraft bt = {.op = OP_BROADCAST_TO, .nin = 1, .in = {(uint32_t)y}};
    onnx_at_dims(I, &bt, AK_SHAPE, b, (uint32_t)(2 * r));
    y = onnx_add(I, &bt, NULL);
  }
  return out(I, 0, onnx_reshape(I, y, o, r));
}

/* DepthToSpace and SpaceToDepth on (N, C, H, W): a reshape, a transpose, a reshape. */
static dvm_status depth_space(Imp *I, bool to_space) {
  int64_t x = onnx_in(I, 0), bs = onnx_attr_i(I, "blocksize", 0), c;
  if (x < 0) return I->err->code;
  Dim d[R];
  if (onnx_vdims(I, x, d) != 4) return onnx_fail(I, DVM_ERR_SHAPE, "the input must have rank 4 (N, C, H, W)");
  if (bs < 1 || bs > (1 << 20)) return onnx_fail(I, DVM_ERR_GRAPH, "blocksize %lld is not positive", (long long)bs);
  Graph *g = I->g;
  Dim b = ir_dim_const(g, bs);
  if (to_space) {
    if (!ir_dim_is_const(g, d[1], &c) || c % (bs * bs))
      return onnx_fail(I, DVM_ERR_SHAPE, "the channels must be a constant multiple of blocksize^2 = %lld",
                       (long long)(bs * bs));
    Dim cb = ir_dim_const(g, c / (bs * bs));
    static const char *const modes[] = {"DCR", "CRD", NULL};
    int mode = onnx_attr_choice(I, "mode", modes, 0);
    if (mode < 0) return I->err->code;
    bool crd = mode == 1;
    Dim s6[6] = {d[0], b, b, cb, d[2], d[3]}, c6[6] = {d[0], cb, b, b, d[2], d[3]};
    static const int64_t dcr[6] = {0, 3, 4, 1, 5, 2}, crd_p[6] = {0, 1, 4, 2, 5, 3};
    Dim o[4] = {d[0], cb, ir_dim_mul(g, d[2], b), ir_dim_mul(g, d[3], b)};
    int64_t y = transpose(I, onnx_reshape(I, x, crd ? c6 : s6, 6), crd ? crd_p : dcr, 6);
    return out(I, 0, onnx_reshape(I, y, o, 4));
  }
  Dim h = onnx_dim_div(g, d[2], b), w = onnx_dim_div(g, d[3], b);
  if (h == DIM_NONE || w == DIM_NONE)
    return onnx_fail(I, DVM_ERR_SHAPE, "H and W must be multiples of blocksize %lld", (long long)bs);
  Dim s6[6] = {d[0], d[1], h, b, w, b}, o[4] = {d[0], ir_dim_mul(g, d[1], ir_dim_const(g, bs * bs)), h, w};
  static const int64_t perm[6] = {0, 3, 5, 1, 2, 4};
  return out(I, 0, onnx_reshape(I, transpose(I, onnx_reshape(I, x, s6, 6), perm, 6), o, 4));
}

/* ---- normalization ------------------------------------------------------------------------ */

/* MeanVarianceNormalization: (x - E[x]) / (sqrt(E[(x - E[x])^2]) + 1e-9) over axes (ONNX's
 * function body writes the variance E[x^2] - E[x]^2, which cancels when the mean is large). */
static dvm_status mvn(Imp *I) {
  int64_t axes[R] = {0, 2, 3};
  int n = onnx_attr_ints(I, "axes", axes, R);
  if (n == -2) return I->err->code;
  if (n < 0) n = 3;
  int64_t x = float_in(I);
  if (x < 0) return I->err->code;
  int64_t m = reduce(I, OP_REDUCE_MEAN, x, axes, n, true);
  int64_t c = bin(I, OP_SUB, x, m), var = reduce(I, OP_REDUCE_MEAN, bin(I, OP_MUL, c, c), axes, n, true);
  return out(I, 0, bin(I, OP_DIV, c, binc(I, OP_ADD, un(I, OP_SQRT, var), 1e-9)));
}

/* InstanceNormalization: per (n, c), over the axes after them, (x - mean) / sqrt(var + eps)
 * times scale[c] plus B[c]. */
static dvm_status instance_norm(Imp *I) {
  int64_t x = float_in(I), axes[R];
  if (x < 0) return I->err->code;
  Dim d[R], s[R];
  int r = onnx_vdims(I, x, d);
  if (r < 3) return onnx_fail(I, DVM_ERR_SHAPE, "the input has rank %d, at least 3 expected (N, C, ...)", r);
  for (int i = 2; i < r; i++) axes[i - 2] = i;
  for (int i = 1; i < r; i++) s[i - 1] = i == 1 ? d[1] : ir_dim_const(I->g, 1);
  int64_t m = reduce(I, OP_REDUCE_MEAN, x, axes, r - 2, true), c = bin(I, OP_SUB, x, m);
  int64_t var = reduce(I, OP_REDUCE_MEAN, bin(I, OP_MUL, c, c), axes, r - 2, true);
  int64_t sc = onnx_reshape(I, onnx_in(I, 1), s, r - 1), b = sc < 0 ? -1 : onnx_reshape(I, onnx_in(I, 2), s, r - 1);
  double eps = (double)(float)onnx_attr_f(I, "epsilon", 1e-5);
  int64_t y = bin(I, OP_MUL, c, un(I, OP_RSQRT, binc(I, OP_ADD, var, eps)));
  return out(I, 0, bin(I, OP_ADD, bin(I, OP_MUL, y, sc), b));
}

/* ---- the table ------------------------------------------------------------------------------ */

bool onnx_composed(Imp *I, const char *t, dvm_status *st) {
  static const char *const acts[] = {"LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "HardSigmoid",
                                     "HardSwish", "Softplus", "Softsign", "ThresholdedRelu", "Shrink"};
  static const char *const hyper[] = {"Tan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Atan", "Asin", "Acos"};
  static const char *const reds[] = {"ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum",
                                     "ReduceLogSumExp"};
  for (size_t i = 0; i < sizeof acts / sizeof *acts; i++)
    if (!strcmp(t, acts[i])) return *st = activation(I, t), true;
  for (size_t i = 0; i < sizeof hyper / sizeof *hyper; i++)
    if (!strcmp(t, hyper[i])) return *st = hyperbolic(I, t), true;
  for (size_t i = 0; i < sizeof reds / sizeof *reds; i++)
    if (!strcmp(t, reds[i])) return *st = reduction(I, t), true;
  if (!strcmp(t, "Sum")) return *st = sum_mean(I, false), true;
  if (!strcmp(t, "Mean")) return *st = sum_mean(I, true), true;
  if (!strcmp(t, "Clip")) return *st = clip(I), true;
  if (!strcmp(t, "Xor") || !strcmp(t, "IsNaN") || !strcmp(t, "IsInf")) return *st = predicate(I, t), true;
  if (!strcmp(t, "Mod")) return *st = mod(I), true;
  if (!strcmp(t, "BitShift")) return *st = bit_shift(I), true;
  if (!strcmp(t, "GlobalAveragePool")) return *st = global_pool(I, OP_REDUCE_MEAN), true;
  if (!strcmp(t, "GlobalMaxPool")) return *st = global_pool(I, OP_REDUCE_MAX), true;
  if (!strcmp(t, "ArgMax")) return *st = arg_extreme(I, false), true;
  if (!strcmp(t, "ArgMin")) return *st = arg_extreme(I, true), true;
  if (!strcmp(t, "Trilu")) return *st = trilu(I), true;
  if (!strcmp(t, "EyeLike")) return *st = eye_like(I), true;
  if (!strcmp(t, "Hardmax")) return *st = hardmax(I), true;
  if (!strcmp(t, "OneHot")) return *st = one_hot(I), true;
  if (!strcmp(t, "Size")) return *st = size(I), true;
  if (!strcmp(t, "CastLike")) return *st = cast_like(I), true;
  if (!strcmp(t, "GatherElements")) return *st = gather_elements(I), true;
  if (!strcmp(t, "GatherND")) return *st = gather_nd(I), true;
  if (!strcmp(t, "TopK")) return *st = top_k(I), true;
  if (!strcmp(t, "ReverseSequence")) return *st = reverse_sequence(I), true;
  if (!strcmp(t, "NegativeLogLikelihoodLoss")) return *st = nll_loss(I), true;
  if (!strcmp(t, "SoftmaxCrossEntropyLoss")) return *st = softmax_ce(I), true;
  if (!strcmp(t, "Pad")) return *st = pad_op(I), true;
  if (!strcmp(t, "LRN")) return *st = lrn(I), true;
  if (!strcmp(t, "Tile")) return *st = tile(I), true;
  if (!strcmp(t, "DepthToSpace")) return *st = depth_space(I, true), true;
  if (!strcmp(t, "SpaceToDepth")) return *st = depth_space(I, false), true;
  if (!strcmp(t, "InstanceNormalization")) return *st = instance_norm(I), true;
  if (!strcmp(t, "MeanVarianceNormalization")) return *st = mvn(I), true;
  return false;
}
