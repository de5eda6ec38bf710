/* onnx/signal.c — ops along one axis made of a mask: CumSum, and the window functions
 * HannWindow, HammingWindow and BlackmanWindow, in the builder of onnx.h.
 *
 * CumSum is a row reduction of the input selected by a triangular mask made from two
 * aranges (a select, not a product with 0/1: an infinity or NaN outside the prefix must not
 * make 0·inf), which fusion makes one row kernel reading the input in place, with no scan
 * of its own: O(n²) in the axis's length n, for the short axes models take cumulative sums
 * over (positions from an attention mask, offsets). Integers wrap as a running sum does;
 * floats sum in the row kernel's order. */
#include <math.h>
#include <string.h>

#include "onnx.h"

#define R DVM_MAX_RANK

/* The axis input k (a constant scalar) normalized against rank r; -1 with the error set. */
static int constant_axis(Imp *I, size_t i, int r) {
  int64_t k = onnx_arg(I, i, true);
  double a;
  if (k < 0) return -1;
  if (!onnx_scalar(I, (uint32_t)k, &a) || a != floor(a))
    return onnx_need(I, k), onnx_fail(I, DVM_ERR_UNSUPPORTED, "axis (input %zu) must be a constant integer", i + 1), -1;
  int ax = fabs(a) <= R ? ir_axis((int64_t)a, r) : -1;
  if (ax < 0) return onnx_fail(I, DVM_ERR_GRAPH, "axis %g out of range for rank %d", a, r), -1;
  return ax;
}

/* y[..., i, ...] = sum of x[..., j, ...] over j <= i (exclusive: j < i; reverse: j >= i,
 * j > i) along the axis: x moved to put the axis last, [..., 1, n] selected by mask[i, j]
 * into [..., n, n], summed over the last axis, moved back. */
static dvm_status cumsum(Imp *I) {
  int64_t x = onnx_in(I, 0);
  if (x < 0) return I->err->code;
  if (DT(x) == DT_BOOL) return onnx_fail(I, DVM_ERR_DTYPE, "CumSum of bool: a numeric input expected");
  Dim d[R];
  int r = onnx_vdims(I, x, d), ax = constant_axis(I, 1, r > 0 ? r : 1);
  if (ax < 0) return I->err->code;
  if (r == 0) return onnx_fail(I, DVM_ERR_SHAPE, "CumSum of a scalar: rank 1 or more expected");
  bool excl = onnx_attr_i(I, "exclusive", 0) != 0, rev = onnx_attr_i(I, "reverse", 0) != 0;
  Op cmp = rev ? (excl ? OP_GT : OP_GE) : (excl ? OP_LT : OP_LE);
  int64_t i = onnx_iota(I, d[ax], 0, 2), j = onnx_iota(I, d[ax], 1, 2), mask = bin(I, cmp, j, i);
  int64_t perm[R];
  for (int k = 0; k < r; k++) perm[k] = k == r - 1 ? ax : k == ax ? r - 1 : k; /* a swap: its own inverse */
  int64_t t = x;
  if (ax != r - 1) {
    NodeDraft tr = {.op = OP_TRANSPOSE, .nin = 1, .in = {(uint32_t)x}};
    onnx_at_ints(I, &tr, AK_PERM, perm, (uint32_t)r);
    t = onnx_add(I, &tr, NULL);
  }
  if (t < 0) return I->err->code;
  NodeDraft u = {.op = OP_UNSQUEEZE, .nin = 1, .in = {(uint32_t)t}};
  onnx_at_ints(I, &u, AK_AXES, (const int64_t[]){r - 1}, 1);
  int64_t last = r, y = reduce(I, OP_REDUCE_SUM, sel(I, mask, onnx_add(I, &u, NULL), lit(I, 0, x)), &last, 1, false);
  if (y >= 0 && ax != r - 1) {
    NodeDraft tr = {.op = OP_TRANSPOSE, .nin = 1, .in = {(uint32_t)y}};
    onnx_at_ints(I, &tr, AK_PERM, perm, (uint32_t)r);
    y = onnx_add(I, &tr, onnx_out(I, 0));
  }
  return onnx_def_dyn(I, 0, y);
}

/* The generalized cosine windows a0 - a1·cos(x) + a2·cos(2x), x = 2πn / N for n in
 * [0, size), N = size (periodic) or size - 1 (symmetric); computed in f32 as ONNX's
 * reference does, then cast to output_datatype. */
static dvm_status cosine_window(Imp *I, double a0, double a1, double a2) {
  int64_t k = onnx_arg(I, 0, true);
  double size;
  if (k < 0) return I->err->code;
  if (!onnx_scalar(I, (uint32_t)k, &size) || !(size >= 1 && size <= 1e9) || size != floor(size))
    return onnx_need(I, k), onnx_fail(I, DVM_ERR_UNSUPPORTED, "size (input 1) must be a constant integer of at least 1");
  int64_t odt = onnx_attr_i(I, "output_datatype", 1);
  int dt = onnx_dtype(odt);
  if (dt < 0 || dt == DT_BOOL)
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "output_datatype %s is not supported", onnx_dtype_name(odt));
  double n = onnx_attr_i(I, "periodic", 1) ? size : size - 1;
  int64_t x = binc(I, OP_MUL, onnx_cast(I, onnx_iota(I, ir_dim_const(I->g, (int64_t)size), 0, 1), DT_F32), 2 * M_PI / n);
  int64_t y = binc(I, OP_SUB, binc(I, OP_MUL, un(I, OP_COS, x), -a1), -a0);
  if (a2 != 0) y = bin(I, OP_ADD, y, binc(I, OP_MUL, un(I, OP_COS, binc(I, OP_MUL, x, 2)), a2));
  return onnx_def_dyn(I, 0, onnx_cast(I, y, (DType)dt));
}

bool onnx_signal(Imp *I, const char *t, dvm_status *st) {
  if (!strcmp(t, "CumSum")) return *st = cumsum(I), true;
  if (!strcmp(t, "HannWindow")) return *st = cosine_window(I, 0.5, 0.5, 0), true;
  if (!strcmp(t, "HammingWindow")) return *st = cosine_window(I, 25.0 / 46, 21.0 / 46, 0), true;
  if (!strcmp(t, "BlackmanWindow")) return *st = cosine_window(I, 0.42, 0.5, 0.08), true;
  return false;
}
