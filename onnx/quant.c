/* onnx/quant.c — ONNX's linear quantization: QuantizeLinear, DequantizeLinear,
 * DynamicQuantizeLinear, MatMulInteger, QLinearMatMul, ConvInteger and QLinearConv, in
 * the builder of onnx.h (the convolutions through window.c's onnx_conv).
 *
 * Each is a short formula over dvm ops on the 8-bit dtypes: integers are widened to i32
 * before they are subtracted (exact), products accumulate in i32 (wrapping, as ONNX
 * Runtime's int32 accumulators), and a float is quantized as ONNX defines it:
 * round half to even, add the zero point, saturate at the target's range (dvm's float to
 * integer cast saturates, so the cast is the clip). */
#include <string.h>

#include "onnx.h"

#define R DVM_MAX_RANK

/* Scale or zero point v of a quantization along `axis` of a rank-r value: a scalar as it
 * is, a one-element 1-D made a scalar, a 1-D of the axis's length laid along that axis. */
static int64_t along(Imp *I, int64_t v, int axis, int r, const char *what) {
  Dim d[R];
  if (v < 0) return -1;
  int rv = onnx_vdims(I, v, d);
  int64_t n;
  if (rv == 0) return v;
  if (rv == 1 && ir_dim_is_const(I->g, d[0], &n) && n == 1) return onnx_reshape(I, v, d, 0);
  if (rv != 1) return onnx_fail(I, DVM_ERR_SHAPE, "%s must be a scalar or 1-D, not of rank %d", what, rv), -1;
  if (axis < 0 || axis >= r) return onnx_fail(I, DVM_ERR_GRAPH, "axis out of range for rank %d", r), -1;
  Dim s[R];
  for (int i = 0; i < r; i++) s[i] = i == axis ? d[0] : ir_dim_const(I->g, 1);
  return onnx_reshape(I, v, s, r);
}

/* The quantization axis of x (attribute `axis`, default 1), normalized; -1 if out of range
 * (only an error when a 1-D scale needs it). */
static int quant_axis(Imp *I, int64_t x) {
  int r = x < 0 ? 0 : ir_node(I->g, (uint32_t)x)->rank;
  return ir_axis(onnx_attr_i(I, "axis", 1), r);
}

/* x widened to i32 less zero point zp (-1: none), laid along `axis` of rank r by along()
 * (what: its name) or, without a name, taken as it is; -1 with the error set. */
static int64_t less_zero_point(Imp *I, int64_t x, int64_t zp, int axis, int r, const char *what) {
  int64_t w = onnx_cast(I, x, DT_I32);
  if (zp == -1 || w < 0) return w;
  if (what && (zp = along(I, zp, axis, r, what)) < 0) return -1;
  return bin(I, OP_SUB, w, onnx_cast(I, zp, DT_I32));
}

/* round(f) + zp, cast to dt: the quantization of a float value f already scaled. */
static int64_t quantize(Imp *I, int64_t f, int64_t zp, DType dt) {
  if (f < 0 || zp < -1) return -1;
  int64_t q = un(I, OP_ROUND, f);
  if (zp >= 0) q = bin(I, OP_ADD, q, onnx_cast(I, zp, DT(f)));
  return onnx_cast(I, q, dt);
}

static bool quantized(DType t) { return t == DT_U8 || t == DT_I8; }

static dvm_status quantize_linear(Imp *I) {
  int64_t x = onnx_in(I, 0), scale = x < 0 ? -1 : onnx_in(I, 1), zp = scale < 0 ? -2 : onnx_in_opt(I, 2);
  if (zp == -2) return I->err->code;
  DType dt = zp >= 0 ? DT(zp) : DT_U8;
  if (!quantized(dt)) return onnx_fail(I, DVM_ERR_UNSUPPORTED, "y_zero_point of %s: uint8 or int8 expected", ir_dtype_name(dt));
  if (!ir_dtype_is_float(DT(scale))) return onnx_fail(I, DVM_ERR_DTYPE, "y_scale must be a float");
  int r = ir_node(I->g, (uint32_t)x)->rank, ax = quant_axis(I, x);
  int64_t f = ir_dtype_is_float(DT(x)) ? x : onnx_cast(I, x, DT_F32);
  scale = along(I, scale, ax, r, "y_scale");
  if (zp >= 0 && (zp = along(I, zp, ax, r, "y_zero_point")) < 0) return I->err->code;
  return onnx_def_dyn(I, 0, quantize(I, bin(I, OP_DIV, f, onnx_cast(I, scale, DT(f))), zp, dt));
}

static dvm_status dequantize_linear(Imp *I) {
  int64_t x = onnx_in(I, 0), scale = x < 0 ? -1 : onnx_in(I, 1), zp = scale < 0 ? -2 : onnx_in_opt(I, 2);
  if (zp == -2) return I->err->code;
  if (!quantized(DT(x)) && DT(x) != DT_I32)
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "x of %s: uint8, int8 or int32 expected", ir_dtype_name(DT(x)));
  if (!ir_dtype_is_float(DT(scale))) return onnx_fail(I, DVM_ERR_DTYPE, "x_scale must be a float");
  int r = ir_node(I->g, (uint32_t)x)->rank, ax = quant_axis(I, x);
  int64_t d = less_zero_point(I, x, zp, ax, r, "x_zero_point");
  return onnx_def_dyn(I, 0, bin(I, OP_MUL, onnx_cast(I, d, DT(scale)), along(I, scale, ax, r, "x_scale")));
}

/* y, its scale and zero point: u8 over [min(0, min x), max(0, max x)]. */
static dvm_status dynamic_quantize(Imp *I) {
  int64_t x = onnx_in(I, 0);
  if (x < 0) return I->err->code;
  if (DT(x) != DT_F32) return onnx_fail(I, DVM_ERR_UNSUPPORTED, "x of %s: float expected", ir_dtype_name(DT(x)));
  int64_t lo = bin(I, OP_MIN, reduce(I, OP_REDUCE_MIN, x, NULL, -1, false), lit(I, 0, x));
  int64_t hi = bin(I, OP_MAX, reduce(I, OP_REDUCE_MAX, x, NULL, -1, false), lit(I, 0, x));
  int64_t scale = binc(I, OP_DIV, bin(I, OP_SUB, hi, lo), 255);
  int64_t zp = onnx_cast(I, un(I, OP_ROUND, bin(I, OP_DIV, un(I, OP_NEG, lo), scale)), DT_U8);
  if (zp < 0) return I->err->code;
  int64_t y = quantize(I, bin(I, OP_DIV, x, scale), zp, DT_U8);
  if (onnx_def_dyn(I, 0, y) || onnx_def_dyn(I, 1, scale)) return I->err->code;
  return onnx_def_dyn(I, 2, zp);
}

/* (a - a_zp) @ (b - b_zp) in i32: a's zero point per row (a 1-D of M), b's per column. */
static int64_t int_product(Imp *I, int64_t a, int64_t b, int64_t azp, int64_t bzp) {
  if (a < 0 || b < 0) return -1;
  if (!quantized(DT(a)) || !quantized(DT(b)))
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "operands of %s and %s: uint8 or int8 expected", ir_dtype_name(DT(a)),
                     ir_dtype_name(DT(b))), -1;
  int64_t ai = less_zero_point(I, a, azp, 0, 2, "a_zero_point"), bi = less_zero_point(I, b, bzp, 0, 0, NULL);
  if (ai < 0 || bi < 0) return -1;
  NodeDraft d = {.op = OP_MATMUL, .nin = 2, .in = {(uint32_t)ai, (uint32_t)bi}};
  return onnx_add(I, &d, NULL);
}

static dvm_status matmul_integer(Imp *I) {
  int64_t a = onnx_in(I, 0), b = a < 0 ? -1 : onnx_in(I, 1), azp = b < 0 ? -2 : onnx_in_opt(I, 2);
  int64_t bzp = azp == -2 ? -2 : onnx_in_opt(I, 3);
  if (bzp == -2) return I->err->code;
  return onnx_def_dyn(I, 0, int_product(I, a, b, azp, bzp));
}

/* round(acc · (a_scale · b_scale / y_scale)) + y_zp, saturated to y_zp's dtype. */
static dvm_status qlinear_matmul(Imp *I) {
  int64_t v[8];
  for (size_t i = 0; i < 8; i++)
    if ((v[i] = onnx_in(I, i)) < 0) return I->err->code;
  for (int i = 1; i < 8; i += i == 4 ? 2 : 3) /* a_scale, b_scale, y_scale */
    if (!ir_dtype_is_float(DT(v[i]))) return onnx_fail(I, DVM_ERR_DTYPE, "input %d (a scale) must be a float", i + 1);
  if (!quantized(DT(v[7]))) return onnx_fail(I, DVM_ERR_UNSUPPORTED, "y_zero_point: uint8 or int8 expected");
  int64_t acc = int_product(I, v[0], v[3], v[2], v[5]);
  int64_t m = bin(I, OP_DIV, bin(I, OP_MUL, along(I, v[1], 0, 2, "a_scale"), v[4]), v[6]);
  int64_t f = acc < 0 || m < 0 ? -1 : onnx_cast(I, acc, DT(m));
  return onnx_def_dyn(I, 0, quantize(I, bin(I, OP_MUL, f, m), v[7], DT(v[7])));
}

/* Input i, an 8-bit integer, less zero point input z (absent: 0) as i32; the zero point
 * is a scalar or (per output channel, `channels`) a 1-D laid along axis 0 of rank r. */
static int64_t centered(Imp *I, size_t i, size_t z, int r, bool channels) {
  int64_t x = onnx_in(I, i), zp = x < 0 ? -2 : onnx_in_opt(I, z);
  if (zp == -2) return -1;
  if (!quantized(DT(x)))
    return onnx_fail(I, DVM_ERR_UNSUPPORTED, "input %zu of %s: uint8 or int8 expected", i + 1, ir_dtype_name(DT(x))), -1;
  return less_zero_point(I, x, zp, 0, r, channels ? "w_zero_point" : NULL);
}

/* ConvInteger: (x - x_zp) conv (w - w_zp) in i32, pads 0 after the shift (the zero
 * point before it); w's zero point per tensor or per output channel. */
static dvm_status conv_integer(Imp *I) {
  int64_t x = centered(I, 0, 2, 0, false);
  int r = x < 0 ? 0 : ir_node(I->g, (uint32_t)x)->rank;
  return onnx_def_dyn(I, 0, onnx_conv(I, x, x < 0 ? -1 : centered(I, 1, 3, r, true), -1));
}

/* QLinearConv: the quantization of (x - x_zp) conv (w - w_zp) + B (i32) times
 * x_scale · w_scale / y_scale, w's scale and zero point per tensor or per output channel. */
static dvm_status qlinear_conv(Imp *I) {
  int64_t x = centered(I, 0, 2, 0, false), v[3], b = x < 0 ? -2 : onnx_in_opt(I, 8);
  if (b == -2) return I->err->code;
  int r = ir_node(I->g, (uint32_t)x)->rank;
  static const size_t scales[3] = {1, 4, 6}; /* x_scale, w_scale, y_scale */
  for (int i = 0; i < 3; i++)
    if ((v[i] = onnx_in(I, scales[i])) < 0) return I->err->code;
  if (!ir_dtype_is_float(DT(v[0])) || DT(v[1]) != DT(v[0]) || DT(v[2]) != DT(v[0]))
    return onnx_fail(I, DVM_ERR_DTYPE, "the scales must be floats of one dtype");
  int64_t yzp = onnx_in(I, 7);
  if (yzp < 0) return I->err->code;
  if (!quantized(DT(yzp))) return onnx_fail(I, DVM_ERR_UNSUPPORTED, "y_zero_point: uint8 or int8 expected");
  int64_t acc = onnx_conv(I, x, centered(I, 3, 5, r, true), b < 0 ? -1 : onnx_cast(I, b, DT_I32));
  int64_t m = bin(I, OP_DIV, bin(I, OP_MUL, v[0], along(I, v[1], 0, r - 1, "w_scale")), v[2]);
  int64_t f = acc < 0 || m < 0 ? -1 : onnx_cast(I, acc, DT(m));
  return onnx_def_dyn(I, 0, quantize(I, bin(I, OP_MUL, f, m), yzp, DT(yzp)));
}

bool onnx_quantized(Imp *I, const char *t, dvm_status *st) {
  if (!strcmp(t, "QuantizeLinear")) return *st = quantize_linear(I), true;
  if (!strcmp(t, "DequantizeLinear")) return *st = dequantize_linear(I), true;
  if (!strcmp(t, "DynamicQuantizeLinear")) return *st = dynamic_quantize(I), true;
  if (!strcmp(t, "MatMulInteger")) return *st = matmul_integer(I), true;
  if (!strcmp(t, "QLinearMatMul")) return *st = qlinear_matmul(I), true;
  if (!strcmp(t, "ConvInteger")) return *st = conv_integer(I), true;
  if (!strcmp(t, "QLinearConv")) return *st = qlinear_conv(I), true;
  return false;
}
