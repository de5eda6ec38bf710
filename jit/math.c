/* jit/math.c — the elementwise ops as LLVM IR on <W x T> values: exp (Cephes, inline),
 * 2^t and what uses it (gelu_tanh, softmax's exp(x - max)), compares, bool logic, select,
 * casts, the wrapping integer ops and the f32 arithmetic. The constants are the kernel
 * layer's (kernel/kernel.h), so the bytecode tier rounds the same sequences alike. */
#include <llvm-c/Core.h>
#include <math.h>

#include "cg.h"

/* y·2^n for n a whole float in [-150, 128]: vscalefps on AVX-512, else 2^(n/2)·2^(n-n/2)
 * (each factor a normal float) so the product overflows and underflows as IEEE. */
static LLVMValueRef scale2n(Cg *c, LLVMValueRef y, LLVMValueRef n) {
  LLVMBuilderRef B = c->B;
  if (c->NW == 16) return cg_by_native(c, cg_scalef_native, NULL, y, n);
  LLVMTypeRef t = c->vf, vi = LLVMVectorType(c->i32, (unsigned)c->W);
  LLVMValueRef ni = LLVMBuildFPToSI(B, n, vi, "");
  LLVMValueRef lanes[64];
  for (int i = 0; i < c->W; i++) lanes[i] = LLVMConstInt(c->i32, 1, 0);
  LLVMValueRef one = LLVMConstVector(lanes, (unsigned)c->W);
  for (int i = 0; i < c->W; i++) lanes[i] = LLVMConstInt(c->i32, 127, 0);
  LLVMValueRef bias = LLVMConstVector(lanes, (unsigned)c->W);
  for (int i = 0; i < c->W; i++) lanes[i] = LLVMConstInt(c->i32, 23, 0);
  LLVMValueRef sh = LLVMConstVector(lanes, (unsigned)c->W);
  LLVMValueRef h = LLVMBuildAShr(B, ni, one, ""), k = LLVMBuildSub(B, ni, h, "");
  LLVMValueRef s1 = LLVMBuildBitCast(B, LLVMBuildShl(B, LLVMBuildAdd(B, h, bias, ""), sh, ""), t, "");
  LLVMValueRef s2 = LLVMBuildBitCast(B, LLVMBuildShl(B, LLVMBuildAdd(B, k, bias, ""), sh, ""), t, "");
  return LLVMBuildFMul(B, LLVMBuildFMul(B, y, s1, ""), s2, "");
}

/* exp(x) emitted inline (Cephes expf): x = n·ln2 + r with ln2 split in two, a degree-6
 * polynomial in r, scaled by 2^n: on AVX-512 by vscalefps, which rounds overflow to inf
 * and underflow to subnormals or 0 itself, elsewhere as 2^(n/2)·2^(n-n/2) so that results
 * near the ends stay exact, with > 88.72 inf, < -103.97 0. NaN stays NaN. About 1
 * ulp, and several times faster here than a call to libmvec's expf (measured with
 * dvm bench), which is why this one function is not libmvec's. */
static LLVMValueRef vexp(Cg *c, LLVMValueRef x) {
  LLVMBuilderRef B = c->B;
  LLVMTypeRef t = c->vf;
  LLVMValueRef xc = cg_vcall2(c, "llvm.minimum", cg_vcall2(c, "llvm.maximum", x, cg_splatf(c, KN_EXP_LO)), cg_splatf(c, KN_EXP_HI));
  LLVMValueRef n = cg_vcall1(c, "llvm.roundeven", LLVMBuildFMul(B, xc, cg_splatf(c, KN_LOG2E), ""));
  LLVMValueRef r = cg_intrinsic(c, "llvm.fma", &t, 1, (LLVMValueRef[]){n, cg_splatf(c, KN_LN2_HI), xc}, 3);
  r = cg_intrinsic(c, "llvm.fma", &t, 1, (LLVMValueRef[]){n, cg_splatf(c, KN_LN2_LO), r}, 3);
  static const double P[] = KN_EXP_POLY;
  LLVMValueRef y = cg_splatf(c, P[0]);
  for (int i = 1; i < 6; i++) y = cg_intrinsic(c, "llvm.fma", &t, 1, (LLVMValueRef[]){y, r, cg_splatf(c, P[i])}, 3);
  LLVMValueRef r2 = LLVMBuildFMul(B, r, r, "");
  y = cg_intrinsic(c, "llvm.fma", &t, 1, (LLVMValueRef[]){y, r2, LLVMBuildFAdd(B, r, cg_splatf(c, 1), "")}, 3);
  LLVMValueRef res = scale2n(c, y, n);
  if (c->NW == 16) return res; /* vscalefps: the IEEE ends already */
  res = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOGT, x, cg_splatf(c, KN_EXP_OVER), ""), cg_splatf(c, INFINITY), res, "");
  res = LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealOLT, x, cg_splatf(c, KN_EXP_UNDER), ""), cg_splatf(c, 0), res, "");
  return LLVMBuildSelect(B, LLVMBuildFCmp(B, LLVMRealUNO, x, x, ""), x, res, "");
}

/* x / y, y a vector; reciprocal forms stay exact divisions (as the reference). */
LLVMValueRef cg_vdiv(Cg *c, LLVMValueRef x, LLVMValueRef y) { return LLVMBuildFDiv(c->B, x, y, ""); }

/* 2^t for t a float in [-150, 128] (or NaN): 2^(t - rne t) by KN_EXP2_POLY, exact
 * f = t - rne t in [-1/2, 1/2], scaled by 2^rne(t). */
static LLVMValueRef pow2(Cg *c, LLVMValueRef t) {
  LLVMTypeRef vt = c->vf;
  LLVMValueRef n = cg_vcall1(c, "llvm.roundeven", t), f = LLVMBuildFSub(c->B, t, n, "");
  static const float P[6] = KN_EXP2_POLY;
  LLVMValueRef y = cg_splatf(c, P[5]);
  for (int i = 4; i >= 0; i--) y = cg_intrinsic(c, "llvm.fma", &vt, 1, (LLVMValueRef[]){y, f, cg_splatf(c, P[i])}, 3);
  return scale2n(c, y, n);
}

/* gelu_tanh(x) = 0.5·x·(1 + tanh u) = x / (1 + 2^t), t = -2u·log2(e) = x·fma(x², c3, c1):
 * no tanh and no exp. t is clamped to [-150, 128] (2^t is 0 or inf past it), n = rne(t),
 * f = t - n exactly, 2^f a degree-5 polynomial on [-1/2, 1/2] (2.1e-7 relative, below
 * the ~6e-8·|t| that t itself carries from rounding), scaled by 2^n. 9 multiplies and fmas
 * against the 14 of the exp route; the bytecode tier's F_(gelu_tanh) is the same sequence. */
static LLVMValueRef gelu_tanh(Cg *c, LLVMValueRef x) {
  LLVMBuilderRef B = c->B;
  LLVMTypeRef t = c->vf;
  LLVMValueRef p = cg_intrinsic(c, "llvm.fma", &t, 1, (LLVMValueRef[]){LLVMBuildFMul(B, x, x, ""),
                             cg_splatf(c, KN_GELU_C3), cg_splatf(c, KN_GELU_C1)}, 3);
  LLVMValueRef tt = LLVMBuildFMul(B, x, p, "");
  tt = cg_vcall2(c, "llvm.minimum", cg_vcall2(c, "llvm.maximum", tt, cg_splatf(c, KN_POW2_LO)), cg_splatf(c, KN_POW2_HI));
  return cg_vdiv(c, x, LLVMBuildFAdd(B, cg_splatf(c, 1), pow2(c, tt), ""));
}

/* exp(d) for d = x - max (softmax and log_softmax: d <= 0, or NaN): 2^t, t = d·log2 e
 * clamped below at -150 (the sum's terms past it are 0), NaN staying NaN. The rounding of
 * t costs ~6e-8·|t| relative, 1.7e-6 at d = -20, far inside what a probability needs;
 * 7 multiplies and fmas against vexp's 12 (W2 is bound by them up to N = 333). The
 * bytecode tier's F_(expm) is the same sequence. */
LLVMValueRef cg_exp_shifted(Cg *c, LLVMValueRef d) {
  LLVMValueRef t = LLVMBuildFMul(c->B, d, cg_splatf(c, KN_LOG2E), "");
  return pow2(c, cg_vcall2(c, "llvm.maximum", t, cg_splatf(c, KN_POW2_LO)));
}

static LLVMValueRef sigmoid(Cg *c, LLVMValueRef x) {
  LLVMValueRef e = vexp(c, LLVMBuildFNeg(c->B, x, ""));
  return cg_vdiv(c, cg_splatf(c, 1), LLVMBuildFAdd(c->B, cg_splatf(c, 1), e, ""));
}

/* Compares (NumPy: only != holds for NaN), bool logic, select and casts. */
static LLVMValueRef emit_bool(Cg *c, uint32_t v, const KnIns *in, LLVMValueRef x, LLVMValueRef y) {
  LLVMBuilderRef B = c->B;
  bool fx = LLVMGetTypeKind(LLVMGetElementType(LLVMTypeOf(x))) == LLVMFloatTypeKind;
  DType to = (DType)in->t, from = (DType)in->a;
  switch (in->op) {
  case KO_EQ: return fx ? LLVMBuildFCmp(B, LLVMRealOEQ, x, y, "") : LLVMBuildICmp(B, LLVMIntEQ, x, y, "");
  case KO_NE: return fx ? LLVMBuildFCmp(B, LLVMRealUNE, x, y, "") : LLVMBuildICmp(B, LLVMIntNE, x, y, "");
  case KO_LT: return fx ? LLVMBuildFCmp(B, LLVMRealOLT, x, y, "") : LLVMBuildICmp(B, LLVMIntSLT, x, y, "");
  case KO_LE: return fx ? LLVMBuildFCmp(B, LLVMRealOLE, x, y, "") : LLVMBuildICmp(B, LLVMIntSLE, x, y, "");
  case KO_GT: return fx ? LLVMBuildFCmp(B, LLVMRealOGT, x, y, "") : LLVMBuildICmp(B, LLVMIntSGT, x, y, "");
  case KO_GE: return fx ? LLVMBuildFCmp(B, LLVMRealOGE, x, y, "") : LLVMBuildICmp(B, LLVMIntSGE, x, y, "");
  case KO_AND: return LLVMBuildAnd(B, x, y, "");
  case KO_OR: return LLVMBuildOr(B, x, y, "");
  case KO_NOT: return LLVMBuildNot(B, x, "");
  case KO_SELECT: return LLVMBuildSelect(B, x, y, cg_operand(c, v, 2), "");
  case KO_CAST: /* as the reference: to bool x != 0 (NaN is true), float to integer
                    saturates (NaN is 0), integers wrap, bool is 0/1 */
    if (to == from) return x;
    if (to == DT_BOOL)
      return fx ? LLVMBuildFCmp(B, LLVMRealUNE, x, cg_splatf(c, 0), "") : LLVMBuildICmp(B, LLVMIntNE, x, LLVMConstNull(LLVMTypeOf(x)), "");
    if (from == DT_BOOL) return kn_is_flt(to) ? LLVMBuildUIToFP(B, x, c->vf, "") : LLVMBuildZExt(B, x, cg_reg_type(c, to), "");
    if (kn_is_flt(to)) return fx ? x : LLVMBuildSIToFP(B, x, c->vf, ""); /* f16: eval rounds */
    if (fx) { /* saturated at the width, then extended to the register */
      unsigned W = LLVMGetVectorSize(LLVMTypeOf(x));
      LLVMTypeRef tys[2] = {kn_is_narrow(to) ? LLVMVectorType(cg_mem_type(c, to), W) : cg_reg_type(c, to), c->vf};
      x = cg_intrinsic(c, ir_dtype_is_unsigned(to) ? "llvm.fptoui.sat" : "llvm.fptosi.sat", tys, 2, &x, 1);
      return kn_is_narrow(to) ? cg_from_mem(c, x, to) : x;
    }
    { /* integers wrap: to the width (from a register holding an extended value), extended */
      unsigned W = LLVMGetVectorSize(LLVMTypeOf(x)), wx = LLVMGetIntTypeWidth(LLVMGetElementType(LLVMTypeOf(x)));
      LLVMTypeRef m = LLVMVectorType(cg_mem_type(c, to), W);
      unsigned wm = LLVMGetIntTypeWidth(cg_mem_type(c, to));
      x = wx > wm ? LLVMBuildTrunc(B, x, m, "") : wx < wm ? LLVMBuildSExt(B, x, m, "") : x;
      return kn_is_narrow(to) ? cg_from_mem(c, x, to) : x;
    }
  default: return x; /* unreachable: kn_supported */
  }
}

/* Integer arithmetic wraps (two's complement), as the reference. */
static LLVMValueRef emit_int(Cg *c, const KnIns *in, LLVMValueRef x, LLVMValueRef y) {
  LLVMBuilderRef B = c->B;
  LLVMTypeRef t = LLVMTypeOf(x);
  LLVMValueRef zero = LLVMConstNull(t), a[2] = {x, y ? y : zero};
  switch (in->op) {
  case KO_NEG: return LLVMBuildSub(B, zero, x, "");
  case KO_ABS: a[1] = LLVMConstInt(c->i1, 0, 0); return cg_intrinsic(c, "llvm.abs", &t, 1, a, 2);
  case KO_RELU: return cg_intrinsic(c, "llvm.smax", &t, 1, a, 2);
  case KO_SIGN: {
    LLVMValueRef one = cg_vsplat(c, LLVMConstInt(LLVMGetElementType(t), 1, 0), "");
    LLVMValueRef neg = LLVMBuildSub(B, zero, one, "");
    return LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSGT, x, zero, ""), one,
                           LLVMBuildSelect(B, LLVMBuildICmp(B, LLVMIntSLT, x, zero, ""), neg, zero, ""), "");
  }
  case KO_ADD: return LLVMBuildAdd(B, x, y, "");
  case KO_SUB: return LLVMBuildSub(B, x, y, "");
  case KO_MUL: return LLVMBuildMul(B, x, y, "");
  case KO_MAX: return cg_intrinsic(c, "llvm.smax", &t, 1, a, 2);
  case KO_MIN: return cg_intrinsic(c, "llvm.smin", &t, 1, a, 2);
  case KO_CLIP: {
    LLVMTypeRef et = LLVMGetElementType(t);
    if (in->lo) a[0] = x, a[1] = cg_vsplat(c, LLVMConstInt(et, (unsigned long long)in->ilo, 1), ""),
                x = cg_intrinsic(c, "llvm.smax", &t, 1, a, 2);
    if (in->hi) a[0] = x, a[1] = cg_vsplat(c, LLVMConstInt(et, (unsigned long long)in->ihi, 1), ""),
                x = cg_intrinsic(c, "llvm.smin", &t, 1, a, 2);
    return x;
  }
  default: return x; /* unreachable: kn_supported */
  }
}

LLVMValueRef cg_emit_elementwise(Cg *c, uint32_t v, const KnIns *in) {
  LLVMValueRef x = cg_operand(c, v, 0), y = kn_op_arity((KnOp)in->op) >= 2 ? cg_operand(c, v, 1) : NULL;
  LLVMBuilderRef B = c->B;
  if (in->op >= KO_EQ && in->op <= KO_CAST) return emit_bool(c, v, in, x, y); /* compares, logic, select, casts */
  if (kn_is_int((DType)in->t)) return emit_int(c, in, x, y);
  switch (in->op) {
  case KO_NEG: return LLVMBuildFNeg(B, x, "");
  case KO_ABS: return cg_vcall1(c, "llvm.fabs", x);
  case KO_EXP: return vexp(c, x);
  case KO_LOG: return cg_mvec(c, "logf", x, NULL);
  case KO_SQRT: return cg_vcall1(c, "llvm.sqrt", x);
  case KO_RSQRT: return cg_vdiv(c, cg_splatf(c, 1), cg_vcall1(c, "llvm.sqrt", x));
  case KO_RECIP: return cg_vdiv(c, cg_splatf(c, 1), x);
  case KO_TANH: return cg_mvec(c, "tanhf", x, NULL);
  case KO_SIGMOID: return sigmoid(c, x);
  case KO_RELU: return cg_vcall2(c, "llvm.maximum", x, cg_splatf(c, 0));
  case KO_GELU: {
    LLVMValueRef e = cg_mvec(c, "erff", LLVMBuildFMul(B, x, cg_splatf(c, M_SQRT1_2), ""), NULL);
    return LLVMBuildFMul(B, LLVMBuildFMul(B, cg_splatf(c, 0.5), x, ""), LLVMBuildFAdd(B, cg_splatf(c, 1), e, ""), "");
  }
  case KO_GELU_TANH: return gelu_tanh(c, x);
  case KO_SILU: return LLVMBuildFMul(B, x, sigmoid(c, x), "");
  case KO_ERF: return cg_mvec(c, "erff", x, NULL);
  case KO_SIN: return cg_mvec(c, "sinf", x, NULL);
  case KO_COS: return cg_mvec(c, "cosf", x, NULL);
  case KO_FLOOR: return cg_vcall1(c, "llvm.floor", x);
  case KO_CEIL: return cg_vcall1(c, "llvm.ceil", x);
  case KO_ROUND: return cg_vcall1(c, "llvm.roundeven", x);
  case KO_SIGN: {
    LLVMValueRef pos = LLVMBuildFCmp(B, LLVMRealOGT, x, cg_splatf(c, 0), "");
    LLVMValueRef neg = LLVMBuildFCmp(B, LLVMRealOLT, x, cg_splatf(c, 0), "");
    LLVMValueRef s = LLVMBuildSelect(B, pos, cg_splatf(c, 1), LLVMBuildSelect(B, neg, cg_splatf(c, -1), cg_splatf(c, 0), ""), "");
    LLVMValueRef nan = LLVMBuildFCmp(B, LLVMRealUNO, x, x, "");
    return LLVMBuildSelect(B, nan, x, s, "");
  }
  case KO_ADD: return LLVMBuildFAdd(B, x, y, "");
  case KO_SUB: return LLVMBuildFSub(B, x, y, "");
  case KO_MUL: return LLVMBuildFMul(B, x, y, "");
  case KO_DIV: return cg_vdiv(c, x, y);
  case KO_POW: return cg_mvec(c, "powf", x, y);
  case KO_FMOD: return LLVMBuildFRem(B, x, y, ""); /* C's fmodf, exact */
  case KO_MAX: return cg_vcall2(c, "llvm.maximum", x, y);
  case KO_MIN: return cg_vcall2(c, "llvm.minimum", x, y);
  case KO_CLIP:
    if (in->lo) x = cg_vcall2(c, "llvm.maximum", x, cg_splatf(c, in->flo));
    if (in->hi) x = cg_vcall2(c, "llvm.minimum", x, cg_splatf(c, in->fhi));
    return x;
  default: return cg_splatf(c, NAN); /* unreachable: kn_supported */
  }
}
