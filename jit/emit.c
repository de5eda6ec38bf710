/* jit/emit.c — the native emitter's primitives: constants and splats, LLVM intrinsics and
 * libmvec calls (split into host-width pieces for wider values), the kernel's buffer and
 * dim parameters, element types of each dtype in memory and in registers, f16 / bf16
 * conversions, and masked loads and stores of W lanes. */
#include <llvm-c/Core.h>
#include <stdio.h>
#include <string.h>

#include "cg.h"

LLVMValueRef cg_ci64(Cg *c, int64_t v) { return LLVMConstInt(c->i64, (unsigned long long)v, 1); }
LLVMValueRef cg_splatf(Cg *c, double v) {
  LLVMValueRef e = LLVMConstReal(c->f32, v);
  LLVMValueRef lanes[64];
  for (int i = 0; i < c->W; i++) lanes[i] = e;
  return LLVMConstVector(lanes, (unsigned)c->W);
}

/* x in every lane (insertelement + zero shuffle; the C API has no splat builder). */
LLVMValueRef cg_vsplat(Cg *c, LLVMValueRef x, const char *name) {
  LLVMTypeRef vt = LLVMVectorType(LLVMTypeOf(x), (unsigned)c->W);
  LLVMValueRef v = LLVMBuildInsertElement(c->B, LLVMGetPoison(vt), x, LLVMConstInt(c->i32, 0, 0), "");
  return LLVMBuildShuffleVector(c->B, v, LLVMGetPoison(vt), LLVMConstNull(LLVMVectorType(c->i32, (unsigned)c->W)), name);
}

LLVMValueRef cg_intrinsic(Cg *c, const char *name, LLVMTypeRef *tys, size_t nt,
                              LLVMValueRef *args, unsigned na) {
  unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
  LLVMValueRef f = LLVMGetIntrinsicDeclaration(c->M, id, tys, nt);
  LLVMTypeRef ft = LLVMIntrinsicGetType(c->C, id, tys, nt);
  return LLVMBuildCall2(c->B, ft, f, args, na, "");
}

LLVMValueRef cg_vcall1(Cg *c, const char *name, LLVMValueRef x) {
  LLVMTypeRef t = c->vf;
  return cg_intrinsic(c, name, &t, 1, &x, 1);
}

LLVMValueRef cg_vcall2(Cg *c, const char *name, LLVMValueRef x, LLVMValueRef y) {
  LLVMTypeRef t = c->vf;
  LLVMValueRef a[2] = {x, y};
  return cg_intrinsic(c, name, &t, 1, a, 2);
}

/* Lanes [from, from + n) of x. */
static LLVMValueRef lanes_of(Cg *c, LLVMValueRef x, int from, int n) {
  LLVMValueRef idx[64];
  for (int i = 0; i < n; i++) idx[i] = LLVMConstInt(c->i32, (unsigned long long)(from + i), 0);
  return LLVMBuildShuffleVector(c->B, x, LLVMGetPoison(LLVMTypeOf(x)), LLVMConstVector(idx, (unsigned)n), "");
}

/* The np pieces of n lanes each, concatenated (np a power of two). */
static LLVMValueRef concat(Cg *c, LLVMValueRef *piece, int np, int n) {
  for (; np > 1; np /= 2, n *= 2)
    for (int i = 0; i < np / 2; i++) {
      LLVMValueRef idx[64];
      for (int l = 0; l < 2 * n; l++) idx[l] = LLVMConstInt(c->i32, (unsigned long long)l, 0);
      piece[i] = LLVMBuildShuffleVector(c->B, piece[2 * i], piece[2 * i + 1], LLVMConstVector(idx, (unsigned)(2 * n)), "");
    }
  return piece[0];
}

/* f applied to x (and y) in pieces of the host's width, for values wider than it. */
LLVMValueRef cg_by_native(Cg *c, Native f, const char *what, LLVMValueRef x, LLVMValueRef y) {
  if (c->W == c->NW) return f(c, what, x, y);
  LLVMValueRef piece[8];
  int np = c->W / c->NW;
  for (int i = 0; i < np; i++)
    piece[i] = f(c, what, lanes_of(c, x, i * c->NW, c->NW), y ? lanes_of(c, y, i * c->NW, c->NW) : NULL);
  return concat(c, piece, np, c->NW);
}

static LLVMValueRef mvec_native(Cg *c, const char *fnname, LLVMValueRef x, LLVMValueRef y) {
  char name[64];
  snprintf(name, sizeof name, "%s%s_%s", c->mvec, y ? "vv" : "v", fnname);
  LLVMTypeRef vt = LLVMVectorType(c->f32, (unsigned)c->NW);
  LLVMTypeRef params[2] = {vt, vt};
  LLVMTypeRef ft = LLVMFunctionType(vt, params, y ? 2 : 1, 0);
  LLVMValueRef f = LLVMGetNamedFunction(c->M, name);
  if (!f) f = LLVMAddFunction(c->M, name, ft);
  LLVMValueRef args[2] = {x, y};
  return LLVMBuildCall2(c->B, ft, f, args, y ? 2 : 1, "");
}

/* A libmvec vector function: "expf" -> _ZGVeN16v_expf. */
LLVMValueRef cg_mvec(Cg *c, const char *fnname, LLVMValueRef x, LLVMValueRef y) {
  return cg_by_native(c, mvec_native, fnname, x, y);
}

/* vscalefps: y·2^floor(n), IEEE overflow and underflow (AVX-512). */
LLVMValueRef cg_scalef_native(Cg *c, const char *unused, LLVMValueRef y, LLVMValueRef n) {
  LLVMValueRef a[5] = {y, n, LLVMGetPoison(LLVMTypeOf(y)), LLVMConstInt(LLVMInt16TypeInContext(c->C), 0xffff, 0),
                       LLVMConstInt(c->i32, 4, 0)};
  return cg_intrinsic(c, "llvm.x86.avx512.mask.scalef.ps.512", NULL, 0, a, 5);
}

/* Value of dim d: a constant or the kernel's dim parameter. */
LLVMValueRef cg_dimval(Cg *c, KnDim d) { return d.q < 0 ? cg_ci64(c, d.c) : c->dimv[d.q]; }

LLVMValueRef cg_buf(Cg *c, uint32_t i) { return c->bufp[i]; }

/* The buffer pointers and dim values, loaded once in the entry block: stores through the
 * float pointers could alias the bufs and dims arrays as far as LLVM knows, so loads in
 * the loops would be repeated every iteration. */
void cg_load_params(Cg *c) {
  for (uint32_t i = 0; i < c->low->nin + c->low->nout; i++) {
    LLVMValueRef at = LLVMBuildGEP2(c->B, c->ptr, c->bufs, (LLVMValueRef[]){cg_ci64(c, i)}, 1, "");
    c->bufp[i] = LLVMBuildLoad2(c->B, c->ptr, at, "buf");
  }
  for (uint32_t q = 0; q < c->low->ndims; q++) {
    LLVMValueRef at = LLVMBuildGEP2(c->B, c->i64, c->dims, (LLVMValueRef[]){cg_ci64(c, q)}, 1, "");
    c->dimv[q] = LLVMBuildLoad2(c->B, c->i64, at, "dim");
  }
}

/* Lane mask for a tail: lane < rem. */
LLVMValueRef cg_tail_mask(Cg *c, LLVMValueRef rem) {
  LLVMValueRef lanes[64];
  for (int i = 0; i < c->W; i++) lanes[i] = cg_ci64(c, i);
  LLVMValueRef idx = LLVMConstVector(lanes, (unsigned)c->W);
  LLVMValueRef r = cg_vsplat(c, rem, "");
  return LLVMBuildICmp(c->B, LLVMIntSLT, idx, r, "mask");
}

/* W elements of type et (f32, or i8 for bool) at base_ptr[off], masked in a tail. */
LLVMValueRef cg_load_elems(Cg *c, LLVMTypeRef et, LLVMValueRef base_ptr, LLVMValueRef off) {
  LLVMValueRef at = LLVMBuildGEP2(c->B, et, base_ptr, &off, 1, "");
  LLVMTypeRef vt = LLVMVectorType(et, (unsigned)c->W);
  unsigned align = et == c->f32 ? 4 : 1;
  if (!c->mask) {
    LLVMValueRef l = LLVMBuildLoad2(c->B, vt, at, "");
    LLVMSetAlignment(l, align);
    return l;
  }
  LLVMTypeRef tys[2] = {vt, c->ptr};
  LLVMValueRef args[4] = {at, LLVMConstInt(c->i32, align, 0), c->mask, LLVMConstNull(vt)};
  return cg_intrinsic(c, "llvm.masked.load", tys, 2, args, 4);
}

static void store_elems(Cg *c, LLVMTypeRef et, LLVMValueRef base_ptr, LLVMValueRef off, LLVMValueRef v) {
  LLVMValueRef at = LLVMBuildGEP2(c->B, et, base_ptr, &off, 1, "");
  unsigned align = et == c->f32 ? 4 : 1;
  if (!c->mask) {
    LLVMSetAlignment(LLVMBuildStore(c->B, v, at), align);
    return;
  }
  LLVMTypeRef tys[2] = {LLVMTypeOf(v), c->ptr};
  LLVMValueRef args[4] = {v, at, LLVMConstInt(c->i32, align, 0), c->mask};
  cg_intrinsic(c, "llvm.masked.store", tys, 2, args, 4);
}

LLVMValueRef cg_load_vec(Cg *c, LLVMValueRef base_ptr, LLVMValueRef off) {
  return cg_load_elems(c, c->f32, base_ptr, off);
}

void cg_store_vec(Cg *c, LLVMValueRef base_ptr, LLVMValueRef off, LLVMValueRef v) {
  store_elems(c, c->f32, base_ptr, off, v);
}

/* The element type of dtype t in memory (bool: a byte) and in registers (bool: i1). */
LLVMTypeRef cg_mem_type(Cg *c, DType t) {
  switch (t) {
  case DT_BOOL: case DT_I8: case DT_U8: return LLVMInt8TypeInContext(c->C);
  case DT_I16: case DT_U16: return LLVMInt16TypeInContext(c->C);
  case DT_I32: case DT_U32: return c->i32;
  case DT_I64: return c->i64;
  case DT_F16: return LLVMHalfTypeInContext(c->C);
  case DT_BF16: return LLVMInt16TypeInContext(c->C);
  default: return c->f32;
  }
}

LLVMTypeRef cg_reg_type(Cg *c, DType t) {
  if (kn_is_low(t)) return c->vf;
  if (kn_is_narrow(t)) return LLVMVectorType(t == DT_U32 ? c->i64 : c->i32, (unsigned)c->W);
  return LLVMVectorType(t == DT_BOOL ? c->i1 : cg_mem_type(c, t), (unsigned)c->W);
}

/* W lanes of the i32 constant v. */
static LLVMValueRef ki32(Cg *c, unsigned W, uint32_t v) {
  LLVMValueRef k[64];
  for (unsigned i = 0; i < W; i++) k[i] = LLVMConstInt(c->i32, v, 0);
  return LLVMConstVector(k, W);
}

/* A <W x float> value as f16 / bf16 in memory: f16 by fptrunc (F16C), bf16 as the
 * reference rounds (runtime/tensor.c rt_f32_to_bf16): to nearest even, a NaN kept and
 * made quiet. A narrow integer's register as its width (the low bits). */
LLVMValueRef cg_to_mem(Cg *c, LLVMValueRef x, DType t) {
  LLVMBuilderRef B = c->B;
  unsigned W = LLVMGetVectorSize(LLVMTypeOf(x));
  LLVMTypeRef m = LLVMVectorType(cg_mem_type(c, t), W);
  if (kn_is_narrow(t)) return LLVMBuildTrunc(B, x, m, "");
  if (t == DT_F16) return LLVMBuildFPTrunc(B, x, m, "");
  LLVMValueRef bits = LLVMBuildBitCast(B, x, LLVMVectorType(c->i32, W), "");
  LLVMValueRef nan = LLVMBuildICmp(B, LLVMIntUGT, LLVMBuildAnd(B, bits, ki32(c, W, 0x7fffffffu), ""),
                                   ki32(c, W, 0x7f800000u), "");
  LLVMValueRef hi = LLVMBuildLShr(B, bits, ki32(c, W, 16), "");
  LLVMValueRef odd = LLVMBuildAnd(B, hi, ki32(c, W, 1), "");
  LLVMValueRef rne = LLVMBuildLShr(B, LLVMBuildAdd(B, LLVMBuildAdd(B, bits, ki32(c, W, 0x7fff), ""), odd, ""),
                                   ki32(c, W, 16), "");
  LLVMValueRef r = LLVMBuildSelect(B, nan, LLVMBuildOr(B, hi, ki32(c, W, 0x40), ""), rne, "");
  return LLVMBuildTrunc(B, r, m, "");
}

/* f16 / bf16 from memory (a vector of half or i16) to <W x float>: exact. A narrow
 * integer sign- or zero-extended to its register. */
LLVMValueRef cg_from_mem(Cg *c, LLVMValueRef x, DType t) {
  unsigned W = LLVMGetVectorSize(LLVMTypeOf(x));
  LLVMTypeRef vf = LLVMVectorType(c->f32, W), vi = LLVMVectorType(c->i32, W);
  if (kn_is_narrow(t)) {
    LLVMTypeRef r = LLVMVectorType(t == DT_U32 ? c->i64 : c->i32, W);
    return ir_dtype_is_unsigned(t) ? LLVMBuildZExt(c->B, x, r, "") : LLVMBuildSExt(c->B, x, r, "");
  }
  if (t == DT_F16) return LLVMBuildFPExt(c->B, x, vf, "");
  LLVMValueRef w = LLVMBuildShl(c->B, LLVMBuildZExt(c->B, x, vi, ""), ki32(c, W, 16), "");
  return LLVMBuildBitCast(c->B, w, vf, "");
}

/* An f32 value rounded to f16 / bf16 (and back to f32 in registers); a narrow integer
 * wrapped to its width. */
LLVMValueRef cg_round_to(Cg *c, LLVMValueRef x, DType t) { return cg_from_mem(c, cg_to_mem(c, x, t), t); }

/* Value u's W lanes to memory in its dtype: bool masks as bytes 0/1. */
void cg_store_value(Cg *c, uint32_t u, LLVMValueRef base_ptr, LLVMValueRef off, LLVMValueRef v) {
  DType t = (DType)c->low->val[u].t;
  if (kn_widened(t)) v = cg_to_mem(c, v, t);
  if (t != DT_BOOL) {
    store_elems(c, cg_mem_type(c, t), base_ptr, off, v);
    return;
  }
  LLVMTypeRef i8 = LLVMInt8TypeInContext(c->C);
  store_elems(c, i8, base_ptr, off, LLVMBuildZExt(c->B, v, LLVMVectorType(i8, (unsigned)c->W), ""));
}

/* Element offset of value u at the outer multi-index idx (the last axis at 0) and its
 * stride along the last axis, read in alignment ctx. */
void cg_value_base(Cg *c, uint32_t u, const LLVMValueRef *idx, int ctx, LLVMValueRef *base,
                   LLVMValueRef *inner) {
  KnLayout lay;
  kn_layout(c->low, u, ctx, &lay);
  LLVMValueRef off = cg_ci64(c, 0), stride = cg_ci64(c, 1);
  *inner = cg_ci64(c, 0);
  for (int t = lay.rank - 1; t >= 0; t--) {
    int dk = lay.axis[t];
    if (dk >= 0) {
      if (dk == c->r - 1) *inner = stride;
      else off = LLVMBuildAdd(c->B, off, LLVMBuildMul(c->B, idx[dk], stride, ""), "");
    }
    stride = LLVMBuildMul(c->B, stride, cg_dimval(c, lay.dim[t]), "");
  }
  *base = off;
}

/* Every input's offsets at the outer multi-index idx, in both alignments. */
void cg_input_bases(Cg *c, const LLVMValueRef *idx) {
  for (uint32_t i = 0; i < c->low->nin; i++) /* input i is value i */
    for (int ctx = 0; ctx < 2; ctx++) {
      if (ctx && !c->axes) {
        c->base[2 * i + 1] = c->base[2 * i], c->inner[2 * i + 1] = c->inner[2 * i];
        continue;
      }
      cg_value_base(c, i, idx, ctx, &c->base[2 * i + ctx], &c->inner[2 * i + ctx]);
    }
}

/* An input's W lanes at the current column. */
LLVMValueRef cg_load_input(Cg *c, int i) {
  LLVMValueRef p = cg_buf(c, (uint32_t)i), base = c->base[2 * i + c->ctx], x;
  DType dt = (DType)c->low->val[i].t;
  bool mask = dt == DT_BOOL; /* bytes 0/1 */
  LLVMTypeRef et = cg_mem_type(c, dt);
  /* the stride along the row is known when the kernel is emitted: 0 (broadcast) or the
     contiguous 1 of the last dim */
  if (LLVMConstIntGetSExtValue(c->inner[2 * i + c->ctx]) == 0) {
    LLVMValueRef at = LLVMBuildGEP2(c->B, et, p, &base, 1, "");
    x = cg_vsplat(c, LLVMBuildLoad2(c->B, et, at, ""), "");
  } else {
    x = cg_load_elems(c, et, p, LLVMBuildAdd(c->B, base, c->j, ""));
    if (c->prefetching && c->next[i] && !c->mask && dt == DT_F32)
      cg_prefetch(c, p, LLVMBuildAdd(c->B, c->next[i], c->j, ""));
  }
  if (kn_widened(dt)) return cg_from_mem(c, x, dt);
  return mask ? LLVMBuildICmp(c->B, LLVMIntNE, x, LLVMConstNull(LLVMTypeOf(x)), "") : x;
}


LLVMValueRef cg_lit(Cg *c, uint32_t u) {
  const KnConst *k = kn_const(c->low, u);
  DType t = (DType)k->t;
  if (t == DT_BOOL) return cg_vsplat(c, LLVMConstInt(c->i1, k->i != 0, 0), "");
  if (kn_is_int(t)) return cg_vsplat(c, LLVMConstInt(LLVMGetElementType(cg_reg_type(c, t)), (unsigned long long)k->i, 1), "");
  return kn_is_low(t) ? cg_round_to(c, cg_splatf(c, k->f), t) : cg_splatf(c, k->f);
}
