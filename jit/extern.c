/* jit/extern.c — extern kernels (one `call` node, docs/extern.md) in the native tier.
 *
 * The call plan is kernel/extern.c's (kn_extern_plan), the bytecode tier's too. The
 * native kernel loads the values it names and calls the function directly: its address is a
 * constant in the code. That is safe because the address is part of the kernel's key
 * (Extern.hash joins the canonical form, fusion/key.c) and the Jit and its cache belong to
 * one context, whose registry keeps the function for the context's lifetime; object code
 * with an embedded address must never be written to a persistent cache.
 */
#include <llvm-c/Core.h>
#include <stdio.h>
#include <string.h>

#include "jit.h"

/* ---- native code ---------------------------------------------------------------------------- */

typedef struct Ex {
  LLVMContextRef C;
  LLVMModuleRef M;
  LLVMBuilderRef B;
  LLVMTypeRef i8, i32, i64, f32, f64, ptr;
} Ex;

static LLVMTypeRef ctype(const Ex *x, ExtType t) {
  switch (t) {
  case ET_I32: return x->i32;
  case ET_I64: return x->i64;
  case ET_F32: return x->f32;
  case ET_F64: return x->f64;
  case ET_PTR: return x->ptr;
  default: return LLVMVoidTypeInContext(x->C);
  }
}

static LLVMValueRef load_ptr(const Ex *x, LLVMValueRef base, uint32_t i) {
  LLVMValueRef at = LLVMBuildGEP2(x->B, x->ptr, base, (LLVMValueRef[]){LLVMConstInt(x->i64, i, 0)}, 1, "");
  return LLVMBuildLoad2(x->B, x->ptr, at, "");
}

/* val (a loaded f32, i32, i64 or bool element) converted to t as ir_extern_scalar does. */
static LLVMValueRef convert(const Ex *x, LLVMValueRef val, DType dt, ExtType t) {
  LLVMTypeRef to = ctype(x, t);
  if (dt == DT_F32) {
    if (t == ET_F32) return val;
    if (t == ET_F64) return LLVMBuildFPExt(x->B, val, to, "");
    char name[48];
    snprintf(name, sizeof name, "llvm.fptosi.sat.%s.f32", t == ET_I32 ? "i32" : "i64");
    LLVMTypeRef from = x->f32;
    LLVMTypeRef ft = LLVMFunctionType(to, &from, 1, 0);
    LLVMValueRef f = LLVMGetNamedFunction(x->M, name);
    if (!f) f = LLVMAddFunction(x->M, name, ft);
    return LLVMBuildCall2(x->B, ft, f, &val, 1, "");
  }
  if (dt == DT_BOOL) val = LLVMBuildZExt(x->B, val, x->i64, ""); /* 0 or 1 */
  if (t == ET_F32 || t == ET_F64) return LLVMBuildSIToFP(x->B, val, to, "");
  return LLVMBuildIntCast2(x->B, val, to, 1, ""); /* sext, trunc (wraps) or nothing */
}

static LLVMTypeRef elem_type(const Ex *x, DType dt) {
  switch (dt) {
  case DT_F32: return x->f32;
  case DT_I32: return x->i32;
  case DT_I64: return x->i64;
  default: return x->i8; /* bool */
  }
}

/* Emit extern kernel k as function `name` of the kernel ABI: if begin < end, call the
 * function once with its arguments; a scalar result is stored as the output's element. */
void jit_emit_extern(const KnKernel *kk, LLVMContextRef C, LLVMModuleRef M, const char *name) {
  const KnExt plan = *kk->ext;
  bool ok = kk->ok;
  Ex x = {.C = C, .M = M, .B = LLVMCreateBuilderInContext(C)};
  x.i8 = LLVMInt8TypeInContext(C), x.i32 = LLVMInt32TypeInContext(C), x.i64 = LLVMInt64TypeInContext(C);
  x.f32 = LLVMFloatTypeInContext(C), x.f64 = LLVMDoubleTypeInContext(C), x.ptr = LLVMPointerTypeInContext(C, 0);
  LLVMTypeRef params[4] = {x.ptr, x.ptr, x.i64, x.i64};
  LLVMValueRef fn = LLVMAddFunction(M, name, LLVMFunctionType(LLVMVoidTypeInContext(C), params, 4, 0));
  LLVMBasicBlockRef entry = LLVMAppendBasicBlockInContext(C, fn, "entry"),
                    call = LLVMAppendBasicBlockInContext(C, fn, "call"),
                    done = LLVMAppendBasicBlockInContext(C, fn, "done");
  LLVMPositionBuilderAtEnd(x.B, entry);
  LLVMValueRef bufs = LLVMGetParam(fn, 0), dims = LLVMGetParam(fn, 1);
  LLVMBuildCondBr(x.B, LLVMBuildICmp(x.B, LLVMIntSLT, LLVMGetParam(fn, 2), LLVMGetParam(fn, 3), ""), call, done);
  LLVMPositionBuilderAtEnd(x.B, call);
  if (ok) { /* compile() declines a kernel without a plan; here it does nothing */
    const Extern *e = plan.e;
    LLVMTypeRef pt[EXT_MAX_PARAMS];
    LLVMValueRef av[EXT_MAX_PARAMS];
    for (int i = 0; i < e->nparams; i++) {
      ExtType t = (ExtType)e->param[i].type;
      const KnExtArg *a = &plan.arg[i];
      pt[i] = ctype(&x, t);
      switch (a->kind) {
      case KX_BUF: av[i] = load_ptr(&x, bufs, a->buf); break;
      case KX_LOAD:
        av[i] = convert(&x, LLVMBuildLoad2(x.B, elem_type(&x, (DType)a->dtype), load_ptr(&x, bufs, a->buf), ""),
                        (DType)a->dtype, t);
        break;
      case KX_DIM: {
        LLVMValueRef at = LLVMBuildGEP2(x.B, x.i64, dims, (LLVMValueRef[]){LLVMConstInt(x.i64, a->q, 0)}, 1, "");
        av[i] = LLVMBuildIntCast2(x.B, LLVMBuildLoad2(x.B, x.i64, at, ""), pt[i], 1, "");
        break;
      }
      default: { /* KX_CONST */
        if (t == ET_F32 || t == ET_F64) {
          double d;
          float f;
          if (t == ET_F32) memcpy(&f, &a->bits, 4), d = f;
          else memcpy(&d, &a->bits, 8);
          av[i] = LLVMConstReal(pt[i], d);
        } else if (t == ET_I32) {
          int32_t v32;
          memcpy(&v32, &a->bits, 4);
          av[i] = LLVMConstInt(x.i32, (unsigned long long)(int64_t)v32, 1);
        } else {
          av[i] = LLVMConstInt(x.i64, (unsigned long long)a->bits, 1);
        }
      }
      }
    }
    LLVMTypeRef ft = LLVMFunctionType(ctype(&x, (ExtType)e->ret), pt, e->nparams, 0);
    LLVMValueRef callee = LLVMConstIntToPtr(LLVMConstInt(x.i64, (unsigned long long)(uintptr_t)e->fn, 0), x.ptr);
    LLVMValueRef r = LLVMBuildCall2(x.B, ft, callee, av, e->nparams, "");
    if (e->ret != ET_VOID) { /* the output's one element (f64 rounds to the f32 output) */
      if (e->ret == ET_F64) r = LLVMBuildFPTrunc(x.B, r, x.f32, "");
      LLVMBuildStore(x.B, r, load_ptr(&x, bufs, plan.out));
    }
  }
  LLVMBuildBr(x.B, done);
  LLVMPositionBuilderAtEnd(x.B, done);
  LLVMBuildRetVoid(x.B);
  LLVMDisposeBuilder(x.B);
}
